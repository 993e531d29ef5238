"""e. Sensor scan: ``sensors.landing_scan.scan`` + ``plan`` over N landed files in many day folders.

Two ticks are timed: the first (empty cursor: every day is due) and a steady-state tick (cursor from the first:
nothing is due). In-flight files (``.tmp``) are landed too and must be skipped.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta
from typing import Any

from bench.common import Context, median, show, write_result
from sensors.landing_scan import ScanCursor, plan, scan

NAME = "sensor_scan"
START = date(2024, 1, 1)
LINE = '{"order_id":"O1","customer_id":"C1","order_ts":"2024-01-01T00:00:00Z","status":"placed","amount":1.0}\n'


def land(root: Any, files: int, per_day: int) -> int:
    """Write ``files`` one-line ready files, ``per_day`` per day folder, plus one in-flight file per day."""
    days = -(-files // per_day)
    for d in range(days):
        folder = root / "orders" / f"date={(START + timedelta(days=d)).isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(per_day, files - d * per_day)):
            (folder / f"part-{i:04d}.jsonl").write_text(LINE)
        (folder / "part-9999.jsonl.tmp").write_text(LINE)
    return days


def run(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    root = ctx.workdir / NAME / "landing"
    shutil.rmtree(root.parent, ignore_errors=True)
    days = land(root, sizes.sensor_files, sizes.sensor_files_per_day)
    now_ns = time.time_ns() + 3_600 * 10**9  # everything settled
    first, steady, scan_only = [], [], []
    for _ in range(sizes.sensor_repeats):
        t0 = time.perf_counter()
        found = scan(root, "orders")
        t1 = time.perf_counter()
        due, cursor = plan(found, ScanCursor(), now_ns=now_ns, settle_seconds=30)
        t2 = time.perf_counter()
        again, _ = plan(scan(root, "orders"), ScanCursor.loads(cursor.dumps()), now_ns=now_ns, settle_seconds=30)
        t3 = time.perf_counter()
        first.append(t2 - t0)
        scan_only.append(t1 - t0)
        steady.append(t3 - t2)
        if len(found) != sizes.sensor_files or len(due) != days or again:
            raise RuntimeError(f"scan found {len(found)} files, {len(due)} due days, {len(again)} due again")
    seconds = round(median(first), 4)
    result = {
        "scenario": NAME,
        "files": sizes.sensor_files,
        "day_folders": days,
        "repeats": sizes.sensor_repeats,
        "first_tick_seconds": seconds,
        "first_tick_seconds_all": [round(s, 4) for s in first],
        "scan_only_seconds": round(median(scan_only), 4),
        "steady_tick_seconds": round(median(steady), 4),
        "cursor_bytes": len(cursor.dumps()),
        "sensor_scan_10k_files_seconds": seconds,
    }
    write_result(ctx.results_dir, NAME, result)
    show(
        f"e. sensor scan: {sizes.sensor_files:,} files in {days} day folders (median of {sizes.sensor_repeats})",
        [
            ("first tick (scan + plan)", f"{seconds:.3f} s ({result['scan_only_seconds']:.3f} s scan)"),
            ("steady tick (nothing due)", f"{result['steady_tick_seconds']:.3f} s"),
            ("cursor size", f"{result['cursor_bytes']} bytes"),
        ],
    )
    return result
