"""pandera models of the published silver and gold tables: what the rule sets cannot say about a table —
column types, nullability and keys. Value rules (ranges, allowed values, formats) live in the rule sets only.

Frames are Arrow-backed (``arrow_frame``): a Delta table converts without copying and every check is
vectorised (object columns made pandera test each value's type in Python: 9 s for 1.9 M silver rows; Arrow
columns take 1 s).
"""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

Text = Annotated[pd.ArrowDtype, pyarrow.string()]
UtcTimestamp = Annotated[pd.ArrowDtype, pyarrow.timestamp("us", tz="UTC")]
Day = Annotated[pd.ArrowDtype, pyarrow.date32()]
Amount = Annotated[pd.ArrowDtype, pyarrow.decimal128(18, 2)]
Count = Annotated[pd.ArrowDtype, pyarrow.int64()]


def arrow_frame(table: pyarrow.Table) -> pd.DataFrame:
    """A pandas frame over ``table``'s Arrow buffers, the types the models declare."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


class SilverOrders(pa.DataFrameModel):
    """``silver/orders``: one typed row per order and day."""

    order_id: Series[Text] = pa.Field(nullable=False)
    customer_id: Series[Text] = pa.Field(nullable=False)
    order_ts: Series[UtcTimestamp] = pa.Field(nullable=False)
    status: Series[Text] = pa.Field(nullable=False)
    amount: Series[Amount] = pa.Field(nullable=False)
    currency: Series[Text] = pa.Field(nullable=False)
    region: Series[Text] = pa.Field(nullable=False)
    updated_at: Series[UtcTimestamp] = pa.Field(nullable=False)
    order_date: Series[Day] = pa.Field(nullable=False)

    class Config:
        unique = ["order_date", "order_id"]
        strict = False


class GoldDailySales(pa.DataFrameModel):
    """``gold/daily_sales``: one row per day and region."""

    order_date: Series[Day] = pa.Field(nullable=False)
    region: Series[Text] = pa.Field(nullable=False)
    orders: Series[Count] = pa.Field(nullable=False)
    revenue: Series[Amount] = pa.Field(nullable=False)
    avg_order_value: Series[Amount] = pa.Field(nullable=True)
    customers: Series[Count] = pa.Field(nullable=False)
    cancelled: Series[Count] = pa.Field(nullable=False)
    returned: Series[Count] = pa.Field(nullable=False)

    class Config:
        unique = ["order_date", "region"]
        strict = False
