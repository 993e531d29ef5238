"""The pure transforms give identical results on Sail and on Apache Spark (classic JVM, local[2]).

Delta jars can't be fetched here, so both engines read the same landing files and the outputs are compared
in memory; no Delta on the JVM side.
"""

import os
import subprocess
import sys
from pathlib import Path

from medallion_assets.sample_data import generate, generate_customers

OUTPUTS = ("bronze_gate", "bronze", "silver", "quarantine", "silver_stats", "gold", "dim_customer", "dim_date")


# pyspark marks the test process as Connect-only once a Connect session exists; the JVM child must not inherit it.
CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE", "MASTER")


def run(engine: str, landing: Path, out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.portability_runner",
            "--engine",
            engine,
            "--landing",
            str(landing),
            "--out",
            str(out),
            "--days",
            "2024-03-01,2024-03-02",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_sail_and_jvm_spark_agree(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    report = generate(landing, days=2, orders_per_day=150, seed=5, start=__import__("datetime").date(2024, 3, 1))
    assert report.faults
    generate_customers(landing, days=2, customers=300, seed=5, start=__import__("datetime").date(2024, 3, 1))
    run("sail", landing, tmp_path / "sail")
    run("jvm", landing, tmp_path / "jvm")
    for name in OUTPUTS:
        sail = (tmp_path / "sail" / f"{name}.jsonl").read_text().splitlines()
        jvm = (tmp_path / "jvm" / f"{name}.jsonl").read_text().splitlines()
        assert len(sail) > 0, name
        assert sail == jvm, (
            f"{name}: first difference {next((a, b) for a, b in zip(sail, jvm, strict=False) if a != b)}"
        )
