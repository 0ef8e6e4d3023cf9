"""The course's basic workflow as an Airflow DAG: query -> export -> train -> gate -> deploy.

On Cloud Composer the four steps are BigQueryInsertJobOperator, BigQueryToGCSOperator, a
training job operator and a deploy operator (``composer/babyweight_composer_dag.py`` is that
version, parsed locally and run only on Google Cloud). Here each step is a Python task that makes the
same call through the workbook's backends (the local warehouse and object store, or BigQuery
and GCS when configured), so the DAG runs with ``airflow dags test`` on a laptop.

Between training and deployment sit two gates. ``safeness_gate`` loads the new model in a fresh
prediction service and feeds it valid, extreme, missing and malformed inputs
(:mod:`prodml.babyweight.safeness`): a model that crashes, answers NaN or infinity, refuses a
valid input or changes the deployed signature goes no further. Then the release gate (the course's "release, develop and
test" cycle): ``release_gate`` scores the new model and the deployed one on the same eval rows
and lets the run go on only when the new model is not worse by more than a margin. It is a
short-circuit task: when it returns False, ``deploy_model`` is skipped and the serving base path
keeps its current version. (On Composer the same gate is a ``ShortCircuitOperator``, the
TaskFlow ``@task.short_circuit`` here.)

Run settings come from the DAG run's conf (``airflow dags test ... --conf '{"rows": 4000}'``):
``rows`` (rows queried, default 4000), ``epochs`` (default 1) and ``margin`` (lb of RMSE the
new model may lose against the deployed one, default 0.05).
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
    """BigQuery step: the course's natality query (both splits, with hashmonth) into a table."""
    from prodml import warehouse
    from prodml.babyweight import data

    rows = int(_conf("rows", 4000))
    client = warehouse.client()
    client.create_dataset(TRAINING_TABLE.split(".")[0], exists_ok=True)
    sql = f"CREATE OR REPLACE TABLE {TRAINING_TABLE} AS\n{data.query(None, limit=rows)}"
    client.query(sql).result()
    count = int(client.get_table(TRAINING_TABLE).num_rows)
    print(f"{TRAINING_TABLE}: {count} rows")
    if count == 0:
        raise ValueError(f"{TRAINING_TABLE} is empty: load the natality table first")
    return TRAINING_TABLE


@task
def export_to_storage(table: str) -> str:
    """BigQuery -> Cloud Storage step: the table as CSV in object storage."""
    from prodml import storage, warehouse

    run_id = get_current_context()["run_id"]
    folder = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    uri = storage.path("airflow", "babyweight", folder, "data.csv")
    frame = warehouse.client().query(f"SELECT * FROM {table}").to_dataframe()
    fs = storage.filesystem(uri)
    fs.makedirs(uri.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(uri, "w") as out:
        frame.to_csv(out, index=False)
    print(f"exported {len(frame)} rows to {uri}")
    return uri


@task
def train_model(data_uri: str) -> str:
    """Training-job step: train on the exported file (hashmonth < 3 train, = 3 eval), export."""
    import pandas as pd

    from prodml import storage
    from prodml.babyweight import task as trainer

    with storage.filesystem(data_uri).open(data_uri) as f:
        frame = pd.read_csv(f)
    train_df, eval_df = frame[frame.hashmonth < 3], frame[frame.hashmonth == 3]
    print(f"training on {len(train_df)} rows, evaluating on {len(eval_df)}")
    model, _ = trainer.train(
        train_df, eval_df, epochs=int(_conf("epochs", 1)), batch_size=256, verbose=2
    )
    print(f"eval RMSE {trainer.rmse(model, eval_df):.3f} lb")
    output_dir = data_uri.rsplit("/", 1)[0] + "/model"
    export_path = trainer.export(model, f"{output_dir}/export")
    print(f"exported {export_path}")
    return export_path


def _eval_rmse(export_path: str, eval_df) -> float:
    import numpy as np

    from prodml import savedmodel
    from prodml.babyweight import data

    rows = data.preprocess(eval_df)
    signature = savedmodel.load_signature(export_path)
    predicted = savedmodel.predict_columns(signature, rows[list(data.FEATURES)].to_dict("records"))
    errors = predicted["weight"].reshape(-1) - rows[data.LABEL].to_numpy("float64")
    return float(np.sqrt(np.mean(errors**2)))


@task.short_circuit
def safeness_gate(export_path: str) -> bool:
    """Safeness step: the new model in a fresh ``prodml serve`` process, probed; its signatures
    compared with the deployed version's. False skips the release gate and ``deploy_model``."""
    from prodml import savedmodel, storage
    from prodml.babyweight import safeness

    base = storage.path("models", "babyweight")
    deployed = savedmodel.latest(base) if savedmodel.versions(base) else None
    report = safeness.check(export_path, reference=deployed)
    print(report.summary())
    return report.passed


@task.short_circuit
def release_gate(export_path: str, data_uri: str) -> bool:
    """Test step: the new model may go out only if its eval RMSE is at most the deployed
    model's + ``margin`` on the same eval rows (nothing deployed yet: it goes out). False skips
    ``deploy_model``."""
    import pandas as pd

    from prodml import savedmodel, storage

    with storage.filesystem(data_uri).open(data_uri) as f:
        frame = pd.read_csv(f)
    eval_df = frame[frame.hashmonth == 3]
    if eval_df.empty:
        raise ValueError(f"{data_uri} has no eval rows (hashmonth = 3): nothing to gate on")
    margin = float(_conf("margin", 0.05))
    new = _eval_rmse(export_path, eval_df)
    base = storage.path("models", "babyweight")
    if not savedmodel.versions(base):
        print(f"gate: new model RMSE {new:.3f} lb, nothing deployed yet -> release")
        return True
    deployed = savedmodel.latest(base)
    old = _eval_rmse(str(deployed), eval_df)
    passed = new <= old + margin
    verdict = "release" if passed else "BLOCKED, deploy skipped"
    print(
        f"gate: new model RMSE {new:.3f} lb vs deployed {old:.3f} lb "
        f"(margin {margin:.3f}) on {len(eval_df)} eval rows -> {verdict}"
    )
    return passed


@task
def deploy_model(export_path: str) -> str:
    """Deploy step: copy the export into the serving base path as a new version.

    TF Serving (and ``prodml serve``) serve the highest numbered version under the base path
    (``<storage>/models/babyweight``), so deploying is a copy; rolling back is deleting it.
    """
    from prodml import savedmodel, storage

    fs = storage.filesystem(export_path)
    base = storage.path("models", "babyweight")
    fs.makedirs(base, exist_ok=True)
    exported = export_path.rstrip("/").rsplit("/", 1)[-1]
    version = savedmodel.next_version(base, at_least=int(exported) if exported.isdigit() else 1)
    target = f"{base}/{version}"
    fs.copy(export_path.rstrip("/") + "/", target, recursive=True)
    print(f"deployed {export_path} as {target}")
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
    safe = safeness_gate(t3)
    gate = release_gate(t3, t2)
    t4 = deploy_model(t3)
    # already implied by the data passed along, but for the gates; written out as the course does
    t1 >> t2 >> t3 >> safe >> gate >> t4


pipeline = babyweight_pipeline()
