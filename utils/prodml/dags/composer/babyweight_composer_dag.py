"""The course's workflow with Cloud Composer's own operators: the reference DAG.

``babyweight_dag.py`` beside the ``composer`` folder runs the same steps as Python tasks on this
machine. This file is the same workflow as it is written for Cloud Composer, with the Google
provider's operators (``apache-airflow-providers-google``, the ``composer`` extra):

* ``BigQueryInsertJobOperator``: the course's training-data query into a table;
* ``BigQueryToGCSOperator``: that table exported to Cloud Storage as CSV;
* ``CreateCustomPythonPackageTrainingJobOperator``: a Vertex AI training job running
  ``python -m prodml.babyweight.task`` (the trainer package) on the machines it names, which
  uploads the exported SavedModel as a Vertex AI Model;
* a short-circuit release gate: the eval RMSE the trainer wrote (``metrics.json``) against the
  deployed model's, kept in an Airflow Variable;
* ``DeployModelOperator``: that Model deployed to an existing Vertex AI endpoint (a long-running
  operation the operator waits on), taking all of its traffic.

It only runs against Google Cloud (a project, a bucket, an endpoint and the
``google_cloud_default`` connection). Locally it is parsed (``DagBag``), so its task graph can be
looked at and checked; notebook 01 does that.
"""

from __future__ import annotations

import pendulum
from airflow.providers.google.cloud.operators.bigquery import BigQueryInsertJobOperator
from airflow.providers.google.cloud.operators.vertex_ai.custom_job import (
    CreateCustomPythonPackageTrainingJobOperator,
)
from airflow.providers.google.cloud.operators.vertex_ai.endpoint_service import (
    DeployModelOperator,
)
from airflow.providers.google.cloud.transfers.bigquery_to_gcs import BigQueryToGCSOperator
from airflow.sdk import DAG, task

from prodml.babyweight import data

DAG_ID = "babyweight_composer"
PROJECT = "{{ var.value.gcp_project }}"  # Airflow Variables set in the Composer environment
REGION = "{{ var.value.gcp_region }}"
BUCKET = "{{ var.value.gcs_bucket }}"
ENDPOINT_ID = "{{ var.value.babyweight_endpoint_id }}"
# Training and serving images from ONE TensorFlow version, so the SavedModel is served by the
# TensorFlow that wrote it (a version skew otherwise). Pick a version present in both lists:
# https://cloud.google.com/vertex-ai/docs/training/pre-built-containers and
# https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers
TF_VERSION = "2-17"
TRAIN_IMAGE = f"us-docker.pkg.dev/vertex-ai/training/tf-cpu.{TF_VERSION}.py310:latest"
SERVING_IMAGE = f"us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.{TF_VERSION}:latest"
TRAINING_TABLE = "babyweight.training_data"
MARGIN = 0.05  # lb of RMSE the new model may lose against the deployed one


@task.short_circuit
def release_gate(bucket: str, run: str) -> bool:
    """Release only if the new model's eval RMSE (the trainer's ``metrics.json``) is at most the
    deployed model's (Variable ``babyweight_deployed_rmse``) + MARGIN; False skips the deploy."""
    import json

    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from airflow.sdk import Variable

    text = GCSHook().download(bucket_name=bucket, object_name=f"babyweight/{run}/metrics.json")
    new = json.loads(text)["rmse"]
    deployed = float(Variable.get("babyweight_deployed_rmse", default="inf"))
    print(f"gate: new RMSE {new:.3f} lb vs deployed {deployed:.3f} lb (margin {MARGIN})")
    return new <= deployed + MARGIN


with DAG(
    dag_id=DAG_ID,
    schedule="@weekly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["prodml", "module-01", "composer"],
    doc_md=__doc__,
) as dag:
    query = BigQueryInsertJobOperator(
        task_id="query_training_data",
        location="US",
        configuration={
            "query": {
                "query": data.query(None),  # the course's query, both splits
                "useLegacySql": False,
                "destinationTable": {
                    "projectId": PROJECT,
                    "datasetId": TRAINING_TABLE.split(".")[0],
                    "tableId": TRAINING_TABLE.split(".")[1],
                },
                "writeDisposition": "WRITE_TRUNCATE",
            }
        },
    )
    export = BigQueryToGCSOperator(
        task_id="export_to_gcs",
        source_project_dataset_table=f"{PROJECT}.{TRAINING_TABLE}",
        destination_cloud_storage_uris=[f"gs://{BUCKET}/babyweight/{{{{ run_id }}}}/data-*.csv"],
        export_format="CSV",
    )
    train = CreateCustomPythonPackageTrainingJobOperator(
        task_id="train_model",
        project_id=PROJECT,
        region=REGION,
        display_name="babyweight-{{ ds_nodash }}",
        python_package_gcs_uri=f"gs://{BUCKET}/packages/prodml.tar.gz",
        python_module_name="prodml.babyweight.task",
        container_uri=TRAIN_IMAGE,
        model_serving_container_image_uri=SERVING_IMAGE,
        model_display_name="babyweight",
        args=[f"--output-dir=gs://{BUCKET}/babyweight/{{{{ run_id }}}}"],
        staging_bucket=f"gs://{BUCKET}/staging",
        # machine resource management: what the training job runs on
        replica_count=1,
        machine_type="n1-standard-4",
        accelerator_type="ACCELERATOR_TYPE_UNSPECIFIED",
        accelerator_count=0,
    )
    gate = release_gate(BUCKET, "{{ run_id }}")
    deploy = DeployModelOperator(
        task_id="deploy_model",
        project_id=PROJECT,
        region=REGION,
        endpoint_id=ENDPOINT_ID,
        deployed_model={
            "model": "projects/"
            + PROJECT
            + "/locations/"
            + REGION
            + "/models/{{ ti.xcom_pull(task_ids='train_model', key='model_id') }}",
            "display_name": "babyweight-{{ ds_nodash }}",
            "dedicated_resources": {
                "machine_spec": {"machine_type": "n1-standard-2"},
                "min_replica_count": 1,
                "max_replica_count": 3,  # scales horizontally under load
            },
        },
        traffic_split={"0": 100},  # "0": the model being deployed takes all the traffic
    )
    query >> export >> train >> gate >> deploy
