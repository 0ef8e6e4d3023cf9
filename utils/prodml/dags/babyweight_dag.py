"""The course's basic workflow as an Airflow DAG: query -> export -> train -> deploy.

On Cloud Composer the four steps are BigQueryInsertJobOperator, BigQueryToGCSOperator, a
training job operator and a deploy operator. Here each step is a Python task that makes the
same call through the workbook's backends (the local warehouse and object store, or BigQuery
and GCS when configured), so the DAG runs with ``airflow dags test`` on a laptop.

Run settings come from the DAG run's conf (``airflow dags test ... --conf '{"rows": 4000}'``):
``rows`` (rows queried), ``epochs``, ``smoke`` (a tiny training run).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

DAG_ID = "babyweight_pipeline"
TRAINING_TABLE = "babyweight.training_data"


def _conf(name, default):
    conf = get_current_context()["dag_run"].conf or {}
    return conf.get(name, default)


@task
def query_training_data() -> str:
    """BigQuery step: the course's natality query into a training table."""
    from prodml import warehouse
    from prodml.babyweight import data

    rows = int(_conf("rows", 4000))
    client = warehouse.client()
    sql = f"CREATE OR REPLACE TABLE {TRAINING_TABLE} AS\n{data.query('train', limit=rows)}"
    client.query(sql).result()
    count = client.query(f"SELECT COUNT(*) AS n FROM {TRAINING_TABLE}").to_dataframe()["n"][0]
    print(f"{TRAINING_TABLE}: {count} rows")
    if count == 0:
        raise ValueError(f"{TRAINING_TABLE} is empty: load the natality table first")
    return TRAINING_TABLE


@task
def export_to_storage(table: str) -> str:
    """BigQuery -> Cloud Storage step: the table as CSV in object storage."""
    from prodml import storage, warehouse

    run_id = get_current_context()["run_id"].replace(":", "_").replace("+", "_")
    uri = storage.path("airflow", "babyweight", run_id, "train.csv")
    frame = warehouse.client().query(f"SELECT * FROM {table}").to_dataframe()
    fs = storage.filesystem(uri)
    fs.makedirs(uri.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(uri, "w") as out:
        frame.to_csv(out, index=False)
    print(f"exported {len(frame)} rows to {uri}")
    return uri


@task
def train_model(train_uri: str) -> str:
    """Training-job step: the trainer package run as a cloud training job would run it."""
    import subprocess
    import sys

    output_dir = train_uri.rsplit("/", 1)[0] + "/model"
    cmd = [sys.executable, "-m", "prodml.babyweight.task", "--output-dir", output_dir]
    cmd += ["--train-data", train_uri, "--epochs", str(int(_conf("epochs", 1)))]
    if _conf("smoke", False):
        cmd.append("--smoke")
    print("running", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return output_dir


@task
def deploy_model(output_dir: str) -> str:
    """Deploy step: copy the newest export into the serving base path as a new version.

    TF Serving (and ``prodml serve``) serve the highest numbered version under the base path,
    so deploying is a copy; rolling back is deleting that version folder.
    """
    from prodml import storage

    fs = storage.filesystem(output_dir)
    versions = sorted(
        (p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(f"{output_dir}/export", detail=False)),
        key=int,
    )
    if not versions:
        raise FileNotFoundError(f"no exported model under {output_dir}/export")
    base = storage.path("serving", "babyweight")
    existing = fs.ls(base, detail=False) if fs.exists(base) else []
    version = max([0, *(int(p.rstrip("/").rsplit("/", 1)[-1]) for p in existing)]) + 1
    target = f"{base}/{version}"
    fs.copy(f"{output_dir}/export/{versions[-1]}", target, recursive=True)
    print(f"deployed {output_dir}/export/{versions[-1]} as {target}")
    return target


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["prodml", "module-01"],
    doc_md=__doc__,
)
def babyweight_pipeline():
    t1 = query_training_data()
    t2 = export_to_storage(t1)
    t3 = train_model(t2)
    t4 = deploy_model(t3)
    t1 >> t2 >> t3 >> t4  # already implied by the data passed along; written out as the course does


pipeline = babyweight_pipeline()
