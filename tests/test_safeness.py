"""The safeness gate (prodml.serving.safeness, fed babyweight's probes from
prodml.babyweight.probes): a candidate loaded in a fresh prediction service, fed valid, extreme,
missing and malformed inputs, blocked when it crashes, answers NaN or infinity, refuses a valid
input, or breaks the deployed signature."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prodml.babyweight import probes
from prodml.serving import safeness


def export_model(path: Path, *, nan_at_age=None, abort_above_age=None, output="weight") -> Path:
    """A babyweight-shaped SavedModel (the four features -> ``{output: [None, 1]}``) that cleans
    its inputs (non-finite -> a default, then clipped to the contract's range), so every probe
    gets a finite answer. ``nan_at_age``: answer NaN for exactly that mother_age (the bug a
    ``log(age - 12)`` feature brings); ``abort_above_age``: abort the process (TensorFlow's
    Abort op, as a failed CHECK would) when an age above it arrives."""
    import tensorflow as tf

    S, F = tf.string, tf.float32
    specs = [tf.TensorSpec([None], S, name="is_male"), tf.TensorSpec([None], F, name="mother_age"),
             tf.TensorSpec([None], S, name="plurality"), tf.TensorSpec([None], F, name="gestation_weeks")]  # fmt: skip

    def clean(x, default, low, high):
        return tf.clip_by_value(tf.where(tf.math.is_finite(x), x, default), low, high)

    class Model(tf.Module):
        @tf.function(input_signature=specs)
        def serve(self, is_male, mother_age, plurality, gestation_weeks):
            age, weeks = (
                clean(mother_age, 26.0, 12.0, 50.0),
                clean(gestation_weeks, 39.0, 17.0, 47.0),
            )
            male = tf.cast(tf.equal(is_male, "True"), F)
            w = 7.3 + 0.2 * (weeks - 39.0) + 0.01 * (age - 26.0) + 0.3 * male
            if nan_at_age is not None:
                w = tf.where(tf.equal(mother_age, nan_at_age), tf.constant(math.nan), w)
            if abort_above_age is not None:

                def abort():
                    with tf.control_dependencies([tf.raw_ops.Abort(error_msg="model bug")]):
                        return tf.identity(w)

                w = tf.cond(tf.reduce_any(mother_age > abort_above_age), abort, lambda: w)
            return {output: tf.expand_dims(w, -1)}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return path


def gate(candidate, reference=None):
    """The gate as the notebook and the DAG call it: babyweight's probes, signature, range."""
    return safeness.check(
        candidate, probes.probe_set(), reference=reference,
        signature=probes.SIGNATURE, plausible=probes.PLAUSIBLE_WEIGHT,
    )  # fmt: skip


# -- fast: the probe set, the classification, the signature comparison -------------------------
def test_the_probes_cover_every_kind_and_every_feature():
    found = [safeness.Probe(*p) for p in probes.probe_set()]
    assert {p.kind for p in found} == set(safeness.KINDS)
    names = " ".join(p.name for p in found)
    for feature in ("is_male", "mother_age", "plurality", "gestation_weeks"):
        assert feature in names
    nan_probe = next(p for p in found if p.name == "mother_age = NaN")
    assert math.isnan(nan_probe.instances[0]["mother_age"]) and nan_probe.kind == "missing"
    left_out = next(p for p in found if p.name == "gestation_weeks left out")
    assert "gestation_weeks" not in left_out.instances[0]
    every = next(p for p in found if p.name == "every category value, one batch")
    assert len(every.instances) == 3 * 6  # genders x pluralities


def test_classify_names_each_outcome():
    valid = safeness.Probe("v", "valid", [{}])
    extreme = safeness.Probe("e", "extreme", [{}])
    assert safeness.classify(valid, 200, '{"predictions": [[7.1]]}')[0] == "answered"
    assert safeness.classify(valid, 200, '{"predictions": []}')[0] == "wrong number of answers"
    assert safeness.classify(valid, 200, '{"predictions": [[7.1], [7.2]]}')[:2] == (
        "wrong number of answers",
        "2 for 1 instances",
    )
    assert safeness.classify(extreme, 200, '{"predictions": [[NaN]]}')[0] == "non-finite"
    assert safeness.classify(extreme, 200, '{"predictions": [[-Infinity]]}')[0] == "non-finite"
    assert safeness.classify(extreme, 400, '{"error": "bad"}')[:2] == (
        "refused",
        '{"error": "bad"}',
    )
    assert safeness.classify(valid, 400, "no")[0] == "refused a valid input"
    assert safeness.classify(extreme, 500, "oops")[0] == "crash"
    assert safeness.classify(extreme, None, "no answer")[0] == "crash"


def test_signature_changes_that_break_clients_are_named():
    ref = probes.SIGNATURE
    assert safeness.compare_signatures(ref, ref) == []
    renamed = {"serving_default": {**ref["serving_default"], "outputs": {"weight_lb": ("DT_FLOAT", (-1, 1))}}}  # fmt: skip
    assert safeness.compare_signatures(renamed, ref) == ["serving_default: output 'weight' is gone"]
    inputs = dict(ref["serving_default"]["inputs"], mother_age=("DT_DOUBLE", (-1,)), cigarettes=("DT_FLOAT", (-1,)))  # fmt: skip
    changed = {"serving_default": {**ref["serving_default"], "inputs": inputs}}
    assert safeness.compare_signatures(changed, ref) == [
        "serving_default: new input 'cigarettes', which clients do not send",
        "serving_default: input 'mother_age' was ('DT_FLOAT', (-1,)), now ('DT_DOUBLE', (-1,))",
    ]
    extra_output = {"serving_default": {**ref["serving_default"], "outputs": {"weight": ("DT_FLOAT", (-1, 1)), "std": ("DT_FLOAT", (-1, 1))}}}  # fmt: skip
    assert safeness.compare_signatures(extra_output, ref) == []  # a new output breaks nobody
    assert safeness.compare_signatures({}, ref) == ["signature 'serving_default' is gone"]


def test_the_gate_refuses_to_judge_without_what_it_needs(tmp_path):
    """Bad settings are refused before any process starts, each with the reason."""
    some = probes.probe_set()
    with pytest.raises(ValueError, match="reference=.*signature="):
        safeness.check(tmp_path, some)  # nothing to compare the signature with
    with pytest.raises(ValueError, match="no probes given"):
        safeness.check(tmp_path, [], signature=probes.SIGNATURE)
    with pytest.raises(ValueError, match=r"kind\(s\) \['weird'\] unknown"):
        safeness.check(tmp_path, [*some, ("x", "weird", [{}])], signature=probes.SIGNATURE)
    only_malformed = [p for p in some if p[1] == "malformed"]
    with pytest.raises(ValueError, match="no valid probe"):
        safeness.check(tmp_path, only_malformed, signature=probes.SIGNATURE)


# -- slow: a fresh prediction service per check ---------------------------------------------------
@pytest.mark.slow
def test_the_gate_passes_a_clean_model_and_blocks_one_that_answers_nan_on_one_input(tmp_path):
    healthy = gate(export_model(tmp_path / "healthy"))
    assert healthy.passed, healthy.summary()
    frame = healthy.probes
    assert len(frame) == len(probes.probe_set())
    assert set(frame.loc[frame["kind"] == "valid", "outcome"]) == {"answered"}
    assert frame.loc[frame["kind"] == "valid", "plausible"].all()
    # malformed requests are refused with the server's message, not crashed on
    refused = frame.set_index("probe").loc["mother_age as a string"]
    assert refused["outcome"] == "refused" and refused["status"] == 400
    assert "mother_age" in refused["detail"]

    buggy = gate(export_model(tmp_path / "nan", nan_at_age=12.0), reference=tmp_path / "healthy")  # fmt: skip
    assert not buggy.passed
    assert buggy.reasons == [
        "non-finite: mother_age = 12 and 50 (valid) answered [nan, 7.84]"  # 7.3 + 0.24 + 0.3
    ], buggy.summary()
    assert buggy.signature_problems == []


@pytest.mark.slow
def test_a_model_that_kills_the_process_is_blocked_and_the_gate_survives(tmp_path):
    report = gate(export_model(tmp_path / "abort", abort_above_age=1000.0))
    assert not report.passed
    crashed = report.probes[report.probes["outcome"] == "crash"]
    assert crashed.iloc[0]["probe"] == "mother_age = 1e+06"
    assert (
        "the server died" in crashed.iloc[0]["detail"] or "no answer" in crashed.iloc[0]["detail"]
    )
    # every later probe is reported, not lost: the server is down for them
    later = report.probes.iloc[crashed.index[0] + 1 :]
    assert len(later) > 0 and set(later["outcome"]) == {"crash"}


@pytest.mark.slow
def test_a_changed_signature_or_an_unloadable_export_is_blocked(tmp_path):
    renamed = gate(export_model(tmp_path / "renamed", output="weight_lb"))
    assert renamed.signature_problems == ["serving_default: output 'weight' is gone"]
    assert not renamed.passed and renamed.probes["outcome"].isin(["answered", "refused"]).all()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    report = gate(broken)
    assert not report.passed and report.load_error
    assert report.reasons[0].startswith("the candidate did not load")


@pytest.mark.slow
def test_the_trained_babyweight_model_is_safe_to_serve(babyweight_export):
    report = gate(babyweight_export)
    assert report.passed, report.summary()
    assert report.signature_problems == []


@pytest.mark.slow
def test_the_dags_safeness_task_blocks_the_nan_model_and_passes_the_clean_one(run_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(run_dir / "airflow"))  # importing airflow: not ~/airflow
    from prodml.dags import babyweight_dag

    task = babyweight_dag.safeness_gate.function  # the task's own code, as Airflow calls it
    clean = export_model(run_dir / "candidates" / "clean")
    untracked = {"run_id": None, "model_version": None}
    assert task({"export_path": str(clean), **untracked}) is True  # nothing deployed: contract
    nan = export_model(run_dir / "candidates" / "nan", nan_at_age=12.0)
    assert task({"export_path": str(nan), **untracked}) is False


@pytest.mark.slow
def test_an_unsafe_version_is_tagged_in_its_run_and_gets_no_alias(run_dir, monkeypatch):
    """With tracking on, the task writes its verdict into the DAG run's MLflow run; an unsafe
    version is neither champion nor challenger (a canary deploys the challenger)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("AIRFLOW_HOME", str(run_dir / "airflow"))
    from prodml import tracking
    from prodml.dags import babyweight_dag

    nan = export_model(run_dir / "candidates" / "nan", nan_at_age=12.0)
    tracking.use(experiment="safeness")
    with mlflow.start_run() as run:
        pass
    trained = {"export_path": str(nan), "run_id": run.info.run_id, "model_version": 1}
    assert babyweight_dag.safeness_gate.function(trained) is False
    logged = mlflow.MlflowClient().get_run(run.info.run_id).data
    assert logged.metrics["gate_safe"] == 0.0
    assert logged.tags["gate.decision"] == "unsafe"
    assert logged.tags["gate.safeness"].startswith("non-finite: mother_age = 12 and 50")
    assert mlflow.MlflowClient().search_registered_models() == []  # no alias, nothing registered
