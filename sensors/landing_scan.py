"""Scan a landing zone for day folders whose set of ready files changed, with a small bounded cursor.

Every tick fingerprints every day folder (names, sizes and mtimes of its ready files) whatever the files'
mtimes, so files copied with their old mtime (``cp -p``, ``rsync -a``, ``mv``) and deleted files count too.
The cursor keeps one short record per month (a digest of its days' fingerprints and which of its days had
files) and the fingerprints of the most recently requested days. A month whose digest is unchanged is skipped;
in a changed month every settled day whose fingerprint is not the remembered one is due (a day no longer
remembered is due again: its ``run_key`` was used already if nothing changed, so the daemon launches nothing).
A day whose newest file is younger than the settle time waits, and its month keeps its old record so it is
looked at again. Nothing below the landing root is followed if it is a symlink.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from resources.landing import SOURCE_EXTENSIONS, files_fingerprint, is_in_flight, not_a_landing_file

_DAY_DIR = re.compile(r"date=([0-9]{4}-[0-9]{2}-[0-9]{2})", re.ASCII)
#: How many recently requested days keep their fingerprint in the cursor (older ones fall back to run_key dedupe).
RECENT_DAYS = 64
#: How many skipped entries the cursor remembers as already logged (more share one digest).
REPORTED_MAX = 100
_SYMLINK = "is a symlink (links below the landing root are not followed)"


@dataclass(frozen=True)
class LandedFile:
    day: str
    name: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Skipped:
    """An entry the scan did not read, by its path below the landing root."""

    path: str
    reason: str

    @property
    def key(self) -> str:
        """A short stable id, so the cursor can remember it was reported."""
        return short_hash(os.fsencode(self.path) + b"\0" + self.reason.encode())


@dataclass
class SourceScan:
    """What one scan of ``<root>/<source>/`` found."""

    files: list[LandedFile] = field(default_factory=list)
    #: Every day folder read completely: day -> the folder's mtime (it moves when entries are added or removed).
    folders: dict[str, int] = field(default_factory=dict)
    #: Days that could not be read completely this tick: nothing is decided about them.
    blocked: set[str] = field(default_factory=set)
    skipped: list[Skipped] = field(default_factory=list)
    #: The landing root itself is unusable (missing, not a folder, unreadable): nothing was scanned.
    error: str | None = None
    #: There is no source folder to scan (yet): nothing was scanned, quietly.
    absent: str | None = None


@dataclass
class ScanCursor:
    #: day -> fingerprint last requested, least recently requested first.
    recent: dict[str, str] = field(default_factory=dict)
    #: "YYYY-MM" -> "<digest of the month's day fingerprints>.<hex bitmask of its days with files>".
    months: dict[str, str] = field(default_factory=dict)
    #: keys of the skipped entries already logged (see ``Skipped.key``).
    reported: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"m": dict(sorted(self.months.items())), "r": self.recent, "k": self.reported}

    def dumps(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: object) -> ScanCursor:
        """Read a cursor's data; anything unreadable starts over (run_key dedupe and the built-files check keep
        already-run days from running again)."""
        try:
            data = dict(data or {})  # type: ignore[call-overload]
            return cls(_str_dict(data.get("r")), _str_dict(data.get("m")), [str(k) for k in data.get("k") or []])
        except (ValueError, TypeError, AttributeError):
            return cls()

    @classmethod
    def loads(cls, text: str | None) -> ScanCursor:
        try:
            return cls.from_dict(json.loads(text) if text else None)
        except ValueError:
            return cls()


def _str_dict(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(value or {}).items()}


@dataclass(frozen=True)
class DayDue:
    day: str
    fingerprint: str
    files: int


@dataclass(frozen=True)
class Plan:
    due: list[DayDue]
    cursor: ScanCursor
    #: Days whose folder (with files) disappeared: reported, not run.
    removed: list[str]


def short_hash(data: bytes, length: int = 8) -> str:
    return hashlib.sha1(data).hexdigest()[:length]


def scan(landing_root: Path, source: str) -> list[LandedFile]:
    """Every ready file under ``<landing_root>/<source>/date=*/`` (in-flight names and links skipped)."""
    return scan_source(landing_root, source).files


def scan_source(
    landing_root: Path | str, source: str, *, first_day: str | None = None, last_day: str | None = None
) -> SourceScan:
    """Scan ``<landing_root>/<source>/`` without following links; days outside ``first_day..last_day`` skipped."""
    found = SourceScan()
    try:
        root = Path(landing_root).resolve()  # the root itself may be a link; nothing below it is followed
    except (OSError, RuntimeError) as exc:
        found.error = f"landing root {landing_root} cannot be resolved ({exc})"
        return found
    found.error = root_problem(root)
    base = root / source
    if found.error or not _source_folder(base, source, found):
        return found
    try:
        with os.scandir(base) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        found.error = f"cannot read {base} ({exc.strerror})"
        return found
    extensions = SOURCE_EXTENSIONS.get(source, ())
    for entry in entries:
        if is_in_flight(entry.name):
            continue  # a day folder being staged under an in-flight name
        rel = f"{source}/{entry.name}"
        day, reason = _day_of(entry, first_day, last_day)
        if day is None:
            found.skipped.append(Skipped(rel, reason))
        else:
            _scan_day(entry, rel, day, extensions, found)
    return found


def root_problem(root: Path) -> str | None:
    """Why the landing root cannot be scanned, or None."""
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        return f"landing root {root} does not exist"
    except OSError as exc:
        return f"landing root {root} cannot be read ({exc.strerror})"
    return None if stat.S_ISDIR(st.st_mode) else f"landing root {root} is not a folder"


def _source_folder(base: Path, source: str, found: SourceScan) -> bool:
    """True when ``base`` is a real folder to scan; otherwise record why not in ``found``."""
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        found.absent = f"no {source} folder under {base.parent} yet"
        return False
    except OSError as exc:
        found.error = f"cannot read {base} ({exc.strerror})"
        return False
    if stat.S_ISDIR(st.st_mode):
        return True
    reason = _SYMLINK if stat.S_ISLNK(st.st_mode) else "is not a folder"
    found.skipped.append(Skipped(source, reason))
    found.absent = f"{base} {reason}"
    return False


def _day_of(entry: os.DirEntry[str], first_day: str | None, last_day: str | None) -> tuple[str | None, str]:
    """The day a source folder entry holds, or None and why it is skipped."""
    try:
        if entry.is_symlink():
            return None, _SYMLINK
        match = _DAY_DIR.fullmatch(entry.name)
        if not match:
            return None, "not a YYYY-MM-DD date" if entry.name.startswith("date=") else "not a date=YYYY-MM-DD folder"
        day = match.group(1)
        if not _is_calendar_date(day):
            return None, "not a valid calendar date"
        if not entry.is_dir(follow_symlinks=False):
            return None, "is not a folder"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    if first_day and day < first_day:
        return None, f"outside the daily partitions: before the first daily partition {first_day}"
    if last_day and day > last_day:
        return None, "outside the daily partitions: after the last daily partition (today, UTC)"
    return day, ""


def _is_calendar_date(day: str) -> bool:
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


class _DayWaits(Exception):
    """A day folder could not be read completely: nothing is decided about it this tick."""


def _scan_day(entry: os.DirEntry[str], rel: str, day: str, extensions: tuple[str, ...], found: SourceScan) -> None:
    """Add the ready files of one day folder to ``found``, or block the day if it cannot be read completely."""
    try:
        folder_mtime = entry.stat(follow_symlinks=False).st_mtime_ns
        with os.scandir(entry.path) as listing:
            children = [c for c in listing if not is_in_flight(c.name)]
        for child in children:
            folder = child.is_dir(follow_symlinks=False)
            if unread := not_a_landing_file(child.name, is_folder=folder, extensions=extensions):
                found.skipped.append(Skipped(f"{rel}/{child.name}", unread))
        named = [c for c in children if c.name.endswith(extensions)]
        files = [f for c in named if (f := _landed(c, f"{rel}/{c.name}", day, found))]
    except FileNotFoundError:
        found.blocked.add(day)  # the folder or a file went away while scanning: look again next tick
        return
    except OSError as exc:
        found.skipped.append(Skipped(rel, f"cannot be read ({exc.strerror}); the day waits"))
        found.blocked.add(day)
        return
    except _DayWaits:
        found.blocked.add(day)
        return
    found.files.extend(files)
    found.folders[day] = folder_mtime


def _landed(child: os.DirEntry[str], rel: str, day: str, found: SourceScan) -> LandedFile | None:
    """The ready file ``child`` is, or None (skipped); raises ``_DayWaits`` if it cannot be read."""
    try:
        if child.is_symlink():
            found.skipped.append(Skipped(rel, _SYMLINK))
            return None
        if not child.is_file(follow_symlinks=False):
            found.skipped.append(Skipped(rel, "is not a regular file"))
            return None
        st = child.stat(follow_symlinks=False)
        if not os.access(child.path, os.R_OK):
            os.lstat(child.path)  # gone since listed? then FileNotFoundError, not a permission problem
            found.skipped.append(Skipped(rel, "cannot be read (permission denied); the day waits"))
            raise _DayWaits
    except FileNotFoundError:
        raise _DayWaits from None  # renamed or deleted while scanning
    except OSError as exc:
        found.skipped.append(Skipped(rel, f"cannot be read ({exc.strerror}); the day waits"))
        raise _DayWaits from None
    return LandedFile(day, child.name, st.st_size, st.st_mtime_ns)


def fingerprint(files: Iterable[LandedFile]) -> str:
    """Names, sizes and mtimes of a day's ready files (the same digest the sensor always used in run_keys)."""
    return files_fingerprint((f.name, f.size, f.mtime_ns) for f in files)


#: The fingerprint of a day folder without ready files.
EMPTY = fingerprint([])


def month_record(fingerprints: dict[str, str]) -> str:
    """``<digest>.<mask>`` of one month's days with files: their fingerprints, and which days they are."""
    lines = "".join(f"{day}:{fp}\n" for day, fp in sorted(fingerprints.items()))
    mask = sum(1 << (int(day[8:10]) - 1) for day in fingerprints)
    return f"{short_hash(lines.encode(), 12)}.{mask:x}"


def days_with_files(month: str, record: str | None) -> set[str]:
    """The days a month record says had files."""
    try:
        mask = int((record or ".0").split(".")[1], 16)
    except (IndexError, ValueError):
        return set()
    return {f"{month}-{n + 1:02d}" for n in range(31) if mask >> n & 1}


def plan(
    files: list[LandedFile], cursor: ScanCursor, *, now_ns: int, settle_seconds: float
) -> tuple[list[DayDue], ScanCursor]:
    """The days (YYYY-MM-DD) to (re)build and the next cursor, from the ready files alone."""
    planned = plan_scan(SourceScan(files=files), cursor, now_ns=now_ns, settle_seconds=settle_seconds)
    return planned.due, planned.cursor


def plan_scan(scanned: SourceScan, cursor: ScanCursor, *, now_ns: int, settle_seconds: float) -> Plan:
    """The days to (re)build, the days whose folder disappeared, and the next cursor."""
    by_day: dict[str, list[LandedFile]] = {}
    for f in scanned.files:
        by_day.setdefault(f.day, []).append(f)
    months: dict[str, set[str]] = {}
    for day in [*by_day, *scanned.folders, *scanned.blocked]:
        months.setdefault(day[:7], set()).add(day)
    for month in cursor.months:
        months.setdefault(month, set())
    step = _Step(scanned, by_day, cursor, now_ns, int(settle_seconds * 1e9))
    for month in sorted(months):
        step.month(month, months[month])
    recent = dict(list(step.recent.items())[-RECENT_DAYS:])
    return Plan(step.due, ScanCursor(recent, step.months, list(cursor.reported)), step.removed)


class _Step:
    """One planning pass: walks the months, collecting due and removed days and the next cursor state."""

    def __init__(
        self,
        scanned: SourceScan,
        by_day: dict[str, list[LandedFile]],
        cursor: ScanCursor,
        now_ns: int,
        settle_ns: int,
    ) -> None:
        self.scanned, self.by_day, self.now_ns, self.settle_ns = scanned, by_day, now_ns, settle_ns
        self.recent = dict(cursor.recent)
        self.months = dict(cursor.months)
        self.due: list[DayDue] = []
        self.removed: list[str] = []

    def month(self, month: str, days: set[str]) -> None:
        """Check one month; keep its old record while one of its days is still settling or unreadable."""
        fps = {day: fingerprint(self.by_day[day]) for day in days if day in self.by_day}
        record, old = month_record(fps), self.months.get(month)
        if record == old:
            return
        had = days_with_files(month, old)
        settling, gone = False, []
        for day in sorted(days | had):
            if day in self.scanned.blocked:
                settling = True
            elif day in fps:
                settling |= self._day(day, fps[day], self.by_day[day])
            elif day in self.scanned.folders:
                if day in had or self.recent.get(day, EMPTY) != EMPTY:
                    settling |= self._emptied(day)
            elif day in had:
                gone.append(day)
                self.recent.pop(day, None)
        if settling:
            return
        self.removed += gone
        if fps:
            self.months[month] = record
        else:
            self.months.pop(month, None)

    def _day(self, day: str, fp: str, files: list[LandedFile]) -> bool:
        """Request ``day`` if settled and changed; True while it is still settling."""
        if self.now_ns - max(f.mtime_ns for f in files) < self.settle_ns:
            return True
        self._request(day, fp, len(files))
        return False

    def _emptied(self, day: str) -> bool:
        """A folder that had files and has none: request it once settled (its mtime moved when files went)."""
        if self.now_ns - self.scanned.folders[day] < self.settle_ns:
            return True
        self._request(day, EMPTY, 0)
        return False

    def _request(self, day: str, fp: str, files: int) -> None:
        if self.recent.get(day) == fp:
            return
        self.recent.pop(day, None)
        self.recent[day] = fp
        self.due.append(DayDue(day, fp, files))
