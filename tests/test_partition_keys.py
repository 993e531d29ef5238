from datetime import date

import pytest

from resources.delta_store import partition_predicate
from resources.errors import InvalidPartitionKey
from resources.partition_keys import day_blocks, day_range, parse_day, parse_days, row_blocks

INJECTIONS = [
    "2024-01-01' OR '1'='1",
    "2024-01-01; DROP TABLE x",
    "2024-1-1",
    "20240101",
    "2024-02-30",
    "2024-01-01 ",
    " 2024-01-01",
    "",
    "2024-01-01T00:00:00",
]


@pytest.mark.parametrize("key", INJECTIONS)
def test_non_dates_are_rejected(key: str) -> None:
    with pytest.raises(InvalidPartitionKey):
        parse_day(key)


def test_injected_key_never_reaches_a_predicate() -> None:
    with pytest.raises(InvalidPartitionKey, match="not a YYYY-MM-DD date"):
        partition_predicate("order_date", ["2024-01-01", "2024-01-01' OR '1'='1"])


def test_predicates_for_one_day_a_range_and_a_gappy_set() -> None:
    assert partition_predicate("order_date", ["2024-01-02"]) == "`order_date` = DATE'2024-01-02'"
    assert partition_predicate("d", ["2024-01-03", "2024-01-01", "2024-01-02"]) == (
        "`d` >= DATE'2024-01-01' AND `d` <= DATE'2024-01-03'"
    )
    assert partition_predicate("d", ["2024-01-05", "2024-01-01"]) == "`d` IN (DATE'2024-01-01', DATE'2024-01-05')"


def test_partition_column_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        partition_predicate("d = d OR 1", ["2024-01-01"])


def test_parse_days_sorts_and_dedupes() -> None:
    assert parse_days(["2024-01-02", "2024-01-01", "2024-01-02"]) == [date(2024, 1, 1), date(2024, 1, 2)]
    with pytest.raises(InvalidPartitionKey):
        parse_days([])


def test_day_range_is_inclusive_and_ordered() -> None:
    assert day_range("2024-02-28", "2024-03-01") == [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]
    with pytest.raises(InvalidPartitionKey):
        day_range("2024-01-02", "2024-01-01")


def test_day_blocks_group_consecutive_days() -> None:
    assert day_blocks(["2024-01-05", "2024-01-01", "2024-01-02", "2024-01-04", "2024-01-02"]) == [
        ("2024-01-01", "2024-01-02"),
        ("2024-01-04", "2024-01-05"),
    ]


def test_row_blocks_cut_days_in_order_at_the_row_limit() -> None:
    rows = {"2024-01-01": 400, "2024-01-02": 500, "2024-01-03": 300, "2024-01-04": 2000, "2024-01-05": 100}
    days = ["2024-01-05", "2024-01-03", "2024-01-01", "2024-01-02", "2024-01-04", "2024-01-06"]
    assert row_blocks(days, rows, 1000) == [
        ["2024-01-01", "2024-01-02"],
        ["2024-01-03"],
        ["2024-01-04"],  # larger than the limit: a block of its own
        ["2024-01-05", "2024-01-06"],  # a day without rows joins the block it follows
    ]
    assert row_blocks(days, rows, 10_000) == [sorted(days)]
