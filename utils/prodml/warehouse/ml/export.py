"""A trained model as a TensorFlow SavedModel, as BigQuery ML's ``EXPORT MODEL`` gives one.

The SavedModel is the whole model behind one serving signature over the raw input columns: the
frozen ``TRANSFORM`` (run by :mod:`.tfsql`, the same SQL ML.PREDICT runs), BigQuery's automatic
preprocessing with the training statistics (numbers standardized, NULL or NaN -> the mean;
strings and BOOLs one-hot over the training vocabulary, NULL its own category where training saw
one, an unseen value all zeros), and the linear layer (the fitted weights). So TF Serving,
Vertex AI or ``prodml serve`` score the rows ML.PREDICT scores, with the same numbers.

Signature ``serving_default``: one input per raw column, shape ``[None]`` -- numeric columns
(INT64, FLOAT64, NUMERIC) as float64, STRING as string, BOOL as bool; outputs named as
ML.PREDICT's columns: ``predicted_<label>`` (float64 for LINEAR_REG; the class, in the label's
type, for LOGISTIC_REG, at threshold 0.5 when binary) and, for LOGISTIC_REG,
``predicted_<label>_probs`` ``[None, classes]``, the classes in ML.PREDICT's order (sorted).
A NaN number is NULL; a string or bool tensor has no NULL, so a NULL category the model learned
is reached from ML.PREDICT only (send the rows with such NULLs to SQL). A TRANSFORM the export
cannot run (:mod:`.tfsql`) is refused when the model is registered, naming the expression.
TensorFlow is imported by :func:`export_savedmodel` (the ``cpu`` extra, or Colab's own).

``OPTIONS(model_registry='VERTEX_AI' [, vertex_ai_model_id=...] [,
vertex_ai_model_version_aliases=[...]])`` registers the trained model (:func:`register`): the
registry is found through the ``prodml.model_registries`` entry-point group (``vertex_ai`` is
``prodml.tracking.bqml:register``, the run folder's MLflow registry) because the warehouse sits
below ``prodml.tracking`` in the package's layers and never imports it.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import sqlglot
from sqlglot import exp

from prodml.warehouse.ml import tfsql
from prodml.warehouse.ml.errors import InvalidQuery
from prodml.warehouse.ml.preprocess import output_name
from prodml.warehouse.ml.train import coefficients

_INPUT_KINDS = {"INT64": "float64", "FLOAT64": "float64", "NUMERIC": "float64",
                "BIGNUMERIC": "float64", "STRING": "string", "BOOL": "bool"}  # fmt: skip


class ExportError(InvalidQuery):
    """A model that cannot be written as a SavedModel, and why."""


def _transform_items(model) -> list[exp.Expression]:
    """The frozen TRANSFORM's items but the label's (what serving computes)."""
    items = [sqlglot.parse_one(text, read="bigquery") for text in model.transform or []]
    return [i for i in items if (output_name(i) or "").lower() != model.label.lower()]


def raw_inputs(model) -> list[tuple[str, str]]:
    """``(column, TensorFlow dtype name)`` of each input the serving signature takes: the
    columns the TRANSFORM reads, or the model's input columns."""
    types = {name.lower(): (name, kind) for name, kind in model.input_columns}
    names = (
        tfsql.columns_read(_transform_items(model))
        if model.transform
        else [n for n, _ in model.input_columns]
    )
    inputs = []
    for name in names:
        column, kind = types.get(name.lower(), (name, None))
        if kind not in _INPUT_KINDS:
            raise ExportError(
                f"Column {column} ({kind or 'not an input of the training query'}) cannot be an "
                "input of the exported SavedModel: its inputs are numbers, STRING and BOOL"
            )
        inputs.append((column, _INPUT_KINDS[kind]))
    return inputs


def _input_values(tensors: dict, inputs: list[tuple[str, str]]) -> dict[str, tfsql.Value]:
    import tensorflow as tf

    values = {}
    for name, dtype in inputs:
        tensor = tensors[name]
        kind = {"float64": tfsql.NUMBER, "string": tfsql.STRING, "bool": tfsql.BOOL}[dtype]
        null = tf.math.is_nan(tensor) if dtype == "float64" else tf.zeros_like(tensor, tf.bool)
        values[name.lower()] = tfsql.Value(tensor, null, kind)
    return values


def _features(model, values: dict[str, tfsql.Value]) -> dict[str, tfsql.Value]:
    """The model's feature columns (lower-case names) from its raw inputs: the TRANSFORM's
    outputs (STRUCTs expanded into ``<struct>_<field>``, as training expands them), or the
    inputs themselves."""
    if not model.transform:
        return values
    features = {}
    for item in _transform_items(model):
        name = output_name(item)
        inner = item.unalias()
        if isinstance(inner, exp.Struct):
            for field, value in tfsql.struct_fields(inner, values).items():
                features[f"{name}_{field}".lower()] = value
        else:
            features[name.lower()] = tfsql.evaluate(inner, values)
    return features


class _Tables:
    """The categorical features' vocabularies as lookup tables, built once (tracked by the
    module, so the SavedModel stores them)."""

    def __init__(self, model):
        import tensorflow as tf

        self.tables = {}
        for feature in model.features:
            if feature.kind != "numeric":
                keys = [v for v in feature.vocabulary if v is not None]
                positions = [i for i, v in enumerate(feature.vocabulary) if v is not None]
                initializer = tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys or [""], tf.string),
                    tf.constant(positions or [-1], tf.int64),
                )
                self.tables[feature.name] = tf.lookup.StaticHashTable(initializer, -1)


def _design(model, features: dict[str, tfsql.Value], tables: dict, batch):
    """The design matrix ``[batch, width]`` (float64), as :func:`.features.encode` builds it."""
    import tensorflow as tf

    blocks = []
    for feature in model.features:
        value = features.get(feature.name.lower())
        if value is None:
            raise ExportError(f"Feature {feature.name} is not computed from the model's inputs")
        if feature.kind == "numeric":
            value = tfsql.require(value, tfsql.NUMBER, exp.column(feature.name))
            mean = tf.constant(feature.mean, tf.float64)
            x = tf.broadcast_to(tf.cast(value.tensor, tf.float64), batch)
            x = tf.where(tf.broadcast_to(value.null, batch), mean, x) - mean
            x = x / tf.constant(feature.stddev, tf.float64) if feature.stddev else x * 0.0
            blocks.append(x[:, None])
            continue
        if value.kind == tfsql.BOOL:  # BigQuery's CAST(bool AS STRING)
            value = tfsql.Value(tf.where(value.tensor, "true", "false"), value.null, tfsql.STRING)
        value = tfsql.require(value, tfsql.STRING, exp.column(feature.name))
        codes = tables[feature.name].lookup(tf.broadcast_to(value.tensor, batch))
        null_code = feature.vocabulary.index(None) if None in feature.vocabulary else -1
        codes = tf.where(
            tf.broadcast_to(value.null, batch), tf.constant(null_code, tf.int64), codes
        )
        blocks.append(tf.one_hot(codes, feature.width, dtype=tf.float64))
    return tf.concat(blocks, axis=1)


def _outputs(model, scores) -> dict:
    import tensorflow as tf

    label = model.label
    if not model.classifier:
        return {f"predicted_{label}": scores[:, 0]}
    if scores.shape[1] == 1:  # binary: the positive class's logit
        positive = tf.math.sigmoid(scores[:, 0])
        probs = tf.stack([1.0 - positive, positive], axis=1)
        picks = tf.cast(positive > 0.5, tf.int32)
    else:
        probs = tf.nn.softmax(scores, axis=1)
        picks = tf.argmax(probs, axis=1, output_type=tf.int32)
    dtype = {"bool": tf.bool, "string": tf.string}.get(model.label_type, tf.int64)
    classes = tf.constant(model.classes, dtype)
    return {f"predicted_{label}": tf.gather(classes, picks), f"predicted_{label}_probs": probs}


def build_module(model):
    """The model as a ``tf.Module`` whose ``serve`` takes ``{column: tensor [None]}``."""
    import tensorflow as tf

    inputs = raw_inputs(model)
    weights, intercepts = coefficients(model.estimator)
    specs = {name: tf.TensorSpec([None], getattr(tf, dtype), name=name) for name, dtype in inputs}

    class Exported(tf.Module):
        def __init__(self):
            super().__init__(name="bigquery_ml_model")
            self.lookups = _Tables(model).tables
            self.weights = tf.constant(np.asarray(weights, np.float64))
            self.intercepts = tf.constant(np.asarray(intercepts, np.float64))

        # autograph off: the body builds the graph in plain Python (no tensor-dependent branches),
        # and converting the SQL walk (sqlglot) costs tens of seconds
        @tf.function(input_signature=[specs], autograph=False)
        def serve(self, tensors):
            batch = tf.shape(tensors[inputs[0][0]])[:1]
            features = _features(model, _input_values(tensors, inputs))
            design = _design(model, features, self.lookups, batch)
            return _outputs(model, tf.matmul(design, self.weights) + self.intercepts)

    if not inputs:
        raise ExportError("The model has no input column to serve")
    module = Exported()
    # run once eagerly on no rows: an expression the export cannot run is refused here in its
    # own words (inside tf.function tracing it would come wrapped in a StagingError)
    empty = {name: tf.zeros([0], getattr(tf, dtype)) for name, dtype in inputs}
    _design(model, _features(model, _input_values(empty, inputs)), module.lookups, [0])
    return module


def export_savedmodel(model, path: str | Path) -> Path:
    """Write ``model`` as a SavedModel at ``path`` (a new folder); returns it."""
    try:
        import tensorflow as tf
    except ModuleNotFoundError:
        raise ExportError(
            "Exporting a model as a SavedModel needs TensorFlow in the warehouse service's "
            "Python (pip install 'prodml[cpu]'; Colab has its own)"
        ) from None
    module = build_module(model)
    path = Path(path)
    signature = module.serve.get_concrete_function()
    tf.saved_model.save(module, str(path), signatures={"serving_default": signature})
    return path


#: the entry-point group naming each ``model_registry`` value's registrar (``module:function``
#: taking the trained model; pyproject.toml)
GROUP = "prodml.model_registries"


def register(model) -> None:
    """Register a model trained with ``model_registry``: its registrar (:data:`GROUP`) exports
    it with :func:`export_savedmodel` and records a new version."""
    registry = model.options.model_registry.lower()
    found = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
    if registry not in found:
        raise ExportError(
            f"model_registry {model.options.model_registry!r} needs a registrar in the "
            f"{GROUP!r} entry points and none is installed (install prodml with its tracking "
            "extra: pip install -e '.[tracking]')"
        )
    found[registry].load()(model)


__all__ = ["ExportError", "GROUP", "build_module", "export_savedmodel", "raw_inputs", "register"]
