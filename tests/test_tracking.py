"""MLflow as the local stand-in: the trainer's runs in the run folder's store, the registry and
``models:/`` URIs, lineage from the served model back to its data, and bad input.

One tracked smoke training run (two epochs) is shared by the module's tests; a test that needs
its own store uses the ``run_dir`` fixture.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prodml import config, tracking
from prodml.babyweight import contract, data

mlflow = pytest.importorskip("mlflow")

TRAIN_EXAMPLES, EVAL_EXAMPLES = 4_000, 1_500
#: an MLflow 2.x schema revision (datasets' cascading deletion)
OLD_REVISION = "0584bdc529eb"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A run folder of its own with one tracked smoke training run (two epochs)."""
    from prodml.babyweight import task

    run_dir = tmp_path_factory.mktemp("tracked")
    old = os.environ.get("PRODML_RUN_DIR")
    os.environ["PRODML_RUN_DIR"] = str(run_dir)
    config.reset()
    result = task.train_and_export(
        "job",
        smoke=True,
        epochs=2,
        train_examples=TRAIN_EXAMPLES,
        eval_examples=EVAL_EXAMPLES,
        verbose=0,
        track=True,
        run_name="smoke",
    )
    yield {"run_dir": run_dir, "result": result}
    if old is None:
        os.environ.pop("PRODML_RUN_DIR", None)
    else:
        os.environ["PRODML_RUN_DIR"] = old
    config.reset()


@pytest.fixture
def client(store):
    tracking.use(experiment=None)
    return mlflow.MlflowClient()


def test_the_store_lives_in_the_run_folder(store):
    run_dir = store["run_dir"]
    assert tracking.store_path() == run_dir / "mlflow" / "mlflow.db"
    assert tracking.tracking_uri() == f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}"
    assert tracking.artifact_root() == (run_dir / "storage" / "mlflow").as_uri()
    run = mlflow.get_run(store["result"]["run_id"])
    assert run.info.artifact_uri.startswith((run_dir / "storage" / "mlflow").as_uri())


def test_a_training_run_has_its_params_and_metrics_per_epoch(store, client):
    result = store["result"]
    run = client.get_run(result["run_id"])
    assert run.info.run_name == "smoke" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["epochs"] == "2" and params["batch_size"] == "256"
    assert params["rows"] == "20000" and float(params["learning_rate"]) == 0.003
    assert params["train_examples"] == str(TRAIN_EXAMPLES)
    history = client.get_metric_history(result["run_id"], "val_rmse")
    assert [m.step for m in history] == [0, 1]
    assert [m.value for m in history] == pytest.approx(result["history"]["val_rmse"], rel=1e-6)
    assert run.data.metrics["eval_rmse"] == pytest.approx(result["rmse"])
    assert 0.9 < run.data.metrics["eval_rmse"] < 2.0
    assert run.data.metrics["ratio"] == pytest.approx(result["ratio"])


def test_a_training_run_records_the_data_it_read(store, client):
    result = store["result"]
    inputs = client.get_run(result["run_id"]).inputs.dataset_inputs
    by_context = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i for i in inputs
    }
    assert set(by_context) == {"training", "validation"}
    train = by_context["training"]
    source = json.loads(train.dataset.source)
    assert train.dataset.source_type == "bigquery"
    assert source["query"] == data.query("train", limit=TRAIN_EXAMPLES)
    assert source["backend"] == "duckdb"
    assert json.loads(train.dataset.profile)["num_rows"] == result["train_rows"] == TRAIN_EXAMPLES
    # the digest is the content's: the same query read again gives it, another split does not
    again = data.read("train", limit=TRAIN_EXAMPLES)
    assert train.dataset.digest == tracking.content_digest(again) == result["data_digests"]["train"]
    assert tracking.content_digest(again.sample(frac=1.0, random_state=1)) == train.dataset.digest
    assert by_context["validation"].dataset.digest != train.dataset.digest
    changed = again.copy()
    changed.loc[changed.index[0], contract.LABEL] += 0.01
    assert tracking.content_digest(changed) != train.dataset.digest


def test_a_training_run_records_its_code_version(store, client, repo):
    tags = client.get_run(store["result"]["run_id"]).data.tags
    assert tags[tracking.PACKAGE_VERSION_TAG] == "0.1.0"
    if (repo / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert tags[tracking.GIT_COMMIT_TAG] == head


def test_the_savedmodel_is_logged_and_registered(store, client):
    result = store["result"]
    names = {a.path for a in client.list_artifacts(result["run_id"], "model")}
    assert "model/saved_model.pb" in names and "model/variables" in names
    version = client.get_model_version("babyweight", str(result["model_version"]))
    assert version.run_id == result["run_id"]
    assert version.tags["export_version"] == str(result["version"])
    found = tracking.resolve(f"models:/babyweight/{result['model_version']}")
    assert (found.path / "saved_model.pb").is_file() and found.run_id == result["run_id"]
    assert str(found.path).startswith(str(store["run_dir"]))


def test_trainer_runs_inside_an_active_run_are_its_children(store, client):
    from prodml.babyweight import task

    tracking.use("sweep-test")
    with mlflow.start_run(run_name="sweep") as parent:
        children = [
            task.train_and_export("sweep", smoke=True, train_examples=1_000, eval_examples=500,
                                  learning_rate=rate, verbose=0, run_name=f"lr={rate}")
            for rate in (0.001, 0.01)
        ]  # fmt: skip
    found = mlflow.search_runs(
        experiment_names=["sweep-test"],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(found["run_id"]) == sorted(c["run_id"] for c in children)
    assert sorted(found["params.learning_rate"].astype(float)) == [0.001, 0.01]
    assert found["metrics.eval_rmse"].notna().all()


def test_serve_answers_from_the_champion_and_lineage_leads_back_to_the_data(store, client):
    from prodml import serving

    version = str(store["result"]["model_version"])
    client.set_registered_model_alias("babyweight", "champion", version)
    instance = dict(contract.COURSE_INSTANCE)
    with serving.start({"babyweight": "models:/babyweight@champion"}) as server:
        answer = requests.post(
            f"{server.url}/v1/models/babyweight/labels/champion:predict",
            json={"instances": [instance]},
            timeout=60,
        )
    answer.raise_for_status()
    assert 5 < answer.json()["predictions"][0][0] < 10
    served = answer.headers["X-Model-Version"]
    assert served == version
    # back: served version -> run -> its training data (query and digest)
    run = client.get_run(client.get_model_version("babyweight", served).run_id)
    train = next(
        i.dataset
        for i in run.inputs.dataset_inputs
        if any(t.value == "training" for t in i.tags if t.key == "mlflow.data.context")
    )
    assert train.digest == tracking.content_digest(data.read("train", limit=TRAIN_EXAMPLES))
    # forward: the digest -> every run trained on it -> their registered versions
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"dataset.digest = '{train.digest}'"
    )
    assert store["result"]["run_id"] in set(runs["run_id"])
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert served in {str(v.version) for v in versions}


def test_rollback_moves_the_alias_and_serving_follows(store, client):
    first = client.get_model_version("babyweight", str(store["result"]["model_version"]))
    run = client.get_run(first.run_id)
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    with mlflow.start_run(run_id=run.info.run_id):
        second = tracking.log_savedmodel(store["result"]["export_path"], "babyweight")
    client.set_registered_model_alias("babyweight", "champion", second.version)
    assert tracking.resolve("models:/babyweight@champion").version == int(second.version)
    client.set_registered_model_alias("babyweight", "champion", first.version)  # roll back
    resolved = tracking.resolve("models:/babyweight@champion")
    assert resolved.version == int(first.version) and resolved.aliases == ("champion",)
    assert tracking.resolve("models:/babyweight/latest").version == int(second.version)


def test_unknown_alias_or_version_names_the_registered_ones(store, client):
    version = store["result"]["model_version"]
    client.set_registered_model_alias("babyweight", "champion", str(version))
    with pytest.raises(tracking.ModelNotFound, match=r"no alias 'gold'.*@champion -> \d+"):
        tracking.resolve("models:/babyweight@gold")
    with pytest.raises(tracking.ModelNotFound, match=r"no version '999'; its versions: \[\d"):
        tracking.resolve("models:/babyweight/999")
    with pytest.raises(tracking.ModelNotFound, match=r"registered models: \['babyweight'"):
        tracking.resolve("models:/wombat@champion")
    with pytest.raises(ValueError, match="not a model URI"):
        tracking.resolve("models:/babyweight")
    done = subprocess.run(
        [sys.executable, "-m", "prodml.cli", "serve", "--port", "0",
         "--model", "babyweight=models:/babyweight@gold"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PRODML_RUN_DIR": str(store["run_dir"])},
    )  # fmt: skip
    assert done.returncode == 2
    assert "no alias 'gold'" in done.stderr and "@champion" in done.stderr


def test_resolving_without_a_store_says_so_and_creates_none(run_dir):
    with pytest.raises(tracking.ModelNotFound, match="no model registry at .*nothing has been"):
        tracking.resolve("models:/babyweight@champion")
    assert not (run_dir / "mlflow").exists()


def test_an_older_store_is_refused_with_the_command_that_migrates_it(run_dir):
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import InitialBase, _get_alembic_config

    db = run_dir / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True)
    uri = f"sqlite:///{db}"
    # a store as an MLflow 2.x release left it: the first tables, then its migrations
    InitialBase.metadata.create_all(sqlalchemy.create_engine(uri))
    command.upgrade(_get_alembic_config(uri), OLD_REVISION)
    with pytest.raises(tracking.StoreSchemaError) as refused:
        tracking.use("babyweight")
    message = str(refused.value)
    assert OLD_REVISION in message and f"mlflow db upgrade {uri}" in message
    before = sqlite3.connect(db).execute("SELECT version_num FROM alembic_version").fetchone()
    assert before == (OLD_REVISION,), "refusing must not touch the store"
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    done = subprocess.run([str(mlflow_bin), "db", "upgrade", uri], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert tracking.use("babyweight") is not None  # migrated: accepted


def test_tracking_switch(monkeypatch):
    monkeypatch.delenv(tracking.TRACKING_ENV, raising=False)
    assert tracking.enabled() is True and tracking.enabled(False) is False
    for off in ("off", "0", "false"):
        monkeypatch.setenv(tracking.TRACKING_ENV, off)
        assert tracking.enabled() is False
    monkeypatch.setenv(tracking.TRACKING_ENV, "maybe")
    with pytest.raises(ValueError, match="PRODML_TRACKING"):
        tracking.enabled()


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.slow
def test_nothing_is_written_outside_the_run_folder(tmp_path):
    """The trainer run tracked and untracked, each with its own HOME and working folder: the
    working folder stays empty and tracking adds nothing to HOME (no mlruns/, no mlflow.db,
    no ~/.config/mlflow)."""
    seen = {}
    for mode in ("off", "on"):
        home, cwd, run = (tmp_path / mode / d for d in ("home", "cwd", "run"))
        for folder in (home, cwd):
            folder.mkdir(parents=True)
        env = {**os.environ, "HOME": str(home), "PRODML_RUN_DIR": str(run),
               "PRODML_TRACKING": mode, "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("MLFLOW_DISABLE_TELEMETRY", None)
        done = subprocess.run(
            [sys.executable, "-m", "prodml.babyweight.task", "--smoke", "--output-dir", "job",
             "--train-examples", "1000", "--eval-examples", "500"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert ("tracked: run" in done.stdout) == (mode == "on")
        assert _files(cwd) == set(), f"written to the working folder: {_files(cwd)}"
        seen[mode] = _files(home)
        assert (run / "mlflow" / "mlflow.db").is_file() == (mode == "on")
    assert seen["on"] == seen["off"], f"tracking wrote to HOME: {seen['on'] - seen['off']}"


@pytest.mark.slow
def test_the_tracking_server_serves_the_store(store):
    with tracking.start() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert requests.get(f"{server.url}/health", timeout=10).text == "OK"
        remote = mlflow.MlflowClient(tracking_uri=server.url)
        experiment = remote.get_experiment_by_name("babyweight")
        runs = remote.search_runs([experiment.experiment_id], "attributes.run_name = 'smoke'")
        assert [r.info.run_id for r in runs] == [store["result"]["run_id"]]
        assert server.log_path.parent == store["run_dir"] / "logs"
    assert server.process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/health", timeout=5)
