"""Notebook 03 §8's claim, held by a test: statistics adapted by Keras preprocessing layers in one
pass over a training split travel inside the SavedModel, and equal what pandas computes on it."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from prodml import savedmodel
from prodml.babyweight import data
from prodml.babyweight import model as babyweight_model
from prodml.datasets import natality

BUCKETS = 6


@pytest.fixture(scope="module")
def training():
    rows = natality.clean(natality.generate(6000, seed=3))
    return data.preprocess(rows[[data.LABEL, *data.FEATURES]]).reset_index(drop=True)


@pytest.fixture(scope="module")
def transform(training, tmp_path_factory):
    """Adapt the layers on the training split, export a transform signature, load it back."""
    vocabulary = keras.layers.StringLookup()
    vocabulary.adapt(training["plurality"].to_numpy(dtype=str))
    z_score = keras.layers.Normalization(axis=None)
    z_score.adapt(training["mother_age"].to_numpy(dtype="float32"))
    buckets = keras.layers.Discretization(num_bins=BUCKETS)
    buckets.adapt(training["gestation_weeks"].to_numpy(dtype="float32"))
    x = babyweight_model.inputs()
    outputs = {
        "plurality_index": vocabulary(x["plurality"]),
        "mother_age_z": z_score(x["mother_age"]),
        "gestation_bucket": buckets(x["gestation_weeks"]),
    }
    model = keras.Model(x, outputs)

    @tf.function(input_signature=[tf.TensorSpec([None], t.dtype, name=n) for n, t in x.items()])
    def serve(is_male, mother_age, plurality, gestation_weeks):
        raw = {"is_male": is_male, "mother_age": mother_age, "plurality": plurality}
        return model({**raw, "gestation_weeks": gestation_weeks})

    path = tmp_path_factory.mktemp("export") / "1"
    tf.saved_model.save(model, str(path), signatures={"transform": serve})
    signature = savedmodel.load_signature(path, "transform")  # only the SavedModel answers below

    def call(**columns):
        n = len(next(iter(columns.values())))
        rows = {"is_male": ["True"] * n, "plurality": ["Single(1)"] * n}
        rows |= {"mother_age": [28.0] * n, "gestation_weeks": [39.0] * n} | columns
        strings = ("is_male", "plurality")
        tensors = {
            k: tf.constant(v, tf.string if k in strings else tf.float32) for k, v in rows.items()
        }
        return {k: t.numpy() for k, t in signature(**tensors).items()}

    return call


def test_the_vocabulary_is_pandas_value_counts_order(training, transform):
    vocabulary = list(training["plurality"].value_counts().index)
    assert len(vocabulary) >= 2
    indices = transform(plurality=[*vocabulary, "Sextuplets(6)"])["plurality_index"]
    assert list(indices) == [*range(1, len(vocabulary) + 1), 0]  # 0: out of vocabulary


def test_the_z_score_uses_the_training_mean_and_population_deviation(training, transform):
    z = transform(mother_age=[0.0, 1.0])["mother_age_z"]
    std = 1.0 / (z[1] - z[0])
    ages = training["mother_age"].astype("float64")
    assert -z[0] * std == pytest.approx(ages.mean(), rel=1e-5)
    assert std == pytest.approx(ages.std(ddof=0), rel=1e-5)
    assert std != pytest.approx(ages.std(ddof=1), rel=1e-6)  # not the sample deviation


def test_the_buckets_are_pandas_quantiles(training, transform):
    quantiles = np.linspace(0, 1, BUCKETS + 1)[1:-1]
    boundaries = training["gestation_weeks"].astype("float64").quantile(quantiles).to_numpy()
    grid = np.unique(np.r_[boundaries, boundaries - 0.5, boundaries + 0.25, 10.0, 60.0])
    buckets = transform(gestation_weeks=list(grid))["gestation_bucket"]
    assert (buckets == np.searchsorted(boundaries, grid, side="right")).all()
    assert buckets.min() == 0 and buckets.max() == BUCKETS - 1
