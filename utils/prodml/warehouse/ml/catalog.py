"""The models catalog: one table in the warehouse file, so models live and die with the data.

``"_prodml_bigquery_ml".models`` holds one row per model (project, dataset, model id, a JSON
document, the pickled estimator, creation and modification times in ms). The schema's name has
no dot, so it is no BigQuery dataset (datasets are the DuckDB schemas named
``<project>.<dataset>``) and never shows in a dataset listing.

Writes are serialised in the process by one lock (the warehouse service owns the file and is
the only process that writes it), so two statements creating models at once both land, and two
creating the same model without ``OR REPLACE`` give one model and one "Already Exists".
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import duckdb

from prodml.warehouse.ml.errors import ModelExists, ModelNotFound
from prodml.warehouse.ml.parse import ModelName

if TYPE_CHECKING:
    from prodml.warehouse.ml.model import Model

SCHEMA = "_prodml_bigquery_ml"
TABLE = f'"{SCHEMA}".models'
_WRITES = threading.Lock()


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"').fetchall()
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (project VARCHAR, dataset VARCHAR, model_id VARCHAR, "
        "document VARCHAR, estimator BLOB, created_ms BIGINT, modified_ms BIGINT, "
        "PRIMARY KEY (project, dataset, model_id))"
    ).fetchall()


def _exists_table(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'models'",
        [SCHEMA],
    ).fetchall()[0]
    return bool(row[0])


def dataset_exists(con: duckdb.DuckDBPyConnection, project: str, dataset: str) -> bool:
    """Whether the warehouse has the dataset (the DuckDB schema ``<project>.<dataset>``)."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
        [f"{project}.{dataset}"],
    ).fetchall()[0]
    return bool(row[0])


def exists(con: duckdb.DuckDBPyConnection, name: ModelName) -> bool:
    """Whether the model exists."""
    if not _exists_table(con):
        return False
    row = con.execute(
        f"SELECT count(*) FROM {TABLE} WHERE project = ? AND dataset = ? AND model_id = ?",
        [name.project, name.dataset, name.model_id],
    ).fetchall()[0]
    return bool(row[0])


def save(con: duckdb.DuckDBPyConnection, model: Model, replace: bool) -> None:
    """Store a trained model; without ``replace`` an existing one is a :class:`ModelExists`."""
    document, blob = model.to_record()
    name = model.name
    with _WRITES:
        _ensure(con)
        previous = con.execute(
            f"SELECT created_ms FROM {TABLE} WHERE project = ? AND dataset = ? AND model_id = ?",
            [name.project, name.dataset, name.model_id],
        ).fetchall()
        if previous and not replace:
            raise ModelExists(f"Already Exists: Model {name.path}")
        now = int(time.time() * 1000)
        model.created_ms = model.modified_ms = now  # OR REPLACE makes a new model
        con.execute(
            f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name.project, name.dataset, name.model_id, document, blob, model.created_ms, now],
        ).fetchall()


def update(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """Store a changed model's document in place (``models.patch``): not retrained, same
    creation time, a new modification time."""
    document, _ = model.to_record()
    name = model.name
    with _WRITES:
        model.modified_ms = int(time.time() * 1000)
        changed = con.execute(
            f"UPDATE {TABLE} SET document = ?, modified_ms = ? WHERE project = ? AND dataset = ? "
            "AND model_id = ? RETURNING 1",
            [document, model.modified_ms, name.project, name.dataset, name.model_id],
        ).fetchall()
        if not changed:
            raise ModelNotFound(f"Not found: Model {name.path}")


def load(con: duckdb.DuckDBPyConnection, name: ModelName) -> Model:
    """A stored model, or :class:`ModelNotFound` in BigQuery's words."""
    row = None
    if _exists_table(con):
        row = con.execute(
            f"SELECT document, estimator, created_ms, modified_ms FROM {TABLE} "
            "WHERE project = ? AND dataset = ? AND model_id = ?",
            [name.project, name.dataset, name.model_id],
        ).fetchall()
    if not row:
        raise ModelNotFound(f"Not found: Model {name.path}")
    document, blob, created, modified = row[0]
    from prodml.warehouse.ml.model import Model  # scikit-learn: imported when a model is read

    return Model.from_record(name, document, bytes(blob), created, modified)


def names(con: duckdb.DuckDBPyConnection, project: str, dataset: str) -> list[ModelName]:
    """The models of a dataset, by id."""
    if not _exists_table(con):
        return []
    rows = con.execute(
        f"SELECT model_id FROM {TABLE} WHERE project = ? AND dataset = ? ORDER BY model_id",
        [project, dataset],
    ).fetchall()
    return [ModelName(project, dataset, r[0]) for r in rows]


def delete(con: duckdb.DuckDBPyConnection, name: ModelName, missing_ok: bool = False) -> None:
    """Remove a model; a missing one is :class:`ModelNotFound` unless ``missing_ok``."""
    with _WRITES:
        gone = 0
        if _exists_table(con):
            gone = con.execute(
                f"DELETE FROM {TABLE} WHERE project = ? AND dataset = ? AND model_id = ? RETURNING 1",
                [name.project, name.dataset, name.model_id],
            ).fetchall()
        if not gone and not missing_ok:
            raise ModelNotFound(f"Not found: Model {name.path}")


__all__ = ["SCHEMA", "dataset_exists", "delete", "exists", "load", "names", "save", "update"]
