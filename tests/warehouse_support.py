"""Test tooling for the warehouse tests: one local BigQuery service per test module, and a client
that leaves the warehouse as it found it.

Starting a service costs a second or two, so a module's tests share one run folder (and its
service); the ``client`` fixture built with :func:`clean_client` deletes, after each test, every
dataset the test created, so tests stay independent in any order.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from prodml import config, warehouse


def shared_run(tmp_path_factory, name: str = "warehouse"):
    """A run folder for a whole module; its service is stopped at the end."""
    run = tmp_path_factory.mktemp(name)
    yield run
    warehouse.stop(run)


def _datasets(client) -> set[str]:
    names = set()
    for project in client.list_projects():
        names |= {
            f"{project.project_id}.{d.dataset_id}" for d in client.list_datasets(project.project_id)
        }
    return names


def clean_client(run, monkeypatch, dataset: str | None = None, statements: tuple[str, ...] = ()):
    """``warehouse.client()`` on the shared run folder; datasets the test made are dropped.
    ``dataset`` is created for the test and ``statements`` (SQL) run in it first."""
    monkeypatch.setenv("PRODML_RUN_DIR", str(run))
    for var in ("PRODML_WAREHOUSE", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    config.reset()
    client = warehouse.client()
    before = _datasets(client)
    if dataset is not None:
        client.create_dataset(dataset, exists_ok=True)
    for statement in statements:
        client.query(statement).result()
    yield client
    config.reset()
    monkeypatch.setenv("PRODML_RUN_DIR", str(run))
    client = warehouse.client()
    for name in _datasets(client) - before:
        with contextlib.suppress(Exception):  # public datasets cannot be dropped, as on BigQuery
            client.delete_dataset(name, delete_contents=True, not_found_ok=True)


def service_pid(run) -> int:
    """The pid in a run folder's port file."""
    import json

    return json.loads((run / "warehouse.json").read_text())["pid"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def slow_small_table():
    """A public table whose generator takes a second (the concurrency test registers it)."""
    import time

    import pandas as pd

    time.sleep(1.0)  # a slow generator widens the race
    return pd.DataFrame({"i": range(100)})


def dataset_fixtures(name: str, setup: tuple[str, ...] = ()):
    """A module's ``run`` (one service for the module) and ``client`` fixtures, the client's
    tests each starting with dataset ``name`` made by the SQL statements ``setup``::

        run, client = dataset_fixtures("stream", ("CREATE TABLE stream.t (x INT64)",))
    """

    @pytest.fixture(scope="module")
    def run(tmp_path_factory):
        yield from shared_run(tmp_path_factory, name)

    @pytest.fixture
    def client(run, monkeypatch):
        yield from clean_client(run, monkeypatch, name, setup)

    return run, client
