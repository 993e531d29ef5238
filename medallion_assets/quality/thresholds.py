"""Minimum pass rates per layer, overridable per deployment and per table through the environment.

``MEDALLION_THRESHOLD_<LAYER>`` overrides a layer (e.g. ``MEDALLION_THRESHOLD_SILVER=0.97``);
``MEDALLION_THRESHOLD_<LAYER>_<TABLE>`` overrides one table (``MEDALLION_THRESHOLD_SILVER_ORDERS``).
"""

from __future__ import annotations

import os

LAYER_DEFAULTS: dict[str, float] = {"bronze": 0.90, "silver": 0.95, "gold": 0.98}


def threshold(table: str) -> float:
    """The minimum share of rows that must pass for ``layer/name`` to publish a partition."""
    layer, name = table.split("/", 1)
    for var in (f"MEDALLION_THRESHOLD_{layer}_{name}".upper(), f"MEDALLION_THRESHOLD_{layer}".upper()):
        if os.environ.get(var):
            value = float(os.environ[var])
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{var}={value} is not a rate between 0 and 1")
            return value
    return LAYER_DEFAULTS[layer]


def passes(passed: int, total: int, minimum: float) -> bool:
    """True when ``passed/total`` reaches ``minimum`` (an empty partition passes: nothing failed)."""
    return total == 0 or passed >= minimum * total - 1e-9
