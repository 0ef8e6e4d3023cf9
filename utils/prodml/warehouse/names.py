"""BigQuery names and their DuckDB homes.

A BigQuery table ``project.dataset.table`` lives in DuckDB as ``"project.dataset"."table"``:
one DuckDB schema per BigQuery dataset, named ``<project>.<dataset>``. ``publicdata`` is
BigQuery's alias of ``bigquery-public-data``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PUBLIC_PROJECT",
    "PROJECT_ALIASES",
    "TableName",
    "quote",
    "canonical_project",
    "table_name",
    "dataset_name",
]

#: The project of BigQuery's public datasets: read-only, as on BigQuery.
PUBLIC_PROJECT = "bigquery-public-data"
#: BigQuery's name for the public project, as legacy SQL and the course's notebooks spell it.
PROJECT_ALIASES = {"publicdata": PUBLIC_PROJECT}


def canonical_project(project: str) -> str:
    """The project id an alias stands for (``publicdata`` -> ``bigquery-public-data``)."""
    return PROJECT_ALIASES.get(project, project)


def quote(identifier: str) -> str:
    """A DuckDB quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A BigQuery table ``project.dataset.table`` (``table`` empty: the dataset itself) and its
    DuckDB home ``"project.dataset"."table"``."""

    project: str
    dataset: str
    table: str

    @property
    def schema(self) -> str:
        """The DuckDB schema holding the dataset: ``<project>.<dataset>``."""
        return f"{self.project}.{self.dataset}"

    @property
    def duckdb(self) -> str:
        """The quoted DuckDB table name."""
        return f"{quote(self.schema)}.{quote(self.table)}"

    @property
    def bigquery(self) -> str:
        """BigQuery's own spelling in messages: ``project:dataset.table``."""
        return f"{self.project}:{self.dataset}" + (f".{self.table}" if self.table else "")

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"


def table_name(text: str, project: str) -> TableName:
    """Parse ``project.dataset.table`` / ``project:dataset.table`` / ``dataset.table``."""
    cleaned = str(text).strip().strip("`")
    cleaned = cleaned.replace(":", ".", 1) if cleaned.count(":") == 1 else cleaned
    parts = cleaned.split(".")
    if len(parts) == 2:
        parts = [project, *parts]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"table id {text!r} must be 'project.dataset.table' or 'dataset.table'")
    return TableName(canonical_project(parts[0]), parts[1], parts[2])


def dataset_name(text: str, project: str) -> TableName:
    """Parse ``dataset`` / ``project.dataset`` into a :class:`TableName` with no table."""
    parts = str(text).strip("`").replace(":", ".").split(".")
    if len(parts) == 1:
        parts = [project, *parts]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"dataset id {text!r} must be 'dataset' or 'project.dataset'")
    return TableName(canonical_project(parts[0]), parts[1], "")
