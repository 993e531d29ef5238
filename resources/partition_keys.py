"""Strict parsing of daily partition keys: every predicate the store builds starts here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta

from resources.errors import InvalidPartitionKey

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(key: str | date) -> date:
    """Parse a partition key as a strict ``YYYY-MM-DD`` date; anything else raises ``InvalidPartitionKey``."""
    if isinstance(key, date):
        return key
    if not isinstance(key, str) or not _DAY.fullmatch(key):
        raise InvalidPartitionKey(f"partition key {key!r} is not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(key)
    except ValueError as exc:
        raise InvalidPartitionKey(f"partition key {key!r} is not a valid calendar date: {exc}") from None


def parse_days(keys: Iterable[str | date]) -> list[date]:
    """Parse, de-duplicate and sort partition keys; an empty selection is an error."""
    days = sorted({parse_day(k) for k in keys})
    if not days:
        raise InvalidPartitionKey("no partition keys given")
    return days


def day_range(start: str | date, end: str | date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    first, last = parse_day(start), parse_day(end)
    if last < first:
        raise InvalidPartitionKey(f"partition range {first}..{last} ends before it starts")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def is_contiguous(days: list[date]) -> bool:
    """True when sorted ``days`` have no gaps."""
    return (days[-1] - days[0]).days + 1 == len(days)


def day_blocks(days: Iterable[str]) -> list[tuple[str, str]]:
    """``days`` as runs of consecutive days, each ``(first, last)``."""
    runs: list[tuple[str, str]] = []
    for day in sorted(set(days)):
        if runs and parse_day(runs[-1][1]) + timedelta(days=1) == parse_day(day):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def row_blocks(days: Iterable[str], rows: Mapping[str, int], limit: int) -> list[list[str]]:
    """``days`` in order, cut into blocks of at most ``limit`` rows by ``rows`` (a larger day is a block alone)."""
    blocks: list[list[str]] = []
    held = 0
    for day in sorted(set(days)):
        size = rows.get(day, 0)
        if not blocks or held + size > limit:
            blocks.append([])
            held = 0
        blocks[-1].append(day)
        held += size
    return blocks
