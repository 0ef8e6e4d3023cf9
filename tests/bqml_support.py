"""Test tooling for the BigQuery ML tests: a run folder whose warehouse service holds a small
natality table and the course's babyweight tables, reached with the real client.

The BigQuery ML engine (``prodml.warehouse.ml``) runs inside the run folder's warehouse service,
so tests drive it exactly as a notebook does: ``client.query(sql)``, ``client.get_model(...)``.
"""

from __future__ import annotations

import pandas as pd
import pytest
from prodml import config, warehouse
from prodml.datasets import natality
from warehouse_support import shared_run

PROJECT = "local-project"


def babyweight_client(tmp_path_factory, name: str, rows: int, seed: int):
    """A module's client (yielded) on a fresh run folder: natality at ``rows`` rows (the public
    table, loaded as ``natality.load`` sizes it), the course's babyweight tables
    (:data:`PREPARE_BABYWEIGHT`) and an empty ``demo`` dataset. The service stops afterwards."""
    for run in shared_run(tmp_path_factory, name):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PRODML_RUN_DIR", str(run))
            for var in ("PRODML_WAREHOUSE", "GOOGLE_CLOUD_PROJECT", "PRODML_WAREHOUSE_ML_ENGINE"):
                patch.delenv(var, raising=False)
            config.reset()
            client = warehouse.client()
            natality.load(client, rows=rows, seed=seed)
            client.query(PREPARE_BABYWEIGHT).result()
            client.create_dataset("demo")
            yield client
        config.reset()


def frame(client, sql: str) -> pd.DataFrame:
    """A query's rows as a DataFrame (the client's own ``to_dataframe``)."""
    return client.query(sql).to_dataframe()


def run(client, sql: str):
    """Run a statement to the end (``result()`` raises its error, as BigQuery's client does);
    the finished job."""
    job = client.query(sql)
    job.result()
    return job


# The course's 1b_prepare_data_babyweight (deepdive2/structured), verbatim: the tables that
# 3a and 3b train and evaluate on.
PREPARE_BABYWEIGHT = """
CREATE SCHEMA IF NOT EXISTS babyweight;
CREATE OR REPLACE TABLE
    babyweight.babyweight_data AS
SELECT
    weight_pounds,
    CAST(is_male AS STRING) AS is_male,
    mother_age,
    CASE
        WHEN plurality = 1 THEN "Single(1)"
        WHEN plurality = 2 THEN "Twins(2)"
        WHEN plurality = 3 THEN "Triplets(3)"
        WHEN plurality = 4 THEN "Quadruplets(4)"
        WHEN plurality = 5 THEN "Quintuplets(5)"
    END AS plurality,
    gestation_weeks,
    FARM_FINGERPRINT(
        CONCAT(
            CAST(year AS STRING),
            CAST(month AS STRING)
        )
    ) AS hashmonth
FROM
    publicdata.samples.natality
WHERE
    year > 2000
    AND weight_pounds > 0
    AND mother_age > 0
    AND plurality > 0
    AND gestation_weeks > 0;
CREATE OR REPLACE TABLE
    babyweight.babyweight_augmented_data AS
SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks,
    hashmonth
FROM
    babyweight.babyweight_data
UNION ALL
SELECT
    weight_pounds,
    "Unknown" AS is_male,
    mother_age,
    CASE
        WHEN plurality = "Single(1)" THEN plurality
        ELSE "Multiple(2+)"
    END AS plurality,
    gestation_weeks,
    hashmonth
FROM
    babyweight.babyweight_data;
CREATE OR REPLACE TABLE
    babyweight.babyweight_data_train AS
SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks
FROM
    babyweight.babyweight_augmented_data
WHERE
    ABS(MOD(hashmonth, 4)) < 3;
CREATE OR REPLACE TABLE
    babyweight.babyweight_data_eval AS
SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks
FROM
    babyweight.babyweight_augmented_data
WHERE
    ABS(MOD(hashmonth, 4)) = 3
"""
