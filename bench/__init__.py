"""Benchmarks for the medallion lakehouse (``make bench``; ``python -m bench.run --quick`` for a smoke run).

Not part of ``make test``. Every scenario prints its figures and writes JSON under ``bench/results/``.
"""
