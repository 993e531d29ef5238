"""The pure transforms on tiny hand-made frames, on Sail, through the same steps the assets take."""

import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets import orders_contract as contract
from medallion_assets import transforms
from medallion_assets.factory import checked_rows, published_rows, quarantine_rows
from medallion_assets.json_source import bronze_frame
from medallion_assets.orders import BRONZE_SPEC, SILVER_SPEC
from medallion_assets.quality.gate import day_stats
from medallion_assets.quality.rules import REASONS, WHITE_SPACE, rule_counts
from resources.engine_features import runs_json_object_keys
from resources.landing import LandingFile
from resources.landing_files import read_json_lines

DAY = "2024-01-02"
NOW = datetime(2024, 1, 3, 1, 0, tzinfo=timezone.utc)


def order(**overrides) -> dict:
    row = {
        "order_id": "o1",
        "customer_id": "c1",
        "order_ts": "2024-01-02T10:00:00Z",
        "status": "paid",
        "amount": 10.5,
        "region": "north",
        "updated_at": "2024-01-02T10:00:00Z",
    }
    row.update(overrides)
    return {k: v for k, v in row.items() if v is not ...}


@pytest.fixture
def lines(spark: SparkSession, tmp_path: Path):
    """Landing lines as the bronze read hook makes them: the file read by the landing reader, then Parquet."""
    made = iter(range(1_000))

    def make(*items: str | dict, file: str = "orders/date=2024-01-02/a.jsonl") -> DataFrame:
        n = next(made)
        path = tmp_path / f"in-{n}.jsonl"
        path.write_text("".join(f"{x if isinstance(x, str) else json.dumps(x)}\n" for x in items))
        batches, _ = read_json_lines(LandingFile(path, file, path.stat().st_size))
        table = pa.Table.from_batches(batches)
        table = table.add_column(0, "order_date", pa.array([date.fromisoformat(DAY)] * len(table), pa.date32()))
        table = table.add_column(1, "_source_file", pa.array([file] * len(table), pa.string()))
        pq.write_table(table, tmp_path / f"in-{n}.parquet")
        return spark.read.parquet(str(tmp_path / f"in-{n}.parquet"))

    return make


def bronze(df: DataFrame, *, keys_from_map: bool = False) -> DataFrame:
    parsed = transforms.parse_lines(df, contract.FIELDS, keys_from_map=keys_from_map)
    return bronze_frame(contract.CONTRACT, parsed, ingested_at=NOW)[0]


def validated(df: DataFrame) -> DataFrame:
    return checked_rows(SILVER_SPEC, transforms.typed_rows(df, contract.typed_columns()))


def reasons(lines, *items) -> dict[int, list[str]]:
    return {r._line_number: sorted(r[REASONS]) for r in validated(bronze(lines(*items))).collect()}


def test_bronze_keeps_raw_text_corrupt_lines_and_extra_fields(lines) -> None:
    rows = bronze(
        lines(order(amount="12.50", **{"Promo Code": "X1"}), "not json", "   ", "[1, 2]", order(amount=7))
    ).collect()
    assert len(rows) == 4  # the blank line is not a row
    first, corrupt, array, last = sorted(rows, key=lambda r: r._line_number)
    assert first.amount == "12.50" and first.promo_code == "X1" and first._corrupt_record is None
    assert corrupt.order_id is None and corrupt._corrupt_record == "not json"
    assert array._corrupt_record == "[1, 2]"
    assert last.amount == "7" and last.promo_code is None and last._ingested_at == NOW.replace(tzinfo=None)


def test_parsed_lines_keep_a_lines_text_only_where_bronze_reads_it_again(lines) -> None:
    """Staged parses carry no second copy of plain contract lines; corrupt lines and extras keep theirs."""
    df = lines(order(), order(**{"Promo Code": "X1"}), "not json", "[1]", order(amount=None))
    for keys_from_map in (False, True):
        parsed = transforms.parse_lines(df, contract.FIELDS, keys_from_map=keys_from_map).collect()
        text = {r._line_number: r.value for r in parsed}
        assert text[1] is None and text[5] is None
        assert '"Promo Code": "X1"' in text[2] and text[3] == "not json" and text[4] == "[1]"
    plain = transforms.parse_lines(lines(order(), order(amount=None), "not json"), contract.FIELDS)
    assert "Promo Code" in transforms.json_keys(transforms.parse_lines(df, contract.FIELDS))
    assert transforms.json_keys(plain) == set()  # extra columns come only from lines that kept their text


@pytest.mark.parametrize("keys_from_map", [False, True])
def test_a_line_holding_more_than_one_json_value_is_kept_whole_as_corrupt(lines, keys_from_map: bool) -> None:
    """An object followed by more JSON or text (two objects with no line break, a trailing comma or brace, lines
    joined by a lone carriage return) is not one JSON object: kept whole in ``_corrupt_record``, failing
    ``json_object``; nor is an object nested deeper than the engine's parses read (127 to about 250 levels lost
    every field: the key list read it, the parses did not). Objects whose contract fields are all absent or null
    are still objects."""
    one = json.dumps(order(order_id="K1"))
    deep = [f'{{"order_id": "K3", "x": {"[" * d}1{"]" * d}}}' for d in (130, 200)]
    joined = [one + json.dumps(order(order_id="K2")), one + " trailing", one + ",", one + "}", one + "\r" + one,
              '{"zz": 1}' + one, one + ", " + one, *deep, '{"x": ' + '{"a": ' * 140 + "1" + "}" * 141]  # fmt: skip
    objects = ["{}", '{"zz": 1}', '{"order_id": null}', '{"zz": [1, {"a": [2]}]}', one + "  "]
    rows = {r._line_number: r for r in bronze(lines(*joined, *objects), keys_from_map=keys_from_map).collect()}
    for n, line in enumerate(joined, start=1):
        assert rows[n]._corrupt_record == line, n
    for n in range(len(joined) + 1, len(joined) + len(objects) + 1):
        assert rows[n]._corrupt_record is None, n
    assert rows[len(rows)].order_id == "K1"
    checked = {r._line_number: r for r in checked_rows(BRONZE_SPEC, bronze(lines(*joined, one))).collect()}
    assert [n for n, r in sorted(checked.items()) if "json_object" in r[REASONS]] == list(range(1, len(joined) + 1))


def test_both_routes_to_a_lines_keys_give_the_same_bronze(lines, spark: SparkSession) -> None:
    """json_object_keys (local Sail, Spark, Databricks) and the map parse (engines without it: Sail's cluster
    modes) agree on extras, repeated keys (the last wins), nested values and lines that are not objects."""
    df = lines(
        order(**{"Promo Code": "X1", "nested": {"a": [1, 2]}}),
        '{"order_id": "o2", "order_id": "o3", "extra": 1}',
        "not json",
        "[1, 2]",
        '"text"',
        order(amount=None),
    )
    assert runs_json_object_keys(spark)  # Sail's local mode has it: the map route runs only where it must
    by_keys, by_map = bronze(df), bronze(df, keys_from_map=True)
    assert sorted(by_keys.columns) == sorted(by_map.columns)
    assert {"promo_code", "nested", "extra"} <= set(by_keys.columns)
    order_by = ["_line_number"]
    assert by_keys.drop("_ingested_at").sort(order_by).collect() == by_map.drop("_ingested_at").sort(order_by).collect()


def test_bronze_gate_counts_lines_that_fail_and_publishes_every_line(lines) -> None:
    df = bronze(
        lines(order(), order(region=""), order(**{"Promo Code": "X1"}), "not json", "[1]", "  ", order(status=...),
              order(amount=None))
    )  # fmt: skip
    [row] = rule_counts(checked_rows(BRONZE_SPEC, df), "order_date", BRONZE_SPEC.rules).collect()
    stats = day_stats(row.asDict(), BRONZE_SPEC.rules, keeps_failing_rows=True)
    assert (stats.rows_in, stats.valid, stats.published, stats.quarantined, stats.superseded) == (7, 2, 7, 0, 0)
    assert dict(stats.failures) == {"json_object": 2, "required_fields_present": 3}
    assert "promo_code" in df.columns


@pytest.mark.parametrize("keys_from_map", [False, True])
def test_extra_keys_differing_only_in_case_are_kept_apart(lines, keys_from_map: bool) -> None:
    """JSON keys are case-sensitive, the engine's struct field access is not: ``note`` and ``Note`` (or ``AMOUNT`` and
    ``Amount`` beside the contract's ``amount``) failed the whole bronze step with ``missing or ambiguous field``.
    Each is now its own column; the contract fields are read case-sensitively, exact numbers included."""
    rows = bronze(
        lines(
            order(order_id="a", note="x"),
            order(order_id="b", Note="y"),
            order(order_id="c", note="x2", Note="y2"),
            order(order_id="d", amount=..., AMOUNT=7),
            order(order_id="e", amount=7, Amount=700000),
            '{"order_id": "f", "amount": 1.10, "Amount": 2.50, "note": "n", "Note": "N"}',
            '{"order_id": "g", "NOTE": "z", "a.b": 1, "we`ird": {"x": 2}, "_Source_File": "s"}',
        ),
        keys_from_map=keys_from_map,
    ).collect()
    got = {r.order_id: r.asDict() for r in rows}
    notes = [(got[k]["note"], got[k]["note__"]) for k in "abcf"]  # note is note, then NOTE and Note, sorted
    assert notes == [("x", None), (None, "y"), ("x2", "y2"), ("n", "N")]
    assert [got[k]["amount"] for k in "def"] == [None, "7", "1.10"]
    assert (got["d"]["x_amount"], got["d"]["x_amount_"]) == ("7", None)  # AMOUNT, then Amount
    assert (got["e"]["x_amount"], got["e"]["x_amount_"]) == (None, "700000")
    assert got["f"]["x_amount_"] == "2.50"
    assert (got["g"]["note_"], got["g"]["a_b"], got["g"]["we_ird"]) == ("z", "1", '{"x":2}')
    assert got["g"]["x__source_file"] == "s" and got["g"]["_source_file"] == "orders/date=2024-01-02/a.jsonl"


def test_extra_column_names_never_clash() -> None:
    keys = ["order_id", "Promo Code", "promo_code", "1st", "_source_file", "t_amount"]
    cols = transforms.extra_columns(contract.FIELDS, contract.CONTRACT.bronze_columns, keys)
    assert cols == {
        "1st": "x_1st",
        "Promo Code": "promo_code_",  # a key that is its own column name keeps it
        "_source_file": "x__source_file",
        "promo_code": "promo_code",
        "t_amount": "x_t_amount",  # t_ is the pipeline's working prefix
    }


def test_each_contract_rule_names_its_failure(lines) -> None:
    got = reasons(
        lines,
        order(),  # 1 valid
        order(order_id=...),  # 2
        order(customer_id=""),  # 3
        order(amount=-1),  # 4
        order(amount=1_000_000),  # 5
        order(amount="abc"),  # 6
        order(amount=True),  # 7
        order(status="pending"),  # 8
        order(order_ts="2024-01-02 10:00"),  # 9
        order(order_ts="2024-01-02T10:00:00"),  # 10 no offset
        order(order_ts="2024-01-01T23:00:00Z"),  # 11 other day
        order(order_ts="2024-01-02T01:00:00+02:00"),  # 12 -> 2024-01-01 UTC
        order(currency="usd"),  # 13
        order(updated_at="soon"),  # 14
        "{broken",  # 15
        order(amount=..., region=..., status="nope"),  # 16 several at once
        order(amount="0.004"),  # 17 rounds to 0.00
    )
    assert got == {
        1: [],
        2: ["order_id_present"],
        3: ["customer_id_present"],
        4: ["amount_in_range"],
        5: ["amount_in_range"],
        6: ["amount_numeric"],
        7: ["amount_numeric"],
        8: ["status_known"],
        9: ["order_ts_iso8601"],
        10: ["order_ts_iso8601"],
        11: ["order_ts_in_folder_date"],
        12: ["order_ts_in_folder_date"],
        13: ["currency_code"],
        14: ["updated_at_iso8601"],
        15: ["json_object"],
        16: ["amount_present", "region_present", "status_known"],
        17: ["amount_in_range"],
    }


def test_silver_types_values(lines) -> None:
    checked = validated(
        bronze(
            lines(
                order(order_id="a", amount="12.345", order_ts="2024-01-02T23:30:00+00:30"),
                order(order_id="b", amount=1e3, currency="EUR", updated_at="2024-01-03T05:00:00.5+05:00"),
            )
        )
    )
    silver = {r.order_id: r for r in published_rows(SILVER_SPEC, checked).collect()}
    assert silver["a"].amount == Decimal("12.35") and silver["a"].currency == contract.DEFAULT_CURRENCY
    assert silver["a"].order_ts == datetime(2024, 1, 2, 23, 0)
    assert silver["b"].amount == Decimal("1000.00") and silver["b"].currency == "EUR"
    assert silver["b"].updated_at == datetime(2024, 1, 3, 0, 0, 0, 500000)


def test_text_fields_holding_objects_arrays_or_booleans_fail_a_named_rule(lines) -> None:
    """``order_id`` ``{"a":1}``, ``["O_arr"]`` or ``true``, a ``customer_id`` array and a ``region`` object were
    published as keys and codes; a text field's JSON value must be a string or a number."""
    got = reasons(
        lines,
        order(order_id={"a": 1}),  # 1
        order(order_id=["O_arr"]),  # 2
        order(order_id=True),  # 3
        order(customer_id=["C1", "C2"]),  # 4
        order(region={"x": "north"}),  # 5
        order(status=False, currency=["USD"]),  # 6
        order(order_id="true", customer_id='["C1"]', region='{"x": "north"}'),  # 7 strings: text as landed
        order(customer_id=12, region=7),  # 8 numbers: their text, exactly as written
        '{"order_id": "o1", "\\u006frder_id": [1], ' + json.dumps(order())[1:],  # 9 an escaped key, repeated
        order(order_id={"a": 1}, **{"x": {"y": True}}),  # 10 a structured extra field is not the contract's
    )
    assert got == {
        1: ["order_id_text"],
        2: ["order_id_text"],
        3: ["order_id_text"],
        4: ["customer_id_text"],
        5: ["region_text"],
        6: ["currency_code", "currency_text", "status_known", "status_text"],
        7: [],
        8: [],
        9: [],
        10: ["order_id_text"],
    }


def with_number(text: str, **overrides) -> str:
    """An order line whose ``amount`` is the JSON number ``text``, exactly as written."""
    return json.dumps(order(amount=0, **overrides)).replace('"amount": 0', f'"amount": {text}')


#: amount as written → silver's amount (half-up to cents, exactly); None: the row fails amount_in_range
EXACT_AMOUNTS = {
    "1.005": "1.01", "1.005e0": "1.01", "100.5e-2": "1.01", "1.015": "1.02", "1.015E0": "1.02",
    "1.2345e1": "12.35", "1.5e-2": "0.02", "5.0049999999999999999e0": "5.00", "1E+2": "100.00", "+1.005e0": "1.01",
    ".5e1": "5.00", "5.e0": "5.00", "12345678901234567890e-18": "12.35", "0" * 50 + "1.005e0": "1.01",
    "1005" + "0" * 50 + "e-53": "1.01", "999999.995e0": None, "1e400": None, "1e-400": None, "1e2147483647": None,
    "1e99999999999": None, "0e5": None, "-1.005e0": None,
}  # fmt: skip


def engine_reads_number(text: str) -> bool:
    """``text`` is a JSON number (``+1``, ``.5``, ``5.`` and ``01`` are not) the engine's parse reads in a line (it
    takes the line for no JSON object when the number is beyond a double: ``1e400``, ``1e-400``)."""
    number = re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", text)
    return number is not None and (float(text) == 0 or 1e-300 < abs(float(text)) < 1e300)


@pytest.mark.parametrize("quoted", [False, True], ids=["number", "string"])
def test_amounts_round_half_up_exactly_whatever_the_notation(lines, quoted: bool) -> None:
    """``1.005e0`` and ``100.5e-2`` were typed through a double (1.00); every notation is exact decimal now."""
    expected = {t: v for t, v in EXACT_AMOUNTS.items() if quoted or engine_reads_number(t)}
    ids = {t: f"a{i}" for i, t in enumerate(expected)}
    rows = [order(order_id=o, amount=t) if quoted else with_number(t, order_id=o) for t, o in ids.items()]
    landed = bronze(lines(*rows))
    assert [r.amount for r in landed.orderBy("_line_number").collect()] == list(ids)  # bronze: the text as written
    checked = validated(landed)
    silver = {r.order_id: str(r.amount) for r in published_rows(SILVER_SPEC, checked).collect()}
    assert {t: silver.get(o) for t, o in ids.items()} == expected
    failed = {r.order_id: list(r[REASONS]) for r in checked.collect() if r[REASONS]}
    assert failed == {o: ["amount_in_range"] for t, o in ids.items() if expected[t] is None}


def test_latest_version_wins_with_file_then_line_tie_breaks(lines) -> None:
    early = order(status="placed", updated_at="2024-01-02T10:00:00Z")
    late = order(status="paid", updated_at="2024-01-02T12:00:00Z")
    tie = order(status="shipped", updated_at="2024-01-02T12:00:00Z")
    a = lines(late, early, file="orders/date=2024-01-02/a.jsonl")
    b = lines(tie, order(order_id="o2"), tie | {"status": "delivered"}, file="orders/date=2024-01-02/b.jsonl")
    checked = validated(bronze(a.unionByName(b)))
    silver = {
        r.order_id: (r.status, r._source_file[-7:], r._line_number)
        for r in published_rows(SILVER_SPEC, checked).collect()
    }
    assert silver == {"o1": ("delivered", "b.jsonl", 3), "o2": ("paid", "b.jsonl", 2)}
    [row] = rule_counts(checked, "order_date", SILVER_SPEC.rules, kept=F.col("t_version_rank") == 1).collect()
    stats = day_stats(row.asDict(), SILVER_SPEC.rules, keeps_failing_rows=False)
    assert (stats.rows_in, stats.valid, stats.published, stats.superseded, stats.quarantined) == (5, 5, 2, 3, 0)


def test_quarantine_keeps_source_columns_and_every_reason(lines) -> None:
    b = bronze(lines(order(), order(amount=..., status="x", extra="kept"), "oops"))
    q = quarantine_rows(validated(b), quarantined_at=NOW, run_id="r1").collect()
    assert not any(c.startswith("t_") for c in q[0].asDict())
    by_line = {r._line_number: r for r in q}
    assert set(by_line) == {2, 3}
    assert sorted(by_line[2]._quarantine_reasons) == ["amount_present", "status_known"]
    assert by_line[2].extra == "kept" and by_line[2].status == "x"
    assert by_line[3]._quarantine_reasons == ["json_object"] and by_line[3]._corrupt_record == "oops"


def test_daily_sales(spark: SparkSession) -> None:
    silver = spark.createDataFrame(
        [
            ("1", "c1", "paid", Decimal("10.00"), "n"),
            ("2", "c1", "shipped", Decimal("5.55"), "n"),
            ("3", "c2", "delivered", Decimal("4.45"), "n"),
            ("4", "c3", "cancelled", Decimal("99.00"), "n"),
            ("5", "c4", "returned", Decimal("1.00"), "s"),
            ("6", "c4", "placed", Decimal("3.00"), "s"),
        ],
        "order_id string, customer_id string, status string, amount decimal(18,2), region string",
    ).withColumn("order_date", F.lit(DAY).cast("date"))
    got = {
        r.region: r.asDict()
        for r in transforms.daily_sales(
            silver, sale_statuses=contract.SALE_STATUSES, amount_type="decimal(18,2)"
        ).collect()
    }
    assert got["n"]["orders"] == 3 and got["n"]["revenue"] == Decimal("20.00")
    assert got["n"]["avg_order_value"] == Decimal("6.67") and got["n"]["customers"] == 2
    assert (got["n"]["cancelled"], got["n"]["returned"]) == (1, 0)
    assert got["s"]["orders"] == 0 and got["s"]["revenue"] == Decimal("0.00") and got["s"]["avg_order_value"] is None
    assert (got["s"]["customers"], got["s"]["returned"]) == (0, 1)


def test_bronze_line_numbers_hold_on_a_large_file(lines) -> None:
    """Line numbers come from the landing reader; the parse stages on top must not reorder them."""
    rows = bronze(lines(*(order(order_id=f"o{i}") for i in range(1, 70_001)))).select("order_id", "_line_number")
    wrong = rows.filter(F.concat(F.lit("o"), F.col("_line_number").cast("string")) != F.col("order_id")).count()
    assert rows.count() == 70_000 and wrong == 0


def test_keys_and_numbers_lose_the_white_space_python_strips(spark: SparkSession) -> None:
    """``WHITE_SPACE`` is Python's ``str.isspace`` set (the independent oracle strips with ``str.strip``); the engine
    trims exactly it from both ends, and nothing inside or invisible (a zero-width space) is white space."""
    python = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert python == WHITE_SPACE
    values = ["C1", " C1 ", "\tC1\r\n", "\u00a0C1\u3000", "C 1", "\u200bC1", "\u2003", "\x1c12.50\x85"]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r[0] for r in df.select(contract.identifier(F.col("v"))).collect()]
    assert got == [v.strip() for v in values]
