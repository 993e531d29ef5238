"""The landing zone: where source files arrive, and which of them are safe and ready to read.

``<root>/<source>/date=YYYY-MM-DD/<file>``. Nothing outside the root is ever read: below the (resolved) root no
symbolic link is followed — a linked file, day folder or source folder is skipped with its reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg

from resources.errors import MedallionError
from resources.partition_keys import parse_day

ROOT_VAR = "MEDALLION_LANDING_ROOT"
#: Extensions read per source; anything else in a day folder is skipped, and reported.
SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "orders": (".jsonl", ".json"),
    "customers": (".csv",),
    "payments": (".jsonl", ".json"),
}


class LandingRootMissing(MedallionError, FileNotFoundError):
    """The landing root does not exist (a mistyped or unmounted ``MEDALLION_LANDING_ROOT``)."""


class LandingRootUnsupported(MedallionError, ValueError):
    """The landing root is a URI (``s3://…``): landing files are read from a local (or mounted) folder only."""


def check_local_root(root: str) -> str:
    """``root`` when it is a local path; ``LandingRootUnsupported`` naming the setting for an object-store URI.

    Landing on object storage is not implemented: listing, in-flight names, the no-link guarantee and the
    sensors' scan are written for a POSIX folder (``os.scandir``, ``O_NOFOLLOW``).
    """
    if "://" in root and not root.startswith("file://"):
        raise LandingRootUnsupported(
            f"{ROOT_VAR}={root}: landing files on object storage are not supported yet; land them in a local or "
            "mounted folder (the lakehouse root, MEDALLION_LAKEHOUSE_ROOT, may be s3://)"
        )
    return root


def is_in_flight(name: str) -> bool:
    """Files still being written: names starting with ``.`` or ``_`` or ending in ``.tmp``."""
    return name.startswith((".", "_")) or name.endswith(".tmp")


def not_a_landing_file(name: str, *, is_folder: bool, extensions: tuple[str, ...]) -> str | None:
    """Why a day folder's entry (not in flight) is not read as one of the source's files; None when its name is
    one (it may still be skipped: a link, a FIFO)."""
    if name.endswith(extensions):
        return None
    if is_folder:
        return "is a folder; files in folders below a day are never read"
    return f"does not end in {' or '.join(extensions)} (names are case-sensitive); not read"


@dataclass(frozen=True)
class LandingFile:
    """A regular file inside the root: its absolute path, its path relative to the root, size and mtime."""

    path: Path
    relative: str
    size: int
    mtime_ns: int = 0


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of a day folder that is not read, and why."""

    relative: str
    reason: str


@dataclass(frozen=True)
class DayListing:
    """What a day folder holds for one source: the files to read and the entries skipped."""

    source: str
    day: str
    folder: str
    files: tuple[LandingFile, ...]
    skipped: tuple[SkippedEntry, ...]

    @property
    def fingerprint(self) -> str:
        """The day's file set (names, sizes, mtimes): the sensors' run keys and bronze's metadata use it."""
        return files_fingerprint((f.path.name, f.size, f.mtime_ns) for f in self.files)


class LandingZone(dg.ConfigurableResource):
    """``<root>/<source>/date=YYYY-MM-DD/<file>``; the definitions set the root from ``MEDALLION_LANDING_ROOT``."""

    root: str = "landing"

    @property
    def root_path(self) -> Path:
        """The resolved local root; ``LandingRootUnsupported`` (naming the setting) for an ``s3://`` root."""
        root = check_local_root(self.root)
        return Path(root.removeprefix("file://")).expanduser().resolve()

    def check_root(self) -> Path:
        """The resolved root; ``LandingRootMissing`` (naming the root and the setting) when it is not a folder."""
        root = self.root_path
        if not root.is_dir():
            raise LandingRootMissing(
                f"landing root {root} does not exist or is not a folder (set by {ROOT_VAR}); nothing was read or "
                "written"
            )
        return root

    def day_folder(self, source: str, day: str | date) -> Path:
        return self.root_path / source / f"date={parse_day(day).isoformat()}"

    def listing(self, source: str, day: str | date) -> DayListing:
        """The ready files of ``source`` for ``day`` sorted by name; in-flight files are left out silently;
        symbolic links, other non-regular entries, subfolders and other extensions are reported as skipped."""
        root = self.check_root()
        folder = self.day_folder(source, day)
        relative_folder = folder.relative_to(root).as_posix()
        blocked = _linked_parent(root, folder)
        if blocked:
            return DayListing(source, parse_day(day).isoformat(), relative_folder, (), (blocked,))
        files: list[LandingFile] = []
        skipped: list[SkippedEntry] = []
        extensions = SOURCE_EXTENSIONS.get(source, ())
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            relative = f"{relative_folder}/{entry.name}"
            if is_in_flight(entry.name):
                continue
            info = entry.stat(follow_symlinks=False)
            unread = not_a_landing_file(entry.name, is_folder=stat.S_ISDIR(info.st_mode), extensions=extensions)
            if unread:
                skipped.append(SkippedEntry(relative, unread))
            elif stat.S_ISLNK(info.st_mode):
                skipped.append(SkippedEntry(relative, f"is a symlink to {_target(entry.path)}; links are never read"))
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(SkippedEntry(relative, "is not a regular file"))
            else:
                files.append(LandingFile(Path(entry.path), relative, info.st_size, info.st_mtime_ns))
        return DayListing(source, parse_day(day).isoformat(), relative_folder, tuple(files), tuple(skipped))

    def relative(self, path: Path) -> str:
        """A file's path relative to the landing root (what bronze records as ``_source_file``)."""
        return path.relative_to(self.root_path).as_posix()


def files_fingerprint(files: Iterable[tuple[str, int, int]]) -> str:
    """A short digest of ``(name, size, mtime_ns)`` of a day's ready files, in name order."""
    digest = hashlib.sha1()
    for name, size, mtime_ns in sorted(files):
        digest.update(os.fsencode(name) + f"\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _linked_parent(root: Path, folder: Path) -> SkippedEntry | None:
    """The first folder between ``root`` and ``folder`` that is a symbolic link, as a skipped entry."""
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            reason = f"is a symlink to {_target(str(current))}; links are never followed"
            return SkippedEntry(current.relative_to(root).as_posix(), reason)
    return None


def _target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
