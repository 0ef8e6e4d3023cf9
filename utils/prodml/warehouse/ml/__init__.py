"""BigQuery ML in the local warehouse: the engine behind a narrow seam.

The warehouse hands this package the BigQuery ML statements of a job and gets back what BigQuery
would answer; models live in the warehouse's DuckDB file (:mod:`.catalog`), trained by
scikit-learn (:mod:`.train`). What runs:

* ``CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name [TRANSFORM(...)] OPTIONS(...) AS query`` for
  ``LINEAR_REG`` and ``LOGISTIC_REG`` (binary and multiclass), with the options listed in
  :mod:`.options` (others refused by name); BigQuery's automatic preprocessing (:mod:`.features`);
  ``DROP MODEL [IF EXISTS]``;
* the table functions ``ML.PREDICT``, ``ML.EVALUATE``, ``ML.TRAINING_INFO``, ``ML.WEIGHTS`` and
  ``ML.FEATURE_INFO`` (:mod:`.functions`), anywhere a table may stand in a query;
* ``OPTIONS(model_registry='VERTEX_AI', vertex_ai_model_id=..., vertex_ai_model_version_aliases=
  [...])``: the trained model exported as a TensorFlow SavedModel (:mod:`.export`: its
  preprocessing and linear layer behind a serving signature over the raw columns) and
  registered in the run folder's MLflow registry, so ``prodml serve --model
  m=models:/<id>@<alias>`` scores what ML.PREDICT scores;
* the preprocessing functions ``ML.FEATURE_CROSS``, ``ML.BUCKETIZE``, ``ML.QUANTILE_BUCKETIZE``,
  ``ML.STANDARD_SCALER`` and ``ML.MIN_MAX_SCALER`` in a query or a ``TRANSFORM`` (:mod:`.preprocess`):
  a ``TRANSFORM`` is fitted once and applied, frozen, at training, ML.EVALUATE and ML.PREDICT.

The seam (``prodml.warehouse.engine.ML_ENGINE`` names this package). The warehouse service
imports it when a script first uses BigQuery ML, parses such a script with :func:`parse` (which
knows the table functions sqlglot's BigQuery dialect lacks) and, for each statement, hands over
an :class:`MLContext`:

* :func:`is_model_statement` -> :func:`execute_model_statement` (``CREATE``/``DROP MODEL``,
  inside the warehouse's write turn; no rows);
* :func:`has_ml_functions` -> :func:`materialize_ml_functions`, then runs the statement it
  returns as ordinary BigQuery SQL: each table function's answer is registered on the
  warehouse's cursor for that statement (``ctx.relation``, a bare name starting ``__ml_``);
* the REST ``models`` resources: :func:`list_models`, :func:`get_model`, :func:`delete_model`,
  :func:`patch_model` (and the warehouse deletes a dataset's models with the dataset).

Errors are the warehouse's (:mod:`.errors`), which the service answers as BigQuery does and
the real client raises as google-api-core's: ``BadRequest`` for a statement BigQuery or this
engine refuses (the message names the option, column or function), ``NotFound`` ("Not found:
Model p:d.m"), ``Conflict`` ("Already Exists: Model p:d.m"). The warehouse serialises writes to
its file; the catalog also takes a lock, so models created at once from threads all land.
"""

from __future__ import annotations

from typing import Protocol

import duckdb
import pyarrow as pa
from sqlglot import exp

# Importing this package is cheap (the service imports it for the first script that uses BigQuery
# ML, and for the models resources): scikit-learn and SciPy, seconds to import, come with the
# modules that train and score (create, functions), imported by the calls that need them.
from prodml.warehouse.ml import catalog
from prodml.warehouse.ml.errors import InvalidQuery, ModelExists, ModelNotFound
from prodml.warehouse.ml.parse import ModelName, has_ml_functions, is_model_statement, parse


class MLContext(Protocol):
    """What the engine needs of the warehouse, for one statement
    (``prodml.warehouse.engine.MLContext``)."""

    con: duckdb.DuckDBPyConnection  # the warehouse's cursor (the models catalog is there)
    project: str  # the job's default project
    dataset: str | None  # the job's default dataset, if any

    def query(self, select: exp.Expression) -> pa.Table:
        """Run a BigQuery SELECT through the warehouse's own translation; its rows."""

    def relation(self, table: pa.Table) -> str:
        """Register rows for the rest of the statement; the bare name to reference them by."""


def execute_model_statement(statement: exp.Expression, ctx: MLContext) -> pa.Table | None:
    """Run ``CREATE MODEL`` (train and store) or ``DROP MODEL``; BigQuery answers no rows."""
    if not is_model_statement(statement):
        raise InvalidQuery(f"Not a model statement: {statement.sql('bigquery')[:80]}")
    from prodml.warehouse.ml.create import create_model, drop_model

    if isinstance(statement, exp.Create):
        create_model(statement, ctx)
    else:
        drop_model(statement, ctx)
    return None


def materialize_ml_functions(statement: exp.Expression, ctx: MLContext) -> exp.Expression:
    """The statement with each ML table function computed into a relation registered for the
    statement (``ctx.relation``) and replaced by a reference to it, and each ML preprocessing
    function written as plain SQL: what is left is ordinary BigQuery SQL."""
    from prodml.warehouse.ml.functions import materialize

    return materialize(statement, ctx)


def list_models(con: duckdb.DuckDBPyConnection, project: str, dataset: str) -> list[dict]:
    """The dataset's models as BigQuery's ``models.list`` gives them (REST Model resources
    without training runs), ordered by model id."""
    keep = ("etag", "modelReference", "creationTime", "lastModifiedTime", "modelType", "location")
    models = [catalog.load(con, name).resource() for name in catalog.names(con, project, dataset)]
    return [{k: m[k] for k in keep} for m in models]


def get_model(con: duckdb.DuckDBPyConnection, project: str, dataset: str, model_id: str) -> dict:
    """The REST Model resource (``models.get``); :class:`ModelNotFound` in BigQuery's words."""
    return catalog.load(con, ModelName(project, dataset, model_id)).resource()


def delete_model(con: duckdb.DuckDBPyConnection, project: str, dataset: str, model_id: str) -> None:
    """Delete a model (``models.delete``); :class:`ModelNotFound` when there is none."""
    catalog.delete(con, ModelName(project, dataset, model_id))


def patch_model(
    con: duckdb.DuckDBPyConnection, project: str, dataset: str, model_id: str, body: dict
) -> dict:
    """``models.patch``: change a model's description, friendlyName or labels; the resource."""
    model = catalog.load(con, ModelName(project, dataset, model_id))
    model.patch(body)
    catalog.update(con, model)
    return model.resource()


__all__ = [
    "InvalidQuery",
    "MLContext",
    "ModelExists",
    "ModelNotFound",
    "delete_model",
    "execute_model_statement",
    "get_model",
    "has_ml_functions",
    "is_model_statement",
    "list_models",
    "materialize_ml_functions",
    "parse",
    "patch_model",
]
