"""The test suite. Its settings are its own: what the calling shell exports (``make`` exports the roots and
``MEDALLION_START_DATE`` for ``make dev``) is removed before the definitions first load, so ``make test`` and a
plain ``pytest`` see the same defaults."""

import os

for _name in [n for n in os.environ if n.startswith("MEDALLION_") or n == "DAGSTER_HOME"]:
    del os.environ[_name]
