"""An independent reading of the orders contract in plain Python + pandas, used to check the pipeline.

It shares no code with the project: it re-reads the landing files and re-implements the contract from the
README, so a bug in the Spark transforms cannot hide behind the same bug here.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
STATUSES = {"placed", "paid", "shipped", "delivered", "cancelled", "returned"}
REQUIRED = ("order_id", "customer_id", "order_ts", "status", "amount", "region", "updated_at")


def ready_files(landing: Path, day: str) -> list[Path]:
    folder = landing / "orders" / f"date={day}"
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix in (".jsonl", ".json") and not p.name.startswith((".", "_")) and not p.name.endswith(".tmp")
    )


def text(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def ts(value: str | None) -> datetime | None:
    if value is None or not ISO.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def amount(value: str | None) -> Decimal | None:
    try:
        return Decimal(value.strip()).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, AttributeError):
        return None


def valid_orders(landing: Path, day: str) -> list[dict]:
    """Every line of the day that meets the contract, as typed dicts with file and line."""
    out = []
    for path in ready_files(landing, day):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            row = {k: text(obj.get(k)) for k in (*REQUIRED, "currency")}
            if any(row[k] is None or not row[k].strip() for k in REQUIRED):
                continue
            order_ts, updated_at, amt = ts(row["order_ts"]), ts(row["updated_at"]), amount(row["amount"])
            currency = row["currency"] or "USD"
            if order_ts is None or updated_at is None or order_ts.date() != date.fromisoformat(day):
                continue
            if row["status"] not in STATUSES or amt is None or not (0 < amt < 1_000_000):
                continue
            if not re.fullmatch(r"[A-Z]{3}", currency):
                continue
            out.append({**row, "amount": amt, "updated_at": updated_at, "file": path.name, "line": number})
    return out


def latest(landing: Path, day: str) -> pd.DataFrame:
    """One row per order_id: the latest updated_at, then the later file, then the later line."""
    rows = valid_orders(landing, day)
    df = pd.DataFrame(rows)
    df = df.sort_values(["order_id", "updated_at", "file", "line"]).groupby("order_id").tail(1)
    return df.reset_index(drop=True)


def daily_sales(landing: Path, day: str) -> dict[str, dict]:
    df = latest(landing, day)
    result = {}
    for region, group in df.groupby("region"):
        sales = group[group["status"].isin(["paid", "shipped", "delivered"])]
        revenue = sum(sales["amount"], Decimal("0.00"))
        n = len(sales)
        result[region] = {
            "orders": n,
            "revenue": revenue,
            "avg_order_value": (revenue / n).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if n else None,
            "customers": sales["customer_id"].nunique(),
            "cancelled": int((group["status"] == "cancelled").sum()),
            "returned": int((group["status"] == "returned").sum()),
        }
    return result


def bronze_lines(landing: Path, day: str) -> int:
    """Non-blank lines in the day's ready files."""
    return sum(
        1 for p in ready_files(landing, day) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()
    )
