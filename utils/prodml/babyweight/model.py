"""The babyweight regressor: a Keras 3 wide-and-deep model whose preprocessing lives inside it.

The model takes the four features as the front-end sends them (two strings, two numbers), so
the exported SavedModel needs no feature code beside it: ``StringLookup`` turns is_male and
plurality into indices (an unknown string is the out-of-vocabulary index 0, never an error),
``Discretization`` buckets mother_age and gestation_weeks, ``HashedCrossing`` crosses the two
bucket indices and an ``Embedding`` learns a vector per cross.

- wide part: one-hot is_male, plurality, age bucket and gestation bucket, fed linearly to the output;
- deep part: the scaled numbers, the one-hot strings and the cross's embedding through dense layers;
- output: one linear unit named ``weight`` over the wide features and the last deep layer.

:func:`save` exports it with the trainer's two serving signatures (``serving_default`` and
``keyed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from prodml.babyweight.data import FEATURES, GENDERS, LABEL, PLURALITIES

#: bucket boundaries (the course's: ages 15..44, weeks 17..46 by one).
AGE_BOUNDARIES = [float(x) for x in np.arange(15, 45, 1)]
GESTATION_BOUNDARIES = [float(x) for x in np.arange(17, 47, 1)]
CROSS_BINS = 1000
EMBED_DIM = 8
HIDDEN_UNITS = (64, 32)
MEAN_WEIGHT = 7.3


def inputs() -> dict[str, keras.KerasTensor]:
    """One scalar input per feature: is_male and plurality strings, the two numbers float32."""
    return {
        "is_male": keras.Input(shape=(), dtype="string", name="is_male"),
        "mother_age": keras.Input(shape=(), dtype="float32", name="mother_age"),
        "plurality": keras.Input(shape=(), dtype="string", name="plurality"),
        "gestation_weeks": keras.Input(shape=(), dtype="float32", name="gestation_weeks"),
    }


def build(seed: int | None = 42, learning_rate: float = 0.003) -> keras.Model:
    """A compiled wide-and-deep regressor (MSE loss, RMSE metric). ``seed`` seeds Python,
    NumPy and TensorFlow (``keras.utils.set_random_seed``) so the same data gives the same model."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    x = inputs()
    gender_idx = keras.layers.StringLookup(vocabulary=list(GENDERS), name="is_male_lookup")(
        x["is_male"]
    )
    plurality_idx = keras.layers.StringLookup(
        vocabulary=list(PLURALITIES), name="plurality_lookup"
    )(x["plurality"])
    age_bucket = keras.layers.Discretization(AGE_BOUNDARIES, name="age_buckets")(x["mother_age"])
    gestation_bucket = keras.layers.Discretization(GESTATION_BOUNDARIES, name="gestation_buckets")(
        x["gestation_weeks"]
    )

    def one_hot(index, size, name):
        return keras.layers.CategoryEncoding(size, output_mode="one_hot", name=name)(index)

    gender_1h = one_hot(gender_idx, len(GENDERS) + 1, "is_male_onehot")
    plurality_1h = one_hot(plurality_idx, len(PLURALITIES) + 1, "plurality_onehot")
    age_1h = one_hot(age_bucket, len(AGE_BOUNDARIES) + 1, "age_onehot")
    gestation_1h = one_hot(gestation_bucket, len(GESTATION_BOUNDARIES) + 1, "gestation_onehot")

    cross = keras.layers.HashedCrossing(CROSS_BINS, name="age_x_gestation")(
        (age_bucket, gestation_bucket)
    )
    cross_embed = keras.layers.Embedding(CROSS_BINS, EMBED_DIM, name="cross_embedding")(cross)

    # Numbers scaled to about [-2, 2] with fixed constants: nothing to adapt, nothing to skew.
    age = keras.layers.Rescaling(1 / 6.0, offset=-5.0, name="age_scaled")(
        keras.layers.Reshape((1,))(x["mother_age"])
    )
    gestation = keras.layers.Rescaling(1 / 3.0, offset=-13.0, name="gestation_scaled")(
        keras.layers.Reshape((1,))(x["gestation_weeks"])
    )

    wide = keras.layers.Concatenate(name="wide")([gender_1h, plurality_1h, age_1h, gestation_1h])
    deep = keras.layers.Concatenate(name="deep_inputs")(
        [age, gestation, gender_1h, plurality_1h, cross_embed]
    )
    for i, units in enumerate(HIDDEN_UNITS):
        deep = keras.layers.Dense(units, activation="relu", name=f"deep_{i}")(deep)
    both = keras.layers.Concatenate(name="wide_and_deep")([wide, deep])
    # Start from the mean US birth weight (about 7.3 lb) rather than 0: fewer steps to converge.
    weight = keras.layers.Dense(
        1, bias_initializer=keras.initializers.Constant(MEAN_WEIGHT), name="weight"
    )(both)

    model = keras.Model(inputs=x, outputs=weight, name="babyweight")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


# The signatures' input specs and functions are the trainer's own plumbing, private on purpose:
# declaring a signature is the serving lab's TODO 1, which the course library must not answer.
# What a caller needs is :func:`save` (the export with both signatures) and the model itself
# (``model.inputs`` names and types its inputs).
_SERVING_SIGNATURE = [
    tf.TensorSpec([None], tf.string, name="is_male"),
    tf.TensorSpec([None], tf.float32, name="mother_age"),
    tf.TensorSpec([None], tf.string, name="plurality"),
    tf.TensorSpec([None], tf.float32, name="gestation_weeks"),
]
_KEYED_SIGNATURE = [*_SERVING_SIGNATURE, tf.TensorSpec([None], tf.string, name="key")]


def _serving_fn(model: keras.Model):
    """``serving_default``: the four features -> ``{"weight": float32 [None, 1]}``.

    The output keeps the Keras model's shape ``[None, 1]``, as the course's model had: TF Serving
    and ML Engine answer ``{"weight": [6.43]}`` per instance and the course's client code reads
    ``prediction["weight"][0]``."""

    @tf.function(input_signature=_SERVING_SIGNATURE)
    def serve(is_male, mother_age, plurality, gestation_weeks):
        features = dict(
            zip(FEATURES, (is_male, mother_age, plurality, gestation_weeks), strict=True)
        )
        return {"weight": model(features, training=False)}

    return serve


def _keyed_fn(model: keras.Model):
    """``keyed``: the four features and a ``key`` -> ``{"weight": [None, 1], "key": [None]}``
    (key passed through)."""

    @tf.function(input_signature=_KEYED_SIGNATURE)
    def serve_keyed(is_male, mother_age, plurality, gestation_weeks, key):
        features = dict(
            zip(FEATURES, (is_male, mother_age, plurality, gestation_weeks), strict=True)
        )
        return {
            "weight": model(features, training=False),
            "key": tf.identity(key),
        }

    return serve_keyed


def save(model: keras.Model, path: str | Path, extra_signatures: Mapping | None = None) -> str:
    """Save ``model`` as a SavedModel at ``path`` (one version folder) and return the path.

    The export has the trainer's two signatures, the contract every client of the served model
    relies on: ``serving_default``, the four features (any number of instances) ->
    ``{"weight": float32 [None, 1]}``, the course model's shape (an answer per instance reads
    ``["weight"][0]``); and ``keyed``, the same features and a string ``key`` that comes back
    unchanged beside the weight, for batch predictions joined back to their requests.
    ``extra_signatures`` (name -> ``tf.function`` with an input signature) are saved beside them.
    """
    signatures = {"serving_default": _serving_fn(model), "keyed": _keyed_fn(model)}
    clash = sorted(set(signatures) & set(extra_signatures or {}))
    if clash:
        raise ValueError(f"extra_signatures may not replace the trainer's signatures {clash}")
    tf.saved_model.save(model, str(path), signatures={**signatures, **(extra_signatures or {})})
    return str(path)


def _bucket_names(boundaries: list[float], unit: str) -> list[str]:
    """Discretization's buckets by name: ``<first``, each whole value, ``>=last``."""
    inner = [f"{low:g}{unit}" for low in boundaries[:-1]]
    return [f"<{boundaries[0]:g}{unit}", *inner, f">={boundaries[-1]:g}{unit}"]


def cross_embedding(model: keras.Model, rows=None):
    """The age x gestation embedding, one row per hash bin (:data:`CROSS_BINS`), as the Embedding
    Projector wants it: ``(vectors, metadata)``, a ``CROSS_BINS x EMBED_DIM`` array and a
    DataFrame of what each bin holds. ``HashedCrossing`` sends each (age bucket, gestation
    bucket) pair to a bin; the pairs are sent through the model's own layer, so the metadata is
    what the model computes, collisions included. Columns: ``bin``; ``pairs`` (how many pairs
    share it, 0 for a bin no pair reaches); ``label`` (the pairs, e.g. ``age 26 x 39 wk``);
    ``age`` and ``weeks`` (the first pair's, as its buckets' lower bounds, the open-ended lowest
    bucket as one below its boundary; NaN when no pair reaches the bin); and, when
    ``rows`` (a frame with mother_age and gestation_weeks) is given, ``rows``: how many of them
    land in the bin (a bin few rows reach keeps its random start) and, when it has the label,
    ``mean_weight``: their mean birth weight (NaN for a bin none reaches)."""
    import pandas as pd

    ages, weeks = len(AGE_BOUNDARIES) + 1, len(GESTATION_BOUNDARIES) + 1
    age_idx, week_idx = (a.ravel() for a in np.meshgrid(np.arange(ages), np.arange(weeks), indexing="ij"))  # fmt: skip
    crossing = model.get_layer("age_x_gestation")
    bins = np.asarray(crossing((age_idx.astype("int64"), week_idx.astype("int64"))))
    names = _bucket_names(AGE_BOUNDARIES, ""), _bucket_names(GESTATION_BOUNDARIES, " wk")
    low = [[b[0] - 1, *b] for b in (AGE_BOUNDARIES, GESTATION_BOUNDARIES)]  # "<15" as 14
    pairs = pd.DataFrame({"bin": bins, "a": age_idx, "w": week_idx}).sort_values(["bin", "w", "a"])
    pairs["label"] = [f"age {names[0][a]} x {names[1][w]}" for a, w in zip(pairs.a, pairs.w, strict=True)]  # fmt: skip
    grouped = pairs.groupby("bin")
    metadata = pd.DataFrame({"bin": np.arange(CROSS_BINS)}).set_index("bin")
    metadata["pairs"] = grouped.size().reindex(metadata.index, fill_value=0)
    metadata["label"] = grouped["label"].agg(" | ".join).reindex(metadata.index, fill_value="")
    first = grouped.first().reindex(metadata.index)
    metadata["age"] = [low[0][int(a)] if a == a else np.nan for a in first["a"]]
    metadata["weeks"] = [low[1][int(w)] if w == w else np.nan for w in first["w"]]
    if rows is not None:
        age_b = model.get_layer("age_buckets")(np.asarray(rows["mother_age"], "float32"))
        week_b = model.get_layer("gestation_buckets")(
            np.asarray(rows["gestation_weeks"], "float32")
        )
        landed = np.asarray(crossing((age_b, week_b)))
        metadata["rows"] = np.bincount(landed, minlength=CROSS_BINS)
        if LABEL in rows:
            label = pd.Series(np.asarray(rows[LABEL], "float64")).groupby(landed).mean()
            metadata["mean_weight"] = label.reindex(metadata.index).round(3)
    vectors = model.get_layer("cross_embedding").get_weights()[0]
    return vectors, metadata.reset_index()


__all__ = [
    "cross_embedding",
    "EMBED_DIM",
    "AGE_BOUNDARIES",
    "GESTATION_BOUNDARIES",
    "CROSS_BINS",
    "LABEL",
    "inputs",
    "build",
    "save",
]
