"""Notebook 05's files beside it, held by tests.

- ``module05/babyweight_pipeline.py``: the compiled pipeline runs batch predictions only after
  the release gate passes, on what the export step pushed; the batch-prediction step writes one
  prediction per good evaluation row into the warehouse (keys passed through, bad rows as dead
  letters, a new release replacing the last one's table); the gate passes a model that beats
  the rule it replaces and fails one worse than production, naming why.
- ``module05/fake_quant.py``: ``FakeQuantDense`` rounds its input, kernel and output to the
  levels of its ranges, the ranges follow the batches while training only, the model trains
  through the rounding, and TensorFlow Lite's converter turns it into an int8 model that
  answers as the Keras model does, to within one step of its output's scale.

The components run in this process (``python_func``), as ``kfp.local`` would run each in its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from prodml import warehouse
from support import export_toy_model, toy_weight

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "notebooks" / "module05"))

import babyweight_pipeline as kfp_pipeline  # noqa: E402
import fake_quant  # noqa: E402
from kfp import dsl  # noqa: E402

PLURALITY = {1: "Single(1)", 2: "Twins(2)", 3: "Triplets(3)"}


def eval_rows(n: int, seed: int = 0, noise: float = 0.5) -> pd.DataFrame:
    """Raw natality-like rows with keys; the label is the toy model's answer plus noise."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(
        {
            "key": [f"eval-{i:04d}" for i in range(n)],
            "is_male": rng.choice([True, False], n),
            "mother_age": rng.integers(18, 42, n).astype(float),
            "plurality": rng.choice([1, 2, 3], n, p=[0.9, 0.07, 0.03]),
            "gestation_weeks": rng.integers(30, 43, n).astype(float),
        }
    )
    rows["weight_pounds"] = [toy_weight(instance(r)) for r in rows.to_dict("records")]
    rows["weight_pounds"] += rng.normal(0, noise, n)
    return rows


def instance(row: dict) -> dict:
    """A raw row as the model takes it (the record contract's mapping, for known genders)."""
    return {
        "is_male": str(bool(row["is_male"])),
        "mother_age": row["mother_age"],
        "plurality": PLURALITY[int(row["plurality"])],
        "gestation_weeks": row["gestation_weeks"],
    }


# -- the pipeline --------------------------------------------------------------------------


def test_the_compiled_pipeline_predicts_in_batch_only_after_the_gate_passes(tmp_path):
    from kfp import compiler

    path = tmp_path / "babyweight_pipeline.yaml"
    compiler.Compiler().compile(kfp_pipeline.babyweight_pipeline, str(path))
    spec = yaml.safe_load(path.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"query-natality", "train", "evaluate", "condition-1"}
    gate = tasks["condition-1"]
    assert "evaluate" in gate["dependentTasks"]
    assert gate["triggerPolicy"]["condition"].endswith("evaluate-Output'] == 'pass'")
    inside = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inside) == {"export", "batch-predict"}
    predict = inside["batch-predict"]
    assert predict["dependentTasks"] == ["export"]
    model = predict["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model == {"outputArtifactKey": "pushed", "producerTask": "export"}
    rows = predict["inputs"]["artifacts"]["eval_data"]["componentInputArtifact"]
    assert rows == "pipelinechannel--query-natality-eval_data"


def _batch_predict(model_dir: Path, rows: pd.DataFrame, folder: Path, table: str):
    rows.to_parquet(folder / "eval.parquet", index=False)
    predictions = dsl.Dataset(uri=str(folder / "predictions"))
    n = kfp_pipeline.batch_predict.python_func(
        model=dsl.Model(uri=str(model_dir)),
        eval_data=dsl.Dataset(uri=str(folder / "eval.parquet")),
        table=table,
        predictions=predictions,
    )
    return n, predictions


def test_batch_predictions_go_to_the_warehouse_one_per_good_row(tmp_path, run_dir):
    rows = eval_rows(300)
    bad = rows.iloc[:2].assign(key=["bad-age", "bad-gestation"])
    bad.loc[bad.index[0], "mother_age"] = 99.0  # outside natality's plausible range
    bad.loc[bad.index[1], "gestation_weeks"] = 99.0  # natality's code for "unknown"
    first = export_toy_model(tmp_path / "v1", scale=1.0)
    n, predictions = _batch_predict(first, pd.concat([rows, bad]), tmp_path, "babyweight.batch")
    assert n == 300
    counts = predictions.metadata
    assert (counts["records_in"], counts["predictions"], counts["dead_letters"]) == (302, 300, 2)
    assert counts["table"] == "babyweight.batch"
    dead = [json.loads(line) for f in (tmp_path / "predictions").glob("dead_letters-*.jsonl")
            for line in f.read_text().splitlines()]  # fmt: skip
    reasons = {json.loads(d["record"])["key"]: d["reason"] for d in dead}
    assert reasons.keys() == {"bad-age", "bad-gestation"}
    assert "mother_age" in reasons["bad-age"] and "unknown" in reasons["bad-gestation"]

    client = warehouse.client()
    table = client.query("SELECT * FROM babyweight.batch ORDER BY key").to_dataframe()
    assert list(table["key"]) == sorted(rows["key"])
    expected = [toy_weight(instance(r)) for r in rows.sort_values("key").to_dict("records")]
    np.testing.assert_allclose(table["predicted_weight_pounds"], expected, rtol=1e-5, atol=1e-4)

    # The next release replaces the table: the batch predictions are the serving model's.
    second = export_toy_model(tmp_path / "v2", scale=2.0)
    n, _ = _batch_predict(second, rows.iloc[:100], tmp_path, "babyweight.batch")
    table = client.query("SELECT * FROM babyweight.batch ORDER BY key").to_dataframe()
    assert n == len(table) == 100
    np.testing.assert_allclose(
        table["predicted_weight_pounds"], 2 * np.array(expected[:100]), rtol=1e-5, atol=1e-4
    )


def _gate(tmp_path: Path, candidate: Path, serving_base: Path, name: str):
    folder = tmp_path / name
    folder.mkdir()
    rows = eval_rows(600, seed=1)
    rows.to_parquet(folder / "eval.parquet", index=False)
    eval_rows(2000, seed=2).to_parquet(folder / "train.parquet", index=False)
    slices = dsl.Artifact(uri=str(folder / "slices"))
    metrics = dsl.Metrics(uri=str(folder / "metrics"))
    decision = kfp_pipeline.evaluate.python_func(
        model=dsl.Model(uri=str(candidate.parent), metadata={"version_path": str(candidate)}),
        train_data=dsl.Dataset(uri=str(folder / "train.parquet")),
        eval_data=dsl.Dataset(uri=str(folder / "eval.parquet")),
        serving_base=str(serving_base),
        metrics=metrics,
        slices=slices,
    )
    return decision, json.loads(Path(slices.path).read_text()), metrics.metadata


def test_the_gate_passes_a_better_model_and_fails_a_worse_one_naming_why(tmp_path):
    serving = tmp_path / "serving"
    good = export_toy_model(tmp_path / "good", scale=1.0)
    decision, report, metrics = _gate(tmp_path, good, serving, "first")
    assert decision == report["decision"] == "pass" and report["reasons"] == []
    assert report["current"] == "mean weight per plurality"  # nothing in production yet
    assert 0.4 < metrics["rmse"] < 0.6 < metrics["current_rmse"]  # the label's noise is 0.5
    assert report["slices"]["overall"]["rows"] == 600
    assert {"plurality=Single(1)", "is_male=True", "is_male=False"} <= set(report["slices"])

    export_toy_model(serving, version=7, scale=1.0)  # the good model, now in production
    worse = export_toy_model(tmp_path / "worse", scale=1.1)
    decision, report, metrics = _gate(tmp_path, worse, serving, "second")
    assert decision == report["decision"] == "fail"
    assert report["current"] == "production model 7"
    assert metrics["rmse"] > metrics["current_rmse"] == pytest.approx(0.5, abs=0.1)
    assert report["reasons"][0].startswith("overall RMSE")


# -- quantization-aware training -----------------------------------------------------------


def test_fake_quant_dense_rounds_to_its_ranges_which_follow_the_batches_in_training_only():
    import keras

    layer = fake_quant.FakeQuantDense(8, activation="relu", decay=0.9)
    layer.build((None, 3))
    rng = np.random.default_rng(0)
    layer.kernel.assign(rng.normal(0, 1, (3, 8)).astype("float32"))
    first, second = (rng.uniform(-2, 3, (64, 3)).astype("float32") for _ in range(2))
    second *= 2
    y = keras.ops.convert_to_numpy(layer(first, training=True))
    low, high = layer.input_range.numpy()
    assert (low, high) == pytest.approx((first.min(), first.max()))  # the first batch's range
    out_low, out_high = layer.output_range.numpy()
    assert out_low == 0 and out_high == pytest.approx(y.max(), rel=1e-6)  # relu: from zero
    steps = y / (out_high / 255)  # every output on one of the 256 levels of its range
    np.testing.assert_allclose(steps, np.round(steps), atol=2e-3)

    exact = np.maximum(first @ layer.kernel.numpy() + layer.bias.numpy(), 0)
    assert 0 < np.abs(y - exact).max() < 0.02 * exact.max()  # rounded, and close

    layer(second, training=True)  # then 10 % of the way towards each new batch's range
    expected = 0.9 * np.array([low, high]) + 0.1 * np.array([second.min(), second.max()])
    np.testing.assert_allclose(layer.input_range.numpy(), expected, rtol=1e-5)
    ranges = layer.input_range.numpy(), layer.output_range.numpy()
    layer(second * 10)  # inference: the ranges stay
    np.testing.assert_array_equal(layer.input_range.numpy(), ranges[0])
    np.testing.assert_array_equal(layer.output_range.numpy(), ranges[1])


@pytest.fixture(scope="module")
def regression():
    """A small regression problem and a float model trained on it (plain Dense layers)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2000, 4)).astype("float32")
    y = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 2).astype("float32")
    trained = _model(keras.layers.Dense)
    trained.fit(x, y, batch_size=64, epochs=40, verbose=0)
    return x, y, trained


def _model(dense, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    hidden = dense(32, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, dense(1, name="out")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="mse")
    return model


def _fine_tuned(trained, x, y, bits: int, epochs: int):
    """QAT as the notebook does it: the float model's weights in FakeQuantDense layers, the
    ranges set by a first batch, then ``epochs`` of training; (mse before, mse after, model)."""
    import functools

    model = _model(functools.partial(fake_quant.FakeQuantDense, bits=bits))
    for name in ("hidden", "out"):
        layer, source = model.get_layer(name), trained.get_layer(name)
        layer.kernel.assign(source.kernel)
        layer.bias.assign(source.bias)
    model(x[:256], training=True)  # the ranges, from one batch (no weight changes)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return before, model.evaluate(x, y, verbose=0), model


def test_fine_tuning_with_fake_quantisation_recovers_what_rounding_loses(regression):
    x, y, trained = regression
    float_mse = trained.evaluate(x, y, verbose=0)
    rounded, fine_tuned, model = _fine_tuned(trained, x, y, bits=3, epochs=3)
    assert rounded > 2 * float_mse  # 3-bit rounding of the float model costs
    assert fine_tuned < 0.6 * rounded  # training through the rounding wins most of it back
    assert not np.allclose(
        model.get_layer("hidden").kernel.numpy(), trained.get_layer("hidden").kernel.numpy()
    )


def test_a_model_trained_with_fake_quantisation_becomes_an_int8_model_that_agrees(
    regression, tmp_path
):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    x, y, trained = regression
    _, mse, model = _fine_tuned(trained, x, y, bits=8, epochs=1)
    assert mse < 1.1 * trained.evaluate(x, y, verbose=0)  # 8 bits lose next to nothing
    expected = model.predict(x, verbose=0).reshape(-1)

    model.export(str(tmp_path / "qat"), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "qat"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(200))
    interpreter = Interpreter(model_content=converter.convert())
    kernels = {
        tuple(t["shape"]): t["dtype"]
        for t in interpreter.get_tensor_details()
        if tuple(t["shape"]) in ((32, 4), (1, 32))  # the two kernels, as [out, in]
    }
    assert kernels == {(32, 4): np.int8, (1, 32): np.int8}
    runner = interpreter.get_signature_runner()
    answers = np.concatenate([runner(x=x[i : i + 500])["output_0"] for i in range(0, 2000, 500)])
    low, high = model.get_layer("out").output_range.numpy()
    step = (high - low) / 255  # the output's one int8 step, learned in training
    assert np.abs(answers.reshape(-1) - expected).max() <= 1.5 * step
