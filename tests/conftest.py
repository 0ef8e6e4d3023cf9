"""Every test writes under its own temporary run folder, never the repository's; and the test
modules that need a kernel, a browser or a server, or take long, are marked here, in one place,
so that `make check` (`pytest --quick`: the modules not listed, without importing the others)
runs the rest, and `-m "not kernel"` and the like select by mark."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prodml import config

REPO = Path(__file__).resolve().parents[1]

#: test module -> the marks its tests get (a module not listed is quick: `make check` runs it)
MARKS: dict[str, tuple[str, ...]] = {
    "test_babyweight.py": ("slow",),  # trains the model
    "test_bqml.py": ("slow",),  # BigQuery ML models trained on natality
    "test_bqml_engine.py": ("slow",),  # models, processes, threads
    "test_colab.py": ("slow",),  # virtual environments, pip
    "test_dependencies.py": ("slow",),  # uv resolves for Python 3.12 and 3.13
    "test_frontend.py": ("browser", "server"),
    "test_lab_wrong_answers.py": ("browser", "server", "slow"),  # a service, Chromium, Beam
    "test_labs.py": ("kernel", "slow"),
    "test_module05.py": ("slow",),  # notebook 05's pipeline steps and QAT (TensorFlow, Beam)
    "test_orchestration.py": ("slow",),  # Airflow
    "test_pipelines.py": ("server", "slow"),
    "test_quiet_run.py": ("kernel",),
    "test_savedmodel.py": ("slow",),  # exports a SavedModel
    "test_serving.py": ("server",),
    "test_serving_access_log.py": ("server",),
    "test_serving_babyweight.py": ("server", "slow"),
    "test_serving_versions.py": ("server",),
    "test_traffic.py": ("slow",),  # Beam pipelines
    "test_traffic_lab_answers.py": ("server", "slow"),  # the lab run once, its checks re-run
    "test_warehouse_bigquery.py": ("slow",),  # generates the public table
    "test_warehouse_concurrency.py": ("slow",),  # processes
    "test_workbook_grade.py": ("kernel",),
    "test_workbook_grading_steps.py": ("kernel",),
    "test_workbook_run.py": ("kernel",),
}


#: the marks `--quick` leaves out, whether a module (MARKS) or a test carries them
QUICK_SKIPS = ("kernel", "browser", "server", "slow")


def pytest_addoption(parser):
    parser.addoption(
        "--quick",
        action="store_true",
        help="only the modules MARKS does not list (make check), not even imported, and of those "
        "only the tests marked none of QUICK_SKIPS",
    )


def pytest_ignore_collect(collection_path, config):
    if config.getoption("--quick") and collection_path.name in MARKS:
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        for mark in MARKS.get(item.path.name, ()):
            item.add_marker(getattr(pytest.mark, mark))
    if config.getoption("--quick"):  # a quick module's test that carries a mark of its own
        heavy = [i for i in items if any(i.get_closest_marker(m) for m in QUICK_SKIPS)]
        if heavy:
            config.hook.pytest_deselected(items=heavy)
            items[:] = [i for i in items if i not in heavy]


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


@pytest.fixture(scope="session")
def ipython_shell():
    """IPython's global test shell with ``%load_ext prodml.warehouse`` (``%%bigquery``). One per
    process: ``start_ipython`` answers None after its first call, so every test shares this."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    start_ipython()
    shell = get_ipython()
    shell.run_line_magic("load_ext", "prodml.warehouse")
    return shell
