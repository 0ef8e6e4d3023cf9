"""prodml.babyweight: the feature mapping, the SQL split, the model's preprocessing, the trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prodml.babyweight import contract, data
from prodml.babyweight.contract import COURSE_INSTANCE


def raw_rows() -> pd.DataFrame:
    """Ten raw natality-like rows: 6 singletons, 3 twins, 1 triplet; 7 boys."""
    return pd.DataFrame(
        {
            "weight_pounds": [7.5, 8.0, 6.9, 7.1, 7.7, 8.2, 5.1, 5.3, 4.9, 3.8],
            "is_male": [True, True, False, True, True, False, True, True, False, True],
            "mother_age": [26, 30, 22, 35, 28, 31, 29, 33, 27, 36],
            "plurality": [1, 1, 1, 1, 1, 1, 2, 2, 2, 3],
            "gestation_weeks": [39, 40, 38, 41, 39, 40, 36, 35, 36, 32],
        }
    )


# --- the feature mapping --------------------------------------------------------------------


def test_plurality_and_gender_values():
    assert [data.plurality(n) for n in range(1, 6)] == list(data.PLURALITIES[:5])
    assert data.plurality(np.int64(2)) == "Twins(2)"
    assert data.plurality(3.0) == "Triplets(3)"
    # unknown gender: a count above one is only 'Multiple(2+)', a single stays single
    assert data.plurality(2, is_male=None) == "Multiple(2+)"
    assert data.plurality(5, is_male="Unknown") == "Multiple(2+)"
    assert data.plurality(1, is_male=None) == "Single(1)"
    assert data.plurality("Twins(2)") == "Twins(2)"
    assert (data.gender(True), data.gender(False), data.gender(None)) == (
        "True",
        "False",
        "Unknown",
    )
    assert (data.gender(np.bool_(True)), data.gender(0), data.gender("Unknown")) == (
        "True",
        "False",
        "Unknown",
    )


@pytest.mark.parametrize("bad", [0, 6, -1, 1.5, "twins", None, True])
def test_plurality_rejects(bad):
    with pytest.raises(ValueError, match="plurality"):
        data.plurality(bad)


@pytest.mark.parametrize("bad", ["male", "yes", 2, 0.5])
def test_gender_rejects(bad):
    with pytest.raises(ValueError, match="is_male"):
        data.gender(bad)


def test_preprocess_and_features_agree():
    raw = raw_rows()
    frame = data.preprocess(raw)
    assert len(frame) == 10
    assert frame["plurality"].tolist() == ["Single(1)"] * 6 + ["Twins(2)"] * 3 + ["Triplets(3)"]
    assert frame["is_male"].value_counts().to_dict() == {"True": 7, "False": 3}
    assert frame["mother_age"].dtype == np.float32 and frame[data.LABEL].dtype == np.float32
    records = [data.features(r) for r in raw.to_dict("records")]
    assert [r["plurality"] for r in records] == frame["plurality"].tolist()
    assert [r["is_male"] for r in records] == frame["is_male"].tolist()
    assert [r["gestation_weeks"] for r in records] == frame["gestation_weeks"].tolist()
    # a form's values: unknown gender with twins
    form = data.features(
        {"is_male": None, "mother_age": "26", "plurality": 2, "gestation_weeks": "39"}
    )
    assert form == {
        "is_male": "Unknown",
        "mother_age": 26.0,
        "plurality": "Multiple(2+)",
        "gestation_weeks": 39.0,
    }


def test_features_names_missing_values():
    with pytest.raises(ValueError, match="gestation_weeks"):
        data.features({"is_male": True, "mother_age": 26, "plurality": 1})
    with pytest.raises(ValueError, match="plurality"):
        data.preprocess(raw_rows().drop(columns=["plurality"]))


def test_augmentation_exact_counts():
    frame = data.preprocess(raw_rows(), augment_rows=True)
    assert len(frame) == 20
    original, copy = frame.iloc[:10], frame.iloc[10:]
    pd.testing.assert_frame_equal(original.reset_index(drop=True), data.preprocess(raw_rows()))
    assert (copy["is_male"] == "Unknown").all()
    assert copy["plurality"].value_counts().to_dict() == {"Single(1)": 6, "Multiple(2+)": 4}
    assert copy[data.LABEL].tolist() == original[data.LABEL].tolist()
    assert frame["plurality"].value_counts().to_dict() == {
        "Single(1)": 12,
        "Multiple(2+)": 4,
        "Twins(2)": 3,
        "Triplets(3)": 1,
    }


def test_to_dataset_feeds_strings_through_tf_data():
    import tensorflow as tf

    frame = data.preprocess(raw_rows(), augment_rows=True)
    ds = data.to_dataset(frame, batch_size=8, shuffle=True, seed=1)
    features, label = ds.element_spec
    assert features["is_male"].dtype == tf.string and features["plurality"].dtype == tf.string
    assert features["mother_age"].dtype == tf.float32 and label.dtype == tf.float32
    sizes = [int(lab.shape[0]) for _, lab in ds]
    assert sizes == [8, 8, 4]
    unlabeled = data.to_dataset(frame.drop(columns=[data.LABEL]), batch_size=32)
    assert set(unlabeled.element_spec) == set(data.FEATURES)


# --- the query and its split ----------------------------------------------------------------


def test_query_text():
    sql = data.query("train")
    assert "FROM `bigquery-public-data.samples.natality`" in sql
    for condition in (
        "year > 2000",
        "weight_pounds > 0",
        "mother_age > 0",
        "plurality > 0",
        "gestation_weeks > 0",
        "gestation_weeks < 99",
    ):
        assert condition in sql
    split = "ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(year AS STRING), CAST(month AS STRING))), 4))"
    assert f"{split} < 3" in sql and f"{split} = 3" in data.query("eval")
    assert "LIMIT 100" in data.query("eval", limit=100)
    with pytest.raises(ValueError, match="split"):
        data.query("test")
    with pytest.raises(ValueError, match="limit"):
        data.query("train", limit=0)


def test_split_in_sql(run_dir):
    from prodml import warehouse
    from prodml.datasets import natality

    client = warehouse.client()
    natality.load(client=client, rows=20_000, seed=3)
    train = data.read("train", client=client)
    evals = data.read("eval", client=client)
    both = client.query(data.query()).to_dataframe()
    assert len(train) + len(evals) == len(both) > 14_000
    assert 0.65 < len(train) / len(both) < 0.9
    assert set(train["hashmonth"]) <= {0, 1, 2} and set(evals["hashmonth"]) == {3}
    months = {(y, m) for y, m in zip(train["year"], train["month"], strict=True)}
    assert months.isdisjoint(zip(evals["year"], evals["month"], strict=True))
    for frame in (train, evals):
        assert (frame["year"] > 2000).all() and (frame["gestation_weeks"] < 99).all()
        assert (
            (frame[["weight_pounds", "mother_age", "plurality", "gestation_weeks"]] > 0).all().all()
        )
    # the rows the generator states its noise floor for, no more, no fewer
    assert len(both) == len(contract.clean(natality.generate(20_000, seed=3)))
    # every clean row lies in the contract's plausible ranges, so the prediction pipeline's
    # record check accepts all of them (and its dead letters are only truly bad records)
    for name, (low, high) in contract.RANGES.items():
        assert low <= both[name].min() and both[name].max() <= high, name
    checked = [contract.CONTRACT.check(r) for r in both.head(2_000).to_dict("records")]
    assert {r["plurality"] for r in checked} <= set(data.PLURALITIES)
    limited = data.read("train", limit=500, client=client)
    assert len(limited) == 500
    pd.testing.assert_frame_equal(limited, data.read("train", limit=500, client=client))


# --- the model ------------------------------------------------------------------------------


def test_model_preprocessing_maps_unknown_strings_to_oov(tmp_path):
    import tensorflow as tf
    from prodml.babyweight import model as bm

    model = bm.build(seed=7)
    lookup = model.get_layer("plurality_lookup")
    assert lookup(tf.constant(["Single(1)", "Multiple(2+)", "Sextuplets(6)"])).numpy().tolist() == [
        1,
        6,
        0,
    ]
    assert model.get_layer("is_male_lookup")(tf.constant(["True", "maybe"])).numpy().tolist() == [
        1,
        0,
    ]
    ages = model.get_layer("age_buckets")(tf.constant([10.0, 15.0, 26.0, 60.0])).numpy().tolist()
    assert ages == [0, 1, 12, 30]
    bm.save(model, tmp_path / "1")  # the exported signature, as a server calls it
    serve = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"]
    out = serve(
        is_male=tf.constant(["True", "bogus"]),
        mother_age=tf.constant([26.0, 26.0]),
        plurality=tf.constant(["Single(1)", "Sextuplets(6)"]),
        gestation_weeks=tf.constant([39.0, 39.0]),
    )["weight"]
    assert out.shape == (2, 1) and np.isfinite(out.numpy()).all()
    assert model.output_names == ["weight"]


def test_save_adds_extra_signatures_and_keeps_the_trainers(tmp_path):
    import tensorflow as tf
    from prodml.babyweight import model as bm

    model = bm.build(seed=3)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def double(x):
        return {"y": 2.0 * x}

    path = bm.save(model, tmp_path / "1", extra_signatures={"double": double})
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "keyed", "double"}
    assert loaded.signatures["double"](x=tf.constant([1.5, -2.0]))["y"].numpy().tolist() == [
        3.0,
        -4.0,
    ]
    keyed = loaded.signatures["keyed"](
        is_male=tf.constant(["True"]), mother_age=tf.constant([26.0]),
        plurality=tf.constant(["Single(1)"]), gestation_weeks=tf.constant([39.0]),
        key=tf.constant(["r1"]),
    )  # fmt: skip
    assert keyed["key"].numpy().tolist() == [b"r1"] and keyed["weight"].shape == (1, 1)
    with pytest.raises(ValueError, match="serving_default"):
        bm.save(model, tmp_path / "2", extra_signatures={"serving_default": double})
    assert not (tmp_path / "2").exists()


def test_model_is_deterministic_with_a_seed():
    from prodml.babyweight import model as bm

    a, b, c = bm.build(seed=5), bm.build(seed=5), bm.build(seed=6)
    wa, wb, wc = (m.get_layer("deep_0").get_weights()[0] for m in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


# --- the trainer, end to end (smoke sizes) --------------------------------------------------


@pytest.mark.slow
def test_smoke_training_run_exports_both_signatures(tmp_path):
    import tensorflow as tf

    run_dir = tmp_path / "run"
    env = {**os.environ, "PRODML_RUN_DIR": str(run_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "prodml.babyweight.task", "--smoke", "--output-dir", "tmp"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval RMSE" in proc.stdout and "noise floor" in proc.stdout
    out = run_dir / "tmp"  # a relative --output-dir lands under the run folder
    versions = [p.name for p in (out / "export").iterdir()]
    assert len(versions) == 1 and versions[0].isdigit()
    export_path = str(out / "export" / versions[0])

    loaded = tf.saved_model.load(export_path)
    assert set(loaded.signatures) == {"serving_default", "keyed"}
    serving = loaded.signatures["serving_default"]
    expected = {
        "is_male": tf.string,
        "mother_age": tf.float32,
        "plurality": tf.string,
        "gestation_weeks": tf.float32,
    }
    inputs = serving.structured_input_signature[1]
    assert {k: v.dtype for k, v in inputs.items()} == expected
    assert all(v.shape.as_list() == [None] for v in inputs.values())
    # the course model's output shape: one weight per instance in a one-element list
    assert {k: v.shape.as_list() for k, v in serving.structured_outputs.items()} == {
        "weight": [None, 1]
    }
    keyed = loaded.signatures["keyed"]
    assert {k: v.dtype for k, v in keyed.structured_input_signature[1].items()} == {
        **expected,
        "key": tf.string,
    }
    assert set(keyed.structured_outputs) == {"weight", "key"}

    tensors = {k: tf.constant([COURSE_INSTANCE[k]], dtype=inputs[k].dtype) for k in inputs}
    weight = serving(**tensors)["weight"].numpy()
    assert weight.shape == (1, 1) and 5.0 < weight[0, 0] < 10.0
    batch = {k: tf.concat([v, v], axis=0) for k, v in tensors.items()}
    answer = keyed(**batch, key=tf.constant(["a-1", "b-2"]))
    assert answer["key"].numpy().tolist() == [b"a-1", b"b-2"]
    np.testing.assert_allclose(answer["weight"].numpy(), [[weight[0, 0]]] * 2, rtol=1e-5)

    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.9 < metrics["rmse"] < 2.0 and 0.9 < metrics["noise_floor"] < 1.2
    assert metrics["ratio"] == pytest.approx(metrics["rmse"] / metrics["noise_floor"])
    # seeded: even the smoke run lands within 10 % of the generator's noise floor (1.03 here)
    assert metrics["ratio"] < 1.10
    assert metrics["train_rows"] > 10_000 and metrics["eval_rows"] > 2_000
    assert metrics["export_path"] == export_path and metrics["version"] == int(versions[0])
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} >= {"train", "validation"}

    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "saved_model_cli"),
            "show",
            "--dir",
            export_path,
            "--all",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "signature_def['serving_default']" in cli.stdout and "inputs['key']" in cli.stdout


def test_export_versions_increase(tmp_path):
    from prodml.babyweight import model as bm
    from prodml.babyweight import task

    model = bm.build(seed=1)
    first = task.export(model, tmp_path / "export")
    second = task.export(model, tmp_path / "export")
    assert int(Path(second).name) > int(Path(first).name)
    # an untrained model still starts from the mean weight prior, through the real signature
    assert 3.0 < task.predict_instance(second, COURSE_INSTANCE) < 12.0


def test_cli_rejects_bad_arguments(tmp_path):
    from prodml.babyweight import task

    with pytest.raises(SystemExit):
        task.main(["--output-dir", str(tmp_path), "--epochs", "0"])
    with pytest.raises(SystemExit):
        task.main(["--epochs", "1"])  # --output-dir is required
