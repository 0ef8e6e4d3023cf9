"""The warehouse's catalogue: datasets, tables and their schemas, and ``INFORMATION_SCHEMA``.

This is the one home of ``INFORMATION_SCHEMA``: :func:`information_schema` rewrites a query's
reference to ``dataset.INFORMATION_SCHEMA.COLUMNS`` (or ``TABLES``, or
``[project|region].INFORMATION_SCHEMA.SCHEMATA``) into a view name, and :func:`view_table`
answers that view, in BigQuery's columns, from DuckDB's own catalogue when the statement runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from prodml.warehouse.errors import InvalidQuery
from prodml.warehouse.names import TableName, canonical_project
from prodml.warehouse.types import schema_from_arrow, standard_type

__all__ = [
    "CATALOG_VIEWS",
    "CatalogView",
    "information_schema",
    "view_table",
    "table_fields",
    "table_exists",
    "dataset_exists",
    "table_kind",
    "list_tables",
    "list_datasets",
]

CATALOG_VIEWS = ("COLUMNS", "TABLES", "SCHEMATA")


@dataclass(frozen=True)
class CatalogView:
    """``INFORMATION_SCHEMA.<view>`` of a dataset (COLUMNS, TABLES) or of a project (SCHEMATA),
    registered under ``name`` while the statement runs."""

    name: str
    view: str
    project: str
    dataset: str | None


def information_schema(table: exp.Table, project: str, index: int) -> CatalogView | None:
    """If ``table`` is an ``INFORMATION_SCHEMA`` view, point it at the view's registered name
    and return the view; otherwise None."""
    parts = table.name.split(".")
    if len(parts) != 2 or parts[0].upper() != "INFORMATION_SCHEMA":
        return None
    view = parts[1].upper()
    if view not in CATALOG_VIEWS:
        raise InvalidQuery(
            f"INFORMATION_SCHEMA.{view} is not available in the local warehouse (COLUMNS, "
            "TABLES and SCHEMATA are)"
        )
    name = f"__information_schema_{index}"
    if view == "SCHEMATA":  # project.INFORMATION_SCHEMA.SCHEMATA or `region-us`.INFORMATION_...
        owner = table.db or project
        owner = project if owner.lower().startswith("region-") else canonical_project(owner)
        target = CatalogView(name, view, owner, None)
    elif not table.db:
        raise InvalidQuery(
            f"INFORMATION_SCHEMA.{view} needs a dataset: dataset.INFORMATION_SCHEMA.{view}"
        )
    else:
        target = CatalogView(name, view, canonical_project(table.catalog or project), table.db)
    if not table.alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(view)))
    table.set("catalog", None)
    table.set("db", None)
    table.set("this", exp.to_identifier(name, quoted=True))
    return target


# -- the catalogue, read from DuckDB -------------------------------------------------------------


def table_exists(cur, name: TableName) -> bool:
    """Whether the table (or view) exists."""
    return bool(
        cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
            "AND table_name = ?",
            [name.schema, name.table],
        ).fetchall()[0][0]
    )


def dataset_exists(cur, name: TableName) -> bool:
    """Whether the dataset ``name.project.name.dataset`` exists."""
    return bool(
        cur.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
            [name.schema],
        ).fetchall()[0][0]
    )


def table_kind(cur, name: TableName) -> str:
    """``TABLE`` or ``VIEW``."""
    rows = cur.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = ?",
        [name.schema, name.table],
    ).fetchall()
    return "VIEW" if rows and rows[0][0] == "VIEW" else "TABLE"


def table_fields(cur, name: TableName) -> list[dict]:
    """The table's BigQuery schema (REST fields); NOT NULL columns are REQUIRED."""
    arrow = cur.sql(f"SELECT * FROM {name.duckdb} LIMIT 0").to_arrow_table().schema
    required = {
        r[0]
        for r in cur.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
            "AND NOT is_nullable",
            [name.schema, name.table],
        ).fetchall()
    }
    return schema_from_arrow(arrow, required)


def list_tables(cur, dataset: TableName) -> list[tuple[str, str]]:
    """``(table, TABLE|VIEW)`` of a dataset, by name."""
    rows = cur.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = ? "
        "ORDER BY table_name",
        [dataset.schema],
    ).fetchall()
    return [(t, "VIEW" if k == "VIEW" else "TABLE") for t, k in rows]


def list_datasets(cur, project: str) -> list[str]:
    """The datasets of a project, by name."""
    prefix = f"{project}."
    rows = cur.execute(
        "SELECT schema_name FROM information_schema.schemata WHERE starts_with(schema_name, ?) "
        "ORDER BY schema_name",
        [prefix],
    ).fetchall()
    return [r[0][len(prefix) :] for r in rows]


def _strings(values: list) -> pa.Array:
    return pa.array(values, pa.string())


def view_table(cur, view: CatalogView, location: str) -> pa.Table:
    """The rows of an ``INFORMATION_SCHEMA`` view, in BigQuery's columns."""
    if view.view == "SCHEMATA":
        names = list_datasets(cur, view.project)
        n = len(names)
        return pa.table(
            {
                "catalog_name": _strings([view.project] * n),
                "schema_name": _strings(names),
                "location": _strings([location] * n),
            }
        )
    dataset = TableName(view.project, view.dataset, "")
    tables = list_tables(cur, dataset)
    if view.view == "TABLES":
        n = len(tables)
        return pa.table(
            {
                "table_catalog": _strings([view.project] * n),
                "table_schema": _strings([view.dataset] * n),
                "table_name": _strings([t for t, _ in tables]),
                "table_type": _strings(
                    ["VIEW" if k == "VIEW" else "BASE TABLE" for _, k in tables]
                ),
                "is_insertable_into": _strings(["NO" if k == "VIEW" else "YES" for _, k in tables]),
                "is_typed": _strings(["NO"] * n),
            }
        )
    rows = [
        (table, i + 1, field)
        for table, _ in tables
        for i, field in enumerate(table_fields(cur, TableName(view.project, view.dataset, table)))
    ]
    n = len(rows)
    return pa.table(
        {
            "table_catalog": _strings([view.project] * n),
            "table_schema": _strings([view.dataset] * n),
            "table_name": _strings([t for t, _, _ in rows]),
            "column_name": _strings([f["name"] for _, _, f in rows]),
            "ordinal_position": pa.array([i for _, i, _ in rows], pa.int64()),
            "is_nullable": _strings(["NO" if f["mode"] == "REQUIRED" else "YES" for *_, f in rows]),
            "data_type": _strings([standard_type(f) for _, _, f in rows]),
            "is_hidden": _strings(["NO"] * n),
            "is_partitioning_column": _strings(["NO"] * n),
        }
    )
