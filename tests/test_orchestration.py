"""Airflow run locally: AIRFLOW_HOME under the run folder, `airflow dags test`, task states."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from prodml import orchestration

HELLO_DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import dag, task

    @dag(dag_id="hello_chain", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
    def hello_chain():
        @task
        def first():
            return 20

        @task
        def second(x):
            return x + 1

        @task
        def fails_when_asked(x):
            from airflow.sdk import get_current_context
            if (get_current_context()["dag_run"].conf or {}).get("fail"):
                raise ValueError("asked to fail")
            return x * 2

        fails_when_asked(second(first()))

    hello_chain()
    """
)


@pytest.fixture
def airflow_isolated(run_dir, monkeypatch):
    # Importing airflow in this process must not touch ~/airflow either.
    monkeypatch.setenv("AIRFLOW_HOME", str(run_dir / "airflow"))
    return run_dir


def test_dag_files_chain_the_course_workflow(airflow_isolated):
    from airflow.providers.standard.operators.python import ShortCircuitOperator
    from prodml.dags import babyweight_dag, natality_daily_load_dag

    tasks = {t.task_id: t for t in babyweight_dag.pipeline.tasks}
    order = ["query_training_data", "export_to_storage", "train_model", "safeness_gate"]
    order += ["release_gate", "deploy_model"]
    assert sorted(tasks) == sorted(order)
    # the chain, plus the data the later tasks read: the gates read the model (and the quality
    # gate the export), deploy reads the model; deploy runs only after both gates
    assert tasks["query_training_data"].downstream_task_ids == {"export_to_storage"}
    assert tasks["export_to_storage"].downstream_task_ids == {"train_model", "release_gate"}
    assert tasks["train_model"].downstream_task_ids == {
        "safeness_gate",
        "release_gate",
        "deploy_model",
    }
    assert tasks["safeness_gate"].downstream_task_ids == {"release_gate"}
    assert tasks["release_gate"].downstream_task_ids == {"deploy_model"}
    assert tasks["deploy_model"].upstream_task_ids == {"train_model", "release_gate"}
    # short-circuits: when one returns False, everything downstream is skipped
    assert isinstance(tasks["safeness_gate"], ShortCircuitOperator)
    assert isinstance(tasks["release_gate"], ShortCircuitOperator)
    assert babyweight_dag.pipeline.dag_id == "babyweight_pipeline"
    assert natality_daily_load_dag.pipeline.schedule == "@daily"


@pytest.mark.slow
def test_composer_reference_dag_parses_with_the_google_operators(airflow_isolated, monkeypatch):
    # importing the Google provider takes longer than Airflow's 30 s parse limit on a busy machine
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "600")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    folder = orchestration.DAGS_FOLDER / "composer"
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["babyweight_composer"]
    operators = {t.task_id: type(t).__name__ for t in dag.tasks}
    assert operators == {
        "query_training_data": "BigQueryInsertJobOperator",
        "export_to_gcs": "BigQueryToGCSOperator",
        "train_model": "CreateCustomPythonPackageTrainingJobOperator",
        "release_gate": operators["release_gate"],
        "deploy_model": "DeployModelOperator",
    }
    assert isinstance(dag.task_dict["release_gate"], ShortCircuitOperator)
    chain = ["query_training_data", "export_to_gcs", "train_model", "release_gate"]
    for up, down in zip(chain, [*chain[1:], "deploy_model"], strict=True):
        assert dag.task_dict[up].downstream_task_ids == {down}
    # the local DAGs folder ignores it: `airflow dags test` never imports the Google provider
    assert "composer/" in (orchestration.DAGS_FOLDER / ".airflowignore").read_text()


def test_airflow_env_keeps_everything_under_the_run_folder(airflow_isolated, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    env = orchestration.airflow_env(dags)
    home = airflow_isolated / "airflow"
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(dags.resolve())
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert (home / "airflow.db").is_file()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        orchestration.airflow_env(tmp_path / "missing")


@pytest.mark.slow
def test_dags_test_runs_and_task_states_read_back(airflow_isolated, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hello_chain.py").write_text(HELLO_DAG)
    env = orchestration.airflow_env(dags)
    cmd = [orchestration.airflow_bin(), "dags", "test", "hello_chain", "2024-03-01"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    orchestration.check(done, "airflow dags test")
    states = orchestration.task_states("hello_chain")
    assert list(states["task_id"]) == ["first", "second", "fails_when_asked"]
    assert set(states["state"]) == {"success"}
    assert (states["seconds"] >= 0).all()

    failed = subprocess.run(
        [*cmd[:-1], "2024-03-02", "--conf", '{"fail": true}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    states = orchestration.task_states("hello_chain")
    assert (
        dict(zip(states["task_id"], states["state"], strict=True))["fails_when_asked"] == "failed"
    )
    assert states.attrs["run_id"] != ""
    assert failed.returncode != 0
    with pytest.raises(RuntimeError, match="asked to fail"):
        orchestration.check(failed, "airflow dags test")


def test_task_states_without_a_database_names_the_problem(airflow_isolated):
    with pytest.raises(FileNotFoundError, match="no Airflow metadata database"):
        orchestration.task_states("anything")
