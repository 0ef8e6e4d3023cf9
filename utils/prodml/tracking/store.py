"""Where the MLflow store lives, and pointing MLflow at it.

The tracking and registry store is a SQLite file in the run folder
(``<run folder>/mlflow/mlflow.db``); run artifacts go under the run folder's object storage
(``<storage>/mlflow``: a local folder, or ``gs://`` when storage is configured so).
``PRODML_TRACKING_URI`` points the workbook at another store instead (a team's tracking
server). MLflow's own ``MLFLOW_TRACKING_URI`` is not read here: ``mlflow.set_tracking_uri``
sets it for subprocesses, so it names the last store used, not the user's choice.

MLflow puts artifacts of an experiment it creates on its own (``mlflow.set_experiment`` with a
new name, or the ``Default`` experiment) under ``./mlruns`` of the current folder unless told
otherwise. So the store is created here with the run folder's artifact root (the ``Default``
experiment's location is then under the run folder) and :func:`use` creates experiments with
their artifact location under it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from prodml import config, storage

DB_NAME = "mlflow.db"
#: the experiment the trainer logs to unless told otherwise
DEFAULT_EXPERIMENT = "babyweight"
#: a tracking URI that replaces the run folder's store
TRACKING_URI_ENV = "PRODML_TRACKING_URI"


class StoreSchemaError(RuntimeError):
    """The store was written by an older MLflow: its schema must be migrated first."""


def store_path() -> Path:
    """The SQLite file of the local store: ``<run folder>/mlflow/mlflow.db``."""
    return config.run_path("mlflow", DB_NAME, mkdir=False)


def tracking_uri() -> str:
    """``PRODML_TRACKING_URI`` when the user set one, else the run folder's SQLite store."""
    return os.environ.get(TRACKING_URI_ENV, "").strip() or f"sqlite:///{store_path()}"


def artifact_root() -> str:
    """Where run artifacts go: ``<storage>/mlflow`` as a URI MLflow takes."""
    root = storage.path("mlflow")
    return root if "://" in root else Path(root).as_uri()


def local_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI or a plain path; None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path if parsed.scheme else uri))
    return None


def check_schema(db: Path) -> None:
    """Refuse a store whose schema is older (or newer) than this MLflow's, naming the command
    that migrates it. A missing or empty file is fine: it is created at the current schema."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    from mlflow.store.db.utils import _get_latest_schema_revision

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        found = (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if "alembic_version" in tables
            else None
        )
    if not tables:
        return
    import mlflow

    head = _get_latest_schema_revision()
    current = found[0] if found else None
    if current != head:
        raise StoreSchemaError(
            f"the MLflow store {db} has schema version {current or 'unknown'}, MLflow "
            f"{mlflow.__version__} needs {head}. Back it up (cp {db} {db}.bak), then migrate it "
            f"with:\n    mlflow db upgrade sqlite:///{db}\n"
            "or point PRODML_RUN_DIR at a fresh run folder."
        )


def _create_store(db: Path) -> None:
    """Create the SQLite store (current schema) with the run folder's artifact root, so that
    even the Default experiment keeps its artifacts in the run folder."""
    from mlflow.store.model_registry.sqlalchemy_store import (
        SqlAlchemyStore as RegistryStore,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{db}"
    store = SqlAlchemyStore(uri, artifact_root())
    RegistryStore(uri)
    store.engine.dispose()


def use(experiment: str | None = DEFAULT_EXPERIMENT) -> str | None:
    """Point MLflow (tracking and registry) at this run's store and make ``experiment`` the
    active one, creating it with its artifacts under the run folder. Returns its id (None when
    ``experiment`` is None: only the store is set).

    Refuses (:class:`StoreSchemaError`) a store from an older MLflow, naming the command that
    migrates it.
    """
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        check_schema(db)
        if not db.is_file() or db.stat().st_size == 0:
            _create_store(db)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if experiment is None:
        return None
    return mlflow.set_experiment(experiment_id=ensure_experiment(experiment)).experiment_id


def ensure_experiment(name: str) -> str:
    """The id of experiment ``name`` in the current store, created with its artifact location
    under the run folder (``<storage>/mlflow/<name>``) when it does not exist yet."""
    from mlflow import MlflowClient

    if not name or not name.strip():
        raise ValueError("an experiment needs a non-empty name")
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = f"{artifact_root().rstrip('/')}/{_slug(name)}"
    return client.create_experiment(name, artifact_location=location)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


__all__ = [
    "DEFAULT_EXPERIMENT",
    "StoreSchemaError",
    "TRACKING_URI_ENV",
    "artifact_root",
    "check_schema",
    "ensure_experiment",
    "local_path",
    "store_path",
    "tracking_uri",
    "use",
]
