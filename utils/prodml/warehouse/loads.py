"""Load jobs of the local warehouse: read a source, check every row against the schema, write.

A source (a DataFrame, or CSV / newline-delimited JSON / Parquet / Avro / ORC files) is read into
an Arrow "staging" table, text formats as strings. Each row is then checked against the target
schema in DuckDB (``TRY_CAST``); rows that fail are bad records, reported with their location in
the job's ``errors``. As in BigQuery, the load fails and writes nothing when bad records exceed
``max_bad_records`` (default 0), and otherwise skips them -- never silently.
"""

from __future__ import annotations

import csv
import glob
import itertools
import json
import os
import re
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from google.api_core import exceptions
from google.cloud.bigquery import SchemaField

from prodml.warehouse.sql import BQ_TO_DUCKDB, TableName, quote

LOCATION = "__location"
MAX_REPORTED = 20  # errors listed per job, like BigQuery's short list


@dataclass
class Staged:
    table: pa.Table  # source columns plus LOCATION
    errors: list[dict] = field(default_factory=list)  # rows rejected while parsing
    schema: list[SchemaField] | None = None  # target schema, None to keep the Arrow types


def error(location: str, message: str, reason: str = "invalid") -> dict:
    return {"reason": reason, "location": location, "message": message}


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def local_paths(uris: str | list[str]) -> list[str]:
    """Local file paths for load URIs (paths, file://, one * wildcard); gs:// is refused."""
    uris = [uris] if isinstance(uris, str | os.PathLike) else list(uris)
    paths: list[str] = []
    for uri in map(str, uris):
        if uri.startswith("gs://"):
            raise ValueError(
                f"the local DuckDB warehouse cannot read {uri}: it loads local files only. "
                "Use a local or prodml.storage path, or set warehouse='bigquery' to load from GCS"
            )
        if "://" in uri and not uri.startswith("file://"):
            raise ValueError(f"unsupported load URI {uri!r}: use a local path or file://")
        path = uri.removeprefix("file://")
        matches = sorted(glob.glob(path)) if "*" in path else [path]
        if not matches or not all(os.path.isfile(p) for p in matches):
            raise exceptions.NotFound(f"Not found: URI {uri} (no such local file)")
        paths.extend(matches)
    return paths


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _column_name(text: str, index: int) -> str:
    name = re.sub(r"\W", "_", text.strip())
    return name if name and not name[0].isdigit() else f"_{name or index}"


def read_csv(path: str, config, explicit: list[SchemaField] | None, con) -> Staged:
    import pyarrow.csv as pacsv

    delimiter = config.field_delimiter or ","
    quote_char = config.quote_character if config.quote_character is not None else '"'
    skip = config.skip_leading_rows
    with open(path, newline="", encoding=config.encoding or "utf-8") as f:
        head = list(itertools.islice(csv.reader(f, delimiter=delimiter), (skip or 0) + 1))
    if not head:
        return Staged(pa.table({LOCATION: pa.array([], pa.string())}), schema=explicit)
    if explicit:
        names = [f.name for f in explicit]
    else:
        width = len(head[min(skip or 0, len(head) - 1)])
        names = [f"c{i}" for i in range(width)]
    errors: list[dict] = []
    # pyarrow numbers records, not lines: with quoted newlines a record spans several lines, so
    # map each record to the line it starts on (BigQuery reports lines)
    starts = (
        _record_lines(path, delimiter, quote_char, config.encoding or "utf-8")
        if config.allow_quoted_newlines
        else None
    )

    def line_of(record: int) -> int:
        return starts[record - 1] if starts and record <= len(starts) else record

    bad_records: set[int] = set()

    def invalid(row):
        bad_records.add(row.number)
        errors.append(
            error(
                f"{path} line {line_of(row.number)}",
                f"Too {'many' if row.actual_columns > row.expected_columns else 'few'} columns: "
                f"expected {row.expected_columns} column(s) but got {row.actual_columns}: "
                f"{row.text[:80]!r}",
            )
        )
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=names,
            skip_rows=skip or 0,
            use_threads=False,
            encoding=config.encoding or "utf8",
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char=quote_char or False,
            newlines_in_values=bool(config.allow_quoted_newlines),
            invalid_row_handler=invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=True,
            null_values=[config.null_marker or ""],
        ),
    )
    lines, record = [], (skip or 0)
    while len(lines) < table.num_rows:
        record += 1
        if record not in bad_records:
            lines.append(f"{path} line {line_of(record)}")
    table = table.append_column(LOCATION, pa.array(lines, pa.string()))
    if explicit:
        return Staged(table, errors, explicit)
    # autodetect: name the columns from a header row, type them from the data
    header: list[str] | None = None
    if skip:
        header = head[skip - 1]
    elif skip is None and table.num_rows > 1:
        first = table.slice(0, 1)
        rest_types = infer(con, table.slice(1), names)
        first_types = infer(con, first, names)
        values = [first.column(n)[0].as_py() for n in names]
        if all(values) and any(
            r.field_type != "STRING" and f.field_type == "STRING"
            for r, f in zip(rest_types, first_types, strict=True)
        ):
            header, table = values, table.slice(1)
    types = infer(con, table, names)
    if header and len(header) == len(names):
        final = [_column_name(h, i) for i, h in enumerate(header)]
    else:
        final = [f"{_AUTONAME[t.field_type]}_field_{i}" for i, t in enumerate(types)]
    table = table.rename_columns([*final, LOCATION])
    schema = [SchemaField(n, t.field_type) for n, t in zip(final, types, strict=True)]
    return Staged(table, errors, schema)


def _record_lines(path: str, delimiter: str, quote_char, encoding: str) -> list[int]:
    """The line (1-based) each CSV record starts on, records in file order."""
    starts = []
    with open(path, newline="", encoding=encoding) as f:
        reader = csv.reader(
            f,
            delimiter=delimiter,
            quotechar=quote_char or None,
            quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE,
        )
        previous = 0
        for record in reader:
            if record:  # pyarrow skips empty lines and does not number them
                starts.append(previous + 1)
            previous = reader.line_num
    return starts


_AUTONAME = {
    "STRING": "string",
    "INTEGER": "int64",
    "FLOAT": "double",
    "BOOLEAN": "bool",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}


def read_json(path: str, config, explicit: list[SchemaField] | None, con) -> Staged:
    rows, locations, errors = [], [], []
    with open(path, encoding=config.encoding or "utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append(error(where, f"JSON parsing error: {err}"))
                continue
            if not isinstance(record, dict):
                errors.append(error(where, "a JSON object is expected on each line"))
                continue
            if explicit and not config.ignore_unknown_values:
                unknown = set(record) - {f.name for f in explicit}
                if unknown:
                    errors.append(error(where, f"No such field: {', '.join(sorted(unknown))}"))
                    continue
            rows.append(record)
            locations.append(where)
    names = (
        [f.name for f in explicit] if explicit else list(dict.fromkeys(k for r in rows for k in r))
    )
    columns = {n: pa.array([_as_text(r.get(n)) for r in rows], pa.string()) for n in names}
    columns[LOCATION] = pa.array(locations, pa.string())
    table = pa.table(columns)
    schema = explicit or infer(con, table, names)
    return Staged(table, errors, schema)


_AVRO_TYPES = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int64(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}


def _avro_type(spec) -> pa.DataType:
    if isinstance(spec, list):  # a union: ["null", "long"]
        kinds = [s for s in spec if s != "null"]
        return _avro_type(kinds[0]) if len(kinds) == 1 else pa.string()
    if isinstance(spec, dict):
        logical = spec.get("logicalType")
        if logical == "date":
            return pa.date32()
        if logical in ("timestamp-millis", "timestamp-micros"):
            return pa.timestamp("us", tz="UTC")
        if spec.get("type") == "array":
            return pa.list_(_avro_type(spec["items"]))
        return _avro_type(spec.get("type"))
    if spec not in _AVRO_TYPES:
        raise ValueError(f"Avro type {spec!r} is not supported by the local warehouse")
    return _AVRO_TYPES[spec]


def read_columnar(path: str, source_format: str) -> pa.Table:
    if source_format == "PARQUET":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if source_format == "ORC":
        import pyarrow.orc as orc

        return orc.read_table(path)
    import fastavro

    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        fields = reader.writer_schema["fields"]
        arrow_schema = pa.schema([(fl["name"], _avro_type(fl["type"])) for fl in fields])
        return pa.Table.from_pylist(list(reader), schema=arrow_schema)


def read_uris(paths: list[str], config, explicit, con) -> Staged:
    fmt = (config.source_format or "CSV").upper()
    parts: list[Staged] = []
    for path in paths:
        if fmt == "CSV":
            parts.append(read_csv(path, config, explicit, con))
        elif fmt == "NEWLINE_DELIMITED_JSON":
            parts.append(read_json(path, config, explicit, con))
        elif fmt in ("PARQUET", "ORC", "AVRO"):
            table = read_columnar(path, fmt)
            where = pa.array([f"{path} row {i}" for i in range(table.num_rows)], pa.string())
            parts.append(Staged(table.append_column(LOCATION, where), schema=explicit))
        else:
            raise ValueError(f"source_format {fmt!r} is not supported by the local warehouse")
    if len(parts) == 1:
        return parts[0]
    return Staged(
        pa.concat_tables([p.table for p in parts], promote_options="permissive"),
        [e for p in parts for e in p.errors],
        parts[0].schema,
    )


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------


def infer(con, table: pa.Table, names: list[str]) -> list[SchemaField]:
    """BigQuery-style autodetect of string columns: INTEGER, FLOAT, BOOLEAN, DATE, TIMESTAMP
    when every non-null value parses as one, else STRING."""
    if not names:
        return []
    con.register("__infer", table)
    try:
        parts = []
        for n in names:
            c = f"trim({quote(n)})"
            parts += [
                f"count({c})",
                f"count(*) FILTER (regexp_full_match({c}, '[+-]?[0-9]+'))",
                f"count(TRY_CAST({c} AS DOUBLE))",
                f"count(*) FILTER (lower({c}) IN ('true', 'false'))",
                f"count(*) FILTER (regexp_full_match({c}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'))",
                f"count(TRY_CAST({c} AS TIMESTAMP))",
            ]
        counts = con.execute(f"SELECT {', '.join(parts)} FROM __infer").fetchall()[0]
    finally:
        con.unregister("__infer")
    fields = []
    for i, n in enumerate(names):
        total, ints, floats, bools, dates, stamps = counts[6 * i : 6 * i + 6]
        kind = "STRING"
        if total:
            for count, name in (
                (ints, "INTEGER"),
                (floats, "FLOAT"),
                (bools, "BOOLEAN"),
                (dates, "DATE"),
                (stamps, "TIMESTAMP"),
            ):
                if count == total:
                    kind = name
                    break
        fields.append(SchemaField(n, kind))
    return fields


def duckdb_type(f: SchemaField) -> str:
    kind = f.field_type.upper()
    if kind in ("RECORD", "STRUCT"):
        inner = ", ".join(f"{quote(s.name)} {duckdb_type(s)}" for s in f.fields)
        base = f"STRUCT({inner})"
    elif kind in BQ_TO_DUCKDB:
        base = BQ_TO_DUCKDB[kind]
    else:
        raise ValueError(f"column {f.name!r}: type {kind} is not supported by the local warehouse")
    return f"{base}[]" if f.mode == "REPEATED" else base


def schema_field(name: str, dtype: pa.DataType, nullable: bool = True) -> SchemaField:
    """The BigQuery SchemaField for an Arrow column (as DuckDB returns it)."""
    mode = "NULLABLE" if nullable else "REQUIRED"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = schema_field(name, dtype.value_type)
        return SchemaField(name, inner.field_type, mode="REPEATED", fields=inner.fields)
    if pa.types.is_struct(dtype):
        subs = [
            schema_field(dtype.field(i).name, dtype.field(i).type) for i in range(dtype.num_fields)
        ]
        return SchemaField(name, "RECORD", mode=mode, fields=subs)
    if pa.types.is_boolean(dtype):
        kind = "BOOLEAN"
    elif pa.types.is_integer(dtype):
        kind = "INTEGER"
    elif pa.types.is_floating(dtype):
        kind = "FLOAT"
    elif pa.types.is_decimal(dtype):
        kind = "NUMERIC"
    elif pa.types.is_timestamp(dtype):
        kind = "TIMESTAMP" if dtype.tz else "DATETIME"
    elif pa.types.is_date(dtype):
        kind = "DATE"
    elif pa.types.is_time(dtype):
        kind = "TIME"
    elif pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        kind = "BYTES"
    else:
        kind = "STRING"
    return SchemaField(name, kind, mode=mode)


# ---------------------------------------------------------------------------------------------
# Check and write
# ---------------------------------------------------------------------------------------------


_LEGACY = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN"}
_PLAIN = {"INTEGER", "FLOAT", "BOOLEAN", "STRING", "DATE", "TIMESTAMP", "DATETIME", "BYTES"}


def _same_type(source: pa.DataType, field: SchemaField) -> bool:
    """Whether an Arrow column already holds the BigQuery type of ``field`` (scalar types)."""
    kind = _LEGACY.get(field.field_type.upper(), field.field_type.upper())
    if kind not in _PLAIN:
        return False
    if kind == "INTEGER":
        return pa.types.is_int64(source)
    if kind == "FLOAT":
        return pa.types.is_float64(source)
    return schema_field("x", source).field_type == kind


def _checks(staged: Staged) -> tuple[list[str], list[tuple[str, str]]]:
    """SELECT expressions producing the target columns, and (condition, message) bad-row checks."""
    source_types = {f.name: f.type for f in staged.table.schema}
    if staged.schema is None:
        return [quote(n) for n in staged.table.column_names if n != LOCATION], []
    exprs, checks = [], []
    for f in staged.schema:
        col = quote(f.name)
        if f.name not in source_types:
            if f.mode == "REQUIRED":
                raise exceptions.BadRequest(f"required field {f.name!r} is missing from the source")
            exprs.append(f"CAST(NULL AS {duckdb_type(f)}) AS {col}")
            continue
        if f.mode != "REPEATED" and _same_type(source_types[f.name], f):
            # already the target type (a typed DataFrame or Parquet column): nothing to convert,
            # so nothing to check but REQUIRED
            exprs.append(col)
            if f.mode == "REQUIRED":
                checks.append((f"{col} IS NULL", f"'Missing value in required column {f.name}'"))
            continue
        target = duckdb_type(f)
        value = col
        is_text = pa.types.is_string(source_types[f.name]) or pa.types.is_large_string(
            source_types[f.name]
        )
        if is_text and f.field_type.upper() not in ("STRING", "BYTES", "JSON"):
            value = f"trim({col})"
        cast = f"TRY_CAST({value} AS {target})"
        bad = f"{col} IS NOT NULL AND {cast} IS NULL"
        if is_text and f.field_type.upper() in ("INTEGER", "INT64"):
            bad = f"{col} IS NOT NULL AND ({cast} IS NULL OR NOT regexp_full_match({value}, '[+-]?[0-9]+'))"
        checks.append(
            (
                bad,
                f"'Could not convert value ''' || CAST({col} AS VARCHAR) || ''' to {f.field_type.upper()} in column {f.name}'",
            )
        )
        if f.mode == "REQUIRED":
            checks.append((f"{col} IS NULL", f"'Missing value in required column {f.name}'"))
        exprs.append(f"{cast} AS {col}")
    return exprs, checks


@dataclass
class Prepared:
    select: str  # SELECT of the good rows from __staging
    rows: int
    errors: list[dict]
    bad: int


def prepare(con, staged: Staged) -> Prepared:
    """Register the staging table and find the bad rows."""
    con.register("__staging", staged.table)
    exprs, checks = _checks(staged)
    errors = list(staged.errors)
    bad_rows = len(errors)
    if checks:
        any_bad = " OR ".join(f"coalesce({c}, false)" for c, _ in checks)
        messages = ", ".join(f"CASE WHEN coalesce({c}, false) THEN {m} END" for c, m in checks)
        found = con.execute(
            f"SELECT {LOCATION}, list_filter([{messages}], lambda m: m IS NOT NULL) FROM __staging "
            f"WHERE {any_bad}"
        ).fetchall()
        bad_rows += len(found)
        for where, msgs in found:
            errors.append(error(where, "; ".join(msgs)))
        where_good = f"WHERE NOT ({any_bad})"
    else:
        where_good = ""
    select = f"SELECT {', '.join(exprs)} FROM __staging {where_good}"
    rows = con.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0]
    return Prepared(select, rows, errors, bad_rows)


def table_exists(con, name: TableName) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [name.schema, name.table],
        ).fetchall()[0][0]
    )


def write(
    con: duckdb.DuckDBPyConnection,
    select: str,
    target: TableName,
    write_disposition: str | None,
    create_disposition: str | None = None,
    required: list[str] = (),
) -> None:
    """Write the rows of ``select`` to ``target`` inside the caller's transaction."""
    disposition = (write_disposition or "WRITE_APPEND").upper()
    exists = table_exists(con, target)
    if not exists and (create_disposition or "").upper() == "CREATE_NEVER":
        raise exceptions.NotFound(f"Not found: Table {target} (create_disposition=CREATE_NEVER)")
    if exists and disposition == "WRITE_EMPTY":
        if con.execute(f"SELECT count(*) FROM {target.duckdb}").fetchall()[0][0]:
            raise exceptions.Conflict(
                f"Already Exists: Table {target} is not empty (write_disposition=WRITE_EMPTY)"
            )
    if not exists or disposition == "WRITE_TRUNCATE":
        con.execute(
            f"CREATE OR REPLACE TABLE {target.duckdb} AS SELECT * FROM ({select}) LIMIT 0"
        ).fetchall()
        for name in required:
            con.execute(
                f"ALTER TABLE {target.duckdb} ALTER COLUMN {quote(name)} SET NOT NULL"
            ).fetchall()
        con.execute(f"INSERT INTO {target.duckdb} {select}").fetchall()
        return
    have = con.sql(f"SELECT * FROM ({select}) LIMIT 0").columns
    columns = set(con.sql(f"SELECT * FROM {target.duckdb} LIMIT 0").columns)
    extra = [c for c in have if c not in columns]
    if extra:
        raise exceptions.BadRequest(
            f"Provided Schema does not match Table {target}: it has no column(s) {extra}"
        )
    con.execute(f"INSERT INTO {target.duckdb} BY NAME {select}").fetchall()
