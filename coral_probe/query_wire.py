"""Query rows across the agent's API (ExecuteQueryResponse.rows_json): JSON
that turns back into the Python values `coral query sql` prints, so a query
through a running agent prints what the same query on the file would.

JSON carries ints of any size exactly, strings, booleans and null as they
are; the rest travel as text and come back by their column's DuckDB type
(DECIMAL, timestamps, dates, BLOB, NaN). Values whose printed form is their
text anyway (UUID, INTERVAL) stay text. Nested values (lists, structs) come
back as JSON gives them."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

# DuckDB type names whose values come back through fromisoformat.
_DATETIME_TYPES = {
    "TIMESTAMP": datetime.fromisoformat, "TIMESTAMP_S": datetime.fromisoformat,
    "TIMESTAMP_MS": datetime.fromisoformat, "TIMESTAMP WITH TIME ZONE": datetime.fromisoformat,
    "DATE": date.fromisoformat, "TIME": time.fromisoformat,
}


def encode_value(value: Any, *, exact_ints: bool = True) -> Any:
    """A value as JSON can hold it (see decode_row for the way back). Without
    `exact_ints` (a script's db.query), integers past 2^53 are strings:
    JavaScript's numbers would round them."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if exact_ints or -(2**53) <= value <= 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN: JSON.parse would throw
    if isinstance(value, (list, tuple)):
        return [encode_value(v, exact_ints=exact_ints) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v, exact_ints=exact_ints) for k, v in value.items()}
    return scalar_text(value)


def scalar_text(value: Any) -> str:
    """Dates, times, BLOBs, DECIMAL, UUID, INTERVAL as `coral query sql` prints them."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def encode_row(row: tuple) -> str:
    """A row of ExecuteQueryResponse.rows_json: an array, in column order.
    ASCII escapes: its length is its size in bytes, and a terminal is safe."""
    return json.dumps([encode_value(v) for v in row])


def decode_row(row: list, types: list[str]) -> tuple:
    return tuple(_decode(v, t) for v, t in zip(row, types))


def decode_rows(rows_json: str, types: list[str]) -> list[tuple]:
    return [decode_row(row, types) for row in json.loads(rows_json)]


def _decode(value: Any, kind: str) -> Any:
    if not isinstance(value, str):
        return value
    if kind.startswith("DECIMAL"):
        return Decimal(value)
    if kind in ("FLOAT", "DOUBLE"):
        return float(value)  # nan, inf, -inf
    if kind == "BLOB":
        return bytes.fromhex(value)
    parse = _DATETIME_TYPES.get(kind)
    return parse(value) if parse is not None else value
