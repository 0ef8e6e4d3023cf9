import os
from pathlib import Path

import pytest
from prodml import config, storage


def test_defaults_are_local(run_dir):
    s = config.settings()
    assert s.warehouse == "duckdb"
    assert s.project == "local-project"
    assert s.run_dir == run_dir.resolve()
    assert s.storage == str(run_dir.resolve() / "storage")
    assert s.duckdb_path == run_dir.resolve() / "warehouse.duckdb"
    assert s.local


def test_environment_selects_bigquery(run_dir, monkeypatch):
    monkeypatch.setenv("PRODML_WAREHOUSE", "BigQuery")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    monkeypatch.setenv("PRODML_STORAGE", "gs://my-bucket/prefix/")
    s = config.settings()
    assert (s.warehouse, s.project, s.storage) == ("bigquery", "my-proj", "gs://my-bucket/prefix")
    assert not s.local


def test_configure_overrides_environment_and_is_inherited(run_dir, monkeypatch):
    monkeypatch.setenv("PRODML_WAREHOUSE", "duckdb")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    s = config.configure(warehouse="bigquery", project="p1", storage=None)
    assert s.warehouse == "bigquery" and s.project == "p1"
    assert os.environ["PRODML_WAREHOUSE"] == "bigquery"  # what subprocesses inherit
    assert os.environ["GOOGLE_CLOUD_PROJECT"] == "p1"
    config.reset()
    assert os.environ["PRODML_WAREHOUSE"] == "duckdb"  # the value set before configure()
    assert "GOOGLE_CLOUD_PROJECT" not in os.environ  # unset before, unset again
    assert config.settings().warehouse == "duckdb"


def test_reset_gives_back_the_project_the_user_had_set(run_dir, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "users-own-project")
    config.configure(project="notebook-project")
    config.configure(project="second-notebook-project")
    assert config.settings().project == "second-notebook-project"
    config.reset()
    assert os.environ["GOOGLE_CLOUD_PROJECT"] == "users-own-project"
    assert config.settings().project == "users-own-project"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRODML_WAREHOUSE": "snowflake"}, "unknown warehouse 'snowflake'"),
        ({"PRODML_WAREHOUSE": "bigquery"}, "needs a Google Cloud project"),
        ({"PRODML_STORAGE": "s3://bucket"}, "local folder or gs://bucket"),
    ],
)
def test_bad_settings_name_the_problem(run_dir, monkeypatch, env, message):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        config.settings()


def test_configure_rejects_unknown_settings(run_dir):
    with pytest.raises(TypeError, match="unknown setting"):
        config.configure(warehose="duckdb")


def test_run_path_creates_parent_under_run_dir(run_dir):
    p = config.run_path("models", "babyweight", "export")
    assert p.parent.is_dir()
    assert Path(p).is_relative_to(run_dir.resolve())


def test_storage_paths_local_and_gcs(run_dir, monkeypatch):
    local = storage.path("babyweight", "data.csv")
    assert local == str(run_dir.resolve() / "storage" / "babyweight" / "data.csv")
    storage.makedirs(storage.path("babyweight"))
    assert (run_dir / "storage" / "babyweight").is_dir()
    monkeypatch.setenv("PRODML_STORAGE", "gs://bkt")
    assert storage.path("a", "b.csv") == "gs://bkt/a/b.csv"
    with pytest.raises(ValueError, match="relative"):
        storage.path("../etc")
