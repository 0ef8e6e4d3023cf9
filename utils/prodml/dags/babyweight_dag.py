"""The course's basic workflow as an Airflow DAG: query -> export -> train -> gate -> deploy.

On Cloud Composer the four steps are BigQueryInsertJobOperator, BigQueryToGCSOperator, a
training job operator and a deploy operator (``composer/babyweight_composer_dag.py`` is that
version, parsed locally and run only on Google Cloud). Here each step is a Python task that makes the
same call through the workbook's backends (the local warehouse and object store, or BigQuery
and GCS when configured), so the DAG runs with ``airflow dags test`` on a laptop.

Between training and deployment sit two gates. ``safeness_gate`` loads the new model in a
fresh prediction service and feeds it valid, extreme, missing and malformed inputs
(:mod:`prodml.serving.safeness`, with babyweight's probes from :mod:`prodml.babyweight.probes`):
a model that crashes, answers NaN or infinity, refuses a valid input or changes the deployed
signature goes no further, and its MLflow run is tagged ``gate.decision = unsafe`` (it gets no
alias: a canary that deploys the ``challenger`` never serves it). Then the release gate (the
course's "release, develop and test" cycle): ``release_gate`` scores the new model and the
deployed one on the same eval rows and lets the run go on only when the new model is not worse
by more than a margin (:func:`decide`, the one place that decides). Both are short-circuit
tasks: when one returns False, everything after it is skipped and the serving base path keeps
its current version. (On Composer the same gates are ``ShortCircuitOperator`` s, the TaskFlow
``@task.short_circuit`` here.)

Each DAG run is one MLflow run (experiment ``babyweight_pipeline`` in the run folder's store,
when MLflow is installed): ``train_model`` opens it with the run's settings, the data it read
(the exported file, its row count and content digest), the metrics of each epoch and the model,
registered as a new version of ``babyweight``; ``release_gate`` adds both RMSEs and its
decision, and moves the registry's alias: ``champion`` to a version that passes, ``challenger``
to one that does not. ``prodml serve --model babyweight=models:/babyweight@champion`` then
serves the released one.

Run settings come from the DAG run's conf (``airflow dags test ... --conf '{"rows": 4000}'``):
``rows`` (rows queried, default 4000), ``epochs`` (default 1) and ``margin`` (lb of RMSE the
new model may lose against the deployed one, default 0.05).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

DAG_ID = "babyweight_pipeline"
TRAINING_TABLE = "babyweight.training_data"
#: the registered model each trained version joins, and the aliases the gate moves
MODEL_NAME = "babyweight"
PASSED_ALIAS, FAILED_ALIAS = "champion", "challenger"


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


def _settings() -> dict:
    """The run's settings as the DAG reads them (conf or default), logged as the run's params."""
    return {
        "rows": int(_conf("rows", 4000)),
        "epochs": int(_conf("epochs", 1)),
        "margin": float(_conf("margin", 0.05)),
    }


@task
def train_model(data_uri: str) -> dict:
    """Training-job step: train on the exported file (hashmonth < 3 train, = 3 eval), export;
    with MLflow, log the run (settings, data, metrics per epoch) and register the export."""
    import pandas as pd

    from prodml import storage, tracking
    from prodml.babyweight import task as trainer

    with storage.filesystem(data_uri).open(data_uri) as f:
        frame = pd.read_csv(f)
    train_df, eval_df = frame[frame.hashmonth < 3], frame[frame.hashmonth == 3]
    print(f"training on {len(train_df)} rows, evaluating on {len(eval_df)}")
    settings, run_id, on = _settings(), get_current_context()["run_id"], tracking.enabled()
    with trainer.tracked_run(on, DAG_ID, f"{DAG_ID}/{run_id}", settings) as run:
        callbacks = []
        if on:
            import mlflow
            from mlflow.keras import MlflowCallback

            mlflow.set_tags({"airflow.dag_id": DAG_ID, "airflow.run_id": run_id})
            for split, rows in (("training", train_df), ("validation", eval_df)):
                tracking.log_dataframe(rows, f"{TRAINING_TABLE}.{split}", split, uri=data_uri)
            callbacks.append(MlflowCallback())  # each epoch's metrics
        model, _ = trainer.train(
            train_df, eval_df, epochs=settings["epochs"], batch_size=256, verbose=2,
            callbacks=callbacks,
        )  # fmt: skip
        rmse = trainer.rmse(model, eval_df)
        print(f"eval RMSE {rmse:.3f} lb")
        export_path = trainer.export(model, data_uri.rsplit("/", 1)[0] + "/model/export")
        print(f"exported {export_path}")
        trained = {"export_path": export_path, "run_id": None, "model_version": None}
        if on:
            mlflow.log_metric("eval_rmse", rmse)
            version = tracking.log_savedmodel(export_path, MODEL_NAME)
            trained.update(run_id=run.info.run_id, model_version=int(version.version))
            print(f"registered {MODEL_NAME} version {version.version} (run {run.info.run_id})")
    return trained


def _eval_rmse(export_path: str, eval_df) -> float:
    import numpy as np

    from prodml import savedmodel
    from prodml.babyweight import data

    rows = data.preprocess(eval_df)
    signature = savedmodel.load_signature(export_path)
    predicted = savedmodel.predict_columns(signature, rows[list(data.FEATURES)].to_dict("records"))
    errors = predicted["weight"].reshape(-1) - rows[data.LABEL].to_numpy("float64")
    return float(np.sqrt(np.mean(errors**2)))


def decide(new_rmse: float, deployed_rmse: float | None, margin: float) -> tuple[bool, str]:
    """The gate's decision, in one place: (release?, why). The new model goes out when
    nothing is deployed yet, or when its RMSE is at most the deployed one's + ``margin``."""
    if deployed_rmse is None:
        return True, f"new model RMSE {new_rmse:.3f} lb, nothing deployed yet -> release"
    passed = new_rmse <= deployed_rmse + margin
    verdict = "release" if passed else "BLOCKED, deploy skipped"
    return passed, (
        f"new model RMSE {new_rmse:.3f} lb vs deployed {deployed_rmse:.3f} lb "
        f"(margin {margin:.3f}) -> {verdict}"
    )


def _record_decision(trained: dict, passed: bool, new: float, old: float | None) -> None:
    """The decision into the DAG run's MLflow run, and the registry's alias moved to the
    version: ``champion`` when it passed, ``challenger`` when it did not."""
    if trained.get("run_id") is None:
        return  # tracking off: nothing to record
    import mlflow

    from prodml import tracking

    tracking.use(experiment=None)
    alias = PASSED_ALIAS if passed else FAILED_ALIAS
    client, run_id = mlflow.MlflowClient(), trained["run_id"]
    client.log_metric(run_id, "gate_new_rmse", new)
    client.log_metric(run_id, "gate_passed", float(passed))
    if old is not None:
        client.log_metric(run_id, "gate_deployed_rmse", old)
    client.set_tag(run_id, "gate.decision", alias)
    client.set_registered_model_alias(MODEL_NAME, alias, str(trained["model_version"]))
    print(f"gate: {MODEL_NAME} version {trained['model_version']} is now @{alias}")


def _record_safeness(trained: dict, report) -> None:
    """The safeness verdict into the DAG run's MLflow run. An unsafe version gets no alias:
    neither ``champion`` nor ``challenger`` (a canary deploys the challenger), only its tags."""
    if trained.get("run_id") is None:
        return  # tracking off: nothing to record
    import mlflow

    from prodml import tracking

    tracking.use(experiment=None)
    client, run_id = mlflow.MlflowClient(), trained["run_id"]
    client.log_metric(run_id, "gate_safe", float(report.passed))
    client.set_tag(
        run_id, "gate.safeness", "safe" if report.passed else "; ".join(report.reasons)[:4000]
    )
    if not report.passed:
        client.set_tag(run_id, "gate.decision", "unsafe")


@task.short_circuit
def safeness_gate(trained: dict) -> bool:
    """Safeness step: the new model in a fresh ``prodml serve`` process, probed; its signatures
    compared with the deployed version's. False skips the release gate and ``deploy_model``."""
    from prodml import savedmodel, storage
    from prodml.babyweight import probes
    from prodml.serving import safeness

    base = storage.path("models", "babyweight")
    deployed = savedmodel.latest(base) if savedmodel.versions(base) else None
    report = safeness.check(
        trained["export_path"], probes.probe_set(), reference=deployed,
        signature=probes.SIGNATURE, plausible=probes.PLAUSIBLE_WEIGHT,
    )  # fmt: skip
    print(report.summary())
    _record_safeness(trained, report)
    return report.passed


@task.short_circuit
def release_gate(trained: dict, data_uri: str) -> bool:
    """Test step: the new model may go out only if its eval RMSE is at most the deployed
    model's + ``margin`` on the same eval rows (nothing deployed yet: it goes out). False skips
    ``deploy_model``. The decision is logged and moves the registry's alias."""
    import pandas as pd

    from prodml import savedmodel, storage

    with storage.filesystem(data_uri).open(data_uri) as f:
        frame = pd.read_csv(f)
    eval_df = frame[frame.hashmonth == 3]
    if eval_df.empty:
        raise ValueError(f"{data_uri} has no eval rows (hashmonth = 3): nothing to gate on")
    new = _eval_rmse(trained["export_path"], eval_df)
    base = storage.path("models", "babyweight")
    old = _eval_rmse(str(savedmodel.latest(base)), eval_df) if savedmodel.versions(base) else None
    passed, why = decide(new, old, _settings()["margin"])
    print(f"gate: {why} on {len(eval_df)} eval rows")
    _record_decision(trained, passed, new, old)
    return passed


@task
def deploy_model(trained: dict) -> str:
    """Deploy step: copy the export into the serving base path as a new version.

    TF Serving (and ``prodml serve``) serve the highest numbered version under the base path
    (``<storage>/models/babyweight``), so deploying is a copy; rolling back is deleting it.
    """
    from prodml import savedmodel, storage

    export_path = trained["export_path"]
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
