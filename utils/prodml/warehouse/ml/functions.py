"""BigQuery ML's table functions, and how a query that calls them runs.

``ML.PREDICT``, ``ML.EVALUATE``, ``ML.TRAINING_INFO``, ``ML.WEIGHTS`` and ``ML.FEATURE_INFO``
each answer a ``pyarrow.Table``. :func:`materialize` runs them (innermost first) and hands each
answer to the statement (``ctx.relation``: registered on the warehouse's cursor until the
statement ends), replacing the call by a reference to it, and rewrites the ML preprocessing functions into plain SQL (:mod:`.preprocess`): what is left
is ordinary BigQuery SQL for the warehouse to run.

A model with a ``TRANSFORM`` reads its input through the frozen ``TRANSFORM``, run as SQL
(:func:`transformed_input`): ``ML.PREDICT`` passes the input columns through as they came.
"""

from __future__ import annotations

import pyarrow as pa
import sqlglot
from sqlglot import exp

from prodml.warehouse.ml import catalog
from prodml.warehouse.ml.errors import InvalidQuery
from prodml.warehouse.ml.options import literal
from prodml.warehouse.ml.parse import (
    TABLE_FUNCTIONS,
    MLEvaluate,
    MLFeatureInfo,
    MLTrainingInfo,
    MLWeights,
    model_name,
    preprocessing_name,
    unknown_ml_call,
)
from prodml.warehouse.ml.preprocess import rewrite_call
from prodml.warehouse.ml.weights import weights_table

PREFIX = "__ml_f"


def find_column(table: pa.Table, name: str | None) -> str | None:
    """The table's column named ``name``, compared as BigQuery does (case-insensitively)."""
    if name is None:
        return None
    return next((c for c in table.column_names if c.lower() == name.lower()), None)


def _source(node: exp.Expression) -> exp.Expression | None:
    """A table function's input as a query (``(SELECT ...)`` or ``TABLE d.t``), if given."""
    source = node.expression
    if source is None:
        return None
    if isinstance(source, exp.Subquery):
        return source.this
    return exp.select("*").from_(source.copy())


def transformed_input(frozen: list[str], source: exp.Expression, ctx, keep_input: bool, skip=()):
    """Run a frozen TRANSFORM over a query's rows: ``(input columns or None, transformed)``.
    ``skip`` names TRANSFORM outputs to leave out (the label, at prediction)."""
    items = [sqlglot.parse_one(text, read="bigquery") for text in frozen]
    items = [i for i in items if i.alias_or_name.lower() not in {s.lower() for s in skip}]
    names = [i.alias_or_name for i in items]
    inner = source.copy().subquery("__input")
    if not keep_input:
        return None, ctx.query(exp.select(*items).from_(inner))
    tagged = [exp.alias_(i.unalias(), f"{PREFIX}{k}") for k, i in enumerate(items)]
    table = ctx.query(
        exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("__input")), *tagged).from_(
            inner
        )
    )
    passthrough = [c for c in table.column_names if not c.startswith(PREFIX)]
    transformed = pa.table([table.column(f"{PREFIX}{k}") for k in range(len(items))], names=names)
    return table.select(passthrough), transformed


def _settings(node: exp.Expression) -> dict:
    """The ``STRUCT(value AS name, ...)`` argument of a table function, as ``{name: value}``."""
    struct = node.args.get("params_struct")
    if struct is None:
        return {}
    if not isinstance(struct, exp.Struct):
        raise InvalidQuery(f"Expected STRUCT(value AS name, ...), got {struct.sql('bigquery')}")
    settings = {}
    for item in struct.expressions:
        if not isinstance(item, exp.PropertyEQ | exp.Alias):
            raise InvalidQuery(
                f"Every field of the settings STRUCT needs a name: {item.sql('bigquery')}"
            )
        key = (item.alias if isinstance(item, exp.Alias) else item.this.name).lower()
        settings[key] = literal(
            key, item.expression if isinstance(item, exp.PropertyEQ) else item.this
        )
    return settings


def _threshold(node, model) -> float:
    settings = _settings(node)
    unknown = set(settings) - {"threshold"}
    if unknown:
        raise InvalidQuery(f"Unknown setting {sorted(unknown)[0]}: this function takes threshold")
    threshold = settings.get("threshold", 0.5)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidQuery(f"threshold must be a number between 0 and 1, got {threshold!r}")
    if "threshold" in settings and not (model.classifier and len(model.classes) == 2):
        raise InvalidQuery("threshold applies only to binary LOGISTIC_REG models")
    return float(threshold)


def _model_input(model, node, ctx, keep_input: bool, skip=()):
    """``(passthrough columns, feature table)`` of a table function's input rows."""
    source = _source(node)
    if source is None:
        raise InvalidQuery(f"{type(node).__name__} needs input data: (SELECT ...) or TABLE name")
    if model.transform:
        return transformed_input(model.transform, source, ctx, keep_input, skip)
    table = ctx.query(source)
    return table, table


def predict(node, model, ctx) -> pa.Table:
    """ML.PREDICT: ``predicted_<label>`` (and ``predicted_<label>_probs``), then the input."""
    threshold = _threshold(node, model)
    passthrough, table = _model_input(model, node, ctx, keep_input=True, skip=(model.label,))
    scores = model.score(table)
    columns = {}
    if model.classifier:
        columns[f"predicted_{model.label}"] = model.predicted_labels(scores, threshold)
        columns[f"predicted_{model.label}_probs"] = model.probabilities(scores)
    else:
        columns[f"predicted_{model.label}"] = pa.array(scores, pa.float64())
    for name in passthrough.column_names:
        columns.setdefault(name, passthrough.column(name))
    return pa.table(columns)


def _one_row(values: dict) -> pa.Table:
    return pa.table({k: pa.array([v], pa.float64()) for k, v in values.items()})


def evaluate(node, model, ctx) -> pa.Table:
    """ML.EVALUATE: the metrics on the input rows, or those computed at training."""
    if node.expression is None:
        if node.args.get("params_struct") is not None:
            raise InvalidQuery("ML.EVALUATE takes a threshold only with input data")
        return _one_row(model.evaluation)
    threshold = _threshold(node, model)
    _, table = _model_input(model, node, ctx, keep_input=False)
    label = find_column(table, model.label)
    if label is None:
        raise InvalidQuery(f"ML.EVALUATE needs the label column {model.label} in its input data")
    return _one_row(model.evaluate(table.drop_columns([label]), table.column(label), threshold))


def training_info(node, model, ctx) -> pa.Table:
    """ML.TRAINING_INFO: one row per iteration."""
    rows = model.iterations
    return pa.table(
        {
            "training_run": pa.array([0] * len(rows), pa.int64()),
            "iteration": pa.array([r["iteration"] for r in rows], pa.int64()),
            "loss": pa.array([r["loss"] for r in rows], pa.float64()),
            "eval_loss": pa.array([r["eval_loss"] for r in rows], pa.float64()),
            "learning_rate": pa.array([r["learning_rate"] for r in rows], pa.float64()),
            "duration_ms": pa.array([r["duration_ms"] for r in rows], pa.int64()),
        }
    )


def feature_info(node, model, ctx) -> pa.Table:
    """ML.FEATURE_INFO: each feature's statistics over the training rows."""
    keys = ("min", "max", "mean", "median", "stddev")
    rows = [f.info for f in model.features]
    columns = {"input": pa.array([f.name for f in model.features], pa.string())}
    for key in keys:
        columns[key] = pa.array([r.get(key) for r in rows], pa.float64())
    columns["category_count"] = pa.array([r.get("category_count") for r in rows], pa.int64())
    columns["null_count"] = pa.array([r.get("null_count") for r in rows], pa.int64())
    columns["dimension"] = pa.array([None] * len(rows), pa.int64())
    return pa.table(columns)


def weights(node, model, ctx) -> pa.Table:
    """ML.WEIGHTS: each input's weight (numeric) or weight per category (one-hot)."""
    settings = _settings(node)
    if set(settings) - {"standardize"}:
        raise InvalidQuery(
            f"Unknown setting {sorted(set(settings) - {'standardize'})[0]}: ML.WEIGHTS takes standardize"
        )
    return weights_table(model, bool(settings.get("standardize", False)))


ANSWERS = {
    exp.Predict: predict,
    MLEvaluate: evaluate,
    MLTrainingInfo: training_info,
    MLFeatureInfo: feature_info,
    MLWeights: weights,
}


def run_table_function(node: exp.Expression, ctx) -> pa.Table:
    """The answer of one BigQuery ML table function call."""
    name = model_name(node.this, ctx.project, ctx.dataset)
    model = catalog.load(ctx.con, name)
    return ANSWERS[type(node)](node, model, ctx)


def _store(table: pa.Table, ctx) -> str:
    """Hand an answer to the statement: registered on the warehouse's cursor under a bare name
    starting ``__`` (the warehouse unregisters it when the statement ends); its name."""
    return ctx.relation(table)


def materialize(statement: exp.Expression, ctx) -> exp.Expression:
    """A copy of ``statement`` with every BigQuery ML table function computed into a relation
    registered for the statement (a reference to it in its place) and every ML preprocessing function rewritten into
    plain SQL, innermost first."""
    unknown = unknown_ml_call(statement)
    if unknown:
        raise InvalidQuery(f"Function not found: {unknown}")
    tree = statement.copy()
    kinds = tuple(TABLE_FUNCTIONS.values())
    nodes = [n for n in tree.walk(bfs=False) if isinstance(n, kinds) or preprocessing_name(n)][::-1]
    for node in nodes:
        if not isinstance(node, kinds):
            rewrite_call(ctx, node)
            continue
        wrapper = node.parent if isinstance(node.parent, exp.Table) else node
        name = _store(run_table_function(node, ctx), ctx)
        reference = exp.Table(this=exp.to_identifier(name, quoted=True))
        if wrapper.args.get("alias") is not None:
            reference.set("alias", wrapper.args["alias"].copy())
        wrapper.replace(reference)
    return tree


__all__ = [
    "evaluate",
    "feature_info",
    "find_column",
    "materialize",
    "predict",
    "run_table_function",
    "training_info",
    "transformed_input",
    "weights",
]
