"""pandera models of the published silver and gold tables (types, nullability, value checks)."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from medallion_assets import orders_contract as contract

UTC_TS = {"unit": "us", "tz": "UTC"}


class SilverOrders(pa.DataFrameModel):
    """``silver/orders``: one valid, typed row per order and day."""

    order_id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    customer_id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    order_ts: Series[pd.DatetimeTZDtype] = pa.Field(nullable=False, dtype_kwargs=UTC_TS)
    status: Series[str] = pa.Field(isin=list(contract.STATUSES))
    amount: Series[object] = pa.Field(nullable=False)
    currency: Series[str] = pa.Field(str_matches=contract.CURRENCY)
    region: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    updated_at: Series[pd.DatetimeTZDtype] = pa.Field(nullable=False, dtype_kwargs=UTC_TS)
    order_date: Series[object] = pa.Field(nullable=False)

    @pa.check("amount", name="amount_in_range")
    def amount_in_range(cls, amount: Series[object]) -> Series[bool]:
        """0 < amount < 1,000,000"""
        return amount.map(lambda a: a is not None and 0 < a < contract.MAX_AMOUNT)

    @pa.dataframe_check(name="order_ts_on_order_date")
    def order_ts_on_order_date(cls, df: pd.DataFrame) -> Series[bool]:
        """order_ts's UTC date is the partition date"""
        return df["order_ts"].dt.date == df["order_date"]

    class Config:
        unique = ["order_date", "order_id"]
        strict = False


class GoldDailySales(pa.DataFrameModel):
    """``gold/daily_sales``: one row per day and region."""

    order_date: Series[object] = pa.Field(nullable=False)
    region: Series[str] = pa.Field(nullable=False)
    orders: Series[int] = pa.Field(ge=0)
    revenue: Series[object] = pa.Field(nullable=False)
    avg_order_value: Series[object] = pa.Field(nullable=True)
    customers: Series[int] = pa.Field(ge=0)
    cancelled: Series[int] = pa.Field(ge=0)
    returned: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check(name="customers_within_orders")
    def customers_within_orders(cls, df: pd.DataFrame) -> Series[bool]:
        """no more distinct customers than orders"""
        return df["customers"] <= df["orders"]

    @pa.check("revenue", name="revenue_non_negative")
    def revenue_non_negative(cls, revenue: Series[object]) -> Series[bool]:
        """revenue ≥ 0"""
        return revenue.map(lambda r: r is not None and r >= 0)

    class Config:
        unique = ["order_date", "region"]
        strict = False
