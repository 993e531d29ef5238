"""Bad landing input, tried as a tester would: every landed line is accounted for, nothing outside the root is read,
and one bad file never stops a day or a range."""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from medallion_assets import run_log
from resources.delta_store import DeltaTableStore
from resources.landing import LandingFile
from resources.landing_files import BOM, CsvFile, read_csv_records, read_json_lines

from .conftest import materialize_days

DAY = "2024-01-02"


def noise(size: int, seed: int = 13) -> bytes:
    """Random bytes, the same on every run, so a failure can be replayed."""
    return random.Random(seed).randbytes(size)


def order(i: int, day: str = DAY, **overrides) -> dict:
    row = {
        "order_id": f"o{i}",
        "customer_id": f"c{i}",
        "order_ts": f"{day}T10:00:00Z",
        "status": "paid",
        "amount": 10.5,
        "region": "north",
        "updated_at": f"{day}T10:00:00Z",
    }
    row.update(overrides)
    return row


def write(landing: Path, name: str, lines: list[str] | bytes, day: str = DAY, source: str = "orders") -> Path:
    folder = landing / source / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def good_lines(n: int, start: int = 0, day: str = DAY) -> list[str]:
    return [json.dumps(order(i, day)) for i in range(start, start + n)]


def table(store: DeltaTableStore, name: str) -> pd.DataFrame:
    return DeltaTable(store.table_uri(name)).to_pandas()


def by_line(df: pd.DataFrame) -> dict[tuple[str, int], pd.Series]:
    return {(r["_source_file"], int(r["_line_number"])): r for _, r in df.iterrows()}


def materialization_metadata(result, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


# -- file names and links --------------------------------------------------------------------------------
def test_glob_characters_in_file_names_are_read_literally(resources, store, landing_root) -> None:
    write(landing_root, "part-000.jsonl", good_lines(40))
    write(landing_root, "part-001.jsonl", good_lines(40, 100))
    write(landing_root, "part-*.jsonl", good_lines(1, 200))
    write(landing_root, "a1.jsonl", good_lines(2, 300))
    write(landing_root, "a[0-9].jsonl", good_lines(1, 400))
    write(landing_root, "{x,y}.jsonl", good_lines(1, 500))
    assert materialize_days(resources, DAY).success
    bronze = table(store, "bronze/orders")
    counts = bronze.groupby("_source_file").size().to_dict()
    folder = f"orders/date={DAY}"
    assert counts == {
        f"{folder}/part-000.jsonl": 40,
        f"{folder}/part-001.jsonl": 40,
        f"{folder}/part-*.jsonl": 1,
        f"{folder}/a1.jsonl": 2,
        f"{folder}/a[0-9].jsonl": 1,
        f"{folder}/{{x,y}}.jsonl": 1,
    }
    rows = by_line(bronze)
    assert rows[(f"{folder}/a[0-9].jsonl", 1)]["order_id"] == "o400"
    assert rows[(f"{folder}/{{x,y}}.jsonl", 1)]["order_id"] == "o500"
    assert len(table(store, "silver/orders")) == 85


def test_line_accounting_catches_a_line_ingested_twice(resources, store, landing_root) -> None:
    from deltalake import write_deltalake

    write(landing_root, "part-000.jsonl", good_lines(30))
    assert materialize_days(resources, DAY, selection="bronze/orders").success
    bronze = DeltaTable(store.table_uri("bronze/orders")).to_pyarrow_table()
    write_deltalake(store.table_uri("bronze/orders"), bronze.slice(0, 1), mode="append")  # a line twice
    result = materialize_days(resources, DAY, selection="silver/orders")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["row_accounting"].passed
    assert "part-000.jsonl" in json.dumps(checks["row_accounting"].metadata["failed"].value)


@pytest.mark.parametrize("link", ["file", "day_folder", "source_folder"])
def test_a_symlink_never_brings_a_file_from_outside_the_root(resources, store, landing_root, tmp_path, link) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jsonl"
    secret.write_text(json.dumps(order(999, region="SECRET-OUTSIDE")) + "\n" + "root:x:0:0:root:/root:/bin/bash\n")
    if link == "file":
        write(landing_root, "part-000.jsonl", good_lines(20))
        os.symlink(secret, landing_root / "orders" / f"date={DAY}" / "p.jsonl")
        os.symlink("/etc/passwd", landing_root / "orders" / f"date={DAY}" / "passwd.jsonl")
    elif link == "day_folder":
        write(landing_root, "part-000.jsonl", good_lines(20, day="2024-01-01"), day="2024-01-01")
        os.symlink(outside, landing_root / "orders" / f"date={DAY}")
    else:
        (landing_root).mkdir(parents=True)
        os.symlink(outside, landing_root / "orders")
    result = materialize_days(resources, DAY, selection="bronze/orders")
    for name in ("bronze/orders", "quarantine/orders"):
        if store.exists(name):
            text = table(store, name).to_json()
            assert "SECRET-OUTSIDE" not in text and "root:x:0:0" not in text, name
    if link == "file":
        assert result.success
        meta = materialization_metadata(result, "bronze/orders")
        skipped = json.dumps(meta["skipped_files"])
        assert "p.jsonl" in skipped and "passwd.jsonl" in skipped and "symlink" in skipped
        assert len(table(store, "bronze/orders")) == 20
    else:
        assert not result.success  # the day has no readable input: refused, never read through the link
        message = result.failure_data_for_node("bronze__orders").error.to_string()
        assert "symlink" in message


def test_files_the_contract_does_not_read_are_reported_not_silently_ignored(resources, store, landing_root) -> None:
    """Another extension (names are case-sensitive) or a subfolder: not read, and each named with why, as links
    are (they were left out without a word, their lines in no count)."""
    write(landing_root, "part-000.jsonl", good_lines(20))
    write(landing_root, "part-009.JSONL", good_lines(5, 100))
    write(landing_root, "part-010.ndjson", good_lines(5, 200))
    (landing_root / "orders" / f"date={DAY}" / "batch2").mkdir()
    (landing_root / "orders" / f"date={DAY}" / "batch2" / "part-000.jsonl").write_text("\n".join(good_lines(5)))
    write(landing_root, "_SUCCESS", b"")  # in flight or a marker: left out silently, as the README says
    result = materialize_days(resources, DAY, selection="bronze/orders")
    assert result.success and len(table(store, "bronze/orders")) == 20
    skipped = {e["file"]: e["reason"] for e in materialization_metadata(result, "bronze/orders")["skipped_files"]}
    folder = f"orders/date={DAY}"
    assert set(skipped) == {f"{folder}/part-009.JSONL", f"{folder}/part-010.ndjson", f"{folder}/batch2"}
    assert ".jsonl" in skipped[f"{folder}/part-009.JSONL"] and "folder" in skipped[f"{folder}/batch2"]


# -- encodings ---------------------------------------------------------------------------------------------
def test_a_latin1_line_is_quarantined_with_its_bytes_and_the_rest_publishes(resources, store, landing_root) -> None:
    latin1 = json.dumps(order(7, region="Zürich"), ensure_ascii=False).encode("latin-1")
    body = ("\n".join(good_lines(7)) + "\n").encode() + latin1 + b"\n" + ("\n".join(good_lines(30, 8)) + "\n").encode()
    write(landing_root, "part-000.jsonl", body)
    result = materialize_days(resources, DAY)
    assert result.success
    quarantine = table(store, "quarantine/orders")
    [bad] = quarantine.to_dict("records")
    assert list(bad["_quarantine_reasons"]) == ["utf8_valid"] and bad["_line_number"] == 8
    assert base64.b64decode(bad["_invalid_utf8"]) == latin1
    assert len(table(store, "silver/orders")) == 37


@pytest.mark.parametrize("kind", ["random bytes", "gzip"])
def test_an_unreadable_file_never_stops_the_other_files_or_days(resources, store, landing_root, kind) -> None:
    for day in ("2024-01-01", DAY, "2024-01-03"):
        write(landing_root, "part-000.jsonl", good_lines(1000, day=day), day=day)
    raw = noise(4096) if kind == "random bytes" else gzip.compress(("\n".join(good_lines(50)) + "\n").encode())
    write(landing_root, "part-009.jsonl", raw)
    result = materialize_days(resources, "2024-01-01", "2024-01-03")
    assert result.success
    silver = table(store, "silver/orders")
    assert sorted(silver["order_date"].astype(str).unique()) == ["2024-01-01", DAY, "2024-01-03"]
    quarantine = table(store, "quarantine/orders")
    bad = quarantine[quarantine["_source_file"] == f"orders/date={DAY}/part-009.jsonl"]
    assert len(bad) > 0 and all("utf8_valid" in r or "json_object" in r for r in bad["_quarantine_reasons"])
    bronze = table(store, "bronze/orders")
    assert (bronze["_source_file"] == f"orders/date={DAY}/part-009.jsonl").sum() == len(bad)


def test_a_day_of_garbage_is_refused_with_the_file_named(resources, store, landing_root) -> None:
    write(landing_root, "part-000.jsonl", good_lines(5))
    write(landing_root, "blob.jsonl", noise(20_000))
    result = materialize_days(resources, DAY, selection="bronze/orders")
    assert not result.success
    message = result.failure_data_for_node("bronze__orders").error.to_string()
    assert "utf8_valid" in message and "blob.jsonl" in message
    attempt = run_log.latest_attempts(store, "bronze/orders", [DAY])[DAY]
    assert attempt["passed"] is False


# -- JSON leniency -----------------------------------------------------------------------------------------
def test_lines_that_are_not_one_json_object_keep_their_text_and_never_stop_a_range(
    resources, store, landing_root
) -> None:
    """Two objects with no line break, an object with trailing text or comma, lines joined by lone carriage
    returns: each kept whole in ``_corrupt_record`` and quarantined as ``json_object`` (they were bronze rows of
    nulls, their orders in no table). A line nested 1,000 deep with a number a double would rewrite: the reader's
    exact reading gives up on it instead of failing every day of the range."""
    days = ["2024-01-01", DAY, "2024-01-03"]
    for day in days:
        write(landing_root, "part-000.jsonl", good_lines(200, day=day), day=day)  # 5 bad lines of 205 pass the gates
    one = json.dumps(order(900))
    joined = [one + json.dumps(order(901)), one + " trailing", one + ",", "\r".join(good_lines(32, 1000))]
    deep = '{"order_id": "o2000", "x": ' + "[" * 1000 + "1e5" + "]" * 1000 + "}"
    write(landing_root, "zz-joined.jsonl", [*joined, deep])
    assert materialize_days(resources, days[0], days[-1]).success
    bronze = by_line(table(store, "bronze/orders"))
    for n, line in enumerate([*joined, deep], start=1):
        assert bronze[(f"orders/date={DAY}/zz-joined.jsonl", n)]["_corrupt_record"] == line, n
    quarantine = table(store, "quarantine/orders")
    kept = quarantine[quarantine["_source_file"] == f"orders/date={DAY}/zz-joined.jsonl"]
    assert sorted(kept["_line_number"]) == [1, 2, 3, 4, 5]
    assert all("json_object" in list(r) for r in kept["_quarantine_reasons"])
    silver = table(store, "silver/orders")
    assert sorted(silver["order_date"].astype(str).unique()) == days and len(silver) == 600


def test_extra_keys_differing_only_in_case_never_stop_a_range(resources, store, landing_root) -> None:
    """``note`` on one day and ``Note`` on the next (or ``AMOUNT`` and ``Amount`` in two files of one day) failed
    bronze for every day of the range with ``missing or ambiguous field``, nothing published. Each key is now its
    own column, the contract's ``amount`` read case-sensitively, and every day publishes."""
    days = [DAY, "2024-01-03", "2024-01-04"]
    write(landing_root, "a.jsonl", [*good_lines(50), json.dumps(order(50, note="x"))])
    no_amount = {k: v for k, v in order(51, AMOUNT=7).items() if k != "amount"}
    write(landing_root, "b.jsonl", [json.dumps(no_amount), *good_lines(10, 60)])
    write(landing_root, "a.jsonl", [*good_lines(50, day=days[1]), json.dumps(order(50, days[1], Note="y"))], days[1])
    write(landing_root, "b.jsonl", [json.dumps(order(51, days[1], Amount=700000))], days[1])
    write(landing_root, "a.jsonl", good_lines(50, day=days[2]), days[2])
    assert materialize_days(resources, days[0], days[-1]).success
    bronze = by_line(table(store, "bronze/orders"))
    assert bronze[(f"orders/date={DAY}/a.jsonl", 51)]["note"] == "x"
    assert bronze[(f"orders/date={days[1]}/a.jsonl", 51)]["note_"] == "y"
    amount_upper = bronze[(f"orders/date={DAY}/b.jsonl", 1)]
    assert amount_upper["amount"] is None and amount_upper["x_amount"] == "7"
    amount_title = bronze[(f"orders/date={days[1]}/b.jsonl", 1)]
    assert amount_title["amount"] == "10.5" and amount_title["x_amount_"] == "700000"
    [missing] = table(store, "quarantine/orders").to_dict("records")
    assert list(missing["_quarantine_reasons"]) == ["amount_present"] and missing["order_id"] == "o51"
    silver = table(store, "silver/orders")["order_date"].astype(str)
    assert silver.value_counts().to_dict() == {DAY: 61, days[1]: 52, days[2]: 50}
    assert sorted(table(store, "gold/daily_sales")["order_date"].astype(str).unique()) == days


SURROGATES = {
    "lone_high": r'"region": "north\ud800"',
    "lone_low": r'"region": "\udc00north"',
    "reversed_pair": r'"region": "north\udc00\ud800"',
    "in_a_key": r'"region": "north", "n\ud800te": "x"',
}


def surrogate_line(i: int, escaped: str, amount: str = "1.10") -> str:
    """An order line with ``escaped`` (JSON text, ``\\ud800`` as six characters) and ``amount`` as written."""
    return (
        f'{{"order_id": "s{i}", "customer_id": "c1", "order_ts": "{DAY}T10:00:00Z", "status": "paid", '
        f'"amount": {amount}, {escaped}, "updated_at": "{DAY}T10:00:00Z"}}'
    )


def test_reader_an_escaped_lone_surrogate_leaves_the_line_to_the_engine(tmp_path) -> None:
    """A number kept exactly (``1.10``) on a line with an escaped lone surrogate failed the read (and every day of
    the range) with ``UnicodeEncodeError``: the decoded text is no Unicode. The exact reading now gives up on such a
    line, as on any it cannot read; an escaped surrogate pair (an emoji) is text and still read exactly."""
    lines = [surrogate_line(i, escaped) for i, escaped in enumerate(SURROGATES.values())]
    lines.append(surrogate_line(9, r'"region": "north\ud83d\ude00"'))
    path = tmp_path / "part.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    batches, read = read_json_lines(LandingFile(path, f"orders/date={DAY}/part.jsonl", path.stat().st_size))
    got = pa.Table.from_batches(batches).to_pydict()
    assert got["value"] == lines and read.rows == len(lines)
    assert got["_exact"][: len(SURROGATES)] == [None] * len(SURROGATES)
    assert dict(got["_exact"][-1])["amount"] == "1.10" and dict(got["_exact"][-1])["region"] == "north\U0001f600"


def test_an_escaped_lone_surrogate_is_quarantined_and_the_range_publishes(resources, store, landing_root) -> None:
    """Beside a number kept exactly, it failed every day with ``UnicodeEncodeError`` naming no file; without one it
    was quarantined as ``json_object``. Now both are, kept whole in bronze, and the other lines and days publish."""
    days = [DAY, "2024-01-03"]
    for day in days:
        write(landing_root, "part-000.jsonl", good_lines(200, day=day), day=day)  # 5 bad lines of 206 pass the gates
    odd = [surrogate_line(i, escaped) for i, escaped in enumerate(SURROGATES.values())]
    odd.append(surrogate_line(8, SURROGATES["lone_high"], amount="1.1"))  # no exact number: as before
    odd.append(surrogate_line(9, r'"region": "north\ud83d\ude00"'))
    write(landing_root, "odd.jsonl", odd)
    assert materialize_days(resources, days[0], days[-1]).success
    bronze = by_line(table(store, "bronze/orders"))
    for n, line in enumerate(odd[:-1], start=1):
        assert bronze[(f"orders/date={DAY}/odd.jsonl", n)]["_corrupt_record"] == line, n
    quarantine = table(store, "quarantine/orders")
    assert sorted(quarantine["_line_number"]) == list(range(1, len(odd)))
    assert all(list(r) == ["json_object"] for r in quarantine["_quarantine_reasons"])
    silver = table(store, "silver/orders").set_index("order_id")
    assert silver.loc["s9", "region"] == "north\U0001f600" and str(silver.loc["s9", "amount"]) == "1.10"
    assert silver["order_date"].astype(str).value_counts().to_dict() == {DAY: 201, days[1]: 200}


def test_extra_keys_named_like_the_pipelines_columns_are_renamed(resources, store, landing_root) -> None:
    """A key named like a column the pipeline adds (``_quarantine_reasons``, ``_run_id``) failed bronze with
    ``ambiguous attribute``: the one naming rule reserves those names too."""
    keys = {"_quarantine_reasons": "r", "_run_id": "i", "_failures": "f"}
    write(landing_root, "a.jsonl", [*good_lines(100), json.dumps(order(900, status="nope", **keys))])
    assert materialize_days(resources, DAY).success
    [bad] = table(store, "quarantine/orders").to_dict("records")
    assert list(bad["_quarantine_reasons"]) == ["status_known"] and bad["_run_id"] != "i"
    assert (bad["x__quarantine_reasons"], bad["x__run_id"], bad["x__failures"]) == ("r", "i", "f")


def test_a_bom_does_not_cost_the_first_line(resources, store, landing_root) -> None:
    write(landing_root, "part-000.jsonl", "\ufeff".encode() + ("\n".join(good_lines(20)) + "\n").encode())
    assert materialize_days(resources, DAY).success
    assert len(table(store, "silver/orders")) == 20
    assert not store.exists("quarantine/orders") or len(table(store, "quarantine/orders")) == 0


def test_bronze_keeps_the_raw_text_of_numbers(resources, store, landing_root) -> None:
    lines = [
        '{"order_id": 123456789012345678901234567890, "customer_id": "c1", "order_ts": "2024-01-02T10:00:00Z", '
        '"status": "paid", "amount": 12.50, "region": "n", "updated_at": "2024-01-02T10:00:00Z", "tiny": 1e-400}',
        '{"order_id": 123456789012345678901234567891, "customer_id": "c1", "order_ts": "2024-01-02T10:00:00Z", '
        '"status": "paid", "amount": 2.5E1, "region": "n", "updated_at": "2024-01-02T10:00:00Z", "n": {"x": 1.50}}',
        *good_lines(30),
    ]
    write(landing_root, "part-000.jsonl", lines)
    assert materialize_days(resources, DAY).success
    rows = by_line(table(store, "bronze/orders"))
    first, second = rows[(f"orders/date={DAY}/part-000.jsonl", 1)], rows[(f"orders/date={DAY}/part-000.jsonl", 2)]
    assert first["order_id"] == "123456789012345678901234567890" and first["amount"] == "12.50"
    assert first["tiny"] == "1e-400"
    assert second["order_id"] == "123456789012345678901234567891" and second["amount"] == "2.5E1"
    assert json.loads(second["n"]) == {"x": 1.5} and "1.50" in second["n"]
    silver = table(store, "silver/orders")
    assert {"123456789012345678901234567890", "123456789012345678901234567891"} <= set(silver["order_id"])


def test_a_repeated_key_takes_the_last_value_as_the_contract_says(resources, store, landing_root) -> None:
    line = json.dumps(order(1))[:-1] + ', "amount": 99.5}'
    write(landing_root, "part-000.jsonl", [line, *good_lines(30, 10)])
    assert materialize_days(resources, DAY).success
    bronze = by_line(table(store, "bronze/orders"))
    assert bronze[(f"orders/date={DAY}/part-000.jsonl", 1)]["amount"] == "99.5"
    assert "last" in (Path(__file__).parents[1] / "README.md").read_text().split("Landing contract: orders")[1][:4000]


def test_control_characters_are_quarantined(resources, store, landing_root) -> None:
    write(landing_root, "part-000.jsonl", [json.dumps(order(1, customer_id="c\u00001")), *good_lines(30, 10)])
    assert materialize_days(resources, DAY).success
    [bad] = table(store, "quarantine/orders").to_dict("records")
    assert "no_control_characters" in list(bad["_quarantine_reasons"])


# -- line numbers ------------------------------------------------------------------------------------------
def test_line_numbers_are_exact_above_the_engine_split_size(resources, store, landing_root) -> None:
    pad = "x" * 300
    lines = [json.dumps(order(i, note=pad)) for i in range(230_000)]  # about 80 MB, several engine splits
    write(landing_root, "big.jsonl", lines)
    for attempt in range(3):
        assert materialize_days(resources, DAY, selection="bronze/orders").success
        bronze = DeltaTable(store.table_uri("bronze/orders")).to_pyarrow_table(columns=["order_id", "_line_number"])
        got = dict(zip(bronze.column("_line_number").to_pylist(), bronze.column("order_id").to_pylist(), strict=True))
        assert len(got) == len(lines), attempt
        assert all(got[i + 1] == f"o{i}" for i in range(0, len(lines), 997)), attempt
        assert got[1] == "o0" and got[len(lines)] == f"o{len(lines) - 1}", attempt


def reference_physical(data: bytes) -> list[bytes]:
    """The file's physical lines: split at each line feed, a leading BOM removed, an empty file has none."""
    data = data.removeprefix(BOM)
    if not data:
        return []
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


def reference_lines(data: bytes) -> list[tuple[int, str | None, bool]]:
    """What the reader promises, line by line: (physical number, text without its break, not UTF-8)."""
    rows = []
    for number, line in enumerate(reference_physical(data), 1):
        line = line.removesuffix(b"\r")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            rows.append((number, None, True))
            continue
        if text and not text.isspace():
            rows.append((number, text, False))
    return rows


@pytest.mark.parametrize("block_bytes", [2, 7, 64, 1 << 20])
def test_the_reader_keeps_every_non_blank_line_whatever_its_blocks(tmp_path, block_bytes) -> None:
    """Blank lines (ASCII and Unicode spaces), CRLF and stray carriage returns, a BOM, bytes that are not
    UTF-8 and a last line without a break, read in blocks that cut anywhere."""
    odd = [b"", b"   ", b"\t", "\u00a0".encode(), "\u2003 ".encode(), b"\x1c", "\u200b".encode(), b"\r", b"x\r\r"]
    odd += [b'{"a": 1}\r', b"\xff\xfe not utf-8", b' {"c": 3}', "\u00e9t\u00e9".encode(), b"\x0b{}"]
    lines = [json.dumps(order(i)).encode() for i in range(40)]
    for i, line in enumerate(odd):
        lines.insert(3 * i + 1, line)
    data = BOM + b"\n".join(lines)  # no break after the last line
    path = tmp_path / "odd.jsonl"
    path.write_bytes(data)
    batches, read = read_json_lines(LandingFile(path, "orders/odd.jsonl", len(data)), block_bytes=block_bytes)
    got = pa.Table.from_batches(batches).to_pydict() if batches else {"_line_number": [], "value": []}
    invalid = got.get("_invalid_utf8", [])
    rows = [(n, v, b is not None) for n, v, b in zip(got["_line_number"], got["value"], invalid, strict=True)]
    expected = reference_lines(data)
    assert rows == expected
    assert (read.lines, read.rows, read.invalid_utf8, read.bom) == (len(lines), len(expected), 1, True)
    assert read.blank == len(lines) - len(expected)


def test_the_reader_names_top_level_values_that_are_objects_arrays_or_booleans(tmp_path) -> None:
    """``_json_types``: the type the engine's text of a value does not tell (``true`` and ``"true"`` are both
    ``true``). Strings, numbers, nested values and lines that are not one JSON object have none."""
    typed = {
        '{"a": {"x": true}, "b": [1], "c": false, "d": "true", "e": 1e2, "f": null}': {
            "a": "object", "b": "array", "c": "boolean"},
        '{"a": "x", "\\u0061": [1]}': {"a": "array"},  # a repeated key (escaped): its last value
        '{"\\u0061": true, "a": "x"}': None,
        '{"note": "at: true", "n": 1}': None,
        "[true]": None, '{"a": true} {"b": 1}': None, '{"a": true': None,
        '{"a": ' + "[" * 5000 + "]" * 5000 + "}": None,  # deeper than the engine reads: its line is corrupt
        '{"k\\ud800": true, "a": [1]}': None,  # a lone surrogate in a key is no text: the engine judges the line
    }  # fmt: skip
    path = tmp_path / "typed.jsonl"
    path.write_text("\n".join(typed) + "\n")
    batches, _ = read_json_lines(LandingFile(path, "orders/typed.jsonl", path.stat().st_size))
    got = pa.Table.from_batches(batches).column("_json_types").to_pylist()
    assert [dict(t) if t is not None else None for t in got] == list(typed.values())


@pytest.mark.parametrize("change", ["appended_after_listing", "rewritten_same_size", "appended_while_read", "csv"])
def test_a_file_that_changes_after_it_was_listed_is_not_read(tmp_path, monkeypatch, change) -> None:
    """It was read as it stood: lines appended after the listing (a writer still at work) were ingested, half a
    line among them, and the day published from a file other than the one listed. Now the read fails with an
    ``OSError`` naming the file and both states; the publish guard refuses its day (``test_publish_guards``)."""
    import resources.landing_files as landing_files

    path = tmp_path / ("customers.csv" if change == "csv" else "part.jsonl")
    data = b"customer_id,updated_at\nC1,2024-01-01T00:00:00Z\n" if change == "csv" else b'{"a": 1}\n' * 50
    path.write_bytes(data)
    info = path.stat()
    landed = LandingFile(path, f"orders/date={DAY}/{path.name}", info.st_size, info.st_mtime_ns)
    if change == "rewritten_same_size":
        path.write_bytes(data.replace(b"1", b"2"))
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    elif change == "appended_while_read":
        batch = landing_files._json_batch

        def grows(block, read):
            with path.open("ab") as f:
                f.write(b'{"a": 2')  # a writer mid-line
            return batch(block, read)

        monkeypatch.setattr(landing_files, "_json_batch", grows)
    else:
        with path.open("ab") as f:
            f.write(b'{"a": 2')
    with pytest.raises(OSError, match=rf"{landed.relative} changed while it was read") as raised:
        if change == "csv":
            read_csv_records(landed, required=("customer_id", "updated_at"))
        else:
            read_json_lines(landed, block_bytes=64)
    assert f"listed {len(data)} bytes" in str(raised.value)


@pytest.mark.parametrize("data", [b"", b"\n", b"\n\n  \r\n\t", BOM, BOM + b"\r\n", b"{}", b"\xff", b"\r"], ids=repr)
def test_the_reader_handles_files_of_nothing_but_breaks_and_blanks(tmp_path, data) -> None:
    path = tmp_path / "small.jsonl"
    path.write_bytes(data)
    batches, read = read_json_lines(LandingFile(path, "orders/small.jsonl", len(data)), block_bytes=3)
    got = pa.Table.from_batches(batches).to_pydict() if batches else {"_line_number": [], "value": []}
    invalid = got.get("_invalid_utf8", [None] * len(got["value"]))
    rows = [(n, v, b is not None) for n, v, b in zip(got["_line_number"], got["value"], invalid, strict=True)]
    assert rows == reference_lines(data)
    assert read.rows + read.blank == read.lines == len(reference_physical(data))


# -- customers CSV -----------------------------------------------------------------------------------------
HEADER = "customer_id,name,email,segment,region,updated_at"


def customer(i: int, name: str | None = None) -> str:
    return f"C{i},{name or f'Cust {i}'},c{i}@example.com,consumer,north,{DAY}T08:00:00Z"


def customers_run(resources, selection: str = "bronze/customers"):
    import dagster as dg

    from medallion_assets.definitions import ASSETS, CHECKS

    kwargs = {"partition_key": DAY} if selection == "bronze/customers" else {}
    return dg.materialize([*ASSETS, *CHECKS], resources=resources, selection=selection, raise_on_error=False, **kwargs)


@pytest.fixture
def lenient_dim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_THRESHOLD_SILVER_DIM_CUSTOMER", "0.5")


def test_csv_rows_of_the_wrong_shape_are_quarantined_and_kept_raw(lenient_dim, resources, store, landing_root) -> None:
    rows = [customer(i) for i in range(1, 21)]
    rows[2] = customer(3) + ",extra,more"  # line 4: two fields too many
    rows[5] = "C6,only-two"  # line 7: four fields missing
    write(landing_root, "customers.csv", [HEADER, *rows], source="customers")
    assert customers_run(resources).success
    assert customers_run(resources, "silver/dim_customer").success
    bronze = by_line(table(store, "bronze/customers"))
    assert bronze[(f"customers/date={DAY}/customers.csv", 4)]["_raw_record"] == customer(3) + ",extra,more"
    assert bronze[(f"customers/date={DAY}/customers.csv", 7)]["_raw_record"] == "C6,only-two"
    quarantine = table(store, "quarantine/customers")
    reasons = {int(r["_line_number"]): list(r["_quarantine_reasons"]) for _, r in quarantine.iterrows()}
    assert reasons == {4: ["csv_shape"], 7: ["csv_shape"]}
    assert set(table(store, "silver/dim_customer")["customer_id"]) == {f"C{i}" for i in range(1, 21)} - {"C3", "C6"}


@pytest.mark.parametrize("order_", ["new_column_first", "new_column_last"])
def test_a_new_csv_column_is_kept_whichever_file_sorts_first(resources, store, landing_root, order_) -> None:
    plain = [HEADER, *(customer(i) for i in range(1, 11))]
    wider = [HEADER + ",loyalty_tier", *(customer(i) + ",gold" for i in range(11, 21))]
    first, last = (wider, plain) if order_ == "new_column_first" else (plain, wider)
    write(landing_root, "a.csv", first, source="customers")
    write(landing_root, "b.csv", last, source="customers")
    assert customers_run(resources).success
    bronze = table(store, "bronze/customers")
    assert len(bronze) == 20
    tiers = bronze.set_index("customer_id")["loyalty_tier"]
    assert (tiers[[f"C{i}" for i in range(11, 21)]] == "gold").all()
    assert tiers[[f"C{i}" for i in range(1, 11)]].isna().all()


def test_csv_reader_renames_a_header_column_as_json_extras_are(tmp_path) -> None:
    """One rule for landed names (``column_name``): ``x_`` before a reserved or reader column, a leading digit or
    ``t_``; a contract column is itself in any case; only a real repeat is a header problem."""
    header = "Customer_ID,name,email,segment,region,updated_at,ingest_date,x_ingest_date,_line_number,t_x,1st"
    path = tmp_path / "customers.csv"
    path.write_text(f"{header}\n{customer(1)},a,b,c,d,e\n")
    landed = LandingFile(path, f"customers/date={DAY}/customers.csv", path.stat().st_size)
    found = read_csv_records(landed, required=("customer_id", "updated_at"), reserved=("ingest_date", "customer_id"))
    assert found.columns[6:] == ["x_ingest_date", "x_ingest_date_2", "x__line_number", "x_t_x", "x_1st"]
    assert found.columns[0] == "customer_id" and errors(found) == {}
    [record] = found.records
    assert (record["x_ingest_date"], record["x_ingest_date_2"], record["_line_number"]) == ("a", "b", 2)
    repeated = csv_file(tmp_path, f"{HEADER},Name\n{customer(1)},x\n")
    assert errors(repeated) == {2: "header: repeated column name"} and repeated.columns[-1] == "name_2"


@pytest.mark.parametrize(
    "landed", ["ingest_date", "_source_file", "_ingested_at", "_line_number", "Ingest_Date", "_quarantine_reasons"]
)
def test_a_csv_column_named_like_a_bronze_column_is_renamed_not_fatal(
    lenient_dim, resources, store, landing_root, landed
):
    """A header column named like the partition or an audit column failed the customers step (``ingest_date``:
    ``Fail to merge schema field``, no file named) or had its values replaced by the pipeline's (``_source_file``,
    ``_ingested_at``). It is now renamed as JSON extras are (``x_`` before it) and keeps its values."""
    rows = [customer(i) + ",zz" for i in range(1, 41)]
    write(landing_root, "customers.csv", [f"{HEADER},{landed}", *rows], source="customers")
    assert customers_run(resources).success
    bronze = table(store, "bronze/customers").sort_values("_line_number")
    assert (bronze[f"x_{landed.lower()}"] == "zz").all() and bronze["_csv_error"].isna().all()
    assert (bronze["ingest_date"].astype(str) == DAY).all()
    assert (bronze["_source_file"] == f"customers/date={DAY}/customers.csv").all()
    assert bronze["_line_number"].tolist() == list(range(2, 42)) and bronze["_raw_record"].tolist() == rows
    assert bronze["_ingested_at"].notna().all()
    assert customers_run(resources, "silver/dim_customer").success
    assert len(table(store, "silver/dim_customer")) == 40


@pytest.mark.parametrize(
    ("header", "separator"),
    [("customer_id,name,name,segment,region,updated_at", ","), ("cust_id,name,email,segment,region,updated_at", ","),
     (HEADER.replace(",", ";"), ";")],
    ids=["duplicate_name", "wrong_name", "semicolons"],
)  # fmt: skip
def test_a_bad_header_quarantines_that_file_and_keeps_its_rows_raw(
    lenient_dim, resources, store, landing_root, header, separator
) -> None:
    write(landing_root, "good.csv", [HEADER, *(customer(i) for i in range(1, 31))], source="customers")
    odd = [customer(i).replace(",", separator) for i in range(100, 103)]
    write(landing_root, "odd.csv", [header, *odd], source="customers")
    assert customers_run(resources).success
    bronze = table(store, "bronze/customers")
    kept = bronze[bronze["_source_file"].str.endswith("odd.csv")].sort_values("_line_number")
    assert kept["_raw_record"].tolist() == odd and kept["_line_number"].tolist() == [2, 3, 4]
    assert customers_run(resources, "silver/dim_customer").success
    quarantine = table(store, "quarantine/customers")
    odd_q = quarantine[quarantine["_source_file"].str.endswith("odd.csv")]
    assert len(odd_q) == 3 and all("csv_header" in list(r) for r in odd_q["_quarantine_reasons"])
    assert len(table(store, "silver/dim_customer")) == 30


def test_latin1_and_nul_bytes_never_reach_the_dimension(lenient_dim, resources, store, landing_root) -> None:
    rows = [customer(i).encode() for i in range(1, 21)]
    rows[1] = customer(2, name="Zoë").encode("latin-1")
    rows[2] = customer(3, name="Nul\x00Name").encode()
    write(landing_root, "customers.csv", HEADER.encode() + b"\n" + b"\n".join(rows) + b"\n", source="customers")
    assert customers_run(resources).success
    assert customers_run(resources, "silver/dim_customer").success
    quarantine = {int(r["_line_number"]): r for _, r in table(store, "quarantine/customers").iterrows()}
    assert list(quarantine[3]["_quarantine_reasons"]) == ["utf8_valid"]
    assert base64.b64decode(quarantine[3]["_invalid_utf8"]) == rows[1]
    assert "no_control_characters" in list(quarantine[4]["_quarantine_reasons"])
    names = table(store, "silver/dim_customer")["name"].tolist()
    assert len(names) == 18 and not any("\x00" in n or "\ufffd" in n for n in names)


def test_csv_line_numbers_count_physical_lines(resources, store, landing_root) -> None:
    rows = [customer(1), 'C2,"Two\nLines",c2@example.com,consumer,north,2024-01-02T08:00:00Z', customer(3)]
    write(landing_root, "customers.csv", [HEADER, *rows], source="customers")
    assert customers_run(resources).success
    bronze = table(store, "bronze/customers").set_index("customer_id")
    assert bronze.loc["C1", "_line_number"] == 2 and bronze.loc["C2", "_line_number"] == 3
    assert bronze.loc["C3", "_line_number"] == 5 and bronze.loc["C2", "name"] == "Two\nLines"


# -- customers CSV: stray quotes ---------------------------------------------------------------------------
STRAY_AT = 1100  # the physical line given a stray quote


def stray_quote_rows(lines: int) -> list[str]:
    """The records of a ``lines``-line file (header included) whose line ``STRAY_AT`` opens a quote it never
    closes: ``C1099,"Cust 1099,...``."""
    rows = [customer(i) for i in range(1, lines)]
    rows[STRAY_AT - 2] = rows[STRAY_AT - 2].replace(",", ',"', 1)
    return rows


def csv_file(tmp_path: Path, data: str | bytes) -> CsvFile:
    path = tmp_path / "customers.csv"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    landed = LandingFile(path, f"customers/date={DAY}/customers.csv", path.stat().st_size)
    return read_csv_records(landed, required=("customer_id", "updated_at"))


def errors(found: CsvFile) -> dict[int, str]:
    return {r["_line_number"]: r["_csv_error"] for r in found.records if r["_csv_error"]}


@pytest.mark.parametrize("lines", [2005, 4005], ids=["short", "past_the_field_limit"])
def test_csv_reader_a_stray_quote_costs_only_its_own_line(tmp_path, lines) -> None:
    """The quote folded every following line into one record (2005 lines: 1099 records); with more than 128 KB
    after it the csv module raised ``field larger than field limit``. Now only that line fails."""
    rows = stray_quote_rows(lines)
    found = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER, *rows]))
    assert [r["_line_number"] for r in found.records] == list(range(2, lines + 1))
    problem = errors(found)
    assert list(problem) == [STRAY_AT] and problem[STRAY_AT].startswith("shape:") and "quote" in problem[STRAY_AT]
    by_number = {r["_line_number"]: r for r in found.records}
    assert by_number[STRAY_AT]["_raw_record"] == rows[STRAY_AT - 2]
    for number in (2, STRAY_AT - 1, STRAY_AT + 1, lines):
        assert by_number[number]["customer_id"] == f"C{number - 1}"
        assert by_number[number]["_raw_record"] == customer(number - 1)
    assert (found.read.lines, found.read.rows, found.read.blank) == (lines, lines - 1, 0)


QUOTED = [
    customer(1),
    'C2,"Two\nLines",c2@example.com,consumer,north,2024-01-02T08:00:00Z',
    customer(3),
    'C4,"Three\r\nshort, quoted\r\nlines",c4@example.com,consumer,north,2024-01-02T08:00:00Z',
    '"C5","Five ""quoted""","c5@example.com",consumer,north,"2024-01-02T08:00:00Z"',
    'C6,"Six\nat the end",c6@example.com,consumer,north,2024-01-02T08:00:00Z',
]


@pytest.mark.parametrize("last_break", ["\n", ""], ids=["last_line_break", "no_last_line_break"])
def test_csv_reader_keeps_a_quoted_line_break_in_one_record(tmp_path, last_break) -> None:
    found = csv_file(tmp_path, HEADER + "\n" + "\n".join(QUOTED) + last_break)
    assert errors(found) == {}
    assert [r["_line_number"] for r in found.records] == [2, 3, 5, 6, 9, 10]
    assert [r["name"] for r in found.records] == [
        "Cust 1", "Two\nLines", "Cust 3", "Three\r\nshort, quoted\r\nlines", 'Five "quoted"', "Six\nat the end"
    ]  # fmt: skip
    assert [r["_raw_record"] for r in found.records] == QUOTED
    assert (found.read.lines, found.read.rows, found.read.blank) == (11, 6, 0)


def test_csv_reader_counts_whitespace_only_lines_as_blank(tmp_path) -> None:
    """A line of spaces or tabs is blank, as in JSON lines (it was a record of one field, quarantined as
    ``csv_shape``); a quoted blank field is still a record. Blank lines before the header are blank too (the
    first was taken as the header, and every record of the file failed ``csv_header``)."""
    data = "\n".join([HEADER, customer(1), "   ", "\t", customer(2), " \r", '"  "', ""]) + "\n"
    found = csv_file(tmp_path, data)
    assert [r["_line_number"] for r in found.records] == [2, 5, 7]
    assert list(errors(found)) == [7] and errors(found)[7].startswith("shape:")
    assert (found.read.lines, found.read.rows, found.read.blank) == (8, 3, 4)
    one_column = csv_file(tmp_path, "customer_id\nC1\n   \n")
    assert [r["customer_id"] for r in one_column.records] == ["C1", "   "]  # that column's value
    late_header = csv_file(tmp_path, "\n \t\n" + HEADER + "\n" + customer(1) + "\n")  # the header was line 1
    assert errors(late_header) == {} and [r["_line_number"] for r in late_header.records] == [4]
    assert late_header.records[0]["customer_id"] == "C1"
    assert (late_header.read.lines, late_header.read.rows, late_header.read.blank) == (4, 1, 2)
    assert csv_file(tmp_path, "\n  \n").read.blank == 2  # nothing but blank lines: no header, no record


def test_csv_reader_lines_of_unicode_spaces_are_blank_as_in_json_lines(tmp_path) -> None:
    """A line of no-break or other Unicode spaces (an editor's or a spreadsheet's) is blank in JSON lines; in CSV
    it was a record of one field, quarantined as ``csv_shape``. A zero-width space is not a space: a record."""
    spaces = ["\u00a0", "\u2003 \t", "\u3000", "\x1c", "\u200b"]
    found = csv_file(tmp_path, "\n".join([HEADER, customer(1), *spaces, customer(2)]) + "\n")
    assert [r["_line_number"] for r in found.records] == [2, 7, 8]
    assert list(errors(found)) == [7]  # the zero-width space
    assert (found.read.lines, found.read.rows, found.read.blank) == (8, 3, 4)
    assert [n for n, _, _ in reference_lines("\n".join(spaces).encode())] == [5]  # as JSON lines counts them


def test_csv_reader_a_stray_quote_before_a_quoted_line_break(tmp_path) -> None:
    """The stray quote used to close on the next record's opening quote, merging everything in between."""
    rows = [customer(1), customer(2).replace(",", ',"', 1), customer(3), *QUOTED[1:3], customer(7)]
    found = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER, *rows]))
    assert list(errors(found)) == [3]
    assert [r["_line_number"] for r in found.records] == [2, 3, 4, 5, 7, 8]
    assert [r["_raw_record"] for r in found.records] == rows
    assert found.records[3]["name"] == "Two\nLines"


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (customer(9).replace("north,", 'north,"'), "quote"),  # folds the last line in, 6 fields, open at the end
        (customer(9).replace(",", ',"', 1), "quote"),
        (customer(9).replace("Cust 9", "Cust\r9"), "shape:"),  # a bare carriage return in an unquoted field
        (customer(9).replace("Cust 9", '"' + "x" * 140_000 + '"'), "131072"),  # one field past the csv limit
    ],
    ids=["open_quote_in_the_last_field", "open_quote", "carriage_return", "field_past_the_limit"],
)
def test_csv_reader_one_bad_line_near_the_end_never_costs_the_others(tmp_path, bad, problem) -> None:
    rows = [*(customer(i) for i in range(1, 9)), bad, customer(10)]
    found = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER, *rows]))
    assert [r["_line_number"] for r in found.records] == list(range(2, 12))
    assert list(errors(found)) == [10] and problem in errors(found)[10] and errors(found)[10].startswith("shape:")
    assert [r["_raw_record"] for r in found.records] == rows
    assert found.records[-1]["customer_id"] == "C10" and found.records[-1]["updated_at"] == f"{DAY}T08:00:00Z"


def test_csv_reader_stray_quotes_on_consecutive_lines_fail_one_line_each(tmp_path) -> None:
    """Each quote closes on the next line's: the lenient reader made records of the header's width out of two
    lines (the second customer inside the first one's name)."""
    rows = [customer(i) for i in range(1, 11)]
    for i in (3, 4, 5):
        rows[i] = rows[i].replace(",", ',"', 1)
    found = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER, *rows]))
    assert [r["_line_number"] for r in found.records] == list(range(2, 12))
    assert list(errors(found)) == [5, 6, 7]
    assert [r["_raw_record"] for r in found.records] == rows
    assert [r["customer_id"] for r in found.records if not r["_csv_error"]] == [f"C{i}" for i in (1, 2, 3, 7, 8, 9, 10)]


def test_csv_reader_a_quote_closing_mid_field_fails_its_line(tmp_path) -> None:
    """``C3,"Cust"3,…`` read as the name ``Cust3``: the lenient reader took the text after a closing quote into
    the field without a word. Such a line now fails ``csv_shape`` alone; quotes as text in an unquoted field and
    doubled quotes inside a quoted one stay values."""
    rows = [customer(i) for i in range(1, 7)]
    rows[2] = rows[2].replace("Cust 3", '"Cust"3')
    rows[3] = rows[3].replace("c4@example.com", '"c4@example.com" ')  # a space after the closing quote
    rows[4] = rows[4].replace("Cust 5", 'Cust "5"')  # a quote inside an unquoted field is text
    rows[5] = rows[5].replace("Cust 6", '"Cust ""6"""')
    found = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER, *rows]))
    assert [r["_line_number"] for r in found.records] == list(range(2, 8))
    problem = errors(found)
    assert list(problem) == [4, 5] and all(p.startswith("shape:") and "quote" in p for p in problem.values())
    assert [r["_raw_record"] for r in found.records] == rows
    assert [r["name"] for r in found.records][4:] == ['Cust "5"', 'Cust "6"']
    folded = QUOTED[1].replace('Lines"', 'Lines"x')  # a quoted line break whose quote closes mid-field
    quoted_break = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER, folded, customer(3)]))
    assert list(errors(quoted_break)) == [2, 3] and [r["_line_number"] for r in quoted_break.records] == [2, 3, 4]
    assert "quote" in errors(quoted_break)[2] and quoted_break.records[2]["customer_id"] == "C3"


def test_csv_reader_a_stray_quote_in_the_header_keeps_every_record(tmp_path) -> None:
    rows = [customer(i) for i in range(1, 11)]
    rows[4] = customer(5, name='"Cust 5"')  # a quote for the header's stray one to close on
    found = csv_file(tmp_path, "".join(f"{r}\n" for r in [HEADER.replace(",name", ',"name'), *rows]))
    assert [r["_line_number"] for r in found.records] == list(range(2, 12))
    assert [r["_raw_record"] for r in found.records] == rows
    assert all(r["_csv_error"] and "header:" in r["_csv_error"] for r in found.records)


@pytest.mark.parametrize("lines", [2005, 4005], ids=["short", "past_the_field_limit"])
def test_a_stray_csv_quote_quarantines_its_line_and_the_range_publishes(resources, store, landing_root, lines) -> None:
    days = ("2024-01-01", DAY, "2024-01-03")
    others = {day: range(10_000 * (n + 1), 10_000 * (n + 1) + 20) for n, day in enumerate(days) if day != DAY}
    for day, ids in others.items():
        write(landing_root, "customers.csv", [HEADER, *(customer(i) for i in ids)], day=day, source="customers")
    rows = stray_quote_rows(lines)
    write(landing_root, "customers.csv", [HEADER, *rows], source="customers")
    assert materialize_days(resources, days[0], days[-1], selection="bronze/customers").success
    bronze = table(store, "bronze/customers")
    counts = bronze.groupby("_source_file").size().to_dict()
    assert counts == {f"customers/date={d}/customers.csv": lines - 1 if d == DAY else 20 for d in days}
    today = by_line(bronze)
    assert today[(f"customers/date={DAY}/customers.csv", STRAY_AT)]["_raw_record"] == rows[STRAY_AT - 2]
    assert today[(f"customers/date={DAY}/customers.csv", STRAY_AT + 1)]["customer_id"] == f"C{STRAY_AT}"
    logged = table(store, run_log.TABLE)
    logged = logged[logged["asset"] == "bronze/customers"].set_index("partition")
    assert logged["passed"].all() and sorted(logged.index) == list(days)
    assert logged.loc[DAY, ["rows_in", "rows_written"]].tolist() == [lines - 1, lines - 1]
    assert logged.loc[DAY, "pass_rate"] == pytest.approx((lines - 2) / (lines - 1))  # the gate counts the line
    assert customers_run(resources, "silver/dim_customer").success
    logged = table(store, run_log.TABLE)
    dim_log = logged[logged["asset"] == "silver/dim_customer"]
    assert dict(zip(dim_log["partition"], dim_log["quarantined"], strict=True)) == {d: int(d == DAY) for d in days}
    [bad] = table(store, "quarantine/customers").to_dict("records")
    assert (bad["_line_number"], list(bad["_quarantine_reasons"])) == (STRAY_AT, ["csv_shape"])
    assert bad["_raw_record"] == rows[STRAY_AT - 2] and "quote" in bad["_csv_error"]
    expected = {f"C{i}" for i in range(1, lines) if i != STRAY_AT - 1} | {f"C{i}" for i in others[days[0]]}
    expected |= {f"C{i}" for i in others[days[2]]}
    assert set(table(store, "silver/dim_customer")["customer_id"]) == expected
