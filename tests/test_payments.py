"""Payments, the third source declared through the spec: end to end, against an independent pandas reading."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from medallion_assets.definitions import ASSETS, CHECKS, TABLES
from medallion_assets.sample_data import PAYMENT_FAULTS, generate, generate_payments

from . import independent
from .conftest import range_tags

DAYS = ["2024-02-01", "2024-02-02"]
SELECTION = [
    "bronze/orders", "silver/orders", "gold/daily_sales", "bronze/payments", "silver/payments",
    "gold/payment_reconciliation",
]  # fmt: skip


def test_payments_end_to_end_match_an_independent_reconciliation(resources, store, landing_root: Path) -> None:
    start = date.fromisoformat(DAYS[0])
    generate(landing_root, days=2, orders_per_day=150, seed=21, start=start)
    report = generate_payments(landing_root, days=2, orders_per_day=150, seed=21, start=start)
    assert {f.kind for f in report.faults} == set(PAYMENT_FAULTS)
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        selection=dg.AssetSelection.assets(*(TABLES[t] for t in SELECTION)),
        tags=range_tags(*DAYS),
        raise_on_error=False,
    )
    assert result.success
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    assert checks[("silver/payments", "row_accounting")].passed
    assert checks[("silver/payments", "payment_id_unique")].passed
    recon = DeltaTable(store.table_uri("gold/payment_reconciliation")).to_pandas()
    got = {
        (str(r["day"]), r["region"]): {k: r[k] for k in independent.reconciliation(landing_root, DAYS)[
            (str(r["day"]), r["region"])]}
        for _, r in recon.iterrows()
    }  # fmt: skip
    assert got == independent.reconciliation(landing_root, DAYS)
    assert sum(v["unknown_order_payments"] for v in got.values()) > 0  # the unknown-order path is exercised
    assert any(v["orders_paid_not_captured"] for v in got.values()) and len({d for d, _ in got}) == 2
    quarantine = DeltaTable(store.table_uri("quarantine/payments")).to_pandas()
    reasons = {(r["_source_file"], r["_line_number"]): list(r["_quarantine_reasons"]) for _, r in quarantine.iterrows()}
    for fault in report.faults:
        if fault.rule:
            assert reasons[(fault.file, fault.line)] == [fault.rule], fault
    tolerance = checks[("gold/payment_reconciliation", "reconciliation_within_tolerance")]
    assert tolerance.severity == dg.AssetCheckSeverity.WARN and "tolerance" in tolerance.metadata


def test_padded_payment_codes_are_the_codes(resources, store, landing_root: Path) -> None:
    """A payment's method, status or currency padded with white space (``" card"``, ``"captured\\t"``) was
    quarantined as unknown; silver compares them without it, as it does keys."""
    events = [payment("p1"), payment("p2", currency="\u00a0USD", method=" card", status="captured\t")]
    silver, quarantined = payments_silver(resources, store, landing_root, [json.dumps(e) for e in events])
    assert sorted(silver) == ["p1", "p2"] and quarantined == {}
    rows = list(silver.values())
    assert {(r["currency"], r["method"], r["status"]) for r in rows} == {("USD", "card", "captured")}


def payments_silver(resources, store, landing_root: Path, lines: list[str]) -> tuple[dict, dict]:
    """Silver and quarantine (payment_id → reasons) of one day of payment ``lines``, as landed."""
    folder = landing_root / "payments" / "date=2024-02-01"
    folder.mkdir(parents=True)
    (folder / "part-000.jsonl").write_text("".join(f"{line}\n" for line in lines))
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        selection=dg.AssetSelection.assets(TABLES["bronze/payments"], TABLES["silver/payments"]),
        partition_key="2024-02-01",
        raise_on_error=False,
    )
    assert result.success
    silver = DeltaTable(store.table_uri("silver/payments")).to_pandas()
    quarantine = DeltaTable(store.table_uri("quarantine/payments")).to_pandas()
    reasons = {r["payment_id"]: sorted(r["_quarantine_reasons"]) for r in quarantine.to_dict("records")}
    return {r["payment_id"]: r for r in silver.to_dict("records")}, reasons


def payment(key: str, **overrides) -> dict:
    return {"payment_id": key, "order_id": "o1", "paid_at": "2024-02-01T10:00:00Z", "amount": 10,
            "currency": "USD", "method": "card", "status": "captured", **overrides}  # fmt: skip


def test_payment_amounts_round_half_up_exactly_whatever_the_notation(resources, store, landing_root: Path) -> None:
    """Payments share the orders' amount: ``1.005e0`` was 1.00 (through a double), now 1.01 as ``1.005`` is."""
    amounts = {"1.005": "1.01", "1.005e0": "1.01", "100.5e-2": "1.01", "1.015": "1.02", "1.015E0": "1.02"}
    numbers = [json.dumps(payment(f"n{i}", amount=0)).replace('"amount": 0', f'"amount": {a}') for i, a in
               enumerate(amounts)]  # fmt: skip
    strings = [json.dumps(payment(f"s{i}", amount=a)) for i, a in enumerate(amounts)]
    silver, reasons = payments_silver(resources, store, landing_root, numbers + strings)
    assert reasons == {}
    for i, expected in enumerate(amounts.values()):
        assert str(silver[f"n{i}"]["amount"]) == str(silver[f"s{i}"]["amount"]) == expected


def test_payment_text_fields_holding_objects_arrays_or_booleans_fail_a_named_rule(
    resources, store, landing_root: Path
) -> None:
    """As for orders: a payment's id, order, currency, method or status that is a JSON object, array or boolean is
    quarantined with ``<field>_text``; a number is its text, a string its text whatever it looks like."""
    lines = [
        payment("p_obj", payment_id={"id": 1}), payment("p_order", order_id=["o1"]), payment("p_method", method=True),
        payment("p_cur", currency=["USD"]), payment("p_status", status={"s": "captured"}),
        payment("p_num", order_id=12), payment("true", order_id="[o1]"),
        *(payment(f"ok{i}") for i in range(100)),
    ]  # fmt: skip
    silver, reasons = payments_silver(resources, store, landing_root, [json.dumps(p) for p in lines])
    assert reasons == {
        '{"id":1}': ["payment_id_text"], "p_order": ["order_id_text"], "p_method": ["method_known", "method_text"],
        "p_cur": ["currency_code", "currency_text"], "p_status": ["status_known", "status_text"],
    }  # fmt: skip
    assert silver["p_num"]["order_id"] == "12" and silver["true"]["order_id"] == "[o1]" and len(silver) == 102
