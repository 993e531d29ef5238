"""A process's identity from ``/proc``: whether it runs, and when it started (a pid alone can be reused)."""

from __future__ import annotations

from pathlib import Path


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); None if it is gone or unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_ticks(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks since boot; None unless it runs (zombies do not)."""
    fields = proc_stat(pid)
    return fields[19] if fields and fields[0] not in ("Z", "X") else None
