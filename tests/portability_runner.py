"""Run the pure transforms on one engine and dump every output as sorted JSON lines.

    python -m tests.portability_runner --engine sail|jvm --landing DIR --out DIR --days D1,D2

The landing files are read by the project's landing reader into Parquet (what the bronze read hooks do), then
each engine runs the same steps the assets take. Each engine runs in its own process: a classic (JVM) session
and a Connect session don't share one.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from medallion_assets import customers, customers_contract, orders, transforms
from medallion_assets.factory import checked_rows, published_rows, quarantine_rows
from medallion_assets.json_source import bronze_frame
from medallion_assets.orders_contract import CONTRACT
from medallion_assets.quality.rules import is_valid, rule_counts
from medallion_assets.star import calendar
from resources.landing import LandingZone
from resources.landing_files import csv_table, read_csv_records, read_json_lines

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
_SERVERS: list[object] = []  # the embedded server stops when garbage-collected: keep it referenced


def session(engine: str) -> SparkSession:
    if engine == "jvm":
        return (
            SparkSession.builder.master("local[2]")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    _SERVERS.append(server)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").create()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def dump(df: DataFrame, path: Path) -> None:
    rows = sorted(json.dumps(r.asDict(recursive=True), default=str, sort_keys=True) for r in df.collect())
    path.write_text("\n".join(rows) + "\n")


def landing_parquet(landing: LandingZone, days: list[str], out: Path) -> tuple[Path, Path]:
    """The orders lines and customers records of ``days`` as Parquet, through the landing reader."""
    lines, records = [], []
    for day in days:
        for file in landing.listing("orders", day).files:
            batches, _ = read_json_lines(file)
            if not batches:
                continue
            table = pa.Table.from_batches(batches)
            n = len(table)
            table = table.add_column(0, "order_date", pa.array([datetime.fromisoformat(day).date()] * n, pa.date32()))
            lines.append(table.add_column(1, "_source_file", pa.array([file.relative] * n, pa.string())))
        for file in landing.listing("customers", day).files:
            parsed = read_csv_records(file, required=customers_contract.FIELDS)
            table = csv_table([parsed], customers_contract.FIELDS)
            n = len(table)
            table = table.add_column(0, "ingest_date", pa.array([datetime.fromisoformat(day).date()] * n, pa.date32()))
            records.append(table.add_column(1, "_source_file", pa.array([file.relative] * n, pa.string())))
    pq.write_table(pa.concat_tables(lines), out / "lines.parquet")
    pq.write_table(pa.concat_tables(records), out / "records.parquet")
    return out / "lines.parquet", out / "records.parquet"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sail", "jvm"], required=True)
    parser.add_argument("--landing", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--days", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spark = session(args.engine)
    lines_path, records_path = landing_parquet(LandingZone(root=args.landing), args.days.split(","), out)
    bronze, _ = bronze_frame(
        CONTRACT, transforms.parse_lines(spark.read.parquet(str(lines_path)), CONTRACT.fields), ingested_at=NOW
    )
    checked = checked_rows(orders.SILVER_SPEC, transforms.typed_rows(bronze, CONTRACT.typed()))
    silver = published_rows(orders.SILVER_SPEC, checked)
    dim_rows = checked_rows(customers.DIM_SPEC, customers_contract.typed(spark.read.parquet(str(records_path))))
    outputs = {
        "bronze_gate": rule_counts(checked_rows(orders.BRONZE_SPEC, bronze), "order_date", orders.BRONZE_SPEC.rules),
        "bronze": bronze,
        "silver": silver,
        "quarantine": quarantine_rows(checked, quarantined_at=NOW, run_id="portability"),
        "silver_stats": rule_counts(checked, "order_date", orders.SILVER_SPEC.rules),
        "gold": orders.daily_sales(None, {orders.SILVER: silver}),
        "dim_customer": customers.dim_versions(dim_rows.filter(is_valid())),
        "dim_date": calendar(spark, datetime(2024, 1, 1).date(), datetime(2024, 12, 31).date()),
    }
    for name, df in outputs.items():
        dump(df, out / f"{name}.jsonl")
    spark.stop()


if __name__ == "__main__":
    main()
