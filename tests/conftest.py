"""Every test writes under its own temporary run folder, never the repository's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prodml import config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _session_run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    old = os.environ.get("PRODML_RUN_DIR")
    os.environ["PRODML_RUN_DIR"] = str(run_dir)
    for var in ("PRODML_WAREHOUSE", "PRODML_STORAGE"):
        os.environ.pop(var, None)
    yield run_dir
    _stop_warehouse(run_dir)
    if old is None:
        os.environ.pop("PRODML_RUN_DIR", None)
    else:
        os.environ["PRODML_RUN_DIR"] = old


def _stop_warehouse(run_dir: Path) -> None:
    """Stop the run folder's warehouse service, if a test started one (it would otherwise
    idle for minutes)."""
    if (run_dir / "warehouse.json").exists():
        from prodml.warehouse import service

        service.stop(run_dir)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A fresh run folder for one test."""
    monkeypatch.setenv("PRODML_RUN_DIR", str(tmp_path / "run"))
    config.reset()
    yield tmp_path / "run"
    config.reset()
    _stop_warehouse(tmp_path / "run")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def babyweight_export(tmp_path_factory) -> str:
    """One smoke-trained babyweight SavedModel (DIR/export/<version>) shared by the session's tests."""
    from prodml.babyweight import task

    out = tmp_path_factory.mktemp("babyweight")
    return str(task.train_and_export(out, smoke=True, verbose=0)["export_path"])
