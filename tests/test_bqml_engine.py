"""The BigQuery ML engine's behaviour beyond the course's statements, through the warehouse
service and the real client: refusals in BigQuery's words, models that outlive their client and
the service, clients creating models at once, the preprocessing functions' semantics, and the
REST ``models`` resources the client reads (``get_model``, ``list_models``, ``delete_model``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bqml_support import babyweight_client, run
from google.api_core import exceptions
from google.cloud import bigquery
from prodml import config, warehouse

TRAIN = "babyweight.babyweight_data_train"
SIMPLE = f"""CREATE OR REPLACE MODEL babyweight.{{name}}
OPTIONS(model_type='LINEAR_REG', input_label_cols=['weight_pounds']{{options}}) AS
SELECT weight_pounds, is_male, mother_age, plurality, gestation_weeks FROM {TRAIN}"""


def simple(name: str, options: str = "") -> str:
    return SIMPLE.format(name=name, options=options)


def arrow(client, sql: str):
    """A statement's rows as an Arrow table (empty for DDL); its error raised as the client
    raises it."""
    return client.query(sql).to_arrow()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The module's client: natality at 8,000 rows, the babyweight tables, a model ``base``."""
    for client in babyweight_client(tmp_path_factory, "bqml_engine", rows=8_000, seed=5):
        run(client, simple("base"))
        yield client


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        (simple("m").replace("LINEAR_REG", "DNN_REGRESSOR"), "Model type DNN_REGRESSOR is not supported"),
        (simple("m").replace("LINEAR_REG", "LINEAR"), "Unsupported model type: 'LINEAR'"),
        (simple("m", ", class_weights=[STRUCT('a', 1.0)]"), "Option class_weights is not supported"),
        (simple("m", ", kms_key_name='k'"), "Option kms_key_name is not supported"),
        (simple("m", ", no_such_option=1"), "Unknown option: no_such_option"),
        (simple("m", ", data_split_method='SEQ'"), "data_split_method 'SEQ' is not supported"),
        (simple("m", ", data_split_method='SPLIT'"), "Invalid value 'SPLIT' for option data_split_method"),
        (simple("m", ", category_encoding_method='DUMMY_ENCODING'"), "'DUMMY_ENCODING' is not supported"),
        (simple("m", ", l2_reg=-1"), "Invalid value for option l2_reg: -1 must be >= 0"),
        (simple("m", ", max_iterations='ten'"), "Invalid value for option max_iterations: expected INT64"),
        (simple("m", ", learn_rate=0.5"), "learn_rate can only be set when learn_rate_strategy is CONSTANT"),
        (simple("m", ", data_split_eval_fraction=0.3"), "only allowed when data_split_method is RANDOM"),
        (simple("m", ", labels=['weight_pounds']"), "labels and input_label_cols cannot both be set"),
        (simple("m").replace("['weight_pounds']", "['no_such']"), "Column no_such specified in input_label_cols is not found"),
        (simple("m").replace("LINEAR_REG", "LOGISTIC_REG").replace("'LOGISTIC_REG'", "'LOGISTIC_REG', optimize_strategy='NORMAL_EQUATION'"),
         "NORMAL_EQUATION is only supported for LINEAR_REG"),
        ("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL babyweight.base, (SELECT 1 AS a))", "ML.EXPLAIN_PREDICT is not supported"),
        ("SELECT * FROM ML.PREDICT(MODEL babyweight.base, (SELECT * FROM babyweight.babyweight_data_eval), STRUCT(0.3 AS threshold))",
         "threshold applies only to binary LOGISTIC_REG models"),
        ("SELECT ML.FEATURE_CROSS(STRUCT(mother_age, plurality)) AS c FROM babyweight.babyweight_data_eval",
         "ML.FEATURE_CROSS crosses STRING features: mother_age is int64"),
        ("SELECT ML.STANDARD_SCALER(mother_age) AS s FROM babyweight.babyweight_data_eval",
         "Analytic function ML.STANDARD_SCALER cannot be called without an OVER clause"),
        ("CREATE MODEL m OPTIONS(model_type='LINEAR_REG') AS SELECT 1 AS label, 2 AS x",
         "missing a dataset while no default dataset is set"),
    ],
)  # fmt: skip
def test_refused_in_bigquery_words_naming_the_problem(client, sql, words):
    with pytest.raises(exceptions.BadRequest) as raised:
        arrow(client, sql)
    assert words in str(raised.value)


def test_null_labels_are_named_not_dropped(client):
    with pytest.raises(exceptions.BadRequest, match="Label column y has 1 NULL values"):
        arrow(
            client,
            "CREATE MODEL babyweight.nulls OPTIONS(model_type='LINEAR_REG', input_label_cols=['y']) AS "
            "SELECT IF(mother_age = 30, NULL, weight_pounds) AS y, mother_age FROM babyweight.babyweight_data_train "
            "WHERE mother_age BETWEEN 29 AND 31 QUALIFY ROW_NUMBER() OVER (PARTITION BY mother_age = 30 ORDER BY weight_pounds) = 1",
        )


def test_missing_models_and_existing_ones(client):
    with pytest.raises(
        exceptions.NotFound, match=r"Not found: Model local-project:babyweight\.nope"
    ):
        arrow(client, "SELECT * FROM ML.EVALUATE(MODEL babyweight.nope)")
    with pytest.raises(
        exceptions.NotFound, match=r"Not found: Model local-project:babyweight\.nope"
    ):
        arrow(client, "DROP MODEL babyweight.nope")
    arrow(client, "DROP MODEL IF EXISTS babyweight.nope")
    with pytest.raises(exceptions.NotFound, match="Not found: Dataset local-project:elsewhere"):
        arrow(client, simple("m").replace("babyweight.m", "elsewhere.m"))
    before = client.get_model("babyweight.base")
    with pytest.raises(
        exceptions.Conflict, match=r"Already Exists: Model local-project:babyweight\.base"
    ):
        arrow(client, simple("base").replace("CREATE OR REPLACE", "CREATE"))
    arrow(
        client,
        simple("base")
        .replace("CREATE OR REPLACE", "CREATE MODEL IF NOT EXISTS")
        .replace("MODEL IF NOT EXISTS MODEL", "MODEL IF NOT EXISTS"),
    )
    after = client.get_model("babyweight.base")
    assert after.etag == before.etag and after.created == before.created  # not retrained
    arrow(client, simple("doomed"))
    arrow(client, "DROP MODEL `local-project.babyweight.doomed`")
    with pytest.raises(
        exceptions.NotFound, match="Not found: Model local-project:babyweight.doomed"
    ):
        client.get_model("babyweight.doomed")


def test_the_clients_model_calls(client):
    """get_model, list_models, update_model and delete_model: BigQuery's models.* resources."""
    model = client.get_model("local-project.babyweight.base")
    assert model.model_type == "LINEAR_REGRESSION" and model.model_id == "base"
    assert model.label_columns[0].name == "predicted_weight_pounds"
    assert [c.name for c in model.feature_columns] == [
        "is_male",
        "mother_age",
        "plurality",
        "gestation_weeks",
    ]
    kinds = [c.type.type_kind.name for c in model.feature_columns]
    assert kinds == ["STRING", "INT64", "STRING", "INT64"]
    training = model.training_runs[0]
    assert training["trainingOptions"]["inputLabelColumns"] == ["weight_pounds"]
    assert training["trainingOptions"]["optimizationStrategy"] == "NORMAL_EQUATION"
    evaluation = arrow(client, "SELECT * FROM ML.EVALUATE(MODEL babyweight.base)").to_pylist()[0]
    assert (
        training["evaluationMetrics"]["regressionMetrics"]["meanSquaredError"]
        == evaluation["mean_squared_error"]
    )
    assert "base" in [m.model_id for m in client.list_models("babyweight")]
    client.create_dataset("nothing_here")
    assert list(client.list_models("nothing_here")) == []
    model.description, model.labels = "the course's baseline", {"course": "babyweight"}
    client.update_model(model, ["description", "labels"])
    again = client.get_model("babyweight.base")
    assert (again.description, again.labels) == ("the course's baseline", {"course": "babyweight"})
    run(client, simple("gone"))
    client.delete_model("babyweight.gone")
    assert "gone" not in [m.model_id for m in client.list_models("babyweight")]
    with pytest.raises(exceptions.NotFound, match="Not found: Model local-project:babyweight.gone"):
        client.delete_model("babyweight.gone")
    client.delete_model("babyweight.gone", not_found_ok=True)


def test_a_datasets_models_go_with_it(client):
    client.create_dataset("scratch")
    run(client, simple("m").replace("babyweight.m", "scratch.m"))
    with pytest.raises(
        exceptions.BadRequest, match="Dataset local-project:scratch is still in use"
    ):
        client.delete_dataset("scratch")
    with pytest.raises(exceptions.BadRequest, match="is still in use"):
        run(client, "DROP SCHEMA scratch")
    run(client, "DROP SCHEMA scratch CASCADE")
    client.create_dataset("scratch")  # the same name again: the old model is gone with its dataset
    assert list(client.list_models("scratch")) == []
    with pytest.raises(exceptions.NotFound, match="Not found: Model local-project:scratch.m"):
        arrow(client, "SELECT * FROM ML.WEIGHTS(MODEL scratch.m)")
    run(client, simple("m").replace("babyweight.m", "scratch.m"))
    client.delete_dataset("scratch", delete_contents=True)
    client.create_dataset("scratch")
    assert list(client.list_models("scratch")) == []
    client.delete_dataset("scratch")


PREDICT_KEPT = (
    "SELECT predicted_weight_pounds FROM ML.PREDICT(MODEL babyweight.kept, "
    "(SELECT * FROM babyweight.babyweight_data_eval ORDER BY mother_age, gestation_weeks, "
    "weight_pounds LIMIT 20))"
)


def test_models_survive_a_new_client_and_a_service_restart(client, monkeypatch):
    run(client, simple("kept"))
    want = arrow(client, PREDICT_KEPT).column(0).to_pylist()
    run_dir = Path(client.warehouse_file).parent
    monkeypatch.setenv("PRODML_RUN_DIR", str(run_dir))
    config.reset()
    fresh = warehouse.client()
    assert fresh is not client
    assert arrow(fresh, PREDICT_KEPT).column(0).to_pylist() == want
    pid = json.loads((run_dir / "warehouse.json").read_text())["pid"]
    warehouse.stop(run_dir)
    restarted = warehouse.client()
    assert json.loads((run_dir / "warehouse.json").read_text())["pid"] != pid  # a new process
    assert arrow(restarted, PREDICT_KEPT).column(0).to_pylist() == want
    assert "kept" in [m.model_id for m in restarted.list_models("babyweight")]
    assert arrow(client, PREDICT_KEPT).column(0).to_pylist() == want  # the old client carries on


CREATOR = """
import json, sys
from google.api_core import exceptions
from prodml import warehouse
client = warehouse.client()
outcome = {}
for name, sql in json.loads(sys.argv[1]):
    try:
        client.query(sql).result()
        outcome[name] = "created"
    except exceptions.Conflict as err:
        outcome[name] = "conflict: " + err.message
print(json.dumps(outcome))
"""


def test_two_client_processes_creating_models_at_once_lose_nothing(client):
    """Two processes, each with its own client, create models at the same time: every model
    lands, and of two plain CREATE MODEL of one name one wins and one is told Already Exists."""
    same = simple("same").replace("CREATE OR REPLACE", "CREATE")
    work = [
        [("together_a1", simple("together_a1")), ("same", same), ("together_a2", simple("together_a2"))],
        [("together_b1", simple("together_b1")), ("same", same), ("together_b2", simple("together_b2"))],
    ]  # fmt: skip
    env = {**os.environ, "PRODML_RUN_DIR": str(Path(client.warehouse_file).parent)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, json.dumps(w)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in work
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out))
    assert [o[n] for o in outcomes for n in o if n != "same"] == ["created"] * 4
    assert sorted(o["same"][:8] for o in outcomes) == ["conflict", "created"]
    conflict = next(o["same"] for o in outcomes if o["same"] != "created")
    assert "Already Exists: Model local-project:babyweight.same" in conflict
    listed = {m.model_id for m in client.list_models("babyweight")}
    assert {"together_a1", "together_a2", "together_b1", "together_b2", "same"} <= listed
    for name in ["together_a1", "together_a2", "together_b1", "together_b2", "same"]:
        info = arrow(client, f"SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.{name})")
        assert info.num_rows == 1


def test_preprocessing_functions_semantics(client):
    row = arrow(
        client,
        "SELECT ML.BUCKETIZE(2.5, [1, 2, 3]) AS b, ML.BUCKETIZE(2.5, [1, 2, 3], TRUE) AS b2, "
        "ML.BUCKETIZE(0.5, [1, 2, 3]) AS low, ML.BUCKETIZE(3, [1, 2, 3]) AS high, "
        "ML.BUCKETIZE(CAST(NULL AS FLOAT64), [1.0]) AS none, "
        "ML.FEATURE_CROSS(STRUCT('a' AS f1, 'b' AS f2, 'c' AS f3)) AS cross3",
    ).to_pylist()[0]
    assert (row["b"], row["b2"], row["low"], row["high"], row["none"]) == (
        "bin_3",
        "bin_2",
        "bin_1",
        "bin_4",
        None,
    )
    assert row["cross3"] == {
        "f1_f2": "a_b",
        "f1_f3": "a_c",
        "f2_f3": "b_c",
    }  # BigQuery's own example
    ages = arrow(client, f"SELECT mother_age FROM {TRAIN}").column(0).to_numpy().astype(float)
    scaled = arrow(
        client,
        "SELECT ML.STANDARD_SCALER(mother_age) OVER() AS z, ML.MIN_MAX_SCALER(mother_age) OVER() AS m, "
        f"ML.QUANTILE_BUCKETIZE(mother_age, 4) OVER() AS q FROM {TRAIN}",
    ).to_pandas()
    np.testing.assert_allclose(scaled.z, (ages - ages.mean()) / ages.std(ddof=1), atol=1e-12)
    np.testing.assert_allclose(
        scaled.m, (ages - ages.min()) / (ages.max() - ages.min()), atol=1e-12
    )
    shares = scaled.q.value_counts(normalize=True)
    assert set(shares.index) == {"bin_1", "bin_2", "bin_3", "bin_4"} and shares.max() < 0.4


def test_transform_keeps_training_statistics_at_prediction(client):
    arrow(
        client,
        f"""CREATE OR REPLACE MODEL babyweight.scaled
        TRANSFORM(weight_pounds, ML.STANDARD_SCALER(gestation_weeks) OVER() AS weeks_z,
                  ML.MIN_MAX_SCALER(mother_age) OVER() AS age01,
                  ML.QUANTILE_BUCKETIZE(mother_age, 4) OVER() AS age_q)
        OPTIONS(model_type='LINEAR_REG', input_label_cols=['weight_pounds']) AS
        SELECT * FROM {TRAIN}""",
    )
    train = (
        arrow(client, f"SELECT gestation_weeks, mother_age FROM {TRAIN}").to_pandas().astype(float)
    )
    weights = arrow(client, "SELECT * FROM ML.WEIGHTS(MODEL babyweight.scaled)").to_pandas()
    w = dict(zip(weights.processed_input, weights.weight, strict=True))
    buckets = {c["category"]: c["weight"] for c in weights.category_weights[2]}
    assert weights.processed_input[2] == "age_q" and set(buckets) == {
        "bin_1",
        "bin_2",
        "bin_3",
        "bin_4",
    }
    # one row each: statistics of those rows alone would make every feature 0, NULL or bin_1
    got = arrow(
        client,
        "SELECT mother_age, predicted_weight_pounds FROM ML.PREDICT(MODEL babyweight.scaled, "
        "(SELECT 38 AS gestation_weeks, 99 AS mother_age UNION ALL SELECT 38, 10)) ORDER BY mother_age",
    ).to_pandas()
    weeks_z = (38 - train.gestation_weeks.mean()) / train.gestation_weeks.std(ddof=1)
    # 99 is above the training maximum: MIN_MAX_SCALER caps it at 1, 10 below the minimum at 0
    # and the quantile buckets are the training quartiles: bin_4 and bin_1
    base = w["__INTERCEPT__"] + w["weeks_z"] * weeks_z
    assert got.predicted_weight_pounds[0] == pytest.approx(base + buckets["bin_1"], abs=1e-9)
    assert got.predicted_weight_pounds[1] == pytest.approx(
        base + w["age01"] + buckets["bin_4"], abs=1e-9
    )
    info = arrow(client, "SELECT * FROM ML.FEATURE_INFO(MODEL babyweight.scaled)").to_pandas()
    assert list(info.input) == ["weeks_z", "age01", "age_q"] and info["max"][1] == pytest.approx(
        1.0
    )


def test_custom_split_evaluates_on_the_marked_rows(client):
    arrow(
        client,
        f"""CREATE OR REPLACE MODEL babyweight.custom
        OPTIONS(model_type='LINEAR_REG', input_label_cols=['weight_pounds'],
                data_split_method='CUSTOM', data_split_col='is_eval') AS
        SELECT weight_pounds, mother_age, gestation_weeks, MOD(CAST(mother_age AS INT64), 5) = 0 AS is_eval
        FROM {TRAIN}""",
    )
    stored = arrow(client, "SELECT * FROM ML.EVALUATE(MODEL babyweight.custom)").to_pylist()[0]
    again = arrow(
        client,
        "SELECT * FROM ML.EVALUATE(MODEL babyweight.custom, (SELECT weight_pounds, mother_age, gestation_weeks "
        f"FROM {TRAIN} WHERE MOD(CAST(mother_age AS INT64), 5) = 0))",
    ).to_pylist()[0]
    assert stored == pytest.approx(again, rel=1e-12)
    features = [
        c["name"] for c in client.get_model("babyweight.custom")._properties["featureColumns"]
    ]
    assert features == ["mother_age", "gestation_weeks"]  # the split column is no feature


@pytest.mark.parametrize("strategy", ["LINE_SEARCH", "CONSTANT"])
def test_gradient_descent_options(client, strategy):
    extra = ", learn_rate=0.2" if strategy == "CONSTANT" else ""
    arrow(
        client,
        simple(
            f"bgd_{strategy.lower()}",
            f", optimize_strategy='BATCH_GRADIENT_DESCENT', learn_rate_strategy='{strategy}'{extra}, "
            "max_iterations=6, early_stop=FALSE, l2_reg=1.0, data_split_method='NO_SPLIT'",
        ),
    )
    info = arrow(
        client, f"SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.bgd_{strategy.lower()})"
    ).to_pandas()
    assert list(info.iteration) == list(range(6))  # early_stop=FALSE runs them all
    assert info.loss.iloc[-1] < info.loss.iloc[0]
    if strategy == "CONSTANT":
        assert (info.learning_rate == 0.2).all()
    else:
        assert (info.learning_rate > 0).all()
    base = (
        arrow(client, "SELECT mean_squared_error FROM ML.EVALUATE(MODEL babyweight.base)")
        .column(0)[0]
        .as_py()
    )
    assert info.loss.iloc[-1] < 1.5 * base


def test_real_bigquery_receives_the_statements_unchanged(run_dir, monkeypatch):
    """With warehouse='bigquery' the client is google-cloud-bigquery's own: a CREATE MODEL or
    an ML.EVALUATE goes to BigQuery's jobs.insert as written (captured at the HTTP layer)."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from prodml import config, warehouse

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), "p"))
    config.configure(warehouse="bigquery", project="real-project")
    client = warehouse.client()
    assert type(client) is bigquery.Client
    sent = []

    def api_request(method, path, data=None, **kwargs):
        sent.append(data)
        return {**data, "status": {"state": "DONE"}}

    monkeypatch.setattr(client._connection, "api_request", api_request)
    statements = [simple("baseline"), "SELECT * FROM ML.EVALUATE(MODEL babyweight.baseline)"]
    for sql in statements:
        client.query(sql)
    assert [body["configuration"]["query"]["query"] for body in sent] == statements


def test_prediction_input_is_checked_against_the_model(client):
    eval_rows = "FROM babyweight.babyweight_data_eval LIMIT 5"
    with pytest.raises(exceptions.BadRequest, match="The input data has no column gestation_weeks"):
        arrow(
            client,
            f"SELECT * FROM ML.PREDICT(MODEL babyweight.base, (SELECT is_male, mother_age, plurality {eval_rows}))",
        )
    with pytest.raises(
        exceptions.BadRequest,
        match="Invalid type for column mother_age: the model was trained on INT64, the input has STRING",
    ):
        arrow(
            client,
            "SELECT * FROM ML.PREDICT(MODEL babyweight.base, (SELECT is_male, CAST(mother_age AS STRING) AS mother_age, "
            f"plurality, gestation_weeks {eval_rows}))",
        )
    # FLOAT64 where the model saw INT64 is a number all the same; an unseen category weighs 0
    rows = arrow(
        client,
        "SELECT predicted_weight_pounds FROM ML.PREDICT(MODEL babyweight.base, (SELECT 'Unheard' AS is_male, "
        "30.0 AS mother_age, 'Single(1)' AS plurality, 39 AS gestation_weeks))",
    )
    assert rows.num_rows == 1 and 5 < rows.column(0)[0].as_py() < 10


def test_logistic_l1_zeroes_weak_categories(client):
    arrow(
        client,
        f"""CREATE OR REPLACE MODEL babyweight.sparse_low
        OPTIONS(model_type='LOGISTIC_REG', labels=['low'], l1_reg=30, max_iterations=5) AS
        SELECT weight_pounds < 5.5 AS low, is_male, mother_age, plurality, gestation_weeks FROM {TRAIN}""",
    )
    info = arrow(client, "SELECT * FROM ML.TRAINING_INFO(MODEL babyweight.sparse_low)").to_pandas()
    assert 1 <= len(info) <= 5 and info.learning_rate.isna().all()  # saga: no learning rate
    weights = arrow(
        client, "SELECT * FROM ML.WEIGHTS(MODEL babyweight.sparse_low, STRUCT(TRUE AS standardize))"
    ).to_pandas()
    plurality = weights.set_index("processed_input").category_weights["plurality"]
    assert sum(c["weight"] == 0 for c in plurality) >= 2
    assert weights.set_index("processed_input").weight["gestation_weeks"] < 0  # longer -> heavier
    assert (
        arrow(client, "SELECT roc_auc FROM ML.EVALUATE(MODEL babyweight.sparse_low)")
        .column(0)[0]
        .as_py()
        > 0.7
    )


@pytest.mark.parametrize(
    ("rows", "method", "fraction", "held_out"),
    [
        (499, "AUTO_SPLIT", 0.2, 0),  # below 500 rows: everything trains
        (10_000, "AUTO_SPLIT", 0.2, 2_000),  # up to 50,000: a random 20 %
        (120_000, "AUTO_SPLIT", 0.2, 10_000),  # above: 10,000 rows
        (1_000, "RANDOM", 0.35, 350),
        (1_000, "NO_SPLIT", 0.2, 0),
    ],
)
def test_data_split_sizes_are_bigquerys(rows, method, fraction, held_out):
    from prodml.warehouse.ml.options import TrainingOptions
    from prodml.warehouse.ml.train import split

    options = TrainingOptions(
        "LINEAR_REG", data_split_method=method, data_split_eval_fraction=fraction
    )
    training, evaluation = split(rows, options)
    assert (0 if evaluation is None else evaluation.size) == held_out
    together = np.concatenate([training, [] if evaluation is None else evaluation])
    assert sorted(together.tolist()) == list(range(rows))  # every row once
    again = split(rows, options)[1]
    assert evaluation is None or (again == evaluation).all()  # seeded: the same rows again


def test_early_stop_after_the_first_small_improvement(client):
    options = ", optimize_strategy='BATCH_GRADIENT_DESCENT', data_split_method='NO_SPLIT'"
    arrow(client, simple("stops", options + ", min_rel_progress=0.2"))
    arrow(
        client,
        simple("runs_on", options + ", min_rel_progress=0.2, early_stop=FALSE, max_iterations=7"),
    )
    stops = (
        arrow(client, "SELECT loss FROM ML.TRAINING_INFO(MODEL babyweight.stops)")
        .column(0)
        .to_pylist()
    )
    runs_on = (
        arrow(client, "SELECT loss FROM ML.TRAINING_INFO(MODEL babyweight.runs_on)")
        .column(0)
        .to_pylist()
    )
    assert len(runs_on) == 7 and len(stops) < 7
    assert stops == pytest.approx(runs_on[: len(stops)], rel=1e-12)  # the same iterations, fewer
    last, before = stops[-1], stops[-2]
    assert before - last < 0.2 * before  # it stopped at the first relative progress below 20 %
    assert all(a - b >= 0.2 * a for a, b in zip(stops[:-2], stops[1:-1], strict=True))


def test_ml_answers_are_released_when_their_statement_ends(tmp_path):
    """The warehouse engine in process (no service): an ML table function's answer is registered
    on the cursor for its statement only, so a long-lived service accumulates none."""
    from prodml.warehouse.engine import Warehouse

    engine = Warehouse(tmp_path / "warehouse.duckdb")
    try:
        engine.run(
            "CREATE SCHEMA d; CREATE TABLE d.t AS SELECT x, 2.0 * x + 1 AS y "
            "FROM UNNEST(GENERATE_ARRAY(1, 50)) AS x",
            "p",
        )
        engine.run(
            "CREATE MODEL d.m OPTIONS(model_type='LINEAR_REG', input_label_cols=['y']) AS "
            "SELECT x, y FROM d.t",
            "p",
        )
        rows = engine.run(
            "SELECT p.x, p.predicted_y FROM ML.PREDICT(MODEL d.m, TABLE d.t) AS p "
            "JOIN ML.WEIGHTS(MODEL d.m) AS w ON w.processed_input = 'x' ORDER BY p.x",
            "p",
        ).table
        np.testing.assert_allclose(
            rows.column("predicted_y").to_numpy(), 2.0 * np.arange(1, 51) + 1
        )
        views = engine.cursor().execute(
            "SELECT count(*) FROM duckdb_views() WHERE starts_with(view_name, '__ml')"
        )
        assert views.fetchall() == [(0,)]
    finally:
        engine.close()
