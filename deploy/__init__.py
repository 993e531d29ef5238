"""The production deployment: instance and workspace files, and the local production topology.

``dagster.yaml`` (PostgreSQL storage, from ``MEDALLION_PG_*``), ``workspace.yaml`` (a separate gRPC code server),
``postgres.py`` (a throwaway PostgreSQL cluster in a folder), ``processes.py`` (detached processes stopped by
pid) and ``local_prod.py`` (``make prod-local`` / ``make prod-stop``).
"""
