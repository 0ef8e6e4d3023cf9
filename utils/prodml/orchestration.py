"""Apache Airflow run locally: the stand-in for Cloud Composer.

Cloud Composer is managed Airflow: the same DAG file that runs here is uploaded to the
environment's ``dags/`` bucket folder. Locally, ``airflow dags test`` runs one DAG run in a
single process, without a scheduler or web server, against a SQLite metadata database. This
module only sets up that environment (an ``AIRFLOW_HOME`` under the run folder) and reads the
task states back; the notebooks show the ``airflow`` command itself.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from prodml import config, environments

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"


def airflow_bin() -> str:
    """The ``airflow`` command: this Python environment's, or on Colab the separate
    environment's that the setup cell installed Airflow into (:mod:`prodml.environments`)."""
    return environments.command("airflow")


def airflow_python() -> str:
    """The Python of the environment that runs Airflow (for a script that imports it)."""
    return environments.python_for("airflow")


def airflow_home() -> Path:
    """The ``AIRFLOW_HOME`` of this run: ``<run folder>/airflow``."""
    return config.run_path("airflow", "airflow.cfg").parent


def airflow_env(dags_folder: str | os.PathLike = DAGS_FOLDER) -> dict[str, str]:
    """Environment for ``airflow`` commands: home under the run folder, SQLite, no examples.

    The metadata database is created (``airflow db migrate``) the first time.
    """
    dags_folder = Path(dags_folder).resolve()
    if not dags_folder.is_dir():
        raise FileNotFoundError(f"DAGs folder {dags_folder} does not exist")
    home = airflow_home()
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        PYTHONWARNINGS=env.get("PYTHONWARNINGS", "ignore"),
    )
    if not (home / "airflow.db").is_file():
        done = subprocess.run(
            [airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed (exit {done.returncode}):\n{_tail(done)}"
            )
    return env


def check(done: subprocess.CompletedProcess, what: str = "airflow") -> subprocess.CompletedProcess:
    """Raise with the end of the log when an ``airflow`` command failed."""
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{_tail(done)}")
    return done


def task_states(dag_id: str, run_id: str | None = None):
    """The task instances of a DAG's latest run (or of ``run_id``) from the metadata database.

    Returns a pandas DataFrame: task_id, state, start_date, end_date, seconds, in run order.
    """
    import pandas as pd

    db = airflow_home() / "airflow.db"
    if not db.is_file():
        raise FileNotFoundError(f"no Airflow metadata database at {db}: run a DAG first")
    with sqlite3.connect(db) as conn:
        if run_id is None:
            row = conn.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if row is None:
                raise LookupError(f"DAG {dag_id!r} has no runs in {db}")
            run_id = row[0]
        frame = pd.read_sql_query(
            "SELECT task_id, state, start_date, end_date FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
            conn,
            params=(dag_id, run_id),
        )
    for column in ("start_date", "end_date"):
        frame[column] = pd.to_datetime(frame[column])
    frame["seconds"] = (frame["end_date"] - frame["start_date"]).dt.total_seconds().round(2)
    frame.attrs["run_id"] = run_id
    return frame


def _tail(done: subprocess.CompletedProcess, lines: int = 40) -> str:
    text = (done.stdout or "") + (done.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


__all__ = [
    "DAGS_FOLDER",
    "airflow_bin",
    "airflow_python",
    "airflow_home",
    "airflow_env",
    "check",
    "task_states",
]
