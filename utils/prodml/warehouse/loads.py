"""Load jobs: check every staged row against the target schema, then write, as BigQuery does.

A source read by :mod:`~prodml.warehouse.sources` is checked in DuckDB (``TRY_CAST``): rows that
fail are bad records, reported with their location in the job's ``status.errors``. As in
BigQuery, the load fails and writes nothing when bad records exceed ``maxBadRecords`` (default
0), and otherwise skips them -- never silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from prodml.warehouse import catalog
from prodml.warehouse.errors import Duplicate, Invalid, NotFound
from prodml.warehouse.names import TableName, quote
from prodml.warehouse.sources import LOCATION, Staged, bad_record
from prodml.warehouse.types import duckdb_type, field_from_arrow, legacy_type

__all__ = ["MAX_REPORTED", "Prepared", "infer", "prepare", "write"]

MAX_REPORTED = 20  # errors listed per job, like BigQuery's short list
_INFER_TESTS = [  # BigQuery's autodetect, most specific first
    ("INTEGER", "count(*) FILTER (regexp_full_match({c}, '[+-]?[0-9]+'))"),
    ("FLOAT", "count(TRY_CAST({c} AS DOUBLE))"),
    ("BOOLEAN", "count(*) FILTER (lower({c}) IN ('true', 'false'))"),
    ("DATE", "count(*) FILTER (regexp_full_match({c}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'))"),
    ("TIMESTAMP", "count(TRY_CAST({c} AS TIMESTAMP))"),
]


def infer(cur, table: pa.Table, names: list[str]) -> list[str]:
    """BigQuery-style autodetect of string columns: INTEGER, FLOAT, BOOLEAN, DATE, TIMESTAMP
    when every non-null value parses as one, else STRING."""
    if not names:
        return []
    width = len(_INFER_TESTS) + 1
    parts = []
    for n in names:
        c = f"trim({quote(n)})"
        parts += [f"count({c})", *(test.format(c=c) for _, test in _INFER_TESTS)]
    cur.register("__infer", table)
    try:
        counts = cur.execute(f"SELECT {', '.join(parts)} FROM __infer").fetchall()[0]
    finally:
        cur.unregister("__infer")
    kinds = []
    for i in range(len(names)):
        total, *hits = counts[width * i : width * (i + 1)]
        found = [
            kind
            for (kind, _), hit in zip(_INFER_TESTS, hits, strict=True)
            if total and hit == total
        ]
        kinds.append(found[0] if found else "STRING")
    return kinds


_PLAIN = {"INTEGER", "FLOAT", "BOOLEAN", "STRING", "DATE", "TIMESTAMP", "DATETIME", "BYTES"}


def _same_type(source: pa.DataType, field: dict) -> bool:
    """Whether an Arrow column already holds the BigQuery type of ``field`` (scalar types)."""
    kind = legacy_type(field["type"])
    if kind not in _PLAIN or field.get("mode") == "REPEATED":
        return False
    if kind == "INTEGER":
        return pa.types.is_int64(source)
    if kind == "FLOAT":
        return pa.types.is_float64(source)
    return field_from_arrow("x", source)["type"] == kind


def _is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def _column(field: dict, source: pa.DataType) -> tuple[str, list[tuple[str, str]]]:
    """The SELECT expression converting one source column, and its bad-row checks."""
    col, kind = quote(field["name"]), legacy_type(field["type"])
    required = [(f"{col} IS NULL", f"'Missing value in required column {field['name']}'")]
    required = required if field.get("mode") == "REQUIRED" else []
    if _same_type(source, field):  # already the target type: nothing to convert or check
        return col, required
    value = f"trim({col})" if _is_text(source) and kind not in ("STRING", "BYTES", "JSON") else col
    cast = f"TRY_CAST({value} AS {duckdb_type(field)})"
    bad = f"{col} IS NOT NULL AND {cast} IS NULL"
    if _is_text(source) and kind == "INTEGER":
        bad = f"{col} IS NOT NULL AND ({cast} IS NULL OR NOT regexp_full_match({value}, '[+-]?[0-9]+'))"
    message = (
        f"'Could not convert value ''' || CAST({col} AS VARCHAR) || ''' to {kind} in column "
        f"{field['name']}'"
    )
    return f"{cast} AS {col}", [(bad, message), *required]


def _checks(staged: Staged) -> tuple[list[str], list[tuple[str, str]]]:
    """SELECT expressions producing the target columns, and (condition, message) bad-row checks."""
    types = {f.name: f.type for f in staged.table.schema}
    if staged.schema is None:
        return [quote(n) for n in staged.table.column_names if n != LOCATION], []
    exprs, checks = [], []
    for field in staged.schema:
        if field["name"] in types:
            expr, more = _column(field, types[field["name"]])
            exprs.append(expr)
            checks.extend(more)
        elif field.get("mode") == "REQUIRED":
            raise Invalid(f"required field {field['name']!r} is missing from the source")
        else:
            exprs.append(f"CAST(NULL AS {duckdb_type(field)}) AS {quote(field['name'])}")
    return exprs, checks


@dataclass
class Prepared:
    """A staged load checked: the SELECT of its good rows from ``__staging`` and its bad ones."""

    select: str
    rows: int
    errors: list[dict]
    bad: int


def prepare(cur, staged: Staged) -> Prepared:
    """Register the staging table on ``cur`` and find the bad rows."""
    cur.register("__staging", staged.table)
    exprs, checks = _checks(staged)
    errors = list(staged.errors)
    where_good = ""
    if checks:
        any_bad = " OR ".join(f"coalesce({c}, false)" for c, _ in checks)
        messages = ", ".join(f"CASE WHEN coalesce({c}, false) THEN {m} END" for c, m in checks)
        found = cur.execute(
            f"SELECT {LOCATION}, list_filter([{messages}], lambda m: m IS NOT NULL) FROM __staging "
            f"WHERE {any_bad}"
        ).fetchall()
        errors += [bad_record(where, "; ".join(msgs)) for where, msgs in found]
        where_good = f"WHERE NOT ({any_bad})"
    select = f"SELECT {', '.join(exprs)} FROM __staging {where_good}"
    rows = cur.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0]
    return Prepared(select, rows, errors, len(errors))


def _replace(cur, select: str, target: TableName, required: list[str]) -> None:
    cur.execute(f"CREATE OR REPLACE TABLE {target.duckdb} AS SELECT * FROM ({select}) LIMIT 0")
    for name in required:
        cur.execute(f"ALTER TABLE {target.duckdb} ALTER COLUMN {quote(name)} SET NOT NULL")
    cur.execute(f"INSERT INTO {target.duckdb} {select}")


def write(
    cur,
    select: str,
    target: TableName,
    write_disposition: str = "WRITE_APPEND",
    create_disposition: str = "CREATE_IF_NEEDED",
    required: list[str] = (),
) -> None:
    """Write the rows of ``select`` to ``target`` inside the caller's transaction."""
    exists = catalog.table_exists(cur, target)
    if not exists and create_disposition == "CREATE_NEVER":
        raise NotFound(f"Not found: Table {target.bigquery} (createDisposition=CREATE_NEVER)")
    if exists and write_disposition == "WRITE_EMPTY":
        if cur.execute(f"SELECT count(*) FROM {target.duckdb}").fetchall()[0][0]:
            raise Duplicate(
                f"Already Exists: Table {target.bigquery} is not empty (writeDisposition=WRITE_EMPTY)"
            )
    if not exists or write_disposition == "WRITE_TRUNCATE":
        _replace(cur, select, target, required)
        return
    have = cur.sql(f"SELECT * FROM ({select}) LIMIT 0").columns
    columns = set(cur.sql(f"SELECT * FROM {target.duckdb} LIMIT 0").columns)
    extra = [c for c in have if c not in columns]
    if extra:
        raise Invalid(
            f"Provided Schema does not match Table {target.bigquery}: it has no column(s) {extra}"
        )
    cur.execute(f"INSERT INTO {target.duckdb} BY NAME {select}")
