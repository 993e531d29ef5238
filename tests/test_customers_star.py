"""Customers SCD2 (new, changed, re-delivered, out-of-order days), the as-of fact join, schema evolution."""

import json
import uuid
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from medallion_assets.definitions import ASSETS, CHECKS
from medallion_assets.sample_data import FAULTS, generate
from medallion_assets.scd2 import as_of, scd2_versions

HEADER = "customer_id,name,email,segment,region,updated_at"


def write_csv(landing: Path, day: str, rows: list[str]) -> None:
    folder = landing / "customers" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text("\n".join([HEADER, *rows]) + "\n")


def run(
    resources: dict, selection: list[str], partition: str | None = None, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    kwargs = {"partition_key": partition} if partition else {}
    return dg.materialize(
        [*ASSETS, *CHECKS], resources=resources, selection=selection, raise_on_error=False, instance=instance, **kwargs
    )


def write_orders(landing: Path, day: str, orders: list[tuple[str, str, str]]) -> None:
    """``(order_id, customer_id, order_ts)`` as paid orders of 10 on ``day``."""
    folder = landing / "orders" / f"date={day}"
    folder.mkdir(parents=True)
    lines = [
        {"order_id": o, "customer_id": c, "order_ts": ts, "status": "paid", "amount": 10, "region": "north",
         "updated_at": ts}
        for o, c, ts in orders
    ]  # fmt: skip
    (folder / "part-000.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def dim(store) -> pd.DataFrame:
    df = DeltaTable(store.table_uri("silver/dim_customer")).to_pandas()
    return df.sort_values(["customer_id", "valid_from"]).reset_index(drop=True)


@pytest.fixture(autouse=True)
def small_feed_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three-row days: one bad row is a third of the day, so this table's gate is lowered for these tests."""
    monkeypatch.setenv("MEDALLION_THRESHOLD_SILVER_DIM_CUSTOMER", "0.5")


DAY1 = [
    "C1,Ann,ann@example.com,consumer,north,2024-01-01T08:00:00Z",
    "C2,Bob,bob@example.com,corporate,south,2024-01-01T09:00:00Z",
    "C9,Bad,not-an-email,consumer,north,2024-01-01T09:00:00Z",
]
DAY2 = [
    "C1,Ann,ann@new.example.com,consumer,north,2024-01-02T10:00:00Z",  # changed
    "C2,Bob,bob@example.com,corporate,south,2024-01-02T11:00:00Z",  # re-delivered, same attributes
]
DAY3 = ["C1,Ann,ann@new.example.com,enterprise,north,2024-01-03T10:00:00Z"]  # changed again


def test_scd2_new_changed_unchanged_and_out_of_order_days(resources, store, landing_root) -> None:
    for day, rows in (("2024-01-01", DAY1), ("2024-01-03", DAY3), ("2024-01-02", DAY2)):
        write_csv(landing_root, day, rows)
        assert run(resources, ["bronze/customers"], day).success
        assert run(resources, ["silver/dim_customer"]).success  # the day-2 load comes after day 3
    d = dim(store)
    ann = d[d.customer_id == "C1"]
    assert ann["email"].tolist() == ["ann@example.com", "ann@new.example.com", "ann@new.example.com"]
    assert ann["segment"].tolist() == ["consumer", "consumer", "enterprise"]
    assert ann["valid_from"].dt.strftime("%Y-%m-%d %H").tolist() == ["2024-01-01 08", "2024-01-02 10", "2024-01-03 10"]
    assert ann["valid_to"].iloc[:2].tolist() == ann["valid_from"].iloc[1:].tolist() and pd.isna(ann["valid_to"].iloc[2])
    assert ann["is_current"].tolist() == [False, False, True]
    bob = d[d.customer_id == "C2"]
    assert len(bob) == 1 and bool(bob["is_current"].iloc[0])  # the identical re-delivery made no version
    assert "C9" not in set(d.customer_id)
    quarantine = DeltaTable(store.table_uri("quarantine/customers")).to_pandas()
    assert quarantine["_quarantine_reasons"].map(list).tolist() == [["email_format"]]
    # a rebuild in load order gives the same keys
    keys = sorted(d["customer_sk"].tolist())
    assert run(resources, ["silver/dim_customer"]).success
    assert sorted(dim(store)["customer_sk"].tolist()) == keys and len(set(keys)) == len(keys)


ORDERS = [
    ("o1", "C1", "2024-01-02T09:59:59Z"),  # before Ann's change at 10:00 -> first version
    ("o2", "C1", "2024-01-02T10:00:00Z"),  # exactly at valid_from -> second version
    ("o3", "C7", "2024-01-02T12:00:00Z"),  # unknown customer -> -1, kept
]


def test_fact_rows_get_the_version_valid_at_order_time(resources, store, landing_root) -> None:
    write_csv(landing_root, "2024-01-01", DAY1)
    write_csv(landing_root, "2024-01-02", DAY2)
    for day in ("2024-01-01", "2024-01-02"):
        assert run(resources, ["bronze/customers"], day).success
    assert run(resources, ["silver/dim_customer"]).success
    write_orders(landing_root, "2024-01-02", ORDERS)
    result = run(resources, ["bronze/orders", "silver/orders", "gold/fact_orders"], "2024-01-02")
    assert result.success
    fact = DeltaTable(store.table_uri("gold/fact_orders")).to_pandas().set_index("order_id")
    d = dim(store)
    ann = d[d.customer_id == "C1"]["customer_sk"].tolist()
    assert fact.loc["o1", "customer_sk"] == ann[0] and fact.loc["o2", "customer_sk"] == ann[1]
    assert fact.loc["o3", "customer_sk"] == -1 and fact.loc["o3", "date_key"] == 20240102
    [ri] = [c for c in result.get_asset_check_evaluations() if c.check_name == "customer_known_at_order_time"]
    assert not ri.passed and ri.severity == dg.AssetCheckSeverity.WARN
    assert ri.metadata["unknown_customer_rows"].value == 1
    assert run(resources, ["gold/customer_ltv", "gold/dim_date"]).success
    ltv = DeltaTable(store.table_uri("gold/customer_ltv")).to_pandas().set_index("customer_id")
    assert ltv.loc["C1", "total_orders"] == 2 and ltv.loc["C1", "current_segment"] == "consumer"
    assert pd.isna(ltv.loc["C7", "current_segment"]) and ltv.loc["C7", "lifetime_value"] == 10
    dates = DeltaTable(store.table_uri("gold/dim_date")).to_pandas().set_index("date_key")
    assert dates.loc[20240101, "day_of_week"] == 1 and dates.loc[20240106, "is_weekend"]
    assert dates.loc[20240101, "quarter"] == 1 and dates.loc[20240101, "month_name"] == "January"


@pytest.mark.parametrize("pad", [" ", "\t", "\u00a0"], ids=["space", "tab", "no_break_space"])
def test_keys_padded_with_spaces_are_the_same_customer_and_order(resources, store, landing_root, pad) -> None:
    """``C1 ,…`` made a second customer ``C1 `` in the dimension, and an order of ``" C1"`` had no customer; padded
    with a tab or a no-break space (a spreadsheet's export), they still did after spaces were trimmed."""
    write_csv(landing_root, "2024-01-01", DAY1)
    padded = [f"C1{pad}{DAY2[0][2:]}", f"{pad}{DAY2[1]}"]  # Ann changed, Bob re-delivered unchanged
    write_csv(landing_root, "2024-01-02", padded)
    for day in ("2024-01-01", "2024-01-02"):
        assert run(resources, ["bronze/customers"], day).success
    assert run(resources, ["silver/dim_customer"]).success
    d = dim(store)
    assert sorted(set(d.customer_id)) == ["C1", "C2"]
    assert d[d.customer_id == "C1"]["email"].tolist() == ["ann@example.com", "ann@new.example.com"]
    assert len(d[d.customer_id == "C2"]) == 1
    bronze = DeltaTable(store.table_uri("bronze/customers")).to_pandas()
    landed = bronze[bronze.ingest_date.astype(str) == "2024-01-02"]["customer_id"]
    assert sorted(landed) == sorted([f"{pad}C2", f"C1{pad}"])  # as landed
    orders = [(f"{pad}o1", f"{pad}C1", "2024-01-02T12:00:00Z"), (f"o2{pad}", f"C2{pad}", ORDERS[2][2])]
    write_orders(landing_root, "2024-01-02", orders)
    assert run(resources, ["bronze/orders", "silver/orders", "gold/fact_orders"], "2024-01-02").success
    fact = DeltaTable(store.table_uri("gold/fact_orders")).to_pandas().set_index("order_id")
    current = d[d.is_current].set_index("customer_id")["customer_sk"]
    assert fact["customer_sk"].to_dict() == {"o1": current["C1"], "o2": current["C2"]}
    assert sorted(fact["customer_id"]) == ["C1", "C2"]


def test_scd2_transform_directly(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [
            ("A", "x", datetime(2024, 1, 3), 1),
            ("A", "x", datetime(2024, 1, 1), 1),  # out of order
            ("A", "y", datetime(2024, 1, 2), 1),
            ("A", "z", datetime(2024, 1, 2), 2),  # same instant, later line wins
            ("B", "q", datetime(2024, 1, 1), 1),
        ],
        "id string, attr string, ts timestamp, line int",
    )
    v = scd2_versions(rows, key="id", attributes=["attr"], valid_from="ts", tie_breakers=["line"], sk_name="sk")
    got = sorted(
        (r.id, r.attr, r.valid_from.day, r.valid_to.day if r.valid_to else None, r.is_current) for r in v.collect()
    )
    assert got == [
        ("A", "x", 1, 2, False),
        ("A", "x", 3, None, True),
        ("A", "z", 2, 3, False),
        ("B", "q", 1, None, True),
    ]
    facts = spark.createDataFrame(
        [("A", datetime(2024, 1, 2, 12)), ("C", datetime(2024, 1, 2))], "id string, at timestamp"
    )
    joined = {r.id: r.sk for r in as_of(facts, v, key="id", at="at", sk_name="sk").collect()}
    z = next(r.sk for r in v.collect() if r.attr == "z")
    assert joined == {"A": z, "C": -1}


def test_a_new_landing_field_shows_up_in_bronze_and_silver_ignores_it(resources, store, landing_root) -> None:
    quiet = {k: 0.0 for k in FAULTS}
    generate(landing_root, days=1, orders_per_day=50, seed=1, rates=quiet)
    assert run(resources, ["bronze/orders", "silver/orders"], "2024-01-01").success
    generate(
        landing_root, days=1, orders_per_day=50, seed=1, start=date(2024, 1, 2), rates={**quiet, "extra_fields": 0.2}
    )
    result = run(resources, ["bronze/orders", "silver/orders"], "2024-01-02")
    assert result.success
    [bronze_event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(["bronze", "orders"])
    ]
    meta = bronze_event.materialization.metadata
    assert set(meta["added_columns"].value) == {"channel", "promo_code"}
    bronze = DeltaTable(store.table_uri("bronze/orders")).to_pandas()
    assert bronze[bronze.order_date.astype(str) == "2024-01-01"]["promo_code"].isna().all()
    assert bronze["promo_code"].notna().sum() > 0
    silver = DeltaTable(store.table_uri("silver/orders")).to_pandas()
    assert "promo_code" not in silver.columns and len(silver) > 0


def test_a_refused_day_keeps_its_published_versions_and_quarantine(
    resources, store, landing_root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dimension is rebuilt from every ingest day. A day published under one threshold and refused under a
    stricter one keeps its versions (and its quarantined rows) until a run drops it on purpose."""
    from medallion_assets import run_log
    from medallion_assets.quality.gate import ALLOW_SHRINK_TAG
    from resources.settings import Settings

    write_csv(landing_root, "2024-01-01", DAY1[:2])
    write_csv(landing_root, "2024-01-02", [DAY2[0], "C9,Bad,not-an-email,consumer,north,2024-01-02T09:00:00Z"])
    for day in ("2024-01-01", "2024-01-02"):
        assert run(resources, ["bronze/customers"], day).success
    assert run(resources, ["silver/dim_customer"]).success  # day 2 (one bad row of two) passes at 0.5
    published, quarantined = dim(store), DeltaTable(store.table_uri("quarantine/customers")).to_pandas()
    assert "ann@new.example.com" in set(published.email) and len(quarantined) == 1

    monkeypatch.setenv("MEDALLION_THRESHOLD_SILVER_DIM_CUSTOMER", "0.95")
    strict = {**resources, "settings": Settings.from_env()}
    held = run(strict, ["silver/dim_customer"])
    assert not held.success
    message = held.failure_data_for_node("silver__dim_customer").error.message
    assert "2024-01-02" in message and ALLOW_SHRINK_TAG in message
    assert dim(store).equals(published)  # day 2's versions are still there
    assert DeltaTable(store.table_uri("quarantine/customers")).to_pandas().equals(quarantined)
    attempts = run_log.latest_attempts(store, "silver/dim_customer", ["2024-01-01", "2024-01-02"])
    assert not attempts["2024-01-01"]["passed"] and not attempts["2024-01-02"]["passed"]

    again = run(strict, ["silver/dim_customer"])  # the refusal is recorded now: still kept
    assert not again.success and dim(store).equals(published)

    dropped = dg.materialize(
        [*ASSETS, *CHECKS], resources=strict, selection=["silver/dim_customer"], raise_on_error=False,
        tags={ALLOW_SHRINK_TAG: "2024-01-02"},
    )  # fmt: skip
    assert dropped.success  # day 1 published, day 2 refused and dropped on purpose
    d = dim(store)
    assert set(d.email) == {"ann@example.com", "bob@example.com"} and d.is_current.all()


def test_lifetime_values_without_silver_orders_name_what_to_build_first(resources, store) -> None:
    result = run(resources, ["gold/customer_ltv"])
    assert not result.success
    message = result.failure_data_for_node("gold__customer_ltv").error.message
    assert "silver/orders" in message and "materialize silver/orders first" in message and store.root_uri in message
    assert not store.exists("gold/customer_ltv")


def test_orders_built_before_their_customers_are_re_keyed_once(resources, store, landing_root) -> None:
    """A day's orders built before its customers landed are keyed -1. The dimension's write names the fact days
    it left keyed to other versions, the rekey sensor requests each once, and the re-run keys them."""
    from medallion_assets import rekey
    from sensors.rekey_sensors import rekey_requests

    write_orders(landing_root, "2024-01-02", ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(resources, ["bronze/orders", "silver/orders", "gold/fact_orders"], "2024-01-02", instance).success
        assert set(DeltaTable(store.table_uri("gold/fact_orders")).to_pandas().customer_sk) == {-1}
        write_csv(landing_root, "2024-01-01", DAY1)
        write_csv(landing_root, "2024-01-02", DAY2)
        for day in ("2024-01-01", "2024-01-02"):
            assert run(resources, ["bronze/customers"], day, instance).success
        built = run(resources, ["silver/dim_customer"], instance=instance)
        [check] = [c for c in built.get_asset_check_evaluations() if c.check_name == rekey.REKEY_CHECK]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["failed"].value == {"2024-01-02": {"rows_to_rekey": 2}}  # o3's C7 is still unknown
        [request] = rekey_requests(instance, instance.get_run_by_id(built.run_id))
        assert request.partition_key == "2024-01-02" and built.run_id in request.run_key
        waiting = dg.DagsterRun(
            job_name="fact_orders_rekey", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.NOT_STARTED,
            tags={"dagster/partition": "2024-01-02"},
        )  # fmt: skip
        instance.add_run(waiting)
        assert rekey_requests(instance, instance.get_run_by_id(built.run_id)) == []  # the queued one reads it later
        instance.delete_run(waiting.run_id)
        assert run(resources, list(rekey.TABLES), "2024-01-02", instance).success
        fact = DeltaTable(store.table_uri("gold/fact_orders")).to_pandas().set_index("order_id")
        ann = dim(store).query("customer_id == 'C1'")["customer_sk"].tolist()
        assert fact.customer_sk.to_dict() == {"o1": ann[0], "o2": ann[1], "o3": -1}
        again = run(resources, ["silver/dim_customer"], instance=instance)  # the same versions again
        [check] = [c for c in again.get_asset_check_evaluations() if c.check_name == rekey.REKEY_CHECK]
        assert check.passed and check.metadata["changed_customers"].value == 0
        assert rekey_requests(instance, instance.get_run_by_id(again.run_id)) == []
    assert rekey.within_partitions(["2023-12-31", "2024-01-02"]) == (["2024-01-02"], ["2023-12-31"])


def test_a_fact_day_whose_re_key_did_not_happen_is_named_again(resources, store, landing_root) -> None:
    """The dimension's check named a fact day to re-key; the re-key failed (or was refused, or never ran). The next
    customers write changed no customer of that day, so its check passed, no re-key was requested and the day kept
    older keys under a green check. Now the check re-verifies the days its last evaluation named until they are
    current, and names them again."""
    from medallion_assets import rekey
    from sensors.rekey_sensors import rekey_requests

    write_orders(landing_root, "2024-01-02", ORDERS)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(resources, ["bronze/orders", "silver/orders", "gold/fact_orders"], "2024-01-02", instance).success
        write_csv(landing_root, "2024-01-01", DAY1)
        assert run(resources, ["bronze/customers"], "2024-01-01", instance).success
        named = run(resources, ["silver/dim_customer"], instance=instance)
        [check] = [c for c in named.get_asset_check_evaluations() if c.check_name == rekey.REKEY_CHECK]
        assert not check.passed and set(check.metadata["failed"].value) == {"2024-01-02"}
        # the re-key run fails: nothing rebuilds the day; the next customers day changes no customer of it
        write_csv(landing_root, "2024-01-03", ["C9,Zed,zed@example.com,consumer,north,2024-01-03T09:00:00Z"])
        assert run(resources, ["bronze/customers"], "2024-01-03", instance).success
        again = run(resources, ["silver/dim_customer"], instance=instance)
        [check] = [c for c in again.get_asset_check_evaluations() if c.check_name == rekey.REKEY_CHECK]
        assert not check.passed and set(check.metadata["failed"].value) == {"2024-01-02"}
        assert check.metadata["carried_forward_days"].value == 1
        [request] = rekey_requests(instance, instance.get_run_by_id(again.run_id))
        assert request.partition_key == "2024-01-02"
        assert run(resources, list(rekey.TABLES), "2024-01-02", instance).success  # re-keyed now
        done = run(resources, ["silver/dim_customer"], instance=instance)
        [check] = [c for c in done.get_asset_check_evaluations() if c.check_name == rekey.REKEY_CHECK]
        assert check.passed and rekey_requests(instance, instance.get_run_by_id(done.run_id)) == []


def test_a_later_start_date_keeps_the_calendar_rows_of_published_fact_days(
    resources, store, landing_root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MEDALLION_START_DATE`` moved forward rebuilt ``gold/dim_date`` from the new start: the fact's earlier days
    kept date_keys with no calendar row. The calendar now starts at the fact's first day when that is earlier."""
    from resources.settings import Settings

    write_orders(landing_root, "2024-01-02", ORDERS)
    assert run(resources, ["bronze/orders", "silver/orders", "gold/fact_orders"], "2024-01-02").success
    monkeypatch.setenv("MEDALLION_START_DATE", "2024-01-05")
    assert run({**resources, "settings": Settings.from_env()}, ["gold/dim_date"]).success
    keys = DeltaTable(store.table_uri("gold/dim_date")).to_pandas().date_key
    assert keys.min() == 20240102 and keys.is_unique
    assert store.first_day("gold/fact_orders", partition_column="order_date") == date(2024, 1, 2)


def test_a_dimension_written_while_the_fact_step_runs_is_caught_by_the_fact(resources, store, landing_root) -> None:
    """A customers run replaced the dimension after an orders run's fact step had keyed a day but before it
    published it: the customers run's check could not see the day, and the day was published with old keys,
    silently. The fact's own check now names it, and the run's events ask to re-key it."""
    import dataclasses

    from medallion_assets import rekey, star
    from medallion_assets.definitions import TABLES
    from medallion_assets.factory import gated_asset

    write_csv(landing_root, "2024-01-01", DAY1)
    write_orders(landing_root, "2024-01-02", ORDERS)
    assert run(resources, ["bronze/customers"], "2024-01-01").success
    assert run(resources, ["silver/dim_customer"]).success
    assert run(resources, ["bronze/orders", "silver/orders"], "2024-01-02").success
    write_csv(landing_root, "2024-01-02", DAY2)  # Ann's new email from 10:00: o2 belongs to her second version
    assert run(resources, ["bronze/customers"], "2024-01-02").success

    def racing_write(run_, frame, published, note):
        assert run(resources, ["silver/dim_customer"]).success  # the other run, between keying and publishing
        return run_.store.replace_partitions(star.FACT, frame, partition_column=star.PART, days=published, note=note)

    racing = gated_asset(dataclasses.replace(star.FACT_SPEC, write=racing_write))
    assets = [a for a in ASSETS if a is not TABLES[star.FACT]] + [racing]
    result = dg.materialize(
        [*assets, *CHECKS], resources=resources, selection=list(rekey.TABLES), partition_key="2024-01-02"
    )
    [check] = [c for c in result.get_asset_check_evaluations() if c.asset_key == rekey.FACT_KEY and
               c.check_name == rekey.REKEY_CHECK]  # fmt: skip
    assert not check.passed and check.metadata["failed"].value == {"2024-01-02": {"rows_to_rekey": 1}}
    assert rekey.days_to_rekey(result.all_events) == ["2024-01-02"]
    assert run(resources, list(rekey.TABLES), "2024-01-02").success  # the re-key
    fact = DeltaTable(store.table_uri("gold/fact_orders")).to_pandas().set_index("order_id")
    ann = dim(store).query("customer_id == 'C1'")["customer_sk"].tolist()
    assert fact.customer_sk.to_dict() == {"o1": ann[0], "o2": ann[1], "o3": -1}


@pytest.mark.parametrize("pad", [" ", "\t", "\u00a0"], ids=["space", "tab", "no_break_space"])
def test_codes_padded_with_white_space_are_the_codes(resources, store, landing_root, pad) -> None:
    """A padded region, status or currency of an order (``"north\\t"``, ``" paid"``) was a second region in gold,
    or a quarantined row; a customer's padded region or segment was a new version of the customer. Silver compares
    and groups them without the white space around them, as it does keys."""
    folder = landing_root / "orders" / "date=2024-01-02"
    folder.mkdir(parents=True)
    ts = "2024-01-02T12:00:00Z"
    orders = [
        {"order_id": "o1", "customer_id": "C1", "order_ts": ts, "status": "paid", "amount": 10, "currency": "USD",
         "region": "north", "updated_at": ts},
        {"order_id": "o2", "customer_id": "C2", "order_ts": ts, "status": f"{pad}paid", "amount": 15,
         "currency": f"USD{pad}", "region": f"north{pad}", "updated_at": ts},
    ]  # fmt: skip
    (folder / "part-000.jsonl").write_text("\n".join(json.dumps(x) for x in orders) + "\n")
    assert run(resources, ["bronze/orders", "silver/orders", "gold/daily_sales"], "2024-01-02").success
    silver = DeltaTable(store.table_uri("silver/orders")).to_pandas()
    assert sorted(silver.order_id) == ["o1", "o2"]
    assert set(silver.region) == {"north"} and set(silver.status) == {"paid"} and set(silver.currency) == {"USD"}
    gold = DeltaTable(store.table_uri("gold/daily_sales")).to_pandas()
    assert gold.region.tolist() == ["north"] and gold.orders.tolist() == [2]
    bronze = DeltaTable(store.table_uri("bronze/orders")).to_pandas().set_index("order_id")
    assert bronze.loc["o2", "region"] == f"north{pad}"  # as landed
    write_csv(landing_root, "2024-01-01", DAY1[:2])
    padded = f"C1,Ann{pad},ann@example.com,{pad}consumer,north{pad},2024-01-02T08:00:00Z"  # Ann re-delivered
    write_csv(landing_root, "2024-01-02", [padded])
    for day in ("2024-01-01", "2024-01-02"):
        assert run(resources, ["bronze/customers"], day).success
    assert run(resources, ["silver/dim_customer"]).success
    d = dim(store)
    ann = d[d.customer_id == "C1"]
    assert len(ann) == 1, ann  # the padded re-delivery is the same version
    assert ann[["name", "segment", "region"]].values.tolist() == [["Ann", "consumer", "north"]]


def test_a_customer_region_longer_than_gold_takes_is_quarantined(resources, store, landing_root) -> None:
    """A customer's region is held to the orders' limit (``region_max_length_64``, gold/daily_sales's): 65
    characters are quarantined, 64 (after trimming) are kept."""
    write_csv(landing_root, "2024-01-01", [
        f"C1,Ann,ann@example.com,consumer,{'r' * 65},2024-01-01T08:00:00Z",
        f"C2,Bob,bob@example.com,corporate, {'s' * 64} ,2024-01-01T09:00:00Z",
        "C3,Cy,cy@example.com,consumer,north,2024-01-01T09:00:00Z",
    ])  # fmt: skip
    assert run(resources, ["bronze/customers"], "2024-01-01").success
    assert run(resources, ["silver/dim_customer"]).success
    assert dim(store)[["customer_id", "region"]].values.tolist() == [["C2", "s" * 64], ["C3", "north"]]
    quarantine = DeltaTable(store.table_uri("quarantine/customers")).to_pandas()
    assert [(r["customer_id"], list(r["_quarantine_reasons"])) for r in quarantine.to_dict("records")] == [
        ("C1", ["region_max_length_64"])
    ]
