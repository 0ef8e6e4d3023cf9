"""Rows in BigQuery's REST encoding: ``{"f": [{"v": "1"}, {"v": null}]}``, built with Arrow.

``tabledata.list`` and ``jobs.getQueryResults`` answer rows as JSON objects whose cells hold
every scalar as a string (INTEGER ``"1"``, BOOLEAN ``"true"``, TIMESTAMP microseconds since the
epoch ``"1577836800000000"`` -- the client always asks for ``formatOptions.useInt64Timestamp``),
a REPEATED field as ``[{"v": ...}]`` and a RECORD as ``{"f": [...]}``. The common column types
are encoded column by column with Arrow's compute kernels, so a page of rows is built without a
Python object per cell; BYTES, nested and unusual columns take a per-value path.

A page holds at most :data:`PAGE_BYTES` of JSON (BigQuery's own limit is about 10 MB), or the
rows asked for (``maxResults``).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prodml.warehouse.errors import InvalidQuery
from prodml.warehouse.types import field_from_arrow

__all__ = ["PAGE_BYTES", "SMALL", "Rows", "encode_rows", "page", "fetch"]

PAGE_BYTES = 10 * 1024 * 1024
_SAMPLE = 1000  # rows encoded to estimate how many fit in a page
SMALL = 256  # results of at most this many rows are fetched as Python values
_NULL = '{"v":null}'
_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"  # control characters besides \t \n \r
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)
_FLOAT_WORDS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_NEEDS_ESCAPE = '[\\x00-\\x1f"\\\\]'  # anything JSON must escape in a string


def _wrap(text: pa.Array, quoted: bool) -> pa.Array:
    left, right = ('{"v":"', '"}') if quoted else ('{"v":', "}")
    return pc.fill_null(pc.binary_join_element_wise(left, text, right, ""), _NULL)


def _escaped(strings: pa.Array) -> pa.Array | None:
    """JSON string bodies (without quotes), or None when a rare control character needs the
    per-value path."""
    if not pc.any(pc.match_substring_regex(strings, _NEEDS_ESCAPE)).as_py():
        return strings
    if pc.any(pc.match_substring_regex(strings, _CONTROL)).as_py():
        return None
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        strings = pc.replace_substring(strings, raw, escaped)
    return strings


def _cell(value, field: dict):
    """One value as BigQuery's REST cell value (the per-value path)."""
    if field.get("mode") == "REPEATED":  # BigQuery has no NULL arrays: an empty one
        inner = {**field, "mode": "NULLABLE"}
        return [{"v": _cell(v, inner)} for v in value or []]
    if value is None:
        return None
    kind = field["type"]
    if kind == "RECORD":
        return {"f": [{"v": _cell(value.get(f["name"]), f)} for f in field["fields"]]}
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "BYTES":
        return base64.b64encode(value).decode()
    if kind == "TIMESTAMP":
        return str((value - _EPOCH) // _MICROSECOND)
    if kind == "DATETIME":
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if kind == "TIME":
        return value.strftime("%H:%M:%S.%f")
    if kind == "FLOAT":
        return _FLOAT_WORDS.get(str(value), str(value))
    if isinstance(value, dict | list) or kind == "JSON":
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, decimal.Decimal | float):
        return str(value)
    return str(value)


def _slow(column: pa.Array, field: dict) -> pa.Array:
    return pa.array(
        [json.dumps({"v": _cell(v, field)}, separators=(",", ":")) for v in column.to_pylist()],
        pa.string(),
    )


def _timestamp_micros(column: pa.Array) -> pa.Array:
    micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    return micros.cast(pa.string())


def _fast(column: pa.Array, field: dict) -> pa.Array | None:
    """The column's cells built by Arrow kernels, or None for the per-value path."""
    t = column.type
    if field.get("mode") == "REPEATED" or field["type"] in ("RECORD", "BYTES", "JSON"):
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        escaped = _escaped(column)
        return None if escaped is None else _wrap(escaped, True)
    if pa.types.is_timestamp(t):
        if t.tz:
            return _wrap(_timestamp_micros(column), True)
        return _wrap(pc.strftime(column.cast(pa.timestamp("us")), "%Y-%m-%dT%H:%M:%S"), True)
    if pa.types.is_floating(t):
        text = column.cast(pa.string())
        plain = pc.or_kleene(pc.is_finite(column), pc.is_null(column))
        if not pc.all(plain).as_py():  # NaN and infinities as BigQuery spells them
            text = pc.if_else(plain, text, _special_floats(column))
        return _wrap(text, True)
    if (
        pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
    ):
        return _wrap(column.cast(pa.string()), True)
    return None


def _special_floats(column: pa.Array) -> pa.Array:
    values = column.to_numpy(zero_copy_only=False)
    text = np.where(np.isnan(values), "NaN", np.where(values > 0, "Infinity", "-Infinity"))
    return pa.array(text, pa.string())


def encode_rows(table: pa.Table, fields: list[dict] | None = None) -> bytes:
    """``{"f":[...]}`` objects for every row of ``table``, comma-separated (no brackets)."""
    if table.num_rows == 0:
        return b""
    fields = fields or [field_from_arrow(f.name, f.type) for f in table.schema]
    cells = []
    for column, field in zip(table.columns, fields, strict=True):
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        cells.append(_fast(column, field) or _slow(column, field))
    parts = ['{"f":[']
    for i, cell in enumerate(cells):
        parts += ([","] if i else []) + [cell]
    rows = pc.binary_join_element_wise(*parts, "]},", "")
    rows = rows.cast(pa.large_string()) if isinstance(rows, pa.Array) else rows
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[
        rows.offset : rows.offset + len(rows) + 1
    ]
    data = rows.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1]) - 1].tobytes()


# DuckDB's scalar types (DuckDBPyType.id) -> BigQuery's, for results fetched as Python values
_DUCKDB_TYPES = {
    **dict.fromkeys(["tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint",
                     "uinteger", "null"], "INTEGER"),
    **dict.fromkeys(["float", "double"], "FLOAT"),
    "boolean": "BOOLEAN", "varchar": "STRING", "decimal": "NUMERIC", "date": "DATE",
    "time": "TIME", "timestamp": "DATETIME", "timestamp with time zone": "TIMESTAMP",
    "blob": "BYTES",
}  # fmt: skip


class Rows:
    """A small result as Python values (DuckDB's ``fetchall``), with its BigQuery fields: for a
    handful of rows this is cheaper than Arrow's fixed costs."""

    def __init__(self, fields: list[dict], rows: list[tuple]):
        self.fields, self.rows = fields, rows
        self.num_rows = len(rows)
        self.nbytes = 64 * len(fields) * len(rows)  # an estimate, for the results budget

    @staticmethod
    def fields_of(description) -> list[dict] | None:
        """The fields of a DuckDB cursor's result, or None if one is not a plain scalar."""
        fields = []
        for name, kind, *_ in description:
            bigquery = _DUCKDB_TYPES.get(getattr(kind, "id", None))
            if bigquery is None:
                return None
            fields.append({"name": name, "type": bigquery, "mode": "NULLABLE"})
        return fields

    def encode(self, start: int, count: int) -> bytes:
        """The rows ``start .. start + count`` as comma-separated ``{"f": [...]}`` objects."""
        cells = [
            {"f": [{"v": _cell(v, f)} for v, f in zip(row, self.fields, strict=True)]}
            for row in self.rows[start : start + count]
        ]
        return json.dumps(cells, separators=(",", ":")).encode()[1:-1]

    def to_arrow(self, schema: pa.Schema | None = None) -> pa.Table:
        """The rows as an Arrow table (``schema``: the types to give them)."""
        names = [f["name"] for f in self.fields]
        columns = list(zip(*self.rows, strict=True)) or [()] * len(names)
        if schema is None:
            return pa.Table.from_arrays([pa.array(c) for c in columns], names=names)
        arrays = [pa.array(c, t) for c, t in zip(columns, schema.types, strict=True)]
        return pa.Table.from_arrays(arrays, schema=schema)


def page(table, start: int, max_results: int | None, fields: list[dict] | None = None):
    """The rows of one page from ``start``: ``(rows JSON, next start or None)``."""
    if isinstance(table, Rows):
        count = max(0, table.num_rows - start)
        count = count if max_results is None else min(count, max_results)
        end = start + count
        return table.encode(start, count), (end if end < table.num_rows else None)
    remaining = max(table.num_rows - start, 0)
    count = remaining if max_results is None else min(remaining, max_results)
    if count > _SAMPLE and max_results is None:  # as many rows as fit in PAGE_BYTES
        sample = encode_rows(table.slice(start, _SAMPLE), fields)
        count = max(1, min(count, PAGE_BYTES * _SAMPLE // max(1, len(sample))))
    body = encode_rows(table.slice(start, count), fields)
    end = start + count
    return body, (end if end < table.num_rows else None)


def _as_int64(table: pa.Table, wide: list[int]) -> pa.Table:
    """DuckDB's HUGEINT columns (its SUM of integers; Arrow's decimal128(38, 0)) as INT64,
    BigQuery's type for them; a value beyond INT64 is BigQuery's overflow error."""
    for i in wide:
        name = table.schema.field(i).name
        try:
            column = table.column(i).cast(pa.int64())
        except pa.ArrowInvalid:
            raise InvalidQuery(f"Int64 overflow: a value of {name} does not fit in INT64") from None
        table = table.set_column(i, pa.field(name, pa.int64()), column)
    return table


def fetch(cur, small: bool = True) -> pa.Table | Rows:
    """The result of the statement ``cur`` ran: a few rows of plain scalars as :class:`Rows`
    (unless ``small`` is False: for a caller that needs DuckDB's exact types, the BigQuery ML
    engine), anything else as an Arrow table. HUGEINT (DuckDB's SUM of integers; not a plain
    scalar of :class:`Rows`) comes back as INT64, as BigQuery types a SUM of INT64."""
    # DuckDB 2 names it to_arrow_table; 1.x (Colab's) fetch_arrow_table
    arrow = getattr(cur, "to_arrow_table", None) or cur.fetch_arrow_table
    description = cur.description or []
    wide = [
        i for i, (_, kind, *_) in enumerate(description) if getattr(kind, "id", None) == "hugeint"
    ]
    fields = Rows.fields_of(description) if small else None
    if fields is None:
        return _as_int64(arrow(), wide)
    first = cur.fetchmany(SMALL + 1)
    if len(first) <= SMALL:
        return Rows(fields, first)
    rest = arrow()
    return pa.concat_tables([Rows(fields, first).to_arrow(rest.schema), rest])
