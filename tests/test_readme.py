"""The README's command-line block, run exactly as written, in a fresh folder with sample files up to yesterday."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from deltalake import DeltaTable

from medallion_assets.sample_data import generate, generate_customers, generate_payments
from tests.services import CONNECT_ENV

REPO = Path(__file__).resolve().parents[1]


def block_after(heading: str, containing: str) -> str:
    """The first ```bash block after ``heading`` that contains ``containing``."""
    text = (REPO / "README.md").read_text().split(heading, 1)[1]
    blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    return next(b for b in blocks if containing in b)


def test_the_command_line_block_works_as_written(tmp_path: Path) -> None:
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    start = yesterday - timedelta(days=3)
    generate(tmp_path / "landing", days=4, orders_per_day=200, seed=5, start=start)
    generate_customers(tmp_path / "landing", days=4, customers=300, seed=5, start=start)
    generate_payments(tmp_path / "landing", days=4, orders_per_day=200, seed=5, start=start)
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    script = block_after("## Command line", "medallion run")
    env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV and not k.startswith(("MEDALLION_", "DAGSTER_"))}
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("succeeded in") == 2 and "gold/daily_sales" in done.stdout
    assert "Warning" not in done.stderr  # no Preview/Beta warning blocks
    days = DeltaTable(str(tmp_path / ".lakehouse" / "gold" / "daily_sales")).to_pandas()["order_date"]
    assert sorted(days.astype(str).unique()) == [str(yesterday - timedelta(days=d)) for d in (2, 1, 0)]
    assert (tmp_path / ".dagster_home").is_dir()  # the runs were recorded where the UI reads them


def test_a_day_outside_the_partitions_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
    medallion = str(REPO / ".venv" / "bin" / "medallion")
    for day, expected in (
        ("2019-01-01", "2019-01-01 is before the first daily partition 2024-01-01: set MEDALLION_START_DATE"),
        ("2024-1-2", "partition key '2024-1-2' is not a YYYY-MM-DD date"),
    ):
        done = subprocess.run(
            [medallion, "run", "--day", day],
            cwd=tmp_path,
            env={**env, "MEDALLION_START_DATE": "2024-01-01"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        [line] = done.stderr.strip().splitlines()
        assert done.returncode == 2 and line.startswith(f"medallion: {expected}"), done.stderr
