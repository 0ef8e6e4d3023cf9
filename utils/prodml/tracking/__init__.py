"""MLflow, run locally: the stand-in for Vertex AI Experiments, ML Metadata and the Model Registry.

Plumbing only; lessons call MLflow's own API (``mlflow.start_run``, ``log_params``,
``search_runs``, ``MlflowClient().set_registered_model_alias``...). This package decides where
the store lives and does the few jobs every caller would otherwise repeat:

- :func:`use` points MLflow at the run folder's store (SQLite ``<run folder>/mlflow/mlflow.db``,
  artifacts under ``<storage>/mlflow``; ``PRODML_TRACKING_URI`` names another) and sets the
  active experiment; a store written by an older MLflow is refused with the command that
  migrates it;
- :func:`start` runs ``mlflow server`` (the UI and REST API) on 127.0.0.1 over that store, its
  log in ``<run folder>/logs/``; ``.stop()`` ends it;
- :func:`log_dataframe` records the rows a run read (query or file, row count, a content
  digest) and :func:`code_version` the code it ran;
- :func:`log_savedmodel` logs a SavedModel and registers it as a new model version;
- :func:`resolve` turns ``models:/name@alias``, ``models:/name/<version>`` or
  ``models:/name/latest`` into the registered SavedModel folder (``prodml serve`` uses it).

Importing this package does not import MLflow; the functions do. It switches MLflow's usage
telemetry off (``MLFLOW_DISABLE_TELEMETRY``) for this process and the ones it starts; a
notebook that imports ``mlflow`` before ``prodml`` sets that variable itself. MLflow is the ``tracking``
extra (``pip install 'prodml[tracking]'``); :func:`available` says whether it is installed.
"""

from __future__ import annotations

import importlib.util
import os

# MLflow 3 reports usage to its makers and keeps an installation id in ~/.config/mlflow unless
# told not to, and reads this once, when it is first imported: the workbook runs offline and
# writes nothing outside the run folder.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from prodml.tracking.inputs import (
    GIT_COMMIT_TAG,
    PACKAGE_VERSION_TAG,
    code_version,
    content_digest,
    log_dataframe,
    query_source,
)
from prodml.tracking.registry import (
    ModelNotFound,
    ResolvedModel,
    is_model_uri,
    log_savedmodel,
    resolve,
)
from prodml.tracking.server import TrackingServer, start
from prodml.tracking.store import (
    DEFAULT_EXPERIMENT,
    TRACKING_URI_ENV,
    StoreSchemaError,
    artifact_root,
    ensure_experiment,
    store_path,
    tracking_uri,
    use,
)

#: ``PRODML_TRACKING=off`` (or 0, false, no) switches the trainer's tracking off
TRACKING_ENV = "PRODML_TRACKING"


def available() -> bool:
    """True when MLflow is installed (the ``tracking`` extra)."""
    return importlib.util.find_spec("mlflow") is not None


def enabled(requested: bool | None = None) -> bool:
    """Whether a job should track: ``requested`` when given (True without MLflow installed is
    an error naming the extra), else on unless ``PRODML_TRACKING`` says off, and only when
    MLflow is installed."""
    if requested is None:
        value = os.environ.get(TRACKING_ENV, "").strip().lower()
        if value in ("0", "off", "false", "no"):
            return False
        if value not in ("", "1", "on", "true", "yes"):
            raise ValueError(f"{TRACKING_ENV}={value!r}: use on or off")
        return available()
    if requested and not available():
        raise ModuleNotFoundError(
            "tracking needs MLflow: pip install 'prodml[tracking]' (or switch tracking off)"
        )
    return bool(requested)


__all__ = [
    "DEFAULT_EXPERIMENT",
    "GIT_COMMIT_TAG",
    "PACKAGE_VERSION_TAG",
    "TRACKING_ENV",
    "TRACKING_URI_ENV",
    "ModelNotFound",
    "ResolvedModel",
    "StoreSchemaError",
    "TrackingServer",
    "artifact_root",
    "available",
    "code_version",
    "content_digest",
    "enabled",
    "ensure_experiment",
    "is_model_uri",
    "log_dataframe",
    "log_savedmodel",
    "query_source",
    "resolve",
    "start",
    "store_path",
    "tracking_uri",
    "use",
]
