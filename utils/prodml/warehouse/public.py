"""Public tables: registered by name, generated into the warehouse on first reference.

A public table (``bigquery-public-data.samples.natality``) is *registered* with the warehouse as
a table id and the dotted name of a zero-argument generator returning its rows at the default
size (a pandas DataFrame or a pyarrow Table; non-nullable Arrow fields become REQUIRED columns).
The warehouse never imports the generators' package: it resolves the names when a query first
names the table. Registrations come from

* the ``prodml.public_tables`` entry-point group of installed packages (``pyproject.toml``:
  ``"bigquery-public-data.samples.natality" = "prodml.datasets.natality:public_table"``), and
* ``PRODML_PUBLIC_TABLES`` in the service's environment: ``id=module:function`` pairs separated
  by commas (tests and one-off tables).

The first reference generates the table (once: the service does it under its write lock) and
writes one line to the service's log. SQL may not change a public table (Access Denied, as on
BigQuery); load jobs may (that is how ``prodml.datasets.natality.load`` sizes it).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from importlib import metadata

import pyarrow as pa

from prodml.warehouse import catalog
from prodml.warehouse.errors import AccessDenied
from prodml.warehouse.names import PUBLIC_PROJECT, TableName, quote, table_name

__all__ = ["GROUP", "ENV", "PublicTables", "access_denied"]

GROUP = "prodml.public_tables"
ENV = "PRODML_PUBLIC_TABLES"


def access_denied(name: TableName) -> AccessDenied:
    """BigQuery's refusal to change a public dataset or table."""
    what = "Table" if name.table else "Dataset"
    return AccessDenied(
        f"Access Denied: {what} {name.bigquery}: User does not have permission to modify "
        f"{what.lower()} {name.bigquery} (a public dataset is read-only; write a copy in your "
        "own dataset, e.g. CREATE TABLE mydataset.t AS SELECT ...)"
    )


def _resolve(target: str):
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


class PublicTables:
    """The registered public tables (table id -> ``module:function``), and which of them the
    warehouse file already holds."""

    def __init__(self, generators: dict[str, str]):
        self.generators = {str(table_name(t, PUBLIC_PROJECT)): g for t, g in generators.items()}
        self.projects = {PUBLIC_PROJECT} | {t.split(".")[0] for t in self.generators}
        self._present: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    @classmethod
    def registered(cls) -> PublicTables:
        """The entry points of :data:`GROUP` and the pairs in ``$PRODML_PUBLIC_TABLES``."""
        found = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
        for pair in filter(None, os.environ.get(ENV, "").split(",")):
            table, _, target = pair.partition("=")
            found[table.strip()] = target.strip()
        return cls(found)

    def is_public(self, name: TableName) -> bool:
        """Whether ``name`` (a table or a dataset) belongs to a read-only public project."""
        return name.project in self.projects

    def tables_of(self, project: str, dataset: str) -> list[TableName]:
        """The registered tables of one dataset."""
        prefix = f"{project}.{dataset}."
        return [table_name(t, project) for t in self.generators if t.startswith(prefix)]

    def ensure(self, warehouse, names: list[TableName]) -> None:
        """Generate the registered tables among ``names`` the warehouse does not hold yet."""
        if (
            not self.generators
            and not self._warned
            and any(n.project == PUBLIC_PROJECT for n in names)
        ):
            self._warned = True  # a query names a public table, and none is registered
            print(
                f"prodml warehouse: no public tables are registered (entry points {GROUP}, "
                f"${ENV}): is the prodml package installed (pip install -e .)?",
                file=sys.stderr,
                flush=True,
            )
        wanted = {str(n) for n in names} & set(self.generators)
        if not wanted - self._present:
            return
        with self._lock, warehouse.writing() as cur:
            for table in sorted(wanted - self._present):
                name = table_name(table, PUBLIC_PROJECT)
                if not catalog.table_exists(cur, name):
                    self._generate(cur, name)
                self._present.add(table)

    def forget(self, name: TableName) -> None:
        """A public table was replaced (a load job): check it again on next reference."""
        self._present.discard(str(name))

    def _generate(self, cur, name: TableName) -> None:
        print(
            f"prodml warehouse: generating the public table {name} (synthetic, deterministic) "
            "into this run folder's warehouse, once",
            file=sys.stderr,
            flush=True,
        )
        data = _resolve(self.generators[str(name)])()
        table = (
            data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        )
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}")
        cur.register("__public", table)
        try:
            cur.execute("BEGIN")
            cur.execute(f"CREATE OR REPLACE TABLE {name.duckdb} AS SELECT * FROM __public")
            for field in table.schema:
                if not field.nullable:
                    cur.execute(
                        f"ALTER TABLE {name.duckdb} ALTER COLUMN {quote(field.name)} SET NOT NULL"
                    )
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.unregister("__public")
