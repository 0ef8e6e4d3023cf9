"""The babyweight trainer honours Vertex AI's custom-training container contract: the model,
checkpoint and TensorBoard folders and the training, validation and test data URIs it is
given in ``AIP_*`` variables (issue 26, item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from prodml import savedmodel
from prodml.babyweight import contract, data, vertex


def test_training_data_without_validation_data_is_refused():
    with pytest.raises(ValueError, match="AIP_VALIDATION_DATA_URI is not"):
        vertex.check_splits({"AIP_TRAINING_DATA_URI": "gs://b/train-*.csv"})
    assert vertex.check_splits({}) is False
    assert vertex.environment({"AIP_MODEL_DIR": " /m ", "AIP_CHECKPOINT_DIR": "", "X": "1"}) == {
        "AIP_MODEL_DIR": "/m"
    }


def test_read_uri_names_what_is_wrong(tmp_path):
    (tmp_path / "bad.csv").write_text("weight_pounds,mother_age\n7.5,30\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['is_male', 'plurality'"):
        vertex.read_uri(str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError, match="no data file matches"):
        vertex.read_uri(str(tmp_path / "train-*.csv"))
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(ValueError, match="AIP_DATA_FORMAT 'avro'"):
        vertex.read_uri(str(tmp_path / "rows.txt"), "avro")


@pytest.mark.slow
def test_the_trainer_runs_as_a_vertex_ai_custom_job(run_dir, tmp_path):
    from prodml import warehouse
    from prodml.datasets import natality

    client = warehouse.client()
    natality.load(client=client, rows=20_000, seed=42)
    train = data.read("train", limit=3_000, client=client)
    folder = tmp_path / "dataset"
    folder.mkdir()
    halves = [train.iloc[:1_500], train.iloc[1_500:]]  # Vertex AI exports a split as shards
    for i, half in enumerate(halves):
        half.to_csv(folder / f"training-{i:05d}-of-00002.csv", index=False)
    data.read("eval", limit=1_000, client=client).to_csv(folder / "validation.csv", index=False)
    client.create_dataset("vertex", exists_ok=True)
    test_sql = data.query("eval", limit=800)
    client.query(f"CREATE OR REPLACE TABLE vertex.test_split AS\n{test_sql}").result()
    aip = {
        "AIP_MODEL_DIR": str(tmp_path / "model"),
        "AIP_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "AIP_TENSORBOARD_LOG_DIR": str(tmp_path / "tensorboard"),
        "AIP_TRAINING_DATA_URI": str(folder / "training-*.csv"),
        "AIP_VALIDATION_DATA_URI": str(folder / "validation.csv"),
        "AIP_TEST_DATA_URI": "bq://local-project.vertex.test_split",
    }
    env = {**os.environ, **aip, "PRODML_RUN_DIR": str(run_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "prodml.babyweight.task", "--epochs", "2", "--batch-size", "256"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    # the SavedModel at the root of AIP_MODEL_DIR, where Model.upload(artifact_uri=...) reads it
    assert savedmodel.is_savedmodel(aip["AIP_MODEL_DIR"])
    serve = savedmodel.load_signature(aip["AIP_MODEL_DIR"])
    weight = savedmodel.predict_rows(serve, [contract.COURSE_INSTANCE])[0]["weight"][0]
    assert 5 < weight < 10
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["epoch-01.weights.h5", "epoch-02.weights.h5"]
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} >= {"train", "validation"}

    metrics = json.loads((run_dir / "babyweight" / "metrics.json").read_text())
    assert metrics["export_path"] == aip["AIP_MODEL_DIR"]
    assert metrics["train_rows"] == 3_000 and metrics["eval_rows"] == 1_000
    assert 0.9 < metrics["test_rmse"] < 2.0 and "test RMSE" in done.stdout
    assert "eval RMSE" in done.stdout and "noise floor" in done.stdout
    # what the job read is tracked by URI (files) and by query (the BigQuery table)
    if metrics.get("run_id"):
        import mlflow
        from prodml import tracking

        tracking.use(experiment=None)
        inputs = mlflow.MlflowClient().get_run(metrics["run_id"]).inputs.dataset_inputs
        sources = {
            next(t.value for t in i.tags if t.key == "mlflow.data.context"): json.loads(
                i.dataset.source
            )
            for i in inputs
        }
        assert sources["training"]["uri"].endswith("training-*.csv")
        assert sources["validation"]["uri"].endswith("validation.csv")
        assert sources["test"]["query"] == "SELECT * FROM `local-project.vertex.test_split`"
