"""BigQuery column types, three ways: REST schema fields, Arrow types and DuckDB types.

A field is BigQuery's REST ``TableFieldSchema`` as a dict: ``{"name", "type", "mode",
"fields"}`` with the legacy type names the API answers with (``INTEGER``, ``FLOAT``, ``BOOLEAN``,
``RECORD``...). The service works with these dicts (not google-cloud-bigquery's ``SchemaField``,
whose import alone takes a second).
"""

from __future__ import annotations

import pyarrow as pa

from prodml.warehouse.names import quote

__all__ = [
    "BQ_TO_DUCKDB",
    "legacy_type",
    "duckdb_type",
    "field_from_arrow",
    "schema_from_arrow",
    "standard_type",
]

# BigQuery type names (standard and legacy spellings) -> DuckDB types.
BQ_TO_DUCKDB = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "INTEGER": "BIGINT",
    "FLOAT64": "DOUBLE",
    "FLOAT": "DOUBLE",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    "NUMERIC": "DECIMAL(38, 9)",
    "BIGNUMERIC": "DECIMAL(38, 9)",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMPTZ",
    "TIME": "TIME",
    "BYTES": "BLOB",
    "JSON": "JSON",
}
_LEGACY = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}
# legacy -> standard SQL names (INFORMATION_SCHEMA.COLUMNS.data_type)
_STANDARD = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


def legacy_type(name: str) -> str:
    """The REST API's spelling of a type name (``INT64`` -> ``INTEGER``)."""
    upper = str(name).upper()
    return _LEGACY.get(upper, upper)


def duckdb_type(field: dict) -> str:
    """The DuckDB column type of a BigQuery field."""
    kind = legacy_type(field.get("type", "STRING"))
    if kind == "RECORD":
        inner = ", ".join(f"{quote(f['name'])} {duckdb_type(f)}" for f in field.get("fields", []))
        base = f"STRUCT({inner})"
    elif kind in BQ_TO_DUCKDB:
        base = BQ_TO_DUCKDB[kind]
    else:
        raise ValueError(f"column {field.get('name')!r}: type {kind} is not supported locally")
    return f"{base}[]" if field.get("mode") == "REPEATED" else base


def _scalar_type(dtype: pa.DataType) -> str:
    checks = (
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_integer, "INTEGER"),
        (pa.types.is_floating, "FLOAT"),
        (pa.types.is_decimal, "NUMERIC"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"),
        (pa.types.is_binary, "BYTES"),
        (pa.types.is_large_binary, "BYTES"),
    )
    if pa.types.is_null(dtype):  # SELECT NULL: BigQuery types it INT64
        return "INTEGER"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP" if dtype.tz else "DATETIME"
    for check, kind in checks:
        if check(dtype):
            return kind
    if isinstance(dtype, pa.ExtensionType) and "json" in str(dtype).lower():
        return "JSON"
    return "STRING"


def field_from_arrow(name: str, dtype: pa.DataType, nullable: bool = True) -> dict:
    """The BigQuery field of an Arrow column (as DuckDB returns it)."""
    mode = "NULLABLE" if nullable else "REQUIRED"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = field_from_arrow(name, dtype.value_type)
        return {**inner, "mode": "REPEATED"}
    if pa.types.is_struct(dtype):
        subs = [
            field_from_arrow(dtype.field(i).name, dtype.field(i).type)
            for i in range(dtype.num_fields)
        ]
        return {"name": name, "type": "RECORD", "mode": mode, "fields": subs}
    return {"name": name, "type": _scalar_type(dtype), "mode": mode}


def schema_from_arrow(schema: pa.Schema, required: set[str] = frozenset()) -> list[dict]:
    """BigQuery fields for an Arrow schema; ``required`` names the NOT NULL columns."""
    return [field_from_arrow(f.name, f.type, f.name not in required) for f in schema]


def standard_type(field: dict) -> str:
    """Standard SQL's spelling of a field's type (``INT64``, ``ARRAY<STRUCT<a INT64>>``)."""
    kind = legacy_type(field["type"])
    if kind == "RECORD":
        inner = ", ".join(f"{f['name']} {standard_type(f)}" for f in field.get("fields", []))
        base = f"STRUCT<{inner}>"
    else:
        base = _STANDARD.get(kind, kind)
    return f"ARRAY<{base}>" if field.get("mode") == "REPEATED" else base
