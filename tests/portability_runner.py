"""Run the pure orders transforms on one engine and dump every output as sorted JSON lines.

    python -m tests.portability_runner --engine sail|jvm --landing DIR --out DIR --days D1,D2

Each engine runs in its own process: a classic (JVM) session and a Connect session don't share one.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from medallion_assets import customers_contract, transforms
from medallion_assets.bronze import read_lines, union_all
from medallion_assets.customers import dim_versions, read_csv
from medallion_assets.quality.rules import evaluate, is_valid
from medallion_assets.star import calendar
from resources.landing import LandingZone

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
    lines, _ = read_lines(spark, LandingZone(root=args.landing), args.days.split(","))
    parsed = transforms.parsed_lines(lines)
    extras = transforms.extra_columns(r.key for r in transforms.json_keys(parsed).collect())
    bronze = transforms.bronze_orders(lines, extras=extras, ingested_at=NOW)
    validated = transforms.validated_orders(bronze)
    silver = transforms.silver_orders(validated)
    outputs = {
        "line_stats": transforms.line_stats(lines),
        "bronze": bronze,
        "silver": silver,
        "quarantine": transforms.quarantined_orders(validated, bronze.columns, quarantined_at=NOW),
        "silver_stats": transforms.silver_stats(validated),
        "gold": transforms.daily_sales(silver),
    }
    landing = LandingZone(root=args.landing)
    csvs = [read_csv(spark, landing, d, p) for d in args.days.split(",") for p in landing.files("customers", d)]
    customers = evaluate(customers_contract.typed(union_all(csvs)), customers_contract.RULES)
    outputs["dim_customer"] = dim_versions(customers.filter(is_valid()))
    outputs["dim_date"] = calendar(spark, datetime(2024, 1, 1).date(), datetime(2024, 12, 31).date())
    for name, df in outputs.items():
        dump(df, out / f"{name}.jsonl")
    spark.stop()


if __name__ == "__main__":
    main()
