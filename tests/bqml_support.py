"""A test MLContext for the BigQuery ML engine: one DuckDB connection and the warehouse's own
BigQuery -> DuckDB translation (``prodml.warehouse.sql.translate``), dispatching a script's
statements the way the warehouse service does (model statements to the engine, queries with ML
functions materialized first, everything else translated and run)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from prodml.datasets import natality
from prodml.warehouse import ml
from prodml.warehouse.ml.parse import to_sql
from prodml.warehouse.sql import register_functions, translate
from sqlglot import exp

PROJECT = "local-project"
NATALITY = '"bigquery-public-data.samples"."natality"'


class Warehouse:
    """An MLContext on a DuckDB database (a file, or an existing connection's cursor)."""

    def __init__(self, path=None, project: str = PROJECT, dataset: str | None = None, con=None):
        self.con = con if con is not None else duckdb.connect(str(path) if path else ":memory:")
        self.con.execute("SET enable_progress_bar = false")
        register_functions(self.con)
        self.project, self.dataset = project, dataset

    def cursor(self) -> Warehouse:
        """Another context on the same database (a DuckDB cursor: one per thread)."""
        return Warehouse(project=self.project, dataset=self.dataset, con=self.con.cursor())

    def query(self, select: exp.Expression) -> pa.Table:
        return self._run(to_sql(select))

    def _run(self, sql: str) -> pa.Table | None:
        result = None
        for statement in translate(sql, self.project):
            if statement.is_query:
                result = self.con.sql(statement.duckdb).to_arrow_table()
            else:
                self.con.execute(statement.duckdb).fetchall()
                result = None
        return result

    def run(self, sql: str) -> pa.Table | None:
        """Run a BigQuery script; the last statement's rows (None for DDL)."""
        result = None
        for statement in ml.parse(sql):
            if ml.is_model_statement(statement):
                result = ml.execute_model_statement(statement, self)
            elif ml.has_ml_functions(statement):
                result = self._run(to_sql(ml.materialize_ml_functions(statement, self)))
            else:
                result = self._run(to_sql(statement))
        return result

    def close(self) -> None:
        self.con.close()


def load_natality(warehouse: Warehouse, rows: int, seed: int = 0) -> None:
    """The public natality table, ``rows`` generated rows, in the warehouse (read-only there
    only on the real service; here a plain table)."""
    frame = natality.generate(rows, seed=seed)
    warehouse.con.execute('CREATE SCHEMA IF NOT EXISTS "bigquery-public-data.samples"')
    warehouse.con.register("natality_frame", frame)
    warehouse.con.execute(f"CREATE OR REPLACE TABLE {NATALITY} AS SELECT * FROM natality_frame")
    warehouse.con.unregister("natality_frame")


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
