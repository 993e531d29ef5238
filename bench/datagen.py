"""A fast deterministic generator of landed order files (numpy + polars), same contract as ``sample_data``.

    <landing>/orders/date=YYYY-MM-DD/part-000.jsonl   new orders (status placed)
                                    part-001.jsonl   their status updates (later updated_at)
                                    part-002.json    re-delivered updates (same updated_at, later file)

One JSON object per line with order_id, customer_id, order_ts, status, amount, currency, region, updated_at.
Same arguments, same bytes. Faults are type-consistent (negative amount, unknown status, lower-case currency,
empty region) so every reader, Spark or polars, parses every line; the contract still quarantines them.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from medallion_assets.orders_contract import FIELDS
from medallion_assets.sample_data import CURRENCIES as _CURRENCIES
from medallion_assets.sample_data import LIFECYCLE_WEIGHTS, LIFECYCLES
from medallion_assets.sample_data import REGIONS as _REGIONS

REGIONS = np.array(_REGIONS)
CURRENCIES = np.array(_CURRENCIES)
#: Lifecycles after "placed" (shared with sample_data) and their weights.
WEIGHTS = np.array(LIFECYCLE_WEIGHTS) / sum(LIFECYCLE_WEIGHTS)
#: status of update ``i`` (0-based) of lifecycle ``p``: ``STATUS_TABLE[p, i]``.
STATUS_TABLE = np.array([[*p, *([""] * (3 - len(p)))] for p in LIFECYCLES], dtype=object)
#: (seconds, suffix) of the UTC offsets order timestamps are written in.
OFFSETS = ((0, "Z"), (7_200, "+02:00"), (-18_000, "-05:00"), (19_800, "+05:30"))
REDELIVERED = 0.05


@dataclass(frozen=True)
class Generated:
    """What was written."""

    days: int
    files: int
    lines: int
    orders: int
    faults: int
    bytes: int


def _iso(seconds: np.ndarray, offset_index: np.ndarray) -> pl.Series:
    """ISO-8601 strings of UTC epoch ``seconds`` written in the offsets chosen by ``offset_index``."""
    shift = np.array([o for o, _ in OFFSETS])[offset_index]
    suffix = np.array([s for _, s in OFFSETS])[offset_index]
    local = pl.from_epoch(pl.Series(seconds + shift), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    return local + pl.Series(suffix)


def _some(mask: np.ndarray, values: np.ndarray) -> pl.Series:
    """``values`` where ``mask``, else null."""
    return pl.select(pl.when(pl.Series(mask)).then(pl.Series(values))).to_series()


def _versions_per_order(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    paths = rng.choice(len(LIFECYCLES), size=n, p=WEIGHTS)
    return paths, np.array([len(p) for p in LIFECYCLES])[paths] + 1


def day_frames(
    day: date, *, orders: int | None, lines: int | None, seed: int, customers: int, fault_rate: float
) -> tuple[dict[str, pl.DataFrame], int, int]:
    """One day's files as frames (name → rows), with the order and fault counts.

    Give ``orders`` (every order with its whole lifecycle) or ``lines`` (exactly that many lines: orders are
    taken while they fit and re-deliveries make up the rest).
    """
    rng = np.random.default_rng([seed, day.toordinal()])
    mean_versions = 1 + sum(len(p) * w for p, w in zip(LIFECYCLES, WEIGHTS, strict=True))
    n = orders if orders is not None else int((lines or 0) / mean_versions * 1.2) + 8
    paths, versions = _versions_per_order(rng, n)
    if lines is not None:
        base = int(lines / (1 + REDELIVERED * (mean_versions - 1) / mean_versions))
        n = max(1, int(np.searchsorted(np.cumsum(versions), base, side="right")))
        paths, versions = paths[:n], versions[:n]
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    ts = midnight + rng.integers(0, 86_400, size=n)
    offset = np.where(rng.random(n) < 0.3, rng.integers(0, len(OFFSETS), size=n), 0)
    ids = pl.Series(np.arange(n)).cast(pl.String).str.zfill(7)
    placed = pl.DataFrame(
        {
            "order_id": f"O{day:%Y%m%d}-" + ids,
            "customer_id": "C" + pl.Series(rng.integers(1, customers + 1, size=n)).cast(pl.String).str.zfill(6),
            "order_ts": _iso(ts, offset),
            "status": pl.Series(["placed"] * n),
            "amount": pl.Series(rng.integers(500, 50_000, size=n) / 100),
            "currency": _some(rng.random(n) < 0.6, CURRENCIES[rng.integers(0, len(CURRENCIES), size=n)]),
            "region": pl.Series(REGIONS[rng.integers(0, len(REGIONS), size=n)]),
        }
    ).with_columns(updated_at=pl.col("order_ts"))
    # Updates: one row per later status, each a few minutes to hours after the previous version.
    upd_order = np.repeat(np.arange(n), versions - 1)
    step = np.concatenate([np.arange(1, v) for v in versions]) if len(upd_order) else np.zeros(0, int)
    gaps = rng.integers(5, 600, size=len(upd_order)) * 60
    cum = np.cumsum(gaps)
    before = np.concatenate([[0], cum])[np.r_[0, np.cumsum(versions - 1)[:-1]]]
    when = ts[upd_order] + cum - np.repeat(before, versions - 1)
    updates = placed[upd_order].with_columns(
        status=pl.Series(STATUS_TABLE[paths[upd_order], step - 1], dtype=pl.String),
        updated_at=_iso(when, np.zeros(len(when), int)),
    )
    total = n + len(updates)
    count = (lines - total) if lines is not None else int(len(updates) * REDELIVERED)
    count = min(max(count, 0), len(updates))
    redelivered = updates[np.sort(rng.choice(len(updates), size=count, replace=False))] if count else None
    faults = round(fault_rate * n)
    if faults:
        placed = _inject_faults(rng, placed, faults)
    files = {"part-000.jsonl": placed, "part-001.jsonl": updates}
    if redelivered is not None:
        files["part-002.json"] = redelivered
    return {k: v.select(FIELDS) for k, v in files.items()}, n, faults


def _inject_faults(rng: np.random.Generator, placed: pl.DataFrame, count: int) -> pl.DataFrame:
    kind = np.full(len(placed), -1)
    kind[rng.choice(len(placed), size=min(count, len(placed)), replace=False)] = np.arange(min(count, len(placed))) % 4
    k = pl.lit(pl.Series("fault", kind))
    return placed.with_columns(
        amount=pl.when(k == 0).then(-pl.col("amount")).otherwise(pl.col("amount")),
        status=pl.when(k == 1).then(pl.lit("pending")).otherwise(pl.col("status")),
        currency=pl.when(k == 2).then(pl.lit("usd")).otherwise(pl.col("currency")),
        region=pl.when(k == 3).then(pl.lit("")).otherwise(pl.col("region")),
    )


def generate(
    landing_root: str | Path,
    *,
    days: int,
    seed: int = 42,
    start: date = date(2024, 1, 1),
    orders_per_day: int | None = None,
    total_lines: int | None = None,
    customers: int = 20_000,
    fault_rate: float = 0.001,
) -> Generated:
    """Write ``days`` day folders under ``<landing_root>/orders``.

    ``orders_per_day`` writes whole lifecycles; ``total_lines`` writes exactly that many order versions,
    spread evenly over the days.
    """
    if (orders_per_day is None) == (total_lines is None):
        raise ValueError("give exactly one of orders_per_day and total_lines")
    root = Path(landing_root) / "orders"
    files = lines = orders = faults = size = 0
    for i in range(days):
        day = start + timedelta(days=i)
        per_day = None if total_lines is None else total_lines // days + (1 if i < total_lines % days else 0)
        frames, n, f = day_frames(
            day, orders=orders_per_day, lines=per_day, seed=seed, customers=customers, fault_rate=fault_rate
        )
        folder = root / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            path = folder / name
            frame.write_ndjson(path)
            files += 1
            lines += len(frame)
            size += path.stat().st_size
        orders += n
        faults += f
    return Generated(days=days, files=files, lines=lines, orders=orders, faults=faults, bytes=size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--days", type=int, default=7)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--orders-per-day", type=int)
    group.add_argument("--total-lines", type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--clean", action="store_true")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(Path(args.landing) / "orders", ignore_errors=True)
    result = generate(
        args.landing,
        days=args.days,
        seed=args.seed,
        start=args.start,
        orders_per_day=args.orders_per_day,
        total_lines=args.total_lines,
    )
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
