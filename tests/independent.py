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
#: string fields: a JSON string or number (its text), never an object, array or boolean
TEXT = ("order_id", "customer_id", "status", "currency", "region")


def ready_files(landing: Path, day: str) -> list[Path]:
    folder = landing / "orders" / f"date={day}"
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix in (".jsonl", ".json") and not p.name.startswith((".", "_")) and not p.name.endswith(".tmp")
    )


class Number(str):
    """A JSON number's text, exactly as written (bronze keeps numbers so; a float would round ``1.005e0``)."""


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


def structured(obj: dict, fields: tuple[str, ...]) -> bool:
    """One of ``fields`` holds a JSON object, array or boolean."""
    return any(isinstance(obj.get(k), (dict, list, bool)) for k in fields)


def json_objects(paths: list[Path]):
    """(path, line number, object) for every line of ``paths`` that is a JSON object."""
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            try:
                obj = json.loads(line, parse_float=Number, parse_int=Number)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield path, number, obj


def valid_orders(landing: Path, day: str) -> list[dict]:
    """Every line of the day that meets the contract, as typed dicts with file and line."""
    out = []
    for path, number, obj in json_objects(ready_files(landing, day)):
        row = {k: text(obj.get(k)) for k in (*REQUIRED, "currency")}
        if any(row[k] is None or not row[k].strip() for k in REQUIRED) or structured(obj, TEXT):
            continue
        # keys and codes compare without white space
        row.update({k: row[k].strip() for k in ("order_id", "customer_id", "status", "region")})
        order_ts, updated_at, amt = ts(row["order_ts"]), ts(row["updated_at"]), amount(row["amount"])
        currency = "USD" if row["currency"] is None else row["currency"].strip()
        if order_ts is None or updated_at is None or order_ts.date() != date.fromisoformat(day):
            continue
        if row["status"] not in STATUSES or amt is None or not (0 < amt < 1_000_000) or len(row["region"]) > 64:
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


# -- payments ---------------------------------------------------------------------------------------------------
PAYMENT_FIELDS = ("payment_id", "order_id", "paid_at", "amount", "currency", "method", "status")
METHODS = {"card", "bank_transfer", "wallet", "voucher"}
PAYMENT_STATUSES = {"authorized", "captured", "refunded", "failed"}
PAYMENT_TEXT = ("payment_id", "order_id", "currency", "method", "status")


def latest_payments(landing: Path, day: str) -> pd.DataFrame:
    """Valid payment events of the day's files, the latest per payment (paid_at, then file, then line)."""
    rows = []
    folder = landing / "payments" / f"date={day}"
    for path, number, obj in json_objects(sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".json"))):
        row = {k: text(obj.get(k)) for k in PAYMENT_FIELDS}
        if any(row[k] is None or not row[k].strip() for k in PAYMENT_FIELDS) or structured(obj, PAYMENT_TEXT):
            continue
        row.update({k: row[k].strip() for k in ("payment_id", "order_id", "currency", "method", "status")})
        paid_at, amt = ts(row["paid_at"]), amount(row["amount"])
        if paid_at is None or paid_at.date() != date.fromisoformat(day) or amt is None or not 0 < amt < 1_000_000:
            continue
        if not re.fullmatch(r"[A-Z]{3}", row["currency"]) or row["method"] not in METHODS:
            continue
        if row["status"] not in PAYMENT_STATUSES:
            continue
        rows.append({**row, "amount": amt, "paid_at": paid_at, "file": path.name, "line": number})
    df = pd.DataFrame(rows).sort_values(["payment_id", "paid_at", "file", "line"])
    return df.groupby("payment_id").tail(1).reset_index(drop=True)


def reconciliation(landing: Path, days: list[str]) -> dict[tuple[str, str], dict]:
    """Per payment day and region, the figures gold/payment_reconciliation must hold."""
    orders = pd.concat([latest(landing, d).assign(order_date=d) for d in days], ignore_index=True)
    region = orders.sort_values("order_date").groupby("order_id").tail(1).set_index("order_id")["region"]
    payments = {d: latest_payments(landing, d) for d in days}
    captured = set().union(*(set(p[p.status == "captured"].order_id) for p in payments.values()))
    out: dict[tuple[str, str], dict] = {}
    zero = Decimal("0.00")
    for day in days:
        p = payments[day].assign(region=lambda f: f.order_id.map(region).fillna("unknown"))
        sales = daily_sales(landing, day)
        day_orders = orders[orders.order_date == day]
        sale_orders = day_orders[day_orders.status.isin(["paid", "shipped", "delivered"])]
        for reg in sorted(set(p.region) | set(sales)):
            mine = p[p.region == reg]
            cap = sum(mine[mine.status == "captured"].amount, zero)
            ref = sum(mine[mine.status == "refunded"].amount, zero)
            revenue = sales.get(reg, {}).get("revenue", zero)
            out[(day, reg)] = {
                "payments": len(mine),
                "captured_amount": cap,
                "refunded_amount": ref,
                "net_captured": cap - ref,
                "sales_revenue": revenue,
                "difference": revenue - (cap - ref),
                "orders_paid_not_captured": int(
                    (~sale_orders[sale_orders.region == reg].order_id.isin(captured)).sum()
                ),
                "unknown_order_payments": len(mine) if reg == "unknown" else 0,
            }
    return out
