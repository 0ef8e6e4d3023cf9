"""``CREATE [OR REPLACE] MODEL [IF NOT EXISTS]`` and ``DROP MODEL [IF EXISTS]``.

Training reads the ``AS`` query through the warehouse (``ctx.query``: DuckDB -> Arrow), applies
the frozen ``TRANSFORM`` in SQL when there is one, splits the rows, fits the features'
preprocessing on the training rows, trains (:mod:`.train`) and evaluates (:mod:`.metrics`) on
the evaluation rows (the training rows when there are none), then stores the model in the
catalog (:mod:`.catalog`), after registering it when ``model_registry`` asks to
(:func:`.export.register`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from prodml.warehouse.ml import catalog, train
from prodml.warehouse.ml import features as feats
from prodml.warehouse.ml.errors import DatasetNotFound, InvalidQuery, ModelExists
from prodml.warehouse.ml.functions import find_column, materialize, transformed_input
from prodml.warehouse.ml.model import Model
from prodml.warehouse.ml.options import TrainingOptions, training_options
from prodml.warehouse.ml.parse import model_name
from prodml.warehouse.ml.preprocess import freeze_transform, output_name

MAX_CLASSES = 50
_LABEL_TYPES = {pa.bool_(): "bool", pa.string(): "string", pa.large_string(): "string"}


def _transform_of(properties) -> exp.Expression | None:
    for prop in properties.expressions if properties is not None else []:
        if isinstance(prop, exp.TransformModelProperty):
            return prop
    return None


def _bigquery_type(kind: pa.DataType) -> str:
    if pa.types.is_struct(kind):
        return "STRUCT"
    return feats.bigquery_type(kind) or str(kind).upper()


def _training_rows(query: exp.Expression, transform, options: TrainingOptions, ctx):
    """``(rows of features and label, frozen TRANSFORM, TRANSFORM as written, input columns)``."""
    if transform is None:
        table = ctx.query(query)
        inputs = [
            (n, _bigquery_type(t))
            for n, t in zip(table.column_names, table.schema.types, strict=True)
        ]
        return table, None, None, inputs
    items = list(transform.expressions)
    frozen = freeze_transform(items, query, ctx)
    written = [(output_name(item), item.unalias().sql("bigquery")) for item in items]
    _, table = transformed_input(frozen, query, ctx, keep_input=False)
    probe = ctx.query(exp.select("*").from_(query.copy().subquery("__input")).limit(0))
    inputs = [
        (n, _bigquery_type(t)) for n, t in zip(probe.column_names, probe.schema.types, strict=True)
    ]
    return table, frozen, written, inputs


def _label(table: pa.Table, options: TrainingOptions) -> tuple[str, pa.ChunkedArray]:
    name = find_column(table, options.label)
    if name is None:
        raise InvalidQuery(
            f"Column {options.label} specified in input_label_cols is not found in the input data"
        )
    column = table.column(name)
    if column.null_count:
        raise InvalidQuery(
            f"Label column {name} has {column.null_count} NULL values; filter them out"
        )
    kind = column.type
    if options.model_type == "LINEAR_REG" and not (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    ):
        raise InvalidQuery(
            f"Label column {name} must be numeric for LINEAR_REG models, it is {kind}"
        )
    if options.model_type == "LOGISTIC_REG" and not (
        kind in _LABEL_TYPES or pa.types.is_integer(kind)
    ):
        raise InvalidQuery(
            f"Label column {name} must be BOOL, STRING or INT64 for LOGISTIC_REG models, it is {kind}"
        )
    return name, column


def _custom_split(
    table: pa.Table, options: TrainingOptions
) -> tuple[str | None, np.ndarray | None]:
    if options.data_split_method != "CUSTOM":
        return None, None
    name = find_column(table, options.data_split_col)
    if name is None:
        raise InvalidQuery(
            f"data_split_col {options.data_split_col} is not a column of the input data"
        )
    column = table.column(name)
    if not pa.types.is_boolean(column.type):
        raise InvalidQuery(f"data_split_col {name} must be BOOL, it is {column.type}")
    return name, pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)


def _classes(column: pa.ChunkedArray) -> tuple[list, str]:
    alias = _LABEL_TYPES.get(column.type, "int64")
    values = sorted(pc.unique(pc.cast(column, pa.type_for_alias(alias))).to_pylist())
    if len(values) < 2:
        raise InvalidQuery(
            f"LOGISTIC_REG needs at least two distinct labels in the training data, got {values}"
        )
    if len(values) > MAX_CLASSES:
        raise InvalidQuery(
            f"LOGISTIC_REG supports at most {MAX_CLASSES} distinct labels, got {len(values)}"
        )
    return values, alias


def train_model(name, options: TrainingOptions, query: exp.Expression, transform, ctx) -> Model:
    """Train a model on the rows of ``query`` (its ``TRANSFORM`` applied)."""
    table, frozen, written, inputs = _training_rows(query, transform, options, ctx)
    label_name, label = _label(table, options)
    split_name, custom = _custom_split(table, options)
    rest = table.drop_columns([n for n in (label_name, split_name) if n])
    if rest.num_columns == 0:
        raise InvalidQuery("The training data has no feature column besides the label")
    training, evaluation = train.split(table.num_rows, options, custom)
    if training.size == 0:
        raise InvalidQuery("The training data has no rows")
    train_rows = rest.take(pa.array(training))
    features = feats.fit_features(feats.flatten(train_rows))
    classes, label_type = (None, "double")
    if options.model_type == "LOGISTIC_REG":
        classes, label_type = _classes(label.take(pa.array(training)))
    model = Model(name, options, label_type, features, None, "", [], {}, classes, frozen, written)
    model.input_columns = [
        c for c in inputs if c[0].lower() not in {label_name.lower(), (split_name or "").lower()}
    ]
    x = model.design(train_rows)
    y_column = label.take(pa.array(training))
    y = model.label_codes(y_column) if classes else feats.numbers(y_column)
    x_eval = y_eval = None
    if evaluation is not None:
        eval_rows = rest.take(pa.array(evaluation))
        y_eval_column = label.take(pa.array(evaluation))
        x_eval = model.design(eval_rows)
        y_eval = model.label_codes(y_eval_column) if classes else feats.numbers(y_eval_column)
    fitted = train.fit(options, x, y, x_eval, y_eval)
    model.estimator, model.strategy, model.iterations = (
        fitted.model,
        fitted.strategy,
        fitted.iterations,
    )
    scored = (x_eval, y_eval) if evaluation is not None else (x, y)
    model.evaluation = model.metrics(*scored)
    model.split_rows = {
        "training": int(training.size),
        "evaluation": int(0 if evaluation is None else evaluation.size),
    }
    return model


def create_model(statement: exp.Create, ctx) -> None:
    """Run ``CREATE [OR REPLACE] MODEL [IF NOT EXISTS] ... AS query``."""
    name = model_name(statement.this, ctx.project, ctx.dataset)
    properties = statement.args.get("properties")
    options = training_options(properties)
    query = statement.expression
    if query is None:
        raise InvalidQuery(
            f"CREATE MODEL {name} needs AS query_statement to train a {options.model_type} model"
        )
    if not catalog.dataset_exists(ctx.con, name.project, name.dataset):
        raise DatasetNotFound(f"Not found: Dataset {name.project}:{name.dataset}")
    replace = bool(statement.args.get("replace"))
    if not replace and catalog.exists(ctx.con, name):
        if statement.args.get("exists"):
            return  # CREATE MODEL IF NOT EXISTS: the model is there, nothing to train
        raise ModelExists(f"Already Exists: Model {name.path}")
    query = materialize(query, ctx)
    model = train_model(name, options, query, _transform_of(properties), ctx)
    if options.model_registry:
        from prodml.warehouse.ml.export import register

        register(model)  # before it is stored: a model that cannot be registered is not created
    try:
        catalog.save(ctx.con, model, replace=replace)
    except ModelExists:
        if not statement.args.get("exists"):
            raise


def drop_model(statement: exp.Drop, ctx) -> None:
    """Run ``DROP MODEL [IF EXISTS] name``."""
    for table in statement.args.get("tables") or [statement.this]:
        name = model_name(table, ctx.project, ctx.dataset)
        catalog.delete(ctx.con, name, missing_ok=bool(statement.args.get("exists")))


__all__ = ["create_model", "drop_model", "train_model"]
