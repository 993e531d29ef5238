"""Deterministic sample order files with every fault a real feed has.

    python -m medallion_assets.sample_data --days 7 --orders-per-day 400 --seed 42

Each day folder gets ``part-000.jsonl`` (new orders), ``part-001.jsonl`` (status updates), ``part-002.json``
(re-delivered updates: same ``updated_at``, later file) and, at the given rates, rows with missing fields,
bad amounts, unknown statuses, bad timestamps, wrong types, unparseable lines, wrong-day rows, bad currencies,
numeric-string amounts and extra fields. The first day also gets an empty file and an in-flight ``.tmp`` file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

REGIONS = ("north", "south", "east", "west", "central")
CURRENCIES = ("USD", "EUR", "GBP")
LIFECYCLES = (
    (),
    ("paid",),
    ("paid", "shipped"),
    ("paid", "shipped", "delivered"),
    ("cancelled",),
    ("paid", "returned"),
)
LIFECYCLE_WEIGHTS = (2, 3, 2, 3, 1, 1)
OFFSETS = (timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30))

Row = dict[str, Any]


def _mutate(field_name: str, value: Any) -> Callable[[Row], Any]:
    def apply(row: Row) -> Any:
        row[field_name] = value
        return row

    return apply


def _drop(field_name: str) -> Callable[[Row], Any]:
    def apply(row: Row) -> Any:
        row.pop(field_name, None)
        return row

    return apply


def _previous_day(row: Row) -> Row:
    ts = datetime.fromisoformat(row["order_ts"].replace("Z", "+00:00")) - timedelta(days=1)
    row["order_ts"] = _iso(ts, timedelta(0))
    return row


#: fault kind → (mutation of a valid row, or a raw line; the rule that must quarantine it, or None if accepted)
FAULTS: dict[str, tuple[Callable[[Row], Any], str | None]] = {
    "missing_order_id": (_drop("order_id"), "order_id_present"),
    "missing_customer_id": (_drop("customer_id"), "customer_id_present"),
    "missing_amount": (_drop("amount"), "amount_present"),
    "missing_region": (_mutate("region", ""), "region_present"),
    "negative_amount": (_mutate("amount", -12.5), "amount_in_range"),
    "huge_amount": (_mutate("amount", 2_500_000), "amount_in_range"),
    "unknown_status": (_mutate("status", "pending"), "status_known"),
    "bad_timestamp": (_mutate("order_ts", "2024-13-45T25:61:00Z"), "order_ts_iso8601"),
    "wrong_type": (_mutate("amount", {"value": 10}), "amount_numeric"),
    "unparseable_line": (lambda row: '{"order_id": "' + row["order_id"] + '", "amount": 1', "json_object"),
    "date_mismatch": (_previous_day, "order_ts_in_folder_date"),
    "bad_currency": (_mutate("currency", "usd"), "currency_code"),
    "numeric_string": (lambda row: _mutate("amount", f"{row['amount']:.2f}")(row), None),
    "extra_fields": (lambda row: {**row, "promo_code": "WELCOME10", "channel": "web"}, None),
}
DEFAULT_RATES = {kind: (0.002 if reason else 0.05) for kind, (_, reason) in FAULTS.items()}


@dataclass(frozen=True)
class Fault:
    """One injected fault: where it is and the rule that must catch it (None: the row is accepted)."""

    file: str
    line: int
    kind: str
    rule: str | None


@dataclass
class GenerationReport:
    files: list[str] = field(default_factory=list)
    lines: int = 0
    faults: list[Fault] = field(default_factory=list)


def _iso(ts: datetime, offset: timedelta) -> str:
    local = ts.astimezone(timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    return text + ("Z" if offset == timedelta(0) else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])


def _day_orders(rng: random.Random, day: date, n: int, customers: int) -> tuple[list[Row], list[Row]]:
    """New orders (placed) and their later status updates for one day."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    placed: list[Row] = []
    updates: list[Row] = []
    for i in range(n):
        ts = midnight + timedelta(seconds=rng.randrange(86_400))
        offset = rng.choice(OFFSETS) if rng.random() < 0.3 else timedelta(0)
        row: Row = {
            "order_id": f"O{day:%Y%m%d}-{i:06d}",
            "customer_id": f"C{rng.randrange(1, customers + 1):05d}",
            "order_ts": _iso(ts, offset),
            "status": "placed",
            "amount": round(rng.uniform(5, 500), 2),
            "region": rng.choice(REGIONS),
            "updated_at": _iso(ts, offset),
        }
        if rng.random() < 0.6:
            row["currency"] = rng.choice(CURRENCIES)
        placed.append(row)
        path = rng.choices(LIFECYCLES, weights=LIFECYCLE_WEIGHTS)[0]
        when = ts
        for status in path:
            when = when + timedelta(minutes=rng.randrange(5, 600))
            updates.append({**row, "status": status, "updated_at": _iso(when, timedelta(0))})
    return placed, updates


def _with_faults(
    rng: random.Random,
    rows: list[Row],
    faults: dict[str, tuple[Callable[[Row], Any], str | None]],
    rates: dict[str, float],
    rel: str,
    report: GenerationReport,
) -> list[Row | str]:
    """``rows`` with each fault kind injected into its share of distinct rows (at least one), recorded in
    ``report`` with the file ``rel`` and line number."""
    out: list[Row | str] = list(rows)
    taken: set[int] = set()
    for kind, (mutate, rule) in faults.items():
        count = round(rates[kind] * len(rows)) or (1 if rates[kind] > 0 else 0)
        free = [i for i in range(len(rows)) if i not in taken]
        for index in rng.sample(free, min(count, len(free))):
            taken.add(index)
            out[index] = mutate(dict(rows[index]))
            report.faults.append(Fault(rel, index + 1, kind, rule))
    return out


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def generate(
    landing_root: str | os.PathLike[str],
    *,
    days: int,
    orders_per_day: int,
    seed: int,
    start: date = date(2024, 1, 1),
    rates: dict[str, float] | None = None,
    customers: int = 2_000,
    progress: bool = False,
) -> GenerationReport:
    """Write ``days`` day folders of order files under ``<landing_root>/orders``; same arguments, same bytes."""
    rates = {**DEFAULT_RATES, **(rates or {})}
    unknown = set(rates) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULTS)}")
    root = Path(landing_root) / "orders"
    report = GenerationReport()
    for offset in tqdm(range(days), desc="orders", unit="day", disable=not progress):
        day = start + timedelta(days=offset)
        rng = random.Random(f"{seed}:{day.isoformat()}")
        placed, updates = _day_orders(rng, day, orders_per_day, customers)
        folder = root / f"date={day.isoformat()}"
        rel = f"orders/date={day.isoformat()}/part-000.jsonl"
        lines = _with_faults(rng, placed, FAULTS, rates, rel, report)
        redelivered = rng.sample(updates, len(updates) // 20)
        files = {
            "part-000.jsonl": [x if isinstance(x, str) else json.dumps(x) for x in lines],
            "part-001.jsonl": [json.dumps(u) for u in updates],
            "part-002.json": [json.dumps(u) for u in redelivered],
        }
        if offset == 0:
            files["part-003.jsonl"] = []
            files["part-004.jsonl.tmp"] = [json.dumps(u) for u in updates[:5]]
        for name, content in files.items():
            _write(folder / name, content)
            report.files.append(f"orders/date={day.isoformat()}/{name}")
            report.lines += 0 if name.endswith(".tmp") else len(content)
    return report


def sample_days(days: int, *, start: date | None = None, end: date | None = None) -> tuple[date, date]:
    """The first and last sample day: ``days`` days ending ``end`` (default yesterday, UTC), or from ``start``."""
    if start is None:
        end = end or datetime.now(timezone.utc).date() - timedelta(days=1)
        start = end - timedelta(days=days - 1)
    return start, start + timedelta(days=days - 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write deterministic sample landing files (orders, customers, payments) with every fault a real "
        "feed has. Day folders that already exist are kept: only missing days are written."
    )
    parser.add_argument("--days", type=int, default=7, help="how many days of files (default 7)")
    parser.add_argument(
        "--end", type=date.fromisoformat, default=None, help="the last day, YYYY-MM-DD (default: yesterday, UTC)"
    )
    parser.add_argument(
        "--start", type=date.fromisoformat, default=None, help="the first day, YYYY-MM-DD, instead of --end"
    )
    parser.add_argument("--orders-per-day", type=int, default=400, help="new orders per day (default 400)")
    parser.add_argument("--seed", type=int, default=42, help="same seed and days, same bytes (default 42)")
    parser.add_argument(
        "--landing",
        default=os.environ.get("MEDALLION_LANDING_ROOT", "landing"),
        help="the landing root (default: $MEDALLION_LANDING_ROOT, else ./landing)",
    )
    parser.add_argument(
        "--fault-rate", type=float, default=None, help="rate of every quarantining order fault (default 0.002)"
    )
    parser.add_argument("--customers", type=int, default=2000, help="customers in the customers feed (0: none)")
    parser.add_argument("--no-payments", action="store_true", help="write no payments feed")
    parser.add_argument("--replace", action="store_true", help="rewrite sample day folders that already exist")
    args = parser.parse_args(argv)
    start, end = sample_days(args.days, start=args.start, end=args.end)
    landing = Path(args.landing)
    rates = (
        {kind: args.fault_rate for kind, (_, rule) in FAULTS.items() if rule} if args.fault_rate is not None else None
    )
    with tempfile.TemporaryDirectory(prefix=".sample-", dir=_existing(landing)) as scratch:
        report = generate(
            scratch, days=args.days, orders_per_day=args.orders_per_day, seed=args.seed, start=start, rates=rates,
            progress=True,
        )  # fmt: skip
        if not args.no_payments:
            generate_payments(scratch, days=args.days, orders_per_day=args.orders_per_day, seed=args.seed, start=start)
        if args.customers:
            generate_customers(scratch, days=args.days, customers=args.customers, seed=args.seed, start=start)
        written, kept = _move_days(Path(scratch), landing, replace=args.replace)
    quarantining = sum(1 for f in report.faults if f.rule)
    print(
        f"sample days {start}..{end} under {landing.resolve()}: {len(written)} day folders written"
        + (f", {len(kept)} already there and kept (--replace rewrites them)" if kept else "")
        + f"; orders: {quarantining} rows that must be quarantined, {len(report.faults) - quarantining} oddities"
    )
    return 0


def _existing(landing: Path) -> Path:
    landing.mkdir(parents=True, exist_ok=True)
    return landing


def _move_days(scratch: Path, landing: Path, *, replace: bool) -> tuple[list[str], list[str]]:
    """Move each generated day folder into place whole (a sensor never sees half a day); keep existing ones."""
    written, kept = [], []
    for folder in sorted(scratch.glob("*/date=*")):
        target = landing / folder.parent.name / folder.name
        name = f"{folder.parent.name}/{folder.name}"
        if target.exists() and not replace:
            kept.append(name)
            continue
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, target)
        written.append(name)
    return written, kept


SEGMENTS = ("consumer", "corporate", "enterprise", "public_sector", "small_business")
CUSTOMER_HEADER = "customer_id,name,email,segment,region,updated_at"


def _customer(rng: random.Random, cid: int) -> dict[str, str]:
    return {
        "customer_id": f"C{cid:05d}",
        "name": f"Customer {cid}",
        "email": f"customer{cid}@example.com",
        "segment": rng.choice(SEGMENTS),
        "region": rng.choice(REGIONS),
    }


#: A day gets one faulty customer row even where its rate rounds to none only from this many rows: one bad row
#: in 25 keeps the day at 96 %, above the default silver threshold (95 %), so every sample day publishes.
FORCED_FAULT_MIN_ROWS = 25


def _customer_fault_count(fault_rate: float, rows: int) -> int:
    return round(fault_rate * rows) or (1 if fault_rate > 0 and rows >= FORCED_FAULT_MIN_ROWS else 0)


def generate_customers(
    landing_root: str | os.PathLike[str],
    *,
    days: int,
    customers: int,
    seed: int,
    start: date = date(2024, 1, 1),
    change_rate: float = 0.02,
    fault_rate: float = 0.002,
) -> int:
    """Customer CSVs: every customer on the first day, then daily changes, re-deliveries and faulty rows."""
    root = Path(landing_root) / "customers"
    state: dict[int, dict[str, str]] = {}
    rows_written = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        rng = random.Random(f"customers:{seed}:{day.isoformat()}")
        midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        rows: list[dict[str, str]] = []
        ids = (
            range(1, customers + 1)
            if offset == 0
            else rng.sample(range(1, customers + 1), max(1, int(customers * change_rate)))
        )
        for cid in ids:
            current = state.get(cid) or _customer(rng, cid)
            if cid in state and rng.random() < 0.7:
                current = {**current, "segment": rng.choice(SEGMENTS), "email": f"c{cid}.{offset}@example.com"}
            state[cid] = current  # a re-delivery when nothing changed
            rows.append(
                {**current, "updated_at": _iso(midnight + timedelta(seconds=rng.randrange(3_600)), timedelta(0))}
            )
        for _ in range(_customer_fault_count(fault_rate, len(rows))):
            bad = dict(rng.choice(rows))
            bad[rng.choice(["email", "segment", "customer_id"])] = rng.choice(["not-an-email", "vip", ""])
            rows.append(bad)
        folder = root / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [CUSTOMER_HEADER] + [",".join(r[c] for c in CUSTOMER_HEADER.split(",")) for r in rows]
        (folder / "customers-000.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows_written += len(rows)
    return rows_written


METHODS = ("card", "bank_transfer", "wallet", "voucher")
#: payment fault kind → (mutation of a valid event, the rule that must quarantine it, or None if accepted)
PAYMENT_FAULTS: dict[str, tuple[Callable[[Row], Any], str | None]] = {
    "missing_payment_id": (_drop("payment_id"), "payment_id_present"),
    "negative_amount": (_mutate("amount", -3), "amount_in_range"),
    "unknown_method": (_mutate("method", "cheque"), "method_known"),
    "unknown_status": (_mutate("status", "pending"), "status_known"),
    "bad_paid_at": (_mutate("paid_at", "yesterday"), "paid_at_iso8601"),
    "unparseable_line": (lambda row: '{"payment_id": "' + row["payment_id"] + '", ', "json_object"),
    "unknown_order": (lambda row: {**row, "order_id": "O-UNKNOWN-" + row["payment_id"]}, None),
}
DEFAULT_PAYMENT_RATES = {kind: (0.003 if rule else 0.01) for kind, (_, rule) in PAYMENT_FAULTS.items()}


def _day_payments(rng: random.Random, day: date, orders: list[Row]) -> list[Row]:
    """Payment events for a day's orders: authorized then captured for sales, refunded after a return,
    failed for some cancellations; every event on the order's day (UTC)."""
    end = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=timezone.utc)
    events: list[Row] = []
    for order in orders:
        final = order["status"]
        if final == "placed":
            continue
        start = datetime.fromisoformat(order["order_ts"].replace("Z", "+00:00")).astimezone(timezone.utc)
        payment = {
            "payment_id": "P" + order["order_id"][1:],
            "order_id": order["order_id"],
            "amount": order["amount"],
            "currency": order.get("currency", "USD"),
            "method": rng.choice(METHODS),
        }
        steps = {"cancelled": ["failed"], "returned": ["authorized", "captured", "refunded"]}.get(
            final, ["authorized", "captured"]
        )
        when = start
        for status in steps:
            when = min(when + timedelta(minutes=rng.randrange(1, 120)), end)
            events.append({**payment, "status": status, "paid_at": _iso(when, timedelta(0))})
    return events


def generate_payments(
    landing_root: str | os.PathLike[str],
    *,
    days: int,
    orders_per_day: int,
    seed: int,
    start: date = date(2024, 1, 1),
    rates: dict[str, float] | None = None,
    customers: int = 2_000,
) -> GenerationReport:
    """Payment events for the orders ``generate`` writes with the same arguments (same bytes every time)."""
    rates = {**DEFAULT_PAYMENT_RATES, **(rates or {})}
    root = Path(landing_root) / "payments"
    report = GenerationReport()
    for offset in range(days):
        day = start + timedelta(days=offset)
        placed, updates = _day_orders(random.Random(f"{seed}:{day.isoformat()}"), day, orders_per_day, customers)
        latest = {u["order_id"]: u for u in [*placed, *updates]}  # updates come in lifecycle order
        rng = random.Random(f"payments:{seed}:{day.isoformat()}")
        rel = f"payments/date={day.isoformat()}/payments-000.jsonl"
        events = _with_faults(rng, _day_payments(rng, day, list(latest.values())), PAYMENT_FAULTS, rates, rel, report)
        lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
        redelivered = [json.dumps(e) for e in rng.sample([e for e in events if isinstance(e, dict)], len(events) // 25)]
        for name, content in (("payments-000.jsonl", lines), ("payments-001.jsonl", redelivered)):
            _write(root / f"date={day.isoformat()}" / name, content)
            report.files.append(f"payments/date={day.isoformat()}/{name}")
            report.lines += len(content)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
