"""The landing zone: where source files arrive, and which of them are ready to read."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg

from resources.partition_keys import parse_day

#: Extensions read per source; anything else in a day folder is ignored.
SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {"orders": (".jsonl", ".json"), "customers": (".csv",)}


def is_in_flight(name: str) -> bool:
    """Files still being written: names starting with ``.`` or ``_`` or ending in ``.tmp``."""
    return name.startswith((".", "_")) or name.endswith(".tmp")


class LandingZone(dg.ConfigurableResource):
    """``<root>/<source>/date=YYYY-MM-DD/<file>``; root from ``MEDALLION_LANDING_ROOT`` (default ``./landing``)."""

    root: str | None = None

    @property
    def root_path(self) -> Path:
        return Path(self.root or os.environ.get("MEDALLION_LANDING_ROOT") or "landing").expanduser().resolve()

    def day_folder(self, source: str, day: str | date) -> Path:
        return self.root_path / source / f"date={parse_day(day).isoformat()}"

    def files(self, source: str, day: str | date) -> list[Path]:
        """The ready files of ``source`` for ``day``, sorted by name (in-flight files skipped)."""
        folder = self.day_folder(source, day)
        if not folder.is_dir():
            return []
        extensions = SOURCE_EXTENSIONS.get(source, ())
        return sorted(
            p for p in folder.iterdir() if p.is_file() and not is_in_flight(p.name) and p.name.endswith(extensions)
        )

    def relative(self, path: Path) -> str:
        """A file's path relative to the landing root (what bronze records as ``_source_file``)."""
        return path.relative_to(self.root_path).as_posix()
