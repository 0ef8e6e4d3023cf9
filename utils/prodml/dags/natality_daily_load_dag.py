"""ETL pull pattern: a scheduled DAG pulls each day's files from object storage into the warehouse.

Every day (``schedule="@daily"``) the run for logical date ``ds`` lists
``<storage>/landing/natality/<ds>/*.csv``, loads them into ``ingest.natality_daily`` with a
load job (bad rows reported, at most ``max_bad_records`` tolerated), and checks the row count.
``airflow dags test natality_daily_load 2024-01-02`` runs the day 2024-01-02 as the scheduler
would have.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

DAG_ID = "natality_daily_load"
TABLE = "ingest.natality_daily"


@task
def list_new_files() -> list[str]:
    from prodml import storage

    ds = get_current_context()["ds"]
    folder = storage.path("landing", "natality", ds)
    fs = storage.filesystem(folder)
    files = sorted(fs.glob(f"{folder}/*.csv")) if fs.exists(folder) else []
    if not files:
        raise FileNotFoundError(f"no files landed for {ds} in {folder}")
    prefix = "gs://" if folder.startswith("gs://") else ""
    return [prefix + f if prefix and not f.startswith(prefix) else f for f in files]


@task
def load_files(files: list[str]) -> int:
    from google.cloud import bigquery

    from prodml import warehouse

    client = warehouse.client()
    conf = get_current_context()["dag_run"].conf or {}
    client.create_dataset(TABLE.split(".")[0], exists_ok=True)
    loaded = 0
    for uri in files:
        job = client.load_table_from_uri(
            uri,
            TABLE,
            job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.CSV,
                skip_leading_rows=1,
                autodetect=True,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                max_bad_records=int(conf.get("max_bad_records", 0)),
            ),
        )
        job.result()
        for error in job.errors or []:
            print(f"bad row in {uri}: {error}")
        loaded += job.output_rows or 0
        print(f"loaded {job.output_rows} rows from {uri}")
    return loaded


@task
def check_load(loaded: int) -> int:
    from prodml import warehouse

    total = warehouse.client().query(f"SELECT COUNT(*) AS n FROM {TABLE}").to_dataframe()["n"][0]
    print(f"{TABLE}: {loaded} rows loaded this run, {total} in total")
    if loaded <= 0:
        raise ValueError(f"the run loaded no rows into {TABLE}")
    return int(total)


@dag(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["prodml", "module-02"],
    doc_md=__doc__,
)
def natality_daily_load():
    check_load(load_files(list_new_files()))


pipeline = natality_daily_load()
