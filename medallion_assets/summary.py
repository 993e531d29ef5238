"""Print a per-table summary of the lakehouse: rows, quarantined rows, Delta version (``make demo``)."""

from __future__ import annotations

from resources.delta_store import DeltaTableStore
from resources.settings import Settings

#: Each published table and its quarantine table, if it has one.
TABLES: dict[str, str | None] = {
    "bronze/orders": None,
    "silver/orders": "quarantine/orders",
    "gold/daily_sales": "quarantine/daily_sales",
    "bronze/customers": None,
    "silver/dim_customer": "quarantine/customers",
    "gold/fact_orders": "quarantine/fact_orders",
    "gold/dim_date": None,
    "gold/customer_ltv": None,
    "bronze/payments": None,
    "silver/payments": "quarantine/payments",
    "gold/payment_reconciliation": "quarantine/payment_reconciliation",
    "monitoring/pipeline_runs": None,
}


def table_rows(store: DeltaTableStore, table: str) -> int | None:
    """Row count from the Delta log (no engine needed); None when the table does not exist."""
    if not store.exists(table):
        return None
    return store.arrow_dataset(table).count_rows()


def summary(store: DeltaTableStore) -> list[dict[str, object]]:
    rows = []
    for table, quarantine in TABLES.items():
        rows.append(
            {
                "table": table,
                "rows": table_rows(store, table),
                "quarantined": table_rows(store, quarantine) if quarantine else "-",
                "delta_version": store.version(table),
            }
        )
    return rows


def main() -> int:
    store = DeltaTableStore.for_root(Settings.from_env().lakehouse_root)
    rows = summary(store)
    print(f"lakehouse: {store.root_uri}")
    print(f"{'table':<26} {'rows':>10} {'quarantined':>12} {'delta_version':>14}")
    for r in rows:
        print(f"{r['table']:<26} {r['rows']!s:>10} {r['quarantined']!s:>12} {r['delta_version']!s:>14}")
    missing = [r["table"] for r in rows if r["rows"] is None]
    if missing:
        print(f"missing tables: {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
