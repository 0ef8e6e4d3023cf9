"""BigQuery ML on the local warehouse: the course's own statements, verbatim, on natality, and
the engine's numbers against scikit-learn fitted directly on the same rows.

Statements are from GoogleCloudPlatform/training-data-analyst, courses/machine_learning:
deepdive/06_structured/5_train_bqml.ipynb, deepdive2/structured/solutions/
1b_prepare_data_babyweight (tables), 3a_bqml_baseline_babyweight and
3b_bqml_linear_transform_babyweight. They run as a notebook runs them: through the real
``google.cloud.bigquery.Client`` against the run folder's warehouse service (``bqml_support``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bqml_support import babyweight_client, frame, run
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

FEATURES = "weight_pounds, is_male, mother_age, plurality, gestation_weeks"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The module's client: natality at 20,000 rows, the course's babyweight tables."""
    yield from babyweight_client(tmp_path_factory, "bqml", rows=20_000, seed=3)


# -- 3a: the baseline ---------------------------------------------------------------------------

BASELINE = """
CREATE OR REPLACE MODEL
    babyweight.baseline_model

OPTIONS (
    MODEL_TYPE="LINEAR_REG",
    INPUT_LABEL_COLS=["weight_pounds"],
    DATA_SPLIT_METHOD="NO_SPLIT") AS

SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks
FROM
    babyweight.babyweight_data_train
"""
EVALUATE_BASELINE = """
SELECT
    *
FROM
    ML.EVALUATE(MODEL babyweight.baseline_model,
    (
    SELECT
        weight_pounds,
        is_male,
        mother_age,
        plurality,
        gestation_weeks
    FROM
        babyweight.babyweight_data_eval
    ))
"""


def design(train: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """BigQuery's automatic preprocessing written out by hand: numbers standardized with the
    training mean and sample deviation, strings one-hot over the sorted training values."""
    columns = []
    for name in ("is_male", "mother_age", "plurality", "gestation_weeks"):
        if train[name].dtype == object:
            for value in sorted(train[name].unique()):
                columns.append((rows[name] == value).to_numpy(float))
        else:
            mean, std = train[name].mean(), train[name].std(ddof=1)
            columns.append(((rows[name] - mean) / std).to_numpy(float))
    return np.column_stack(columns)


def test_3a_baseline_metrics_equal_scikit_learn_fitted_directly(client):
    job = run(client, BASELINE)
    assert job.statement_type == "CREATE_MODEL" and job.result().total_rows == 0
    info = frame(client, "SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.baseline_model)")
    assert list(info.columns) == [
        "training_run", "iteration", "loss", "eval_loss", "learning_rate", "duration_ms"
    ]  # fmt: skip
    assert len(info) == 1 and info.eval_loss.isna().all()  # NORMAL_EQUATION, NO_SPLIT
    got = frame(client, EVALUATE_BASELINE).iloc[0]

    train = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_train")
    test = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_eval")
    direct = LinearRegression().fit(design(train, train), train.weight_pounds)
    predicted = direct.predict(design(train, test))
    y = test.weight_pounds
    want = {
        "mean_absolute_error": skm.mean_absolute_error(y, predicted),
        "mean_squared_error": skm.mean_squared_error(y, predicted),
        "mean_squared_log_error": skm.mean_squared_log_error(y, predicted),
        "median_absolute_error": skm.median_absolute_error(y, predicted),
        "r2_score": skm.r2_score(y, predicted),
        "explained_variance": skm.explained_variance_score(y, predicted),
    }
    assert list(got.index) == list(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    # the training loss is the training MSE of that same fit
    train_mse = skm.mean_squared_error(train.weight_pounds, direct.predict(design(train, train)))
    assert info.loss[0] == pytest.approx(train_mse, abs=1e-6)
    # a useful model, not a constant: it explains part of the variance
    assert 0.05 < got["r2_score"] < 0.9


def test_3a_rmse_query_and_weights_reproduce_the_predictions(client):
    run(client, BASELINE)
    rmse = frame(client, EVALUATE_BASELINE.replace("*", "SQRT(mean_squared_error) AS rmse", 1))
    mse = frame(client, EVALUATE_BASELINE).mean_squared_error[0]
    assert rmse.rmse[0] == pytest.approx(np.sqrt(mse), rel=1e-12)
    # ML.WEIGHTS (unstandardized, BigQuery's default) applied to the raw columns by hand
    weights = frame(client, "SELECT * FROM ML.WEIGHTS(MODEL babyweight.baseline_model)")
    assert list(weights.processed_input) == [
        "is_male", "mother_age", "plurality", "gestation_weeks", "__INTERCEPT__"
    ]  # fmt: skip
    rows = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_eval LIMIT 200")
    by_input = weights.set_index("processed_input")
    by_hand = np.full(len(rows), by_input.weight["__INTERCEPT__"])
    for name in ("mother_age", "gestation_weeks"):
        by_hand += by_input.weight[name] * rows[name].to_numpy(float)
    for name in ("is_male", "plurality"):
        table = {c["category"]: c["weight"] for c in by_input.category_weights[name]}
        by_hand += rows[name].map(table).to_numpy(float)
    predicted = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL babyweight.baseline_model, "
        f"(SELECT {FEATURES} FROM babyweight.babyweight_data_eval LIMIT 200))",
    )
    assert list(predicted.columns) == ["predicted_weight_pounds", *FEATURES.split(", ")]
    np.testing.assert_allclose(predicted.predicted_weight_pounds, by_hand, atol=1e-9)
    np.testing.assert_allclose(predicted.weight_pounds, rows.weight_pounds)  # passed through


# -- 3b: feature cross, bucketize, TRANSFORM --------------------------------------------------

CROSSED = """
    ML.FEATURE_CROSS(
        STRUCT(
            is_male,
            ML.BUCKETIZE(
                mother_age,
                GENERATE_ARRAY(15, 45, 1)
            ) AS bucketed_mothers_age,
            plurality,
            ML.BUCKETIZE(
                gestation_weeks,
                GENERATE_ARRAY(17, 47, 1)
            ) AS bucketed_gestation_weeks
        )
    ) AS crossed"""
MODEL_1 = """
CREATE OR REPLACE MODEL
    babyweight.model_1

OPTIONS (
    MODEL_TYPE="LINEAR_REG",
    INPUT_LABEL_COLS=["weight_pounds"],
    L2_REG=0.1,
    DATA_SPLIT_METHOD="NO_SPLIT") AS

SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks,
    ML.FEATURE_CROSS(
        STRUCT(
            is_male,
            plurality)
    ) AS gender_plurality_cross
FROM
    babyweight.babyweight_data_train
"""
EVALUATE_1 = """
SELECT
    *
FROM
    ML.EVALUATE(MODEL babyweight.model_1,
    (
    SELECT
        weight_pounds,
        is_male,
        mother_age,
        plurality,
        gestation_weeks,
        ML.FEATURE_CROSS(
            STRUCT(
                is_male,
                plurality)
        ) AS gender_plurality_cross
    FROM
        babyweight.babyweight_data_eval
    ))
"""
MODEL_2 = f"""
CREATE OR REPLACE MODEL
    babyweight.model_2

OPTIONS (
    MODEL_TYPE="LINEAR_REG",
    INPUT_LABEL_COLS=["weight_pounds"],
    L2_REG=0.1,
    DATA_SPLIT_METHOD="NO_SPLIT") AS

SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks,{CROSSED}
FROM
    babyweight.babyweight_data_train
"""
EVALUATE_2 = f"""
SELECT
    *
FROM
    ML.EVALUATE(MODEL babyweight.model_2,
    (
    SELECT
        weight_pounds,
        is_male,
        mother_age,
        plurality,
        gestation_weeks,{CROSSED}
    FROM
        babyweight.babyweight_data_eval))
"""
MODEL_3 = f"""
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
    DATA_SPLIT_METHOD="NO_SPLIT") AS

SELECT
    *
FROM
    babyweight.babyweight_data_train
"""
EVALUATE_3 = """
SELECT
    *
FROM
    ML.EVALUATE(MODEL babyweight.model_3,
    (
    SELECT
        *
    FROM
        babyweight.babyweight_data_eval
    ))
"""


def test_3b_feature_cross_model(client):
    run(client, MODEL_1)
    weights = frame(client, "SELECT * FROM ML.WEIGHTS(MODEL babyweight.model_1)")
    assert "gender_plurality_cross_is_male_plurality" in set(weights.processed_input)
    crosses = weights.set_index("processed_input").category_weights[
        "gender_plurality_cross_is_male_plurality"
    ]
    assert {c["category"] for c in crosses} >= {
        "true_Single(1)",
        "Unknown_Multiple(2+)",
    }  # CAST(TRUE AS STRING) is "true"
    metrics = frame(client, EVALUATE_1).iloc[0]
    rmse = frame(client, EVALUATE_1.replace("*", "SQRT(mean_squared_error) AS rmse", 1)).rmse[0]
    assert rmse == pytest.approx(np.sqrt(metrics.mean_squared_error))
    assert 0.9 < rmse < 1.6


def test_3b_transform_applies_the_same_features_at_evaluation_and_prediction(client):
    run(client, MODEL_2)
    run(client, MODEL_3)
    for model in ("model_2", "model_3"):
        info = frame(client, f"SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.{model})")
        assert len(info) == 1 and info.loss[0] > 0
    by_select = frame(client, EVALUATE_2).iloc[0]
    by_transform = frame(client, EVALUATE_3).iloc[0]
    pd.testing.assert_series_equal(by_select, by_transform, check_names=False, rtol=1e-9)
    # raw columns through model_3's TRANSFORM == the transformed columns fed to model_2
    raw = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL babyweight.model_3, (SELECT * FROM babyweight.babyweight_data_eval))",
    )
    crossed = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL babyweight.model_2, "
        f"(SELECT {FEATURES},{CROSSED} FROM babyweight.babyweight_data_eval))",
    )
    assert list(raw.columns) == ["predicted_weight_pounds", *FEATURES.split(", ")]
    assert "crossed" in crossed.columns  # model_2's input, passed through
    np.testing.assert_allclose(
        raw.predicted_weight_pounds, crossed.predicted_weight_pounds, atol=1e-9
    )
    # the label is not needed to predict through a TRANSFORM that passes it through
    one = frame(
        client,
        "SELECT * FROM ML.PREDICT(MODEL babyweight.model_3, (SELECT 'true' AS is_male, "
        "28 AS mother_age, 'Single(1)' AS plurality, 38 AS gestation_weeks))",
    )
    assert len(one) == 1 and 5.5 < one.predicted_weight_pounds[0] < 9.5


# -- 06_structured/5_train_bqml: the 2018 spelling (labels=[...]) and AUTO_SPLIT ----------------

ASIS = """
CREATE or REPLACE MODEL demo.babyweight_model_asis
OPTIONS
  (model_type='linear_reg', labels=['weight_pounds']) AS

WITH natality_data AS (
  SELECT
    weight_pounds,-- this is the label; because it is continuous, we need to use regression
    CAST(is_male AS STRING) AS is_male,
    mother_age,
    CAST(plurality AS STRING) AS plurality,
    gestation_weeks,
    FARM_FINGERPRINT(CONCAT(CAST(YEAR AS STRING), CAST(month AS STRING))) AS hashmonth
  FROM
    publicdata.samples.natality
  WHERE
    year > 2000
    AND gestation_weeks > 0
    AND mother_age > 0
    AND plurality > 0
    AND weight_pounds > 0
)

SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks
FROM
    natality_data
WHERE
  ABS(MOD(hashmonth, 4)) < 3  -- select 75% of the data as training
"""
PREDICT_ASIS = """
SELECT
  *
FROM
  ml.PREDICT(MODEL demo.babyweight_model_asis,
      (SELECT
        weight_pounds,
        CAST(is_male AS STRING) AS is_male,
        mother_age,
        CAST(plurality AS STRING) AS plurality,
        gestation_weeks
      FROM
        publicdata.samples.natality
      WHERE
        year > 2000
        AND gestation_weeks > 0
        AND mother_age > 0
        AND plurality > 0
        AND weight_pounds > 0
    ))
LIMIT 100
"""


def test_5_train_bqml_auto_split_and_predict(client):
    run(client, ASIS)
    info = frame(client, "SELECT * FROM ML.TRAINING_INFO(MODEL demo.babyweight_model_asis);")
    # AUTO_SPLIT on 500..50,000 rows holds out a random 20 %: there is an evaluation loss
    assert len(info) == 1 and info.eval_loss.notna().all()
    assert info.eval_loss[0] == pytest.approx(info.loss[0], rel=0.3)
    predicted = frame(client, PREDICT_ASIS)
    assert len(predicted) == 100
    assert predicted.columns[0] == "predicted_weight_pounds"
    assert predicted.predicted_weight_pounds.between(1, 12).all()
    stored = frame(client, "SELECT * FROM ML.EVALUATE(MODEL demo.babyweight_model_asis)")
    assert stored.mean_squared_error[0] == pytest.approx(info.eval_loss[0], rel=1e-9)


# -- LOGISTIC_REG against scikit-learn ------------------------------------------------------------

LOW_WEIGHT = f"""
CREATE OR REPLACE MODEL babyweight.low_weight
OPTIONS(model_type='LOGISTIC_REG', labels=['low'], data_split_method='NO_SPLIT') AS
SELECT weight_pounds < 5.5 AS low, {FEATURES.replace("weight_pounds, ", "")}
FROM babyweight.babyweight_data_train
"""


def test_logistic_binary_metrics_equal_scikit_learn_fitted_directly(client):
    run(client, LOW_WEIGHT)
    info = frame(client, "SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.low_weight)")
    assert 2 <= len(info) <= 20 and (np.diff(info.loss) < 0).all()  # the loss falls each step
    assert info.learning_rate.notna().all() and (info.learning_rate > 0).all()
    got = frame(
        client,
        "SELECT * FROM ML.EVALUATE(MODEL babyweight.low_weight, (SELECT weight_pounds < 5.5 AS low, "
        "is_male, mother_age, plurality, gestation_weeks FROM babyweight.babyweight_data_eval))",
    ).iloc[0]
    train = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_train")
    test = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_eval")
    direct = LogisticRegression(C=np.inf, max_iter=1, warm_start=True, tol=0.0)
    with pytest.warns(Warning):
        for _ in range(len(info)):  # the same library iterations, one per BigQuery iteration
            direct.fit(design(train, train), train.weight_pounds < 5.5)
    p = direct.predict_proba(design(train, test))[:, 1]
    y = test.weight_pounds < 5.5
    want = {
        "precision": skm.precision_score(y, p > 0.5),
        "recall": skm.recall_score(y, p > 0.5),
        "accuracy": skm.accuracy_score(y, p > 0.5),
        "f1_score": skm.f1_score(y, p > 0.5),
        "log_loss": skm.log_loss(y, p),
        "roc_auc": skm.roc_auc_score(y, p),
    }
    assert list(got.index) == list(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    assert got.roc_auc > 0.7  # gestation predicts low birth weight
    # the threshold setting moves precision and recall the way it must
    strict = frame(
        client,
        "SELECT * FROM ML.EVALUATE(MODEL babyweight.low_weight, (SELECT weight_pounds < 5.5 AS low, "
        "is_male, mother_age, plurality, gestation_weeks FROM babyweight.babyweight_data_eval), "
        "STRUCT(0.9 AS threshold))",
    ).iloc[0]
    assert strict.recall <= got.recall and strict.roc_auc == pytest.approx(got.roc_auc)


def test_logistic_multiclass_predictions(client):
    run(
        client,
        """CREATE OR REPLACE MODEL babyweight.weight_class
        OPTIONS(model_type='LOGISTIC_REG', input_label_cols=['weight_class'],
                data_split_method='RANDOM', data_split_eval_fraction=0.25, max_iterations=8) AS
        SELECT CASE WHEN weight_pounds < 5.5 THEN 'low' WHEN weight_pounds < 8.8 THEN 'normal'
               ELSE 'high' END AS weight_class, is_male, mother_age, plurality, gestation_weeks
        FROM babyweight.babyweight_data_train""",
    )
    info = frame(client, "SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.weight_class)")
    assert 1 <= len(info) <= 8 and info.eval_loss.notna().all()
    predicted = frame(
        client,
        "SELECT predicted_weight_class, predicted_weight_class_probs FROM ML.PREDICT("
        "MODEL babyweight.weight_class, (SELECT * FROM babyweight.babyweight_data_eval LIMIT 500))",
    )
    probs = predicted.predicted_weight_class_probs
    assert all([p["label"] for p in row] == ["high", "low", "normal"] for row in probs)
    totals = np.array([sum(p["prob"] for p in row) for row in probs])
    np.testing.assert_allclose(totals, 1.0, atol=1e-9)
    best = [max(row, key=lambda p: p["prob"])["label"] for row in probs]
    assert list(predicted.predicted_weight_class) == best
    assert (predicted.predicted_weight_class == "normal").mean() > 0.5
    metrics = frame(client, "SELECT * FROM ML.EVALUATE(MODEL babyweight.weight_class)").iloc[0]
    assert 0.6 < metrics.accuracy <= 1 and 0.5 < metrics.roc_auc <= 1
    weights = frame(client, "SELECT * FROM ML.WEIGHTS(MODEL babyweight.weight_class)")
    assert sorted(set(weights.class_label)) == ["high", "low", "normal"] and len(weights) == 15


# -- regularization: the objective's convention, checked against scikit-learn -------------------


def regularized(client, name: str, options: str) -> tuple[pd.DataFrame, pd.Series]:
    run(
        client,
        f"""CREATE OR REPLACE MODEL babyweight.{name}
        OPTIONS(model_type='LINEAR_REG', input_label_cols=['weight_pounds'],
                data_split_method='NO_SPLIT', {options}) AS
        SELECT {FEATURES} FROM babyweight.babyweight_data_train""",
    )
    info = frame(client, f"SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.{name})")
    got = frame(
        client,
        f"SELECT * FROM ML.EVALUATE(MODEL babyweight.{name}, "
        f"(SELECT {FEATURES} FROM babyweight.babyweight_data_eval))",
    ).iloc[0]
    return info, got


def test_l2_reg_is_ridge_on_the_sum_of_squared_errors(client):
    from sklearn.linear_model import Ridge

    info, got = regularized(client, "ridge", "l2_reg=500")
    assert len(info) == 1  # still the normal equation
    train = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_train")
    test = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_eval")
    direct = Ridge(alpha=500).fit(design(train, train), train.weight_pounds)
    predicted = direct.predict(design(train, test))
    assert got.mean_squared_error == pytest.approx(
        skm.mean_squared_error(test.weight_pounds, predicted), abs=1e-6
    )
    _, plain = regularized(client, "plain", "l2_reg=0")
    assert got.mean_squared_error != pytest.approx(plain.mean_squared_error, abs=1e-9)


def test_l1_reg_trains_by_coordinate_descent_like_scikit_learn(client):
    from sklearn.linear_model import ElasticNet

    info, got = regularized(client, "lasso", "l1_reg=2000, max_iterations=5, early_stop=FALSE")
    assert list(info.iteration) == list(range(5)) and info.learning_rate.isna().all()
    train = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_train")
    test = frame(client, f"SELECT {FEATURES} FROM babyweight.babyweight_data_eval")
    # sum of squared errors + l1 * |w|_1  ==  ElasticNet's (1 / 2n) scale with alpha = l1 / 2n
    direct = ElasticNet(
        alpha=2000 / 2 / len(train), l1_ratio=1.0, max_iter=1, tol=0.0, warm_start=True
    )
    with pytest.warns(Warning):
        for _ in range(5):
            direct.fit(design(train, train), train.weight_pounds)
    predicted = direct.predict(design(train, test))
    assert got.mean_squared_error == pytest.approx(
        skm.mean_squared_error(test.weight_pounds, predicted), abs=1e-6
    )
    weights = frame(
        client, "SELECT * FROM ML.WEIGHTS(MODEL babyweight.lasso, STRUCT(TRUE AS standardize))"
    )
    categories = [c["weight"] for cs in weights.category_weights for c in cs]
    assert sum(w == 0 for w in categories) >= 3  # L1 zeroes weak categories


# -- 06_structured/5_train_bqml, "More advanced": masked features, all strings ------------------

FC_ROWS = """
WITH with_ultrasound AS (
  SELECT
    weight_pounds,
    CAST(is_male AS STRING) AS is_male,
    IF(mother_age < 18, 'LOW',
         IF(mother_age > 45, 'HIGH',
            CAST(mother_age AS STRING))) AS mother_age,
    CAST(plurality AS STRING) AS plurality,
    CAST(gestation_weeks AS STRING) AS gestation_weeks,
    FARM_FINGERPRINT(CONCAT(CAST(YEAR AS STRING), CAST(month AS STRING))) AS hashmonth
  FROM
    publicdata.samples.natality
  WHERE
    year > 2000
    AND gestation_weeks > 0
    AND mother_age > 0
    AND plurality > 0
    AND weight_pounds > 0
),

without_ultrasound AS (
  SELECT
    weight_pounds,
    'Unknown' AS is_male,
    IF(mother_age < 18, 'LOW',
         IF(mother_age > 45, 'HIGH',
            CAST(mother_age AS STRING))) AS mother_age,
    IF(plurality > 1, 'Multiple', 'Single') AS plurality,
    CAST(gestation_weeks AS STRING) AS gestation_weeks,
    FARM_FINGERPRINT(CONCAT(CAST(YEAR AS STRING), CAST(month AS STRING))) AS hashmonth
  FROM
    publicdata.samples.natality
  WHERE
    year > 2000
    AND gestation_weeks > 0
    AND mother_age > 0
    AND plurality > 0
    AND weight_pounds > 0
),

preprocessed AS (
  SELECT * from with_ultrasound
  UNION ALL
  SELECT * from without_ultrasound
)

SELECT
    weight_pounds,
    is_male,
    mother_age,
    plurality,
    gestation_weeks
FROM
    preprocessed
WHERE
  ABS(MOD(hashmonth, 4)) < 3
"""
FC_MODEL = f"""
CREATE or REPLACE MODEL demo.babyweight_model_fc
OPTIONS
  (model_type='linear_reg', labels=['weight_pounds']) AS
{FC_ROWS}"""
FC_PREDICT = """
SELECT
  *
FROM
  ml.PREDICT(MODEL demo.babyweight_model_fc,
      (SELECT
          'True' AS is_male,
          '28' AS mother_age,
          '1' AS plurality,
          '38' AS gestation_weeks
    ))
"""


def test_5_train_bqml_feature_engineered_model(client):
    run(client, FC_MODEL)
    info = frame(client, "SELECT * FROM ML.TRAINING_INFO(MODEL demo.babyweight_model_fc);")
    assert len(info) >= 1 and info.eval_loss.notna().all()
    features = frame(client, "SELECT * FROM ML.FEATURE_INFO(MODEL demo.babyweight_model_fc)")
    assert list(features.input) == ["is_male", "mother_age", "plurality", "gestation_weeks"]
    assert features["mean"].isna().all() and (features.category_count > 1).all()  # all strings
    one = frame(client, FC_PREDICT)
    assert list(one.columns) == [
        "predicted_weight_pounds", "is_male", "mother_age", "plurality", "gestation_weeks"
    ]  # fmt: skip
    assert len(one) == 1 and 6 < one.predicted_weight_pounds[0] < 9
    # 'True' was never seen ('true' was: BigQuery's CAST(TRUE AS STRING)): weight 0, as BigQuery
    weights = frame(client, "SELECT * FROM ML.WEIGHTS(MODEL demo.babyweight_model_fc)")
    seen = {c["category"] for c in weights.set_index("processed_input").category_weights["is_male"]}
    assert seen == {"true", "false", "Unknown"}


# -- production_ml/solutions/bqml-vertexai-model-registry: LOGISTIC_REG, SELECT * ----------------

SPECIES = """
CREATE OR REPLACE TABLE babyweight.species AS
SELECT CASE WHEN weight_pounds < 5.5 THEN 'Adelie' WHEN weight_pounds < 8.5 THEN 'Gentoo'
            ELSE 'Chinstrap' END AS species,
       IF(MOD(CAST(mother_age AS INT64), 7) = 0, NULL, is_male) AS sex,
       plurality AS island, mother_age, gestation_weeks
FROM babyweight.babyweight_data_train
"""
BQ_TABLE = (
    "local-project.babyweight.species"  # the lab reads bigquery-public-data.ml_datasets.penguins
)
MODEL_QUERY = f"""
CREATE OR REPLACE MODEL `babyweight.penguins-lrab12cd34`
OPTIONS(
    model_type='LOGISTIC_REG',
    labels = ['species'],
    model_registry='vertex_ai'
    )
AS
SELECT *
FROM `{BQ_TABLE}`
"""


def test_model_registry_lab_statement(client):
    run(client, SPECIES)
    run(client, MODEL_QUERY)  # registered in the run folder's MLflow registry (test_bqml_registry)
    sql_ml_predict = f"""SELECT * FROM ML.PREDICT(MODEL `local-project.babyweight.penguins-lrab12cd34`,
(SELECT
      *
    FROM
      `{BQ_TABLE}` LIMIT 10))"""
    prediction_result = frame(client, sql_ml_predict)
    assert len(prediction_result) == 10
    assert list(prediction_result.columns[:2]) == ["predicted_species", "predicted_species_probs"]
    assert set(prediction_result.predicted_species) <= {"Adelie", "Chinstrap", "Gentoo"}
    info = frame(client, "SELECT * FROM ML.FEATURE_INFO(MODEL `babyweight.penguins-lrab12cd34`)")
    assert info.set_index("input").null_count["sex"] > 0  # NULL is a category of its own
    run(client, "DROP MODEL `local-project.babyweight.penguins-lrab12cd34`")
    with pytest.raises(Exception, match="Not found: Model"):
        run(client, sql_ml_predict)


# -- the other ways a notebook sends them: query_and_wait, %%bigquery ---------------------------


def test_3a_through_query_and_wait(client):
    """``query_and_wait`` (one jobs.query request) runs the same statements."""
    assert list(client.query_and_wait(BASELINE.replace("baseline_model", "baseline_qw"))) == []
    evaluate = EVALUATE_BASELINE.replace("baseline_model", "baseline_qw")
    by_wait = client.query_and_wait(evaluate).to_dataframe().iloc[0]
    by_query = frame(client, evaluate).iloc[0]
    pd.testing.assert_series_equal(by_wait, by_query, check_names=False, rtol=1e-12)
    assert 0.05 < by_wait.r2_score < 0.9


def test_3a_through_the_bigquery_cell_magic(client, monkeypatch, ipython_shell):
    """bigquery-magics' own ``%%bigquery`` (``%load_ext prodml.warehouse``) on the run folder's
    service: CREATE MODEL, then ML.EVALUATE into a DataFrame."""
    from prodml import config

    evaluate = EVALUATE_BASELINE.replace("baseline_model", "baseline_magic")
    monkeypatch.setenv("PRODML_RUN_DIR", str(client.warehouse_file.parent))
    config.reset()
    shell = ipython_shell
    try:
        for cell in (
            f"%%bigquery\n{BASELINE.replace('baseline_model', 'baseline_magic')}",
            f"%%bigquery metrics\n{evaluate}",
        ):
            result = shell.run_cell(cell)
            assert result.success, result.error_in_exec or result.error_before_exec
        metrics = shell.user_ns.pop("metrics")
    finally:
        config.reset()
    assert "baseline_magic" in [m.model_id for m in client.list_models("babyweight")]
    want = frame(client, evaluate).iloc[0]
    assert metrics.iloc[0]["mean_squared_error"] == pytest.approx(
        want.mean_squared_error, rel=1e-12
    )
    assert 1.0 < want.mean_squared_error < 2.5
