"""The Airflow DAG logs each run to MLflow and its release gate moves the registry's alias:
``champion`` when the new model passes, ``challenger`` when it is blocked."""

from __future__ import annotations

import json
import subprocess

import pytest
from prodml import orchestration, tracking

mlflow = pytest.importorskip("mlflow")


def _dag_test(env: dict, day: str, conf: dict) -> subprocess.CompletedProcess:
    cmd = [orchestration.airflow_bin(), "dags", "test", "babyweight_pipeline", day,
           "--conf", json.dumps(conf)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return orchestration.check(done, "airflow dags test")


def test_gate_decision_is_one_function():
    from prodml.dags import babyweight_dag as dag

    assert dag.decide(1.10, None, 0.05)[0] is True  # nothing deployed yet
    assert dag.decide(1.10, 1.06, 0.05)[0] is True  # within the margin
    passed, why = dag.decide(1.50, 1.06, 0.05)
    assert passed is False and "BLOCKED" in why and "1.500" in why and "1.060" in why


@pytest.mark.slow
def test_dag_runs_are_logged_and_the_gate_moves_the_alias(run_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(run_dir / "airflow"))
    env = orchestration.airflow_env()
    _dag_test(env, "2024-06-01", {"rows": 6000, "epochs": 2})
    blocked = _dag_test(env, "2024-06-02", {"rows": 200, "epochs": 1})
    assert "is now @challenger" in blocked.stdout
    states = orchestration.task_states("babyweight_pipeline")
    assert dict(zip(states["task_id"], states["state"], strict=True))["deploy_model"] == "skipped"

    tracking.use(experiment=None)
    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["babyweight_pipeline"], order_by=["start_time"])
    airflow_runs = list(runs["tags.airflow.run_id"])
    assert len(set(airflow_runs)) == 2 and all(airflow_runs), airflow_runs
    assert list(runs["tags.mlflow.runName"]) == [f"babyweight_pipeline/{r}" for r in airflow_runs]
    assert list(runs["params.rows"]) == ["6000", "200"]
    assert list(runs["tags.gate.decision"]) == ["champion", "challenger"]
    assert list(runs["metrics.gate_passed"]) == [1.0, 0.0]
    assert runs["metrics.gate_new_rmse"].iloc[1] > runs["metrics.gate_deployed_rmse"].iloc[1]
    history = client.get_metric_history(runs["run_id"].iloc[0], "val_rmse")
    assert [m.step for m in history] == [0, 1]  # per epoch
    first, second = (client.search_model_versions(f"run_id = '{r}'")[0] for r in runs["run_id"])
    model = client.get_registered_model("babyweight")
    aliases = {alias: int(version) for alias, version in model.aliases.items()}
    assert aliases == {"champion": int(first.version), "challenger": int(second.version)}
    digests = [
        {i.dataset.digest for i in client.get_run(r).inputs.dataset_inputs} for r in runs["run_id"]
    ]
    assert all(len(d) == 2 for d in digests) and not digests[0] & digests[1]
