"""Scan a landing zone for day folders whose set of ready files changed, with a small bounded cursor.

The cursor holds a watermark (the newest settled file mtime already handled) and the fingerprints of the most
recently changed days only, so it stays small however many days accumulate. A day is due when one of its files
is newer than the watermark and the day's fingerprint (names, sizes, mtimes of its ready files) differs from
the one last requested. Files younger than the settle time are still being written: their day waits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from resources.landing import SOURCE_EXTENSIONS, is_in_flight

_DAY_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
#: How many recently changed days keep their fingerprint in the cursor (older ones fall back to run_key dedupe).
RECENT_DAYS = 64


@dataclass(frozen=True)
class LandedFile:
    day: str
    name: str
    size: int
    mtime_ns: int


@dataclass
class ScanCursor:
    watermark_ns: int = 0
    recent: dict[str, str] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps({"w": self.watermark_ns, "r": self.recent}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> ScanCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(int(data.get("w", 0)), dict(data.get("r", {})))


@dataclass(frozen=True)
class DayDue:
    day: str
    fingerprint: str
    files: int


def scan(landing_root: Path, source: str) -> list[LandedFile]:
    """Every ready file under ``<landing_root>/<source>/date=*/`` (in-flight names skipped)."""
    base = Path(landing_root) / source
    extensions = SOURCE_EXTENSIONS.get(source, ())
    found: list[LandedFile] = []
    if not base.is_dir():
        return found
    with os.scandir(base) as days:
        for day_dir in days:
            match = _DAY_DIR.fullmatch(day_dir.name)
            if not match or not day_dir.is_dir():
                continue
            with os.scandir(day_dir.path) as entries:
                for entry in entries:
                    if is_in_flight(entry.name) or not entry.name.endswith(extensions) or not entry.is_file():
                        continue
                    st = entry.stat()
                    found.append(LandedFile(match.group(1), entry.name, st.st_size, st.st_mtime_ns))
    return found


def fingerprint(files: list[LandedFile]) -> str:
    digest = hashlib.sha1()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\0{f.size}\0{f.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def plan(
    files: list[LandedFile], cursor: ScanCursor, *, now_ns: int, settle_seconds: float
) -> tuple[list[DayDue], ScanCursor]:
    """The days to (re)build and the next cursor."""
    settle_ns = int(settle_seconds * 1e9)
    by_day: dict[str, list[LandedFile]] = {}
    for f in files:
        by_day.setdefault(f.day, []).append(f)
    due: list[DayDue] = []
    watermark = cursor.watermark_ns
    recent = dict(cursor.recent)
    for day in sorted(by_day):
        day_files = by_day[day]
        newest = max(f.mtime_ns for f in day_files)
        if newest <= cursor.watermark_ns:
            continue  # nothing new in this day since the last handled tick
        if now_ns - newest < settle_ns:
            continue  # still settling: decide on a later tick
        fp = fingerprint(day_files)
        watermark = max(watermark, newest)
        if recent.get(day) == fp:
            continue
        recent.pop(day, None)
        recent[day] = fp
        due.append(DayDue(day, fp, len(day_files)))
    # keep only the most recently changed days' fingerprints (insertion order = change order)
    recent = dict(list(recent.items())[-RECENT_DAYS:])
    return due, ScanCursor(watermark, recent)
