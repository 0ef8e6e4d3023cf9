"""The local warehouse: a DuckDB file that answers the google-cloud-bigquery client's calls.

Many clients, one file. DuckDB lets one process at a time open a database file for writing.
Every call of :class:`LocalClient` takes its turn (an ``flock`` on ``<file>.lock`` beside the
file), opens the file, runs, commits, closes it and gives the turn back; a call that finds the
turn taken waits for it, polling the flock with jittered backoff, for up to ``lock_timeout``
seconds (default 120, ``PRODML_WAREHOUSE_LOCK_TIMEOUT``), then fails naming the file. (A holder
that does not take turns, e.g. the DuckDB command line, is waited for the same way, by retrying
the open.) So any number of processes (a
notebook kernel, Airflow tasks, Beam workers, the prediction server's request log) share a run
folder's warehouse with no error and no lost or duplicated row: each statement is one DuckDB
transaction, and calls are serialised by the file lock.

Why not one warehouse server per run folder speaking BigQuery's REST API (the route of the
bigquery-emulator projects, which would also let ``google.cloud.bigquery.Client`` and
``bigquery-magics`` run unchanged against it)? It is the better design at scale, and the one to
take if the workbook ever needs the real client's full surface; here it would add a server
process to start, discover, keep alive and stop for every run folder, REST encodings of jobs,
load uploads and rows to keep faithful, and a network hop per call, for a workload of a few
clients issuing small queries. Waiting for the lock is the smaller design: measured by
``benchmarks/warehouse.py`` (queries per second with 1 and 4 client processes), it keeps every
query succeeding; the price is one open and close of the file per call, and callers served one
at a time. See
docs/ARCHITECTURE.md, "Warehouse".
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import fcntl
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from google.api_core import exceptions
from google.cloud import bigquery

from prodml.warehouse import loads
from prodml.warehouse.sql import (
    BQ_TO_DUCKDB,
    CatalogView,
    TableName,
    UnsupportedSQL,
    dataset_name,
    explain_duckdb_error,
    position,
    quote,
    register_functions,
    strip_ansi,
    table_name,
    translate,
)

#: The project of BigQuery's public datasets: read-only, as on BigQuery.
PUBLIC_PROJECT = "bigquery-public-data"
_turns = threading.local()  # the warehouse files whose turn this thread holds
LOCK_TIMEOUT = 120.0  # seconds a call waits for another process's hold on the file


class TableNotFound(exceptions.NotFound):
    """A table named in BigQuery terms (``project.dataset.table``) is not in the warehouse."""


def _public_tables() -> dict:
    from prodml.datasets import PUBLIC_TABLES

    return PUBLIC_TABLES


def public_projects() -> set[str]:
    """Projects whose datasets are read-only: BigQuery's public project and any project of a
    table in ``prodml.datasets.PUBLIC_TABLES``."""
    return {PUBLIC_PROJECT} | {table_name(t, PUBLIC_PROJECT).project for t in _public_tables()}


def access_denied(name: TableName, what: str = "Table") -> exceptions.Forbidden:
    target = f"{name.project}:{name.dataset}" + (f".{name.table}" if name.table else "")
    return exceptions.Forbidden(
        f"Access Denied: {what} {target}: User does not have permission to modify {what.lower()} "
        f"{target} (a public dataset is read-only; write a copy in your own dataset, e.g. "
        "CREATE TABLE mydataset.t AS SELECT ...)"
    )


# BigQuery's type names in standard SQL (INFORMATION_SCHEMA.COLUMNS.data_type)
_STANDARD = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "NUMERIC": "NUMERIC",
    "STRING": "STRING",
    "BYTES": "BYTES",
    "DATE": "DATE",
    "DATETIME": "DATETIME",
    "TIMESTAMP": "TIMESTAMP",
    "TIME": "TIME",
    "JSON": "JSON",
}


def standard_type(field: bigquery.SchemaField) -> str:
    if field.field_type in ("RECORD", "STRUCT"):
        base = "STRUCT<" + ", ".join(f"{f.name} {standard_type(f)}" for f in field.fields) + ">"
    else:
        base = _STANDARD.get(field.field_type, field.field_type)
    return f"ARRAY<{base}>" if field.mode == "REPEATED" else base


def _not_implemented(owner: str, real: type, name: str):
    """What the google-cloud-bigquery class ``real`` has and the local stand-in lacks: a clear
    NotImplementedError naming the member (on call for methods, on access otherwise), never
    AttributeError, which reads like a typo in the learner's code."""
    if name.startswith("_") or not hasattr(real, name):
        raise AttributeError(f"{owner!r} object has no attribute {name!r}")
    message = (
        f"{real.__name__}.{name} is not implemented by the local DuckDB warehouse "
        f"(prodml.warehouse.{owner}); set warehouse='bigquery' to use it on BigQuery"
    )
    if callable(getattr(real, name)):

        def refuse(*args, **kwargs):
            raise NotImplementedError(message)

        refuse.__name__ = name
        return refuse
    raise NotImplementedError(message)


def _insert_error(location: str, message: str, reason: str = "invalid") -> dict:
    """One problem with one row, in the shape of ``tabledata.insertAll``'s ``insertErrors``."""
    return {"reason": reason, "location": location, "debugInfo": "", "message": message}


def _pandas_type(dtype: pa.DataType):
    # what google-cloud-bigquery's to_dataframe() gives: nullable Int64 and boolean columns
    if pa.types.is_integer(dtype):
        return pd.Int64Dtype()
    if pa.types.is_boolean(dtype):
        return pd.BooleanDtype()
    return None


class RowIterator:
    """Rows of a finished query or ``list_rows``: iterate :class:`bigquery.Row` objects
    (``row.name``, ``row["name"]``, ``row[0]``), or call :meth:`to_dataframe`."""

    def __init__(self, table: pa.Table, total_rows: int | None = None):
        self._table = table
        self.total_rows = table.num_rows if total_rows is None else total_rows
        self.schema = [loads.schema_field(f.name, f.type) for f in table.schema]

    def __iter__(self):
        index = {name: i for i, name in enumerate(self._table.column_names)}
        columns = [c.to_pylist() for c in self._table.columns]
        for values in zip(*columns, strict=True):
            yield bigquery.Row(values, index)

    def to_arrow(self) -> pa.Table:
        return self._table

    def to_dataframe(self, *args, **kwargs) -> pd.DataFrame:
        return self._table.to_pandas(types_mapper=_pandas_type)

    def __getattr__(self, name: str):
        return _not_implemented("RowIterator", bigquery.table.RowIterator, name)


class _Job:
    def __init__(self, kind: str):
        self.job_id = f"{kind}_{uuid.uuid4().hex}"
        self.state = "DONE"
        self.errors: list[dict] | None = None
        self.error_result: dict | None = None
        self.created = self.started = self.ended = datetime.datetime.now(datetime.UTC)
        self._exception: Exception | None = None

    def done(self) -> bool:
        return True

    def exception(self):
        return self._exception

    def _raise(self) -> None:
        if self._exception is not None:
            raise self._exception


class QueryJob(_Job):
    def __init__(self, query: str, rows: RowIterator, affected: int | None, destination):
        super().__init__("job")
        self.query = query
        self._rows = rows
        self.num_dml_affected_rows = affected
        self.destination = destination

    def result(self, *args, **kwargs) -> RowIterator:
        return self._rows

    def to_dataframe(self, *args, **kwargs) -> pd.DataFrame:
        return self._rows.to_dataframe()

    def to_arrow(self, *args, **kwargs) -> pa.Table:
        return self._rows.to_arrow()

    def __getattr__(self, name: str):
        return _not_implemented("QueryJob", bigquery.QueryJob, name)


class LoadJob(_Job):
    def __init__(self, destination: bigquery.TableReference):
        super().__init__("load")
        self.destination = destination
        self.output_rows: int | None = None

    def result(self, *args, **kwargs) -> LoadJob:
        self._raise()
        return self

    def __getattr__(self, name: str):
        return _not_implemented("LoadJob", bigquery.LoadJob, name)


_PY_TYPES = {"INT64": int, "INTEGER": int, "FLOAT64": float, "FLOAT": float, "BOOL": bool}


def _param_value(value, type_: str):
    """A query parameter's value as the Python type DuckDB binds to the declared BigQuery type."""
    if value is None:
        return None
    convert = _PY_TYPES.get(type_.upper())
    if convert is not None:
        return convert(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


class ExtractJob(_Job):
    def __init__(self, source: bigquery.TableReference, destination_uris: list[str]):
        super().__init__("extract")
        self.source = source
        self.destination_uris = destination_uris
        self.destination_uri_file_counts: list[int] = []

    def result(self, *args, **kwargs) -> ExtractJob:
        self._raise()
        return self

    def __getattr__(self, name: str):
        return _not_implemented("ExtractJob", bigquery.ExtractJob, name)


_EXTRACT_FORMATS = ("CSV", "NEWLINE_DELIMITED_JSON", "AVRO", "PARQUET")
SHARD_ROWS = 100_000  # rows per file of a wildcard extract (BigQuery shards by ~1 GB)


class LocalClient:
    """The parts of ``google.cloud.bigquery.Client`` the workbook uses, on a DuckDB file.

    Table ``project.dataset.table`` lives in DuckDB as ``"project.dataset"."table"``. Datasets of
    this client's project must be created first (``create_dataset``), as on BigQuery; datasets of
    other projects are created on first write, except the public ones, which are read-only.
    The public tables of ``prodml.datasets.PUBLIC_TABLES`` exist: the first reference to one
    generates it into this warehouse file. Methods of ``bigquery.Client`` not listed here raise
    ``NotImplementedError`` naming the method.
    """

    def __init__(
        self,
        path: Path,
        project: str,
        location: str | None = None,
        lock_timeout: float | None = None,
    ):
        self.path = Path(path)
        self.project = project
        self.location = location
        if lock_timeout is None:
            lock_timeout = float(os.environ.get("PRODML_WAREHOUSE_LOCK_TIMEOUT", LOCK_TIMEOUT))
        self.lock_timeout = lock_timeout
        self._public_seen: set[TableName] = set()  # public tables known to be in the file
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalClient(path={str(self.path)!r}, project={self.project!r})"

    def __getattr__(self, name: str):
        return _not_implemented("LocalClient", bigquery.Client, name)

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting (bounded) while another process holds it; see the module."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as err:
                text = strip_ansi(str(err))
                if "lock" not in text.lower():
                    raise RuntimeError(
                        f"cannot open the local warehouse {self.path}: {text}"
                    ) from None
                if time.monotonic() >= deadline:
                    raise self._held_too_long(text) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.05)
        con.execute("SET TimeZone = 'UTC'").fetchall()
        register_functions(con)
        return con

    def _held_too_long(self, detail: str) -> RuntimeError:
        return RuntimeError(
            f"the local warehouse {self.path} stayed in use by another process for "
            f"{self.lock_timeout:.0f} s (PRODML_WAREHOUSE_LOCK_TIMEOUT): {detail}"
        )

    @contextlib.contextmanager
    def _turn(self):
        """This process's turn at the file: an flock on ``<file>.lock`` beside it.

        Clients queue on this lock rather than on DuckDB's own: a refused ``duckdb.connect``
        costs as much as a successful one (it starts a database instance before it finds the
        lock taken), so polling DuckDB from several processes wastes most of the machine,
        while trying an flock costs a system call. Re-entrant within a thread.
        """
        key = str(self.path)
        held = _turns.__dict__.setdefault("held", {})
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        deadline = time.monotonic() + self.lock_timeout
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            delay = 0.001
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self._held_too_long("waiting for its turn") from None
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 1.5, 0.02)
            held[key] = 1
            try:
                yield
            finally:
                held[key] = 0
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _connection(self):
        with self._turn():
            con = self._connect()
            try:
                yield con
            finally:
                con.close()

    def _ensure_dataset(self, con, name: TableName) -> None:
        if name.project in public_projects():
            raise access_denied(name)
        exists = con.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
            [name.schema],
        ).fetchall()[0][0]
        if exists:
            return
        if name.project == self.project:
            raise exceptions.NotFound(
                f"Not found: Dataset {name.project}:{name.dataset} (create it first with "
                f"client.create_dataset({name.dataset!r}, exists_ok=True) or CREATE SCHEMA "
                f"{name.dataset})"
            )
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}").fetchall()

    def _not_found(self, name: TableName) -> TableNotFound:
        return TableNotFound(
            f"Not found: Table {name.project}:{name.dataset}.{name.table} was not found in "
            f"location {self.location or 'US'} (the local warehouse {self.path}; load it first, "
            "e.g. with client.load_table_from_dataframe)"
        )

    def _check_exists(self, con, name: TableName) -> None:
        if not loads.table_exists(con, name):
            raise self._not_found(name)

    # -- public tables ------------------------------------------------------------------------

    def _missing_public(self, con, names) -> list[TableName]:
        registry = _public_tables()
        return [n for n in names if str(n) in registry and not loads.table_exists(con, n)]

    def _ensure_public(self, names) -> None:
        """Generate the public tables among ``names`` that this warehouse does not hold yet
        (a public table, once there, stays: SQL cannot drop it)."""
        names = [n for n in names if str(n) in _public_tables() and n not in self._public_seen]
        if not names:
            return
        with self._connection() as con:
            missing = self._missing_public(con, names)
        self._public_seen.update(n for n in names if n not in missing)
        if not missing:
            return
        # one process generates; the others wait on the lock and then find the table
        lock_path = self.path.with_name(self.path.name + ".public.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for name in missing:
                    with self._connection() as con:
                        if loads.table_exists(con, name):
                            continue
                    print(
                        f"prodml: generating the public table {name} (synthetic, deterministic) "
                        "into this run folder's warehouse, once",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._load_public(_public_tables()[str(name)](), name)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._public_seen.update(missing)

    def _load_public(self, data, name: TableName) -> None:
        """Write a generated public table as it is (typed by its generator, so no load-job
        checks); its non-nullable Arrow fields become REQUIRED columns."""
        table = (
            data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        )
        with self._connection() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}").fetchall()
            con.register("__public", table)
            con.execute("BEGIN").fetchall()
            con.execute(
                f"CREATE OR REPLACE TABLE {name.duckdb} AS SELECT * FROM __public"
            ).fetchall()
            for field in table.schema:
                if not field.nullable:
                    con.execute(
                        f"ALTER TABLE {name.duckdb} ALTER COLUMN {quote(field.name)} SET NOT NULL"
                    ).fetchall()
            con.execute("COMMIT").fetchall()
            con.unregister("__public")

    # -- queries ------------------------------------------------------------------------------

    def query(self, query: str, job_config: bigquery.QueryJobConfig | None = None, **kwargs):
        config = job_config or bigquery.QueryJobConfig()
        if config.use_legacy_sql:
            raise UnsupportedSQL(
                "legacy SQL is not supported: the local warehouse speaks Standard SQL"
            )
        if config.dry_run:
            raise UnsupportedSQL("dry_run is not supported by the local warehouse")
        statements = translate(query, self.project)
        named = {p.name: p for p in config.query_parameters if p.name}
        positional = [p for p in config.query_parameters if not p.name]
        public = public_projects()
        for st in statements:
            for name in st.writes:
                if name.project in public:
                    raise access_denied(name, "Dataset" if st.schema_ddl else "Table")
        public_reads = [n for st in statements for n in st.reads] + [
            TableName(v.project, v.dataset, t)
            for st in statements
            for v in st.catalog
            if v.dataset
            for t in self._public_names(v)
        ]
        self._ensure_public(public_reads)
        with self._connection() as con:
            table, affected = pa.table({}), None
            for st in statements:
                for name in st.reads:
                    self._check_exists(con, name)
                for name in st.creates:
                    self._ensure_dataset(con, name)
                for view in st.catalog:
                    con.register(view.name, self._catalog_view(con, view))
                params = self._parameters(st, named, positional)
                try:
                    if st.is_query:
                        table = con.sql(st.duckdb, params=params).to_arrow_table()
                        affected = None
                    else:
                        rows = con.execute(st.duckdb, params).fetchall()
                        table = pa.table({})
                        affected = rows[0][0] if rows and isinstance(rows[0][0], int) else None
                except duckdb.Error as err:
                    raise self._query_error(err, st) from None
                finally:
                    for view in st.catalog:
                        con.unregister(view.name)
            destination = None
            if config.destination is not None:
                destination = self._write_result(con, table, config)
            return QueryJob(query, RowIterator(table), affected, destination)

    @staticmethod
    def _public_names(view: CatalogView) -> list[str]:
        prefix = f"{view.project}.{view.dataset}."
        return [t[len(prefix) :] for t in _public_tables() if t.startswith(prefix)]

    def _catalog_view(self, con, view: CatalogView) -> pa.Table:
        """INFORMATION_SCHEMA.<view> from DuckDB's catalogue, with BigQuery's columns."""
        if view.view == "SCHEMATA":
            prefix = f"{view.project}."
            names = sorted(
                r[0][len(prefix) :]
                for r in con.execute(
                    "SELECT schema_name FROM information_schema.schemata "
                    "WHERE starts_with(schema_name, ?)",
                    [prefix],
                ).fetchall()
            )
            return pa.table(
                {
                    "catalog_name": pa.array([view.project] * len(names), pa.string()),
                    "schema_name": pa.array(names, pa.string()),
                    "location": pa.array([self.location or "US"] * len(names), pa.string()),
                }
            )
        schema = f"{view.project}.{view.dataset}"
        tables = con.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = ? ORDER BY table_name",
            [schema],
        ).fetchall()
        if view.view == "TABLES":
            n = len(tables)
            return pa.table(
                {
                    "table_catalog": pa.array([view.project] * n, pa.string()),
                    "table_schema": pa.array([view.dataset] * n, pa.string()),
                    "table_name": pa.array([t for t, _ in tables], pa.string()),
                    "table_type": pa.array(
                        ["VIEW" if k == "VIEW" else "BASE TABLE" for _, k in tables], pa.string()
                    ),
                    "is_insertable_into": pa.array(
                        ["NO" if k == "VIEW" else "YES" for _, k in tables], pa.string()
                    ),
                    "is_typed": pa.array(["NO"] * n, pa.string()),
                }
            )
        columns: dict[str, list] = {
            k: []
            for k in (
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
                "ordinal_position",
                "is_nullable",
                "data_type",
                "is_hidden",
                "is_partitioning_column",
            )
        }
        for table, _ in tables:
            for i, field in enumerate(
                self._schema(con, TableName(view.project, view.dataset, table))
            ):
                for key, value in (
                    ("table_catalog", view.project),
                    ("table_schema", view.dataset),
                    ("table_name", table),
                    ("column_name", field.name),
                    ("ordinal_position", i + 1),
                    ("is_nullable", "NO" if field.mode == "REQUIRED" else "YES"),
                    ("data_type", standard_type(field)),
                    ("is_hidden", "NO"),
                    ("is_partitioning_column", "NO"),
                ):
                    columns[key].append(value)
        return pa.table(
            {
                k: pa.array(v, pa.int64() if k == "ordinal_position" else pa.string())
                for k, v in columns.items()
            }
        )

    def _parameters(self, st, named, positional):
        missing = [p for p in st.parameters if p not in named]
        if missing:
            raise exceptions.BadRequest(
                f"Query parameter(s) {', '.join('@' + m for m in missing)} not found: pass them "
                "in QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter(...)])"
            )
        if st.positional and st.positional != len(positional):
            raise exceptions.BadRequest(
                f"the query has {st.positional} positional parameter(s) (?) but the job config "
                f"gives {len(positional)}"
            )
        if st.positional:
            return [self._param(p) for p in positional]
        return {name: self._param(named[name]) for name in st.parameters} or None

    @staticmethod
    def _param(p):
        if isinstance(p, bigquery.ScalarQueryParameter):
            if p.type_.upper() not in BQ_TO_DUCKDB:
                raise UnsupportedSQL(f"query parameter type {p.type_} is not supported locally")
            return _param_value(p.value, p.type_)
        if isinstance(p, bigquery.ArrayQueryParameter):
            return [_param_value(v, p.array_type) for v in p.values]
        raise UnsupportedSQL(f"query parameter {type(p).__name__} is not supported locally")

    def _query_error(self, err: duckdb.Error, st) -> Exception:
        """A DuckDB error in BigQuery's words (BigQuery's message where one maps)."""
        unsupported = explain_duckdb_error(err)
        if unsupported is not None:
            return unsupported
        text = strip_ansi(str(err))
        first = text.splitlines()[0] if text else type(err).__name__
        detail = re.sub(r"^[A-Za-z ]*Error: ", "", first)
        column = re.search(r'Referenced column "?([^"\s]+)"? not found', detail) or re.search(
            r'does not have a column named "?([^"\s]+)"?', detail
        )
        if column:
            name = column.group(1)
            return exceptions.BadRequest(f"Unrecognized name: {name}{self._at(st.bigquery, name)}")
        if re.search(r"with name .* already exists", detail):
            target = next(iter(st.writes), None)
            what = f" {target.project}:{target.dataset}.{target.table}" if target else ""
            return exceptions.Conflict(f"Already Exists: Table{what}")
        missing = re.search(r"Schema with name \"?([^\"\s!]+)\"? does not exist", detail)
        if missing:
            project, _, dataset = missing.group(1).partition(".")
            return exceptions.NotFound(f"Not found: Dataset {project}:{dataset}")
        missing = re.search(r"Table with name \"?([^\"\s!]+)\"? does not exist", detail)
        if missing:
            target = next(iter(st.writes), None)
            if target is not None:
                return self._not_found(target)
            return exceptions.NotFound(f"Not found: Table {missing.group(1)}")
        required = re.search(r"NOT NULL constraint failed: [^.\s]+\.(\S+)", detail)
        if required:
            return exceptions.BadRequest(f"Required field {required.group(1)} cannot be null")
        bad = re.search(r"Could not convert string '(.*)' to (\w+)", detail)
        if bad:
            kind = {"INT64": "int64", "INT32": "int64", "DOUBLE": "double", "BOOL": "bool"}.get(
                bad.group(2).upper(), bad.group(2).lower()
            )
            return exceptions.BadRequest(f"Bad {kind} value: {bad.group(1)}")
        return exceptions.BadRequest(
            f"{detail.rstrip('!')} (the query, as the local warehouse ran it: {st.duckdb})"
        )

    @staticmethod
    def _at(sql: str, name: str) -> str:
        """`` at [line:column]`` of the first use of the identifier ``name`` in ``sql``."""
        match = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", sql, flags=re.IGNORECASE)
        return f" at {position(sql, match.start())}" if match else ""

    def _write_result(self, con, table: pa.Table, config) -> bigquery.TableReference:
        target = table_name(config.destination, self.project)
        self._ensure_dataset(con, target)
        con.register("__result", table)
        con.execute("BEGIN").fetchall()
        try:
            loads.write(
                con,
                "SELECT * FROM __result",
                target,
                config.write_disposition or "WRITE_EMPTY",
                config.create_disposition,
            )
            con.execute("COMMIT").fetchall()
        except Exception:
            con.execute("ROLLBACK").fetchall()
            raise
        return bigquery.TableReference.from_string(str(target))

    # -- loads --------------------------------------------------------------------------------

    def load_table_from_dataframe(
        self, dataframe: pd.DataFrame, destination, job_config=None, **kwargs
    ):
        config = job_config or bigquery.LoadJobConfig()
        table = pa.Table.from_pandas(dataframe, preserve_index=False)
        where = pa.array([f"row {i}" for i in range(table.num_rows)], pa.string())
        staged = loads.Staged(
            table.append_column(loads.LOCATION, where), schema=config.schema or None
        )
        return self._load(staged, destination, config)

    def load_table_from_uri(self, source_uris, destination, job_config=None, **kwargs):
        config = job_config or bigquery.LoadJobConfig()
        for option in ("allow_jagged_rows",):
            if getattr(config, option, None):
                raise UnsupportedSQL(
                    f"LoadJobConfig.{option} is not supported by the local warehouse"
                )
        paths = loads.local_paths(source_uris)
        target = table_name(destination, self.project)
        with self._connection() as con:
            explicit = config.schema or None
            if explicit is None and not config.autodetect and loads.table_exists(con, target):
                explicit = self._schema(con, target)
            fmt = (config.source_format or "CSV").upper()
            if (
                explicit is None
                and not config.autodetect
                and fmt in ("CSV", "NEWLINE_DELIMITED_JSON")
            ):
                raise exceptions.BadRequest(
                    f"No schema specified on job or table {target}: set LoadJobConfig(schema=[...]) "
                    "or autodetect=True"
                )
            staged = loads.read_uris(paths, config, explicit, con)
        return self._load(staged, target, config)

    def _load(self, staged: loads.Staged, destination, config) -> LoadJob:
        target = table_name(destination, self.project)
        job = LoadJob(bigquery.TableReference.from_string(str(target)))
        with self._connection() as con:
            if target.project in public_projects():
                # load jobs fill the stand-ins of public tables (prodml.datasets); SQL may not
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(target.schema)}").fetchall()
            else:
                self._ensure_dataset(con, target)
            prepared = loads.prepare(con, staged)
            allowed = config.max_bad_records or 0
            job.errors = prepared.errors[: loads.MAX_REPORTED] or None
            if prepared.bad > allowed:
                message = (
                    f"Error while reading data: {prepared.bad} bad record(s) exceed "
                    f"max_bad_records={allowed}; nothing was loaded into {target}. First error: "
                    f"{prepared.errors[0]['location']}: {prepared.errors[0]['message']}"
                )
                job.error_result = {"reason": "invalid", "message": message}
                job._exception = exceptions.BadRequest(message, errors=job.errors)
                return job
            required = [f.name for f in staged.schema or [] if f.mode == "REQUIRED"]
            con.execute("BEGIN").fetchall()
            try:
                loads.write(
                    con,
                    prepared.select,
                    target,
                    config.write_disposition,
                    config.create_disposition,
                    required,
                )
                con.execute("COMMIT").fetchall()
            except Exception as err:
                con.execute("ROLLBACK").fetchall()
                if isinstance(err, duckdb.Error):
                    detail = re.sub(r"^[A-Za-z ]*Error: ", "", strip_ansi(str(err)).splitlines()[0])
                    err = exceptions.BadRequest(f"loading {target} failed: {detail}")
                job.error_result = {"reason": "invalid", "message": str(err)}
                job._exception = err
                return job
            job.output_rows = prepared.rows
            return job

    # -- streaming inserts --------------------------------------------------------------------

    def insert_rows_json(
        self,
        table,
        json_rows,
        row_ids=bigquery.AutoRowIDs.GENERATE_UUID,
        skip_invalid_rows: bool | None = None,
        ignore_unknown_values: bool | None = None,
        template_suffix: str | None = None,
        retry=None,
        timeout=None,
    ) -> list[dict]:
        """Stream rows into an existing table, as BigQuery's ``tabledata.insertAll`` does.

        The streaming API, not a load job: no job, no file, and the rows are queryable as soon
        as the call returns. ``json_rows`` are dicts of JSON values keyed by the table's
        columns; each is checked against the table's schema. Returns the rows that failed, as
        google-cloud-bigquery does: ``[{"index": i, "errors": [{"reason": "invalid",
        "location": column, "debugInfo": "", "message": ...}]}]``, empty when every row went in.
        With ``skip_invalid_rows`` false (the default) one invalid row stops the whole request
        (its other rows are listed with reason ``"stopped"``); true inserts the valid rows.
        Keys the schema lacks are errors unless ``ignore_unknown_values``.

        Differences: ``row_ids`` (insertId) are accepted and checked but rows are never
        de-duplicated (BigQuery does it best effort, over about a minute); ``template_suffix``
        raises ``NotImplementedError``; the table must exist (``NotFound``), as on BigQuery.
        """
        if not isinstance(json_rows, Sequence | Iterator):
            raise TypeError("json_rows argument should be a sequence of dicts")
        if template_suffix is not None:
            raise NotImplementedError(
                "insert_rows_json(template_suffix=...) (template tables) is not implemented by "
                "the local DuckDB warehouse"
            )
        rows = list(json_rows)
        if not isinstance(row_ids, bigquery.AutoRowIDs) and row_ids is not None:
            try:
                ids = list(row_ids)
            except TypeError:
                raise TypeError(
                    "row_ids is neither an iterable nor an AutoRowIDs enum member"
                ) from None
            if len(ids) < len(rows):
                raise ValueError(f"row_ids did not generate enough IDs, error at index {len(ids)}")
        name = table_name(table, self.project)
        if name.project in public_projects():
            raise access_denied(name)
        with self._connection() as con:
            self._check_exists(con, name)
            fields = self._schema(con, name)
            columns = {f.name for f in fields}
            errors: dict[int, list[dict]] = {}
            staged_rows, indexes = [], []
            for i, row in enumerate(rows):
                if not isinstance(row, Mapping):
                    errors[i] = [_insert_error("", f"a row must be a JSON object, got {row!r}")]
                    continue
                unknown = sorted(set(row) - columns)
                if unknown and not ignore_unknown_values:
                    errors[i] = [_insert_error(k, f"no such field: {k}.") for k in unknown]
                    continue
                staged_rows.append(row)
                indexes.append(i)
            staged = pa.table(
                {
                    **{
                        f.name: pa.array(
                            [loads._as_text(r.get(f.name)) for r in staged_rows], pa.string()
                        )
                        for f in fields
                    },
                    loads.LOCATION: pa.array([str(i) for i in indexes], pa.string()),
                }
            )
            prepared = loads.prepare(con, loads.Staged(staged, schema=fields))
            for e in prepared.errors:
                column = re.search(r"in (?:required )?column (\S+)", e["message"])
                errors[int(e["location"])] = [
                    _insert_error(column.group(1) if column else "", e["message"])
                ]
            if errors and not skip_invalid_rows:
                for i in range(len(rows)):
                    errors.setdefault(i, [_insert_error("", "", reason="stopped")])
                return [{"index": i, "errors": errors[i]} for i in sorted(errors)]
            if prepared.rows:
                con.execute("BEGIN").fetchall()
                try:
                    loads.write(con, prepared.select, name, "WRITE_APPEND", "CREATE_NEVER")
                    con.execute("COMMIT").fetchall()
                except Exception:
                    con.execute("ROLLBACK").fetchall()
                    raise
        return [{"index": i, "errors": errors[i]} for i in sorted(errors)]

    # -- extracts -----------------------------------------------------------------------------

    def extract_table(
        self,
        source,
        destination_uris,
        job_id=None,
        job_id_prefix=None,
        location=None,
        project=None,
        job_config: bigquery.ExtractJobConfig | None = None,
        **kwargs,
    ) -> ExtractJob:
        """Write a table to files, as BigQuery's extract job does to Cloud Storage.

        Destinations are ``prodml.storage`` locations (a local folder, or ``gs://`` when storage
        is configured so), local paths or ``file://`` URLs. A ``*`` in a URI shards the table
        over files numbered ``000000000000``, ``000000000001``... (:data:`SHARD_ROWS` rows each,
        at least one file). Formats: CSV (``print_header``, ``field_delimiter``),
        NEWLINE_DELIMITED_JSON, AVRO, PARQUET.
        """
        config = job_config or bigquery.ExtractJobConfig()
        fmt = (config.destination_format or "CSV").upper()
        if fmt not in _EXTRACT_FORMATS:
            raise ValueError(
                f"destination_format {fmt!r} is not supported: use one of {_EXTRACT_FORMATS}"
            )
        if config.compression not in (None, "NONE"):
            raise NotImplementedError(
                f"ExtractJobConfig(compression={config.compression!r}) is not implemented by "
                "the local DuckDB warehouse"
            )
        uris = (
            [destination_uris]
            if isinstance(destination_uris, str | os.PathLike)
            else list(destination_uris)
        )
        uris = [str(u) for u in uris]
        name = table_name(source, self.project)
        self._ensure_public([name])
        with self._connection() as con:
            self._check_exists(con, name)
            data = con.sql(f"SELECT * FROM {name.duckdb}").to_arrow_table()
            fields = self._schema(con, name)
        job = ExtractJob(bigquery.TableReference.from_string(str(name)), uris)
        from prodml import storage

        for uri in uris:
            if "*" in uri and uri.count("*") != 1:
                raise ValueError(f"destination URI {uri!r} may hold one '*' wildcard at most")
            if uri.startswith("gs://") and not storage.root().startswith("gs://"):
                raise ValueError(
                    f"the local warehouse cannot write {uri}: storage is the local folder "
                    f"{storage.root()}. Extract to prodml.storage.path(...) instead, or configure "
                    "gs:// storage"
                )
            if "*" in uri:
                count = max(1, -(-data.num_rows // SHARD_ROWS))
                parts = [
                    (uri.replace("*", f"{i:012d}"), data.slice(i * SHARD_ROWS, SHARD_ROWS))
                    for i in range(count)
                ]
            else:
                parts = [(uri, data)]
            for path, part in parts:
                _write_extract(path, part, fields, fmt, config)
            job.destination_uri_file_counts.append(len(parts))
        return job

    # -- tables and datasets ------------------------------------------------------------------

    def _schema(self, con, name: TableName) -> list[bigquery.SchemaField]:
        arrow = con.sql(f"SELECT * FROM {name.duckdb} LIMIT 0").to_arrow_table()
        nullable = dict(
            con.execute(
                "SELECT column_name, is_nullable FROM duckdb_columns() "
                "WHERE schema_name = ? AND table_name = ?",
                [name.schema, name.table],
            ).fetchall()
        )
        return [
            loads.schema_field(f.name, f.type, nullable.get(f.name, True)) for f in arrow.schema
        ]

    def get_table(self, table) -> bigquery.Table:
        name = table_name(table, self.project)
        self._ensure_public([name])
        with self._connection() as con:
            self._check_exists(con, name)
            fields = self._schema(con, name)
            rows = con.execute(f"SELECT count(*) FROM {name.duckdb}").fetchall()[0][0]
        resource = {
            "tableReference": {
                "projectId": name.project,
                "datasetId": name.dataset,
                "tableId": name.table,
            },
            "id": f"{name.project}:{name.dataset}.{name.table}",
            "type": "TABLE",
            "numRows": str(rows),
            "schema": {"fields": [f.to_api_repr() for f in fields]},
            "location": self.location,
        }
        return bigquery.Table.from_api_repr(resource)

    def list_rows(
        self,
        table,
        selected_fields=None,
        max_results: int | None = None,
        page_token=None,
        start_index: int | None = None,
        page_size=None,
        **kwargs,
    ) -> RowIterator:
        name = table_name(table, self.project)
        self._ensure_public([name])
        columns = "*"
        if selected_fields:
            columns = ", ".join(quote(f.name) for f in selected_fields)
        limit = f" LIMIT {int(max_results)}" if max_results is not None else ""
        offset = f" OFFSET {int(start_index)}" if start_index else ""
        with self._connection() as con:
            self._check_exists(con, name)
            data = con.sql(f"SELECT {columns} FROM {name.duckdb}{limit}{offset}").to_arrow_table()
            total = con.execute(f"SELECT count(*) FROM {name.duckdb}").fetchall()[0][0]
        return RowIterator(data, total_rows=total)

    def delete_table(self, table, not_found_ok: bool = False, **kwargs) -> None:
        name = table_name(table, self.project)
        if name.project in public_projects():
            raise access_denied(name)
        with self._connection() as con:
            if not loads.table_exists(con, name):
                if not_found_ok:
                    return
                self._check_exists(con, name)
            con.execute(f"DROP TABLE {name.duckdb}").fetchall()

    def create_dataset(
        self, dataset, exists_ok: bool = False, retry=None, timeout=None, **kwargs
    ) -> bigquery.Dataset:
        project, dataset_id = dataset_name(dataset, self.project)
        if project in public_projects():
            raise access_denied(TableName(project, dataset_id, ""), "Dataset")
        schema = f"{project}.{dataset_id}"
        with self._connection() as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", [schema]
            ).fetchall()[0][0]
            if exists and not exists_ok:
                raise exceptions.Conflict(f"Already Exists: Dataset {project}:{dataset_id}")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}").fetchall()
        result = bigquery.Dataset(f"{project}.{dataset_id}")
        result.location = self.location
        return result

    def get_dataset(self, dataset, **kwargs) -> bigquery.Dataset:
        project, dataset_id = dataset_name(dataset, self.project)
        with self._connection() as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
                [f"{project}.{dataset_id}"],
            ).fetchall()[0][0]
        if not exists:
            raise exceptions.NotFound(f"Not found: Dataset {project}:{dataset_id}")
        result = bigquery.Dataset(f"{project}.{dataset_id}")
        result.location = self.location
        return result

    def delete_dataset(
        self, dataset, delete_contents: bool = False, not_found_ok: bool = False, **kwargs
    ):
        project, dataset_id = dataset_name(dataset, self.project)
        if project in public_projects():
            raise access_denied(TableName(project, dataset_id, ""), "Dataset")
        with self._connection() as con:
            schema = quote(f"{project}.{dataset_id}")
            try:
                con.execute(
                    f"DROP SCHEMA {schema}{' CASCADE' if delete_contents else ''}"
                ).fetchall()
            except duckdb.CatalogException:
                if not_found_ok:
                    return
                raise exceptions.NotFound(f"Not found: Dataset {project}:{dataset_id}") from None
            except duckdb.DependencyException:
                raise exceptions.BadRequest(
                    f"Dataset {project}:{dataset_id} is still in use (not empty): pass "
                    "delete_contents=True"
                ) from None

    def list_tables(self, dataset, **kwargs) -> list[bigquery.TableReference]:
        project, dataset_id = dataset_name(dataset, self.project)
        with self._connection() as con:
            names = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                "ORDER BY table_name",
                [f"{project}.{dataset_id}"],
            ).fetchall()
        return [
            bigquery.TableReference.from_string(f"{project}.{dataset_id}.{n}") for (n,) in names
        ]

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own DuckDB connection."""


def _write_extract(uri: str, data: pa.Table, fields, fmt: str, config) -> None:
    """One extract file, written through fsspec (a local folder or gs://)."""
    from prodml import storage

    path = uri.removeprefix("file://")
    fs = storage.filesystem(path)
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as out:
        if fmt == "PARQUET":
            import pyarrow.parquet as pq

            pq.write_table(data, out)
        elif fmt == "CSV":
            import pyarrow.csv as pacsv

            if any(pa.types.is_nested(t) for t in data.schema.types):
                raise exceptions.BadRequest(
                    "Operation cannot be performed on a nested schema: extract to "
                    "NEWLINE_DELIMITED_JSON, AVRO or PARQUET"
                )
            header = True if config.print_header is None else bool(config.print_header)
            pacsv.write_csv(
                data,
                out,
                pacsv.WriteOptions(include_header=header, delimiter=config.field_delimiter or ","),
            )
        elif fmt == "NEWLINE_DELIMITED_JSON":
            for row in data.to_pylist():
                record = {k: v for k, v in row.items() if v is not None}  # as BigQuery: no nulls
                out.write((json.dumps(record, default=_json_value) + "\n").encode())
        else:
            import fastavro

            fastavro.writer(out, _avro_schema(fields), data.to_pylist())


def _json_value(value):
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_AVRO = {
    "INTEGER": "long",
    "FLOAT": "double",
    "BOOLEAN": "boolean",
    "STRING": "string",
    "BYTES": "bytes",
    "DATE": {"type": "int", "logicalType": "date"},
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "DATETIME": "string",
    "TIME": {"type": "long", "logicalType": "time-micros"},
    "NUMERIC": "string",
    "JSON": "string",
}


def _avro_type(field: bigquery.SchemaField, path: str):
    if field.field_type in ("RECORD", "STRUCT"):
        kind = {
            "type": "record",
            "name": path.replace(".", "_"),
            "fields": [
                {"name": f.name, "type": _avro_type(f, f"{path}.{f.name}")} for f in field.fields
            ],
        }
    elif field.field_type in _AVRO:
        kind = _AVRO[field.field_type]
    else:
        raise ValueError(f"column {field.name}: type {field.field_type} cannot be written to Avro")
    if field.mode == "REPEATED":
        return {"type": "array", "items": kind}
    return kind if field.mode == "REQUIRED" else ["null", kind]


def _avro_schema(fields) -> dict:
    return {
        "type": "record",
        "name": "Root",
        "fields": [{"name": f.name, "type": _avro_type(f, f"Root.{f.name}")} for f in fields],
    }
