"""The local warehouse: a DuckDB file that answers the google-cloud-bigquery client's calls."""

from __future__ import annotations

import datetime
import decimal
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from google.api_core import exceptions
from google.cloud import bigquery

from prodml.warehouse import loads
from prodml.warehouse.sql import (
    BQ_TO_DUCKDB,
    TableName,
    UnsupportedSQL,
    dataset_name,
    explain_duckdb_error,
    quote,
    register_functions,
    table_name,
    translate,
)


class TableNotFound(exceptions.NotFound):
    """A table named in BigQuery terms (``project.dataset.table``) is not in the warehouse."""


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

    def to_dataframe(self) -> pd.DataFrame:
        return self._table.to_pandas(types_mapper=_pandas_type)


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


class LoadJob(_Job):
    def __init__(self, destination: bigquery.TableReference):
        super().__init__("load")
        self.destination = destination
        self.output_rows: int | None = None

    def result(self, *args, **kwargs) -> LoadJob:
        self._raise()
        return self


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


class LocalClient:
    """The parts of ``google.cloud.bigquery.Client`` the workbook uses, on a DuckDB file.

    Table ``project.dataset.table`` lives in DuckDB as ``"project.dataset"."table"``. Datasets of
    this client's project must be created first (``create_dataset``), as on BigQuery; datasets of
    other projects (stand-ins for ``bigquery-public-data``) are created on first write.
    """

    def __init__(self, path: Path, project: str, location: str | None = None):
        self.path = Path(path)
        self.project = project
        self.location = location
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalClient(path={str(self.path)!r}, project={self.project!r})"

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.IOException as err:
            raise RuntimeError(
                f"cannot open the local warehouse {self.path}: {err} (another process holds it?)"
            ) from None
        con.execute("SET TimeZone = 'UTC'").fetchall()
        register_functions(con)
        return con

    def _ensure_dataset(self, con, name: TableName) -> None:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
            [name.schema],
        ).fetchall()[0][0]
        if exists:
            return
        if name.project == self.project:
            raise exceptions.NotFound(
                f"Not found: Dataset {name.project}:{name.dataset} was not found in the local "
                f"warehouse; create it first with client.create_dataset({name.dataset!r}, "
                "exists_ok=True)"
            )
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}").fetchall()

    def _check_exists(self, con, name: TableName) -> None:
        if not loads.table_exists(con, name):
            raise TableNotFound(
                f"Not found: Table {name.project}:{name.dataset}.{name.table} was not found in "
                f"the local warehouse {self.path} (load it first, e.g. with "
                "client.load_table_from_dataframe)"
            )

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
        con = self._connect()
        try:
            table, affected = pa.table({}), None
            for st in statements:
                for name in st.reads:
                    self._check_exists(con, name)
                for name in st.creates:
                    self._ensure_dataset(con, name)
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
            destination = None
            if config.destination is not None:
                destination = self._write_result(con, table, config)
            return QueryJob(query, RowIterator(table), affected, destination)
        finally:
            con.close()

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
        unsupported = explain_duckdb_error(err)
        if unsupported is not None:
            return unsupported
        message = str(err).splitlines()[0]
        return exceptions.BadRequest(
            f"the local warehouse could not run the query: {message}\n"
            f"BigQuery SQL: {st.bigquery.strip()}\nas DuckDB SQL: {st.duckdb}"
        )

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
        con = self._connect()
        try:
            explicit = config.schema or None
            if explicit is None and not config.autodetect and loads.table_exists(con, target):
                explicit = self.get_table(target).schema
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
        finally:
            con.close()
        return self._load(staged, target, config)

    def _load(self, staged: loads.Staged, destination, config) -> LoadJob:
        target = table_name(destination, self.project)
        job = LoadJob(bigquery.TableReference.from_string(str(target)))
        con = self._connect()
        try:
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
                    err = exceptions.BadRequest(f"loading {target} failed: {err}")
                job.error_result = {"reason": "invalid", "message": str(err)}
                job._exception = err
                return job
            job.output_rows = prepared.rows
            return job
        finally:
            con.close()

    # -- tables and datasets ------------------------------------------------------------------

    def get_table(self, table) -> bigquery.Table:
        name = table_name(table, self.project)
        con = self._connect()
        try:
            self._check_exists(con, name)
            arrow = con.sql(f"SELECT * FROM {name.duckdb} LIMIT 0").to_arrow_table()
            nullable = dict(
                con.execute(
                    "SELECT column_name, is_nullable FROM duckdb_columns() "
                    "WHERE schema_name = ? AND table_name = ?",
                    [name.schema, name.table],
                ).fetchall()
            )
            rows = con.execute(f"SELECT count(*) FROM {name.duckdb}").fetchall()[0][0]
        finally:
            con.close()
        fields = [
            loads.schema_field(f.name, f.type, nullable.get(f.name, True)) for f in arrow.schema
        ]
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

    def list_rows(self, table, max_results: int | None = None, **kwargs) -> RowIterator:
        name = table_name(table, self.project)
        con = self._connect()
        try:
            self._check_exists(con, name)
            limit = f" LIMIT {int(max_results)}" if max_results is not None else ""
            data = con.sql(f"SELECT * FROM {name.duckdb}{limit}").to_arrow_table()
            total = con.execute(f"SELECT count(*) FROM {name.duckdb}").fetchall()[0][0]
        finally:
            con.close()
        return RowIterator(data, total_rows=total)

    def delete_table(self, table, not_found_ok: bool = False, **kwargs) -> None:
        name = table_name(table, self.project)
        con = self._connect()
        try:
            if not loads.table_exists(con, name):
                if not_found_ok:
                    return
                self._check_exists(con, name)
            con.execute(f"DROP TABLE {name.duckdb}").fetchall()
        finally:
            con.close()

    def create_dataset(self, dataset, exists_ok: bool = False, **kwargs) -> bigquery.Dataset:
        project, dataset_id = dataset_name(dataset, self.project)
        schema = f"{project}.{dataset_id}"
        con = self._connect()
        try:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", [schema]
            ).fetchall()[0][0]
            if exists and not exists_ok:
                raise exceptions.Conflict(f"Already Exists: Dataset {project}:{dataset_id}")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}").fetchall()
        finally:
            con.close()
        result = bigquery.Dataset(f"{project}.{dataset_id}")
        result.location = self.location
        return result

    def delete_dataset(
        self, dataset, delete_contents: bool = False, not_found_ok: bool = False, **kwargs
    ):
        project, dataset_id = dataset_name(dataset, self.project)
        con = self._connect()
        try:
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
        finally:
            con.close()

    def list_tables(self, dataset, **kwargs) -> list[bigquery.TableReference]:
        project, dataset_id = dataset_name(dataset, self.project)
        con = self._connect()
        try:
            names = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                "ORDER BY table_name",
                [f"{project}.{dataset_id}"],
            ).fetchall()
        finally:
            con.close()
        return [
            bigquery.TableReference.from_string(f"{project}.{dataset_id}.{n}") for (n,) in names
        ]

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own DuckDB connection."""
