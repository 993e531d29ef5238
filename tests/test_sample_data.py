"""The sample data generator: deterministic, and it writes every fault it promises."""

import csv
import hashlib
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from medallion_assets.sample_data import FAULTS, FORCED_FAULT_MIN_ROWS, SEGMENTS, generate, generate_customers, main


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_same_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", days=2, orders_per_day=30, seed=1)
    generate(tmp_path / "b", days=2, orders_per_day=30, seed=1)
    generate(tmp_path / "c", days=2, orders_per_day=30, seed=2)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_every_fault_kind_is_written_where_reported(tmp_path: Path) -> None:
    report = generate(tmp_path, days=1, orders_per_day=100, seed=3)
    assert {f.kind for f in report.faults} == set(FAULTS)
    folder = tmp_path / "orders" / "date=2024-01-01"
    lines = (folder / "part-000.jsonl").read_text().splitlines()
    for fault in report.faults:
        line = lines[fault.line - 1]
        if fault.kind == "unparseable_line":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        row = json.loads(line)
        expected = {
            "missing_order_id": lambda r: "order_id" not in r,
            "missing_customer_id": lambda r: "customer_id" not in r,
            "missing_amount": lambda r: "amount" not in r,
            "missing_region": lambda r: r["region"] == "",
            "negative_amount": lambda r: r["amount"] < 0,
            "huge_amount": lambda r: r["amount"] >= 1_000_000,
            "unknown_status": lambda r: r["status"] == "pending",
            "bad_timestamp": lambda r: r["order_ts"].startswith("2024-13"),
            "wrong_type": lambda r: isinstance(r["amount"], dict),
            "date_mismatch": lambda r: r["order_ts"].startswith("2023-12-31"),
            "bad_currency": lambda r: r["currency"] == "usd",
            "numeric_string": lambda r: isinstance(r["amount"], str),
            "extra_fields": lambda r: "promo_code" in r,
        }[fault.kind]
        assert expected(row), (fault, row)
    assert (folder / "part-003.jsonl").stat().st_size == 0
    assert (folder / "part-004.jsonl.tmp").stat().st_size > 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "part-000.jsonl",
        "part-001.jsonl",
        "part-002.json",
        "part-003.jsonl",
        "part-004.jsonl.tmp",
    ]


def test_rates_are_configurable_and_validated(tmp_path: Path) -> None:
    report = generate(tmp_path, days=1, orders_per_day=100, seed=3, rates={k: 0.0 for k in FAULTS})
    assert report.faults == []
    with pytest.raises(ValueError, match="unknown fault kinds"):
        generate(tmp_path, days=1, orders_per_day=10, seed=3, rates={"typo": 0.1})


def test_cli_writes_day_folders(tmp_path: Path, capsys) -> None:
    assert (
        main(
            ["--days", "3", "--orders-per-day", "5", "--seed", "4", "--landing", str(tmp_path), "--start", "2024-02-28"]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "orders").iterdir()) == [
        "date=2024-02-28",
        "date=2024-02-29",
        "date=2024-03-01",
    ]
    assert "must be quarantined" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {"orders", "customers", "payments"}  # no scratch left behind


def test_cli_keeps_existing_days_and_defaults_to_the_days_up_to_yesterday(tmp_path: Path, capsys) -> None:
    from datetime import datetime, timedelta, timezone

    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    mine = tmp_path / "orders" / f"date={yesterday}" / "from-the-user.jsonl"
    mine.parent.mkdir(parents=True)
    mine.write_text('{"order_id": "mine"}\n')
    assert main(["--days", "2", "--orders-per-day", "5", "--landing", str(tmp_path), "--customers", "0"]) == 0
    days = sorted(p.name for p in (tmp_path / "orders").iterdir())
    assert days == [f"date={yesterday - timedelta(days=1)}", f"date={yesterday}"]
    assert [p.name for p in mine.parent.iterdir()] == ["from-the-user.jsonl"]  # the user's day is kept as it is
    assert "1 already there and kept" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "orders").rglob("*.json*")}
    assert main(["--days", "2", "--orders-per-day", "5", "--landing", str(tmp_path), "--customers", "0"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "orders").rglob("*.json*")} == before  # nothing rewritten


@pytest.mark.parametrize("customers", [100, 300, 2000])
def test_every_sample_customer_day_passes_the_default_silver_gate(tmp_path: Path, customers: int) -> None:
    """Faulty customer rows stay under 5 % of every day at any feed size and date (a live sample day of 7 rows
    with one forced bad row was refused at 85.7 %); a day large enough to hold one still gets one."""
    generate_customers(tmp_path, days=40, customers=customers, seed=5, start=date(2026, 11, 1))
    for folder in sorted((tmp_path / "customers").iterdir()):
        rows = list(csv.DictReader((folder / "customers-000.csv").open(encoding="utf-8")))
        bad = [
            r for r in rows
            if not r["customer_id"] or r["segment"] not in SEGMENTS or not re.fullmatch(r"[^@\s]+@[^@\s]+", r["email"])
        ]  # fmt: skip
        assert len(bad) < 0.05 * len(rows), (folder.name, len(bad), len(rows))
        # A faulty row is a copy of another row of the day with one field broken.
        copies = Counter((r["name"], r["updated_at"]) for r in rows)
        assert (max(copies.values()) > 1) == (len(rows) > FORCED_FAULT_MIN_ROWS), (folder.name, len(rows))
