"""The same job in polars + deltalake: read the JSON lines, type, validate, keep the latest version, aggregate,
write bronze, quarantine, silver and gold as date-partitioned Delta tables. No Spark, no Dagster.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import write_deltalake

FIELDS = ("order_id", "customer_id", "order_ts", "status", "amount", "currency", "region", "updated_at")
REQUIRED = ("order_id", "customer_id", "order_ts", "status", "amount", "region", "updated_at")
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")
SALE = ("paid", "shipped", "delivered")
AMOUNT = pl.Decimal(18, 2)
ISO_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"


def ready_files(landing: Path, day: str) -> list[Path]:
    """The day's ready order files, as the landing zone lists them (in-flight names skipped)."""
    folder = landing / "orders" / f"date={day}"
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "_"))
        and not p.name.endswith(".tmp")
        and p.name.endswith((".jsonl", ".json"))
    )


def read_bronze(landing: Path, days: list[str], ingested_at: datetime) -> pl.DataFrame:
    """Every line as raw strings with the folder date, source file, line number and ingestion time."""
    schema = dict.fromkeys(FIELDS, pl.String)
    frames = [
        pl.scan_ndjson(path, schema=schema).with_columns(
            order_date=pl.lit(day).str.to_date(),
            _corrupt_record=pl.lit(None, pl.String),
            _source_file=pl.lit(path.relative_to(landing).as_posix()),
            _line_number=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
            _ingested_at=pl.lit(ingested_at),
        )
        for day in days
        for path in ready_files(landing, day)
    ]
    return pl.concat(frames).collect()


def utc(col: str) -> pl.Expr:
    raw = pl.col(col)
    parsed = raw.str.replace(r"Z$", "+00:00").str.to_datetime("%Y-%m-%dT%H:%M:%S%:z", time_zone="UTC", strict=False)
    return pl.when(raw.str.contains(ISO_TS)).then(parsed)


def rules() -> dict[str, pl.Expr]:
    """Rule name → passing condition, on the raw and typed (``t_*``) columns."""
    present = {f"{f}_present": pl.col(f).str.strip_chars().str.len_chars().fill_null(0) > 0 for f in REQUIRED}
    return {
        **present,
        "order_ts_iso8601": pl.col("t_order_ts").is_not_null(),
        "order_ts_in_folder_date": pl.col("t_order_ts").dt.date() == pl.col("order_date"),
        "status_known": pl.col("status").is_in(STATUSES),
        "amount_in_range": (pl.col("t_amount") > 0) & (pl.col("t_amount") < 1_000_000),
        "currency_code": pl.col("t_currency").str.contains(r"^[A-Z]{3}$"),
        "updated_at_iso8601": pl.col("t_updated_at").is_not_null(),
    }


def validated(bronze: pl.DataFrame) -> pl.DataFrame:
    """Bronze with typed ``t_*`` columns and ``_valid``."""
    checks = rules()
    return bronze.with_columns(
        t_order_ts=utc("order_ts"),
        t_updated_at=utc("updated_at"),
        t_amount=pl.col("amount").str.strip_chars().cast(AMOUNT, strict=False),
        t_currency=pl.col("currency").fill_null("USD"),
    ).with_columns(_valid=pl.all_horizontal([c.fill_null(False) for c in checks.values()]))


def quarantined(checked: pl.DataFrame, bronze_columns: list[str], at: datetime) -> pl.DataFrame:
    bad = checked.filter(~pl.col("_valid"))
    reasons = pl.concat_list([pl.when(~c.fill_null(False)).then(pl.lit(n)) for n, c in rules().items()])
    return bad.select(
        *bronze_columns, reasons.list.drop_nulls().alias("_quarantine_reasons"), _quarantined_at=pl.lit(at)
    )


def silver(checked: pl.DataFrame) -> pl.DataFrame:
    """The latest valid version of each order and day: latest updated_at, then later file, then later line."""
    order = ["order_date", "order_id", "t_updated_at", "_source_file", "_line_number"]
    latest = (
        checked.filter(pl.col("_valid"))
        .sort(order, descending=[False, False, True, True, True])
        .unique(subset=["order_date", "order_id"], keep="first", maintain_order=True)
    )
    return latest.select(
        *(pl.col(f"t_{f}").alias(f) if f"t_{f}" in latest.columns else pl.col(f) for f in FIELDS),
        "_source_file",
        "_line_number",
        "_ingested_at",
        "order_date",
    )


def daily_sales(orders: pl.DataFrame) -> pl.DataFrame:
    sale = pl.col("status").is_in(SALE)
    grouped = orders.group_by("order_date", "region").agg(
        orders=sale.sum().cast(pl.Int64),
        revenue=pl.col("amount").filter(sale).sum().cast(AMOUNT),
        customers=pl.col("customer_id").filter(sale).n_unique().cast(pl.Int64),
        cancelled=(pl.col("status") == "cancelled").sum().cast(pl.Int64),
        returned=(pl.col("status") == "returned").sum().cast(pl.Int64),
    )
    aov = pl.when(pl.col("orders") > 0).then((pl.col("revenue") / pl.col("orders")).cast(AMOUNT))
    return grouped.with_columns(avg_order_value=aov).sort("order_date", "region")


def write(lakehouse: Path, table: str, df: pl.DataFrame) -> None:
    """Replace the table with ``df``, partitioned by ``order_date`` (a fresh lakehouse: a create)."""
    write_deltalake(str(lakehouse / table), df.to_arrow(), partition_by=["order_date"], mode="overwrite")


def run(landing: str, lakehouse: str, first: str, last: str) -> dict[str, Any]:
    """Build the four tables for ``first``..``last``; time each stage."""
    from resources.partition_keys import day_range

    days = [d.isoformat() for d in day_range(first, last)]
    root, out = Path(landing).resolve(), Path(lakehouse)
    stages: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    now = datetime.now(timezone.utc)
    bronze = read_bronze(root, days, now)
    write(out, "bronze/orders", bronze)
    lap("bronze")
    checked = validated(bronze)
    write(out, "quarantine/orders", quarantined(checked, bronze.columns, now))
    orders = silver(checked)
    write(out, "silver/orders", orders)
    lap("silver")
    write(out, "gold/daily_sales", daily_sales(orders))
    lap("gold")
    seconds = time.perf_counter() - started
    return {
        "success": True,
        "first": first,
        "last": last,
        "seconds": round(seconds, 3),
        "stage_seconds": stages,
        "rows": {"bronze": len(bronze), "silver": len(orders)},
    }
