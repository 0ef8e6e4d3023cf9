"""The warehouse engine: the one DuckDB connection of a run folder, and BigQuery SQL on it.

The service process (:mod:`~prodml.warehouse.server`) holds one :class:`Warehouse`. Requests run
on worker threads, each with its own cursor of the one connection, so reads run side by side;
writes (DML, DDL, loads, streaming inserts, public tables being generated) take turns on a lock,
one at a time, each statement its own transaction. Every write turn, when it ends, moves
:attr:`Warehouse.generation` on: an answer computed at one generation is still the answer while
the generation stands (BigQuery's query cache, :mod:`~prodml.warehouse.cache`, keys on it).
Nothing here is HTTP: the REST layer (:mod:`~prodml.warehouse.rest`) turns requests into these
calls.

BigQuery ML: statements that are BigQuery ML (``CREATE [OR REPLACE] MODEL``, ``DROP MODEL``,
queries calling ``ML.<function>(MODEL ...)``) are handed to the engine named by
:data:`ML_ENGINE`, a module resolved when first needed (see :class:`MLContext`). Without one,
they are refused in BigQuery's words.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from prodml.warehouse import catalog, loads, sql
from prodml.warehouse.encoding import Rows, fetch
from prodml.warehouse.errors import Invalid, NotFound
from prodml.warehouse.functions import register_functions
from prodml.warehouse.messages import duckdb_error, not_found_table
from prodml.warehouse.names import TableName, quote
from prodml.warehouse.params import QueryParameters
from prodml.warehouse.public import PublicTables, access_denied

__all__ = ["ML_ENGINE", "MLContext", "QueryResult", "Warehouse"]

#: The BigQuery ML engine: a module path, imported when a BigQuery ML statement first arrives
#: (``PRODML_WAREHOUSE_ML_ENGINE`` overrides it; empty: none). The module provides
#: ``is_model_statement(tree)``, ``execute_model_statement(tree, ctx)`` (a pyarrow Table or
#: None), ``has_ml_functions(tree)``, ``materialize_ml_functions(tree, ctx)`` (the tree with each
#: ``ML.*`` table function replaced by a relation it made on ``ctx.con``, named by a bare name
#: starting ``__``, which the translation leaves as it is), and for the
#: ``models`` REST resources ``list_models(con, project, dataset)``, ``get_model(con, project,
#: dataset, model)``, ``delete_model(...)`` and optionally ``patch_model(..., body)``.
ML_ENGINE = os.environ.get("PRODML_WAREHOUSE_ML_ENGINE", "prodml.warehouse.ml")


@dataclass
class MLContext:
    """What the BigQuery ML engine is handed with a statement: the connection (a cursor of the
    warehouse's one connection, inside its write turn for CREATE/DROP MODEL), the job's default
    project and dataset, :meth:`query` to run a BigQuery SELECT through the warehouse's own
    translation, and :meth:`relation` to hand the statement an answer the engine computed."""

    con: duckdb.DuckDBPyConnection
    project: str
    dataset: str | None
    warehouse: Warehouse
    relations: list[str] = field(default_factory=list)

    def query(self, select) -> pa.Table:
        """Run a BigQuery SELECT (a sqlglot expression or text) and return its rows."""
        text = select if isinstance(select, str) else select.sql(dialect="bigquery")
        run = self.warehouse.run(text, self.project, self.dataset, cursor=self.con, arrow=True)
        return run.table

    def relation(self, table: pa.Table) -> str:
        """Register ``table`` on :attr:`con` for the rest of this statement; its name, a bare
        name starting ``__`` (which the translation leaves as it is). Unregistered when the
        statement ends (:meth:`release`)."""
        name = f"__ml_{uuid.uuid4().hex[:16]}"
        self.con.register(name, table)
        self.relations.append(name)
        return name

    def release(self) -> None:
        """Unregister the relations this statement registered."""
        while self.relations:
            self.con.unregister(self.relations.pop())


@dataclass
class QueryResult:
    """What a query job produced: the last statement's rows (None for DDL and DML: an Arrow
    table, or :class:`~prodml.warehouse.encoding.Rows` for a few), its type, the rows DML
    changed and the table DDL named."""

    rows: pa.Table | Rows | None
    statement_type: str
    affected: int | None = None
    ddl_target: TableName | None = None
    cacheable: bool = False  # one statement whose answer BigQuery would cache

    @property
    def table(self) -> pa.Table | None:
        """The rows as an Arrow table."""
        return self.rows.to_arrow() if isinstance(self.rows, Rows) else self.rows


_CASCADE = re.compile(r"\bCASCADE\s*;?\s*$", re.IGNORECASE)


def _writes(statement: sql.Statement) -> bool:
    return not statement.is_query or (statement.is_ml and statement.statement_type != "SELECT")


class Warehouse:
    """The run folder's DuckDB file, answering BigQuery SQL."""

    def __init__(
        self,
        path,
        location: str = "US",
        public: PublicTables | None = None,
        ml_engine: str = ML_ENGINE,
    ):
        self.path = Path(path)
        self.location = location
        self.public = public if public is not None else PublicTables.registered()
        self.con = duckdb.connect(str(self.path))
        self._setup(self.con)
        register_functions(self.con)
        self._write = threading.RLock()
        #: moved on when each write turn ends (committed or not): the data's version
        self.generation = 0
        self._local = threading.local()
        self._ml_name, self._ml, self._ml_resolved = ml_engine, None, False

    @staticmethod
    def _setup(con) -> None:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # no one watches the service's stdout

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor of the one connection."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self.con.cursor()
            self._setup(cur)
        return cur

    @contextlib.contextmanager
    def _turn(self):
        """The write turn; the generation moves on when it ends (after the commit: an answer
        read before the move is filed under the old generation, never the new)."""
        with self._write:
            try:
                yield
            finally:
                self.generation += 1

    @contextlib.contextmanager
    def writing(self):
        """This thread's cursor, holding the write turn."""
        with self._turn():
            yield self.cursor()

    def close(self) -> None:
        with self._write:
            self.con.close()

    def ml_engine(self):
        """The BigQuery ML engine module, or None when there is none."""
        if not self._ml_resolved:
            self._ml_resolved = True
            if self._ml_name:
                try:
                    self._ml = importlib.import_module(self._ml_name)
                except ModuleNotFoundError as err:
                    if err.name is None or not self._ml_name.startswith(err.name):
                        raise
        return self._ml

    # -- queries ---------------------------------------------------------------------------------

    def run(self, text: str, project: str, dataset: str | None = None,
            params: QueryParameters | None = None, cursor=None,
            arrow: bool = False) -> QueryResult:  # fmt: skip
        """Run a BigQuery script; the result of its last statement (``arrow``: rows as an Arrow
        table with DuckDB's types, however few)."""
        statements = sql.translate(text, project, dataset, self.ml_engine())
        for st in statements:
            for name in st.writes:
                if self.public.is_public(name):
                    raise access_denied(name)
        self.public.ensure(self, self._public_reads(statements))
        params = params or QueryParameters()
        writing = any(_writes(st) for st in statements)
        turn = self._turn() if writing and cursor is None else contextlib.nullcontext()
        with turn:
            cur = cursor or self.cursor()
            result = QueryResult(None, "SCRIPT")
            for st in statements:
                result = self._statement(cur, st, params, project, dataset, arrow)
        if len(statements) > 1:
            result.statement_type = "SCRIPT"
        else:
            result.cacheable = statements[0].cacheable
        return result

    def _public_reads(self, statements) -> list[TableName]:
        names = [n for st in statements for n in st.reads]
        for st in statements:
            for view in st.catalog:
                if view.dataset:
                    names += self.public.tables_of(view.project, view.dataset)
        return names

    def _statement(self, cur, st: sql.Statement, params, project, dataset, arrow=False):
        if not st.is_ml:
            return self._sql_statement(cur, st, params, project, dataset, arrow)
        ml, ctx = self.ml_engine(), MLContext(cur, project, dataset, self)
        try:
            tree = st.tree.copy()
            if ml.is_model_statement(tree):
                table = ml.execute_model_statement(tree, ctx)
                return QueryResult(table, st.statement_type)
            tree = ml.materialize_ml_functions(tree, ctx)
            st = sql.translate_tree(tree, st.bigquery, sql.Context(project, dataset))
            return self._sql_statement(cur, st, params, project, dataset, arrow)
        finally:
            ctx.release()

    def _sql_statement(self, cur, st: sql.Statement, params, project, dataset, arrow=False):
        dropped = self._dropped_dataset(cur, st)
        for name in st.creates:
            self.ensure_dataset(cur, name, project)
        for view in st.catalog:
            cur.register(view.name, catalog.view_table(cur, view, self.location))
        values = params.bind(st.parameters, st.positional)
        try:
            cur.execute(st.duckdb, values)
            if st.is_query:
                return QueryResult(fetch(cur, small=not arrow), "SELECT")
            rows = cur.fetchall()
        except duckdb.Error as err:
            raise duckdb_error(err, st, self.location) from None
        finally:
            for view in st.catalog:
                cur.unregister(view.name)
        affected = rows[0][0] if rows and rows[0] and isinstance(rows[0][0], int) else None
        target = st.writes[0] if st.writes else None
        if dropped is not None:
            self.drop_models(cur, dropped)
        return QueryResult(None, st.statement_type, affected, target)

    # -- BigQuery ML models in a dataset ---------------------------------------------------------

    def _dropped_dataset(self, cur, st: sql.Statement) -> TableName | None:
        """``DROP SCHEMA`` of a dataset: the dataset, after refusing one that still holds
        models unless ``CASCADE`` (DuckDB sees no models in the schema: they are the engine's)."""
        if st.statement_type != "DROP_SCHEMA" or not st.writes:
            return None
        name = st.writes[0]
        if not _CASCADE.search(st.duckdb):
            self.refuse_drop_with_models(cur, name)
        return name

    def models_of(self, cur, dataset: TableName) -> list[dict]:
        """The BigQuery ML models of a dataset (none without an ML engine)."""
        ml = self.ml_engine()
        return ml.list_models(cur, dataset.project, dataset.dataset) if ml else []

    def refuse_drop_with_models(self, cur, dataset: TableName) -> None:
        """BigQuery's answer to dropping a dataset that holds models without its contents."""
        if catalog.dataset_exists(cur, dataset) and self.models_of(cur, dataset):
            raise Invalid(
                f"Dataset {dataset.project}:{dataset.dataset} is still in use (it holds models): "
                "drop it with CASCADE, or delete it with delete_contents=True"
            )

    def drop_models(self, cur, dataset: TableName) -> None:
        """Delete the models of a dataset that was dropped with its contents."""
        ml = self.ml_engine()
        for model in self.models_of(cur, dataset):
            ml.delete_model(
                cur, dataset.project, dataset.dataset, model["modelReference"]["modelId"]
            )

    def ensure_dataset(self, cur, name: TableName, project: str) -> None:
        """CREATE needs its dataset: datasets of the job's project must exist (as on BigQuery);
        a dataset of another project is created with its first table."""
        if catalog.dataset_exists(cur, name):
            return
        if name.project == project:
            raise NotFound(
                f"Not found: Dataset {name.project}:{name.dataset} (create it first with "
                f"client.create_dataset({name.dataset!r}, exists_ok=True) or CREATE SCHEMA "
                f"{name.dataset})"
            )
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}")

    # -- writing a result or a load ----------------------------------------------------------------

    def write_table(self, table: pa.Table, target: TableName, project: str,
                    write_disposition: str, create_disposition: str) -> None:  # fmt: skip
        """Write rows (a query's result) to ``target`` with BigQuery's dispositions."""
        if self.public.is_public(target):
            raise access_denied(target)
        with self.writing() as cur:
            self.ensure_dataset(cur, target, project)
            cur.register("__result", table)
            try:
                self.transaction(
                    cur,
                    lambda: loads.write(
                        cur, "SELECT * FROM __result", target, write_disposition, create_disposition
                    ),
                )
            finally:
                cur.unregister("__result")

    @staticmethod
    def transaction(cur, work) -> None:
        """Run ``work()`` in one transaction on ``cur`` (rolled back if it raises)."""
        cur.execute("BEGIN")
        try:
            work()
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise

    def table_or_404(self, cur, name: TableName) -> None:
        """Raise BigQuery's Not found unless the table exists (generating a public one)."""
        self.public.ensure(self, [name])
        if not catalog.table_exists(cur, name):
            raise not_found_table(name, self.location)
