"""BigQuery ML's ``model_registry = 'VERTEX_AI'``: the trained model registered in the run
folder's MLflow registry as a SavedModel, which scores what ML.PREDICT scores.

The statements are the course's (3b_bqml_linear_transform_babyweight's TRANSFORM model, the
bqml-vertexai-model-registry lab's LOGISTIC_REG) with the registry options BigQuery takes.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from bqml_support import babyweight_client, frame, run
from prodml import serving, tracking
from test_bqml import BASELINE, CROSSED

TRANSFORM_MODEL = f"""
CREATE OR REPLACE MODEL
    babyweight.model_3

TRANSFORM(
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks,{CROSSED}
)

OPTIONS (
    MODEL_TYPE="LINEAR_REG",
    INPUT_LABEL_COLS=["weight_pounds"],
    L2_REG=0.1,
    DATA_SPLIT_METHOD="NO_SPLIT",
    MODEL_REGISTRY="VERTEX_AI",
    VERTEX_AI_MODEL_ID="babyweight_3b",
    VERTEX_AI_MODEL_VERSION_ALIASES=["champion"]) AS

SELECT
    *
FROM
    babyweight.babyweight_data_train
"""
COLUMNS = ["is_male", "mother_age", "plurality", "gestation_weeks"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    yield from babyweight_client(tmp_path_factory, "bqml_registry", rows=4_000, seed=5)


def signature_outputs(uri: str, rows) -> dict:
    """The registered SavedModel's serving signature on ``rows`` (a DataFrame of raw columns)."""
    import tensorflow as tf

    found = tracking.resolve(uri)
    serve = tf.saved_model.load(str(found.path)).signatures["serving_default"]
    feed = {  # a NULL number is NaN
        name: tf.constant(
            rows[name].astype("float64").to_numpy() if spec.dtype == tf.float64 else rows[name],
            spec.dtype,
        )
        for name, spec in serve.structured_input_signature[1].items()
    }
    return {k: v.numpy() for k, v in serve(**feed).items()}


def test_transform_model_registered_scores_as_ml_predict(client):
    run(client, TRANSFORM_MODEL)
    sql = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL babyweight.model_3, "
        "(SELECT * FROM babyweight.babyweight_data_eval))",
    )
    assert len(sql) > 500
    found = tracking.resolve("models:/babyweight_3b@champion")
    assert found.version == 1 and found.aliases == ("champion",)
    saved = signature_outputs("models:/babyweight_3b/1", sql)
    assert set(saved) == {"predicted_weight_pounds"}
    np.testing.assert_allclose(
        saved["predicted_weight_pounds"], sql.predicted_weight_pounds, atol=1e-5
    )
    assert sql.predicted_weight_pounds.std() > 0.1  # the rows differ: a constant would not pass

    # prodml serve on the registered version: the same predictions over REST
    instances = sql[COLUMNS].head(20).to_dict("records")
    with serving.start({"m": "models:/babyweight_3b@champion"}) as server:
        answer = requests.post(
            f"{server.url}/v1/models/m:predict", json={"instances": instances}, timeout=60
        )
    assert answer.status_code == 200, answer.text
    served = np.array([p for p in answer.json()["predictions"]], dtype=float).ravel()
    np.testing.assert_allclose(served, sql.predicted_weight_pounds.head(20), atol=1e-5)


def test_3a_baseline_retrained_is_a_new_version(client):
    """The 3a baseline (automatic preprocessing only), registered twice under one id."""
    model = BASELINE.replace(
        'DATA_SPLIT_METHOD="NO_SPLIT")',
        'DATA_SPLIT_METHOD="NO_SPLIT", MODEL_REGISTRY="VERTEX_AI", '
        'VERTEX_AI_MODEL_ID="babyweight_3a", VERTEX_AI_MODEL_VERSION_ALIASES=["champion"])',
    )
    run(client, model)
    run(client, model.replace('["champion"]', '["challenger"]').replace(")", ", L2_REG=30.0)", 1))
    champion = tracking.resolve("models:/babyweight_3a@champion")
    challenger = tracking.resolve("models:/babyweight_3a@challenger")
    assert (champion.version, challenger.version) == (1, 2)
    sql = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL babyweight.baseline_model, "
        "(SELECT * FROM babyweight.babyweight_data_eval LIMIT 50))",
    )
    new = signature_outputs("models:/babyweight_3a@challenger", sql)["predicted_weight_pounds"]
    old = signature_outputs("models:/babyweight_3a@champion", sql)["predicted_weight_pounds"]
    np.testing.assert_allclose(new, sql.predicted_weight_pounds, atol=1e-5)
    assert np.abs(new - old).max() > 1e-3  # L2_REG=30 trained another model


SCALED = """
CREATE OR REPLACE MODEL babyweight.scaled
TRANSFORM(
    weight_pounds,
    ML.STANDARD_SCALER(mother_age) OVER() AS age_z,
    ML.MIN_MAX_SCALER(gestation_weeks) OVER() AS weeks_01,
    ML.QUANTILE_BUCKETIZE(mother_age, 4) OVER() AS age_quartile,
    CONCAT(is_male, '_', plurality) AS sex_plurality,
    CASE WHEN gestation_weeks < 37 THEN 'preterm' ELSE 'term' END AS term,
    mother_age * gestation_weeks / 100 - 3 AS age_weeks
)
OPTIONS (MODEL_TYPE="LINEAR_REG", INPUT_LABEL_COLS=["weight_pounds"],
         DATA_SPLIT_METHOD="NO_SPLIT", MODEL_REGISTRY="VERTEX_AI", VERTEX_AI_MODEL_ID="scaled")
AS SELECT * FROM babyweight.babyweight_data_train
"""
ROWS_WITH_NULLS = """
(SELECT * FROM babyweight.babyweight_data_eval
 UNION ALL SELECT 7.5, 'true', NULL, 'Single(1)', 39
 UNION ALL SELECT 7.5, 'false', 30, 'Twins(2)', NULL
 UNION ALL SELECT 7.5, 'false', 99, 'Single(1)', 10)
"""


def test_scalers_quantiles_and_plain_sql_in_a_transform_and_nulls(client):
    """The other preprocessing functions (their frozen SQL: arithmetic, GREATEST/LEAST, CASE),
    plain SQL in a TRANSFORM, NULL numbers (NaN in the signature) and values outside the
    training range score as ML.PREDICT scores them."""
    run(client, SCALED)
    sql = frame(client, f"SELECT * FROM ML.PREDICT(MODEL babyweight.scaled, {ROWS_WITH_NULLS})")
    assert sql.mother_age.isna().sum() == 1 and sql.gestation_weeks.isna().sum() == 1
    saved = signature_outputs("models:/scaled/latest", sql)["predicted_weight_pounds"]
    np.testing.assert_allclose(saved, sql.predicted_weight_pounds, atol=1e-5)
    assert np.isfinite(saved).all()


SPECIES = """
CREATE OR REPLACE TABLE babyweight.species AS
SELECT CASE WHEN weight_pounds < 5.5 THEN 'Adelie' WHEN weight_pounds < 8.5 THEN 'Gentoo'
            ELSE 'Chinstrap' END AS species,
       is_male AS sex, plurality AS island, mother_age, gestation_weeks
FROM babyweight.babyweight_data_train
"""
LAB_MODEL = """
CREATE OR REPLACE MODEL `babyweight.penguins-lrab12cd34`
OPTIONS(
    model_type='LOGISTIC_REG',
    labels = ['species'],
    model_registry='vertex_ai'
    )
AS
SELECT *
FROM `local-project.babyweight.species`
"""


def test_lab_logistic_model_registered_under_its_model_id(client):
    run(client, SPECIES)
    run(client, LAB_MODEL)
    sql = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL `babyweight.penguins-lrab12cd34`, "
        "(SELECT * FROM babyweight.species LIMIT 300))",
    )
    saved = signature_outputs("models:/penguins-lrab12cd34/latest", sql)
    probs = np.array([[p["prob"] for p in row] for row in sql.predicted_species_probs])
    classes = [p["label"] for p in sql.predicted_species_probs[0]]
    assert classes == ["Adelie", "Chinstrap", "Gentoo"]
    np.testing.assert_allclose(saved["predicted_species_probs"], probs, atol=1e-5)
    labels = [v.decode() for v in saved["predicted_species"]]
    assert labels == list(sql.predicted_species)
    assert len(set(labels)) >= 2


def test_refusals_name_the_option_or_expression(client):
    bad_registry = LAB_MODEL.replace("model_registry='vertex_ai'", "model_registry='mlflow'")
    with pytest.raises(Exception, match="Invalid value 'mlflow' for option model_registry"):
        run(client, bad_registry)
    no_registry = LAB_MODEL.replace("model_registry='vertex_ai'", "vertex_ai_model_id='x'")
    with pytest.raises(Exception, match="vertex_ai_model_id can only be set when model_registry"):
        run(client, no_registry)
    bad_alias = LAB_MODEL.replace(
        "model_registry='vertex_ai'",
        "model_registry='vertex_ai', vertex_ai_model_version_aliases=['Latest Good']",
    )
    with pytest.raises(Exception, match="Invalid alias 'Latest Good'"):
        run(client, bad_alias)
    # a TRANSFORM the SavedModel cannot run: refused at CREATE MODEL, and no model is left
    unexportable = TRANSFORM_MODEL.replace("babyweight.model_3", "babyweight.model_if").replace(
        "    plurality,\n",
        "    IF(plurality = 'Single(1)' AND is_male = 'true', 1.0, 0.0) AS single_boy,\n",
        1,
    )
    with pytest.raises(Exception, match=r"cannot be exported to a SavedModel.*AND"):
        run(client, unexportable)
    assert "model_if" not in [m.model_id for m in client.list_models("babyweight")]
