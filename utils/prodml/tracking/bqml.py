"""BigQuery ML's ``model_registry = 'VERTEX_AI'`` on the run folder's MLflow registry.

``CREATE MODEL ... OPTIONS(model_registry='VERTEX_AI', vertex_ai_model_id='babyweight',
vertex_ai_model_version_aliases=['champion'])`` trains the model in the warehouse and calls
:func:`register` (the ``vertex_ai`` entry point of ``prodml.model_registries``, so the warehouse,
a lower layer, never imports this package): the model is exported as a TensorFlow SavedModel
(``prodml.warehouse.ml.export``: its preprocessing and linear layer behind one serving
signature over the raw columns), logged in a run of the ``bigquery-ml`` experiment and
registered as a new version of ``vertex_ai_model_id`` (default: the BigQuery model id), the
aliases pointing at it. Then ``prodml serve --model m=models:/babyweight@champion`` serves what
``ML.PREDICT`` scores.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prodml import config
from prodml.tracking.registry import log_savedmodel
from prodml.tracking.store import use

#: the experiment whose runs hold the exported BigQuery ML models
EXPERIMENT = "bigquery-ml"


def register(model):
    """Export ``model`` (a trained ``prodml.warehouse.ml`` model) and register it as a new
    version of its ``vertex_ai_model_id``; returns the MLflow ModelVersion."""
    from prodml.warehouse.ml.errors import InvalidQuery
    from prodml.warehouse.ml.export import export_savedmodel

    options = model.options
    name = options.vertex_ai_model_id or model.name.model_id
    try:
        import mlflow
    except ModuleNotFoundError:
        raise InvalidQuery(
            "model_registry='VERTEX_AI' registers the model in MLflow, which is not installed in "
            "the warehouse service's Python (pip install 'prodml[tracking]')"
        ) from None
    exports = config.run_path("bigquery_ml", "exports", name)  # one folder per training
    exports.mkdir(exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{model.name.model_id}-", dir=exports)
    path = export_savedmodel(model, Path(folder) / "saved_model")
    use(EXPERIMENT)
    with mlflow.start_run(run_name=model.name.path):
        mlflow.set_tags(
            {"bigquery_model": model.name.path, "model_type": options.model_type,
             "label": options.label}
        )  # fmt: skip
        version = log_savedmodel(path, name, bigquery_model=model.name.path)
    client = mlflow.MlflowClient()
    for alias in options.vertex_ai_model_version_aliases:
        client.set_registered_model_alias(name, alias, version.version)
    return version


__all__ = ["EXPERIMENT", "register"]
