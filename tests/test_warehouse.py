"""The warehouse: BigQuery Standard SQL on the local BigQuery service (DuckDB), through
google-cloud-bigquery's own client, and the selection of real BigQuery."""

from __future__ import annotations

import json

import farmhash
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from prodml import config, warehouse
from warehouse_support import clean_client, shared_run

DOC_EXAMPLE = """
WITH example AS (
  SELECT 1 AS x, "foo" AS y, true AS z UNION ALL
  SELECT 2 AS x, "apple" AS y, false AS z UNION ALL
  SELECT 3 AS x, "" AS y, true AS z
)
SELECT *, FARM_FINGERPRINT(CONCAT(CAST(x AS STRING), y, CAST(z AS STRING))) AS row_fingerprint
FROM example ORDER BY x
"""

COURSE_SPLIT = """
SELECT ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(year AS STRING), CAST(month AS STRING))), 4)) AS split,
  COUNT(*) AS n, AVG(weight_pounds) AS mean_weight
FROM `bigquery-public-data.samples.natality`
WHERE year > 2000 AND weight_pounds > 0 AND mother_age > 0 AND plurality > 0 AND gestation_weeks > 0
GROUP BY split ORDER BY split
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    yield from shared_run(tmp_path_factory)


@pytest.fixture
def client(run, monkeypatch):
    yield from clean_client(run, monkeypatch)


def one(client, sql, **params):
    """The single row of a query, as a dict."""
    job_config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(k, t, v) for k, (t, v) in params.items()]
    )
    rows = list(client.query(sql, job_config=job_config).result())
    assert len(rows) == 1
    return dict(rows[0].items())


# -- FARM_FINGERPRINT -----------------------------------------------------------------------------


def test_farm_fingerprint_matches_bigquery_documented_examples(client):
    frame = client.query(DOC_EXAMPLE).to_dataframe()
    # BigQuery hash functions reference, FARM_FINGERPRINT example
    assert frame["row_fingerprint"].tolist() == [
        -1541654101129638711,
        2794438866806483259,
        -4880158226897771312,
    ]
    # independently published: FARM_FINGERPRINT("alphabet") = Guava farmHashFingerprint64
    row = one(client, "SELECT FARM_FINGERPRINT('alphabet') AS a, FARM_FINGERPRINT(NULL) AS n")
    assert row == {"a": -2427165924636348523, "n": None}


def test_vectorized_fingerprint_equals_farmhash_on_every_value():
    rng = np.random.default_rng(0)
    values = [None if i % 7 == 0 else f"{rng.integers(1e9)}é{i % 13}" for i in range(2000)]
    got = warehouse.fingerprint(pa.chunked_array([values[:900], values[900:]])).to_pylist()
    want = [
        None if v is None else int(np.uint64(farmhash.fingerprint64(v)).astype(np.int64))
        for v in values
    ]
    assert got == want


# -- translated constructs ------------------------------------------------------------------------


def test_casts_follow_bigquery(client):
    row = one(
        client,
        """SELECT CAST(1 AS STRING) AS i, CAST(true AS STRING) AS t, CAST(false AS STRING) AS f,
        CAST(2005.0 AS STRING) AS whole, CAST(1.5 AS STRING) AS half,
        CAST(CAST(12 AS FLOAT64) AS STRING) AS float_whole,
        CAST(-2.5 AS INT64) AS neg_half, CAST(2.5 AS INT64) AS pos_half,
        CAST('7' AS INT64) AS from_text, CAST('0.25' AS FLOAT64) AS fl,
        CAST('true' AS BOOL) AS b, SAFE_CAST('x' AS INT64) AS bad, SAFE_CAST('3' AS INT64) AS ok""",
    )
    assert row == {
        "i": "1",
        "t": "true",
        "f": "false",
        "whole": "2005",
        "half": "1.5",
        "float_whole": "12",
        "neg_half": -3,
        "pos_half": 3,
        "from_text": 7,
        "fl": 0.25,
        "b": True,
        "bad": None,
        "ok": 3,
    }


def test_numbers_with_a_point_are_float64_as_on_bigquery(client):
    rows = client.query("SELECT 2.5 AS f, 1e3 AS e, 7 AS i, 2.5 * 2 AS g").result()
    assert [(f.name, f.field_type) for f in rows.schema] == [
        ("f", "FLOAT"),
        ("e", "FLOAT"),
        ("i", "INTEGER"),
        ("g", "FLOAT"),
    ]
    assert [tuple(r.values()) for r in rows] == [(2.5, 1000.0, 7, 5.0)]


def test_a_sum_of_integers_is_int64_and_overflows_as_on_bigquery(client):
    """DuckDB sums integers into HUGEINT (which would reach the client as NUMERIC, Decimal
    objects in pandas); BigQuery's SUM of INT64 is INT64, and a sum beyond it is an error."""
    few = client.query("SELECT SUM(x) AS s, SUM(x) AS t FROM UNNEST([1, 2, 3]) AS x").result()
    assert [f.field_type for f in few.schema] == ["INTEGER", "INTEGER"]
    assert [tuple(r.values()) for r in few] == [(6, 6)]
    many = client.query(  # more rows than come back as Python values: the Arrow path
        "SELECT MOD(x, 500) AS k, SUM(x) AS s FROM UNNEST(GENERATE_ARRAY(1, 2000)) AS x "
        "GROUP BY k ORDER BY k"
    ).to_dataframe()
    assert str(many["s"].dtype) == "Int64" and int(many["s"].sum()) == 2000 * 2001 // 2
    with pytest.raises(exceptions.BadRequest, match="Int64 overflow"):
        client.query("SELECT SUM(x) AS s FROM UNNEST([9223372036854775807, 1]) AS x").result()


def test_functions_follow_bigquery(client):
    row = one(
        client,
        """SELECT MOD(-7, 4) AS m, ABS(MOD(-7, 4)) AS a, IF(1 > 2, 'y', 'n') AS iff,
        IFNULL(NULL, 5) AS inull, CONCAT('a', 'b', 'c') AS c, CONCAT('a', NULL) AS cnull,
        EXTRACT(YEAR FROM DATE '2020-03-04') AS y, EXTRACT(MONTH FROM DATE '2020-03-04') AS mo,
        EXTRACT(DAYOFWEEK FROM DATE '2020-03-01') AS dow""",
    )
    assert row == {
        "m": -3,
        "a": 3,
        "iff": "n",
        "inull": 5,
        "c": "abc",
        "cnull": None,
        "y": 2020,
        "mo": 3,
        "dow": 1,  # BigQuery: Sunday = 1
    }
    agg = one(
        client,
        """SELECT COUNTIF(x > 5) AS big, COUNT(*) AS n, MIN(r) >= 0 AND MAX(r) < 1 AS in_range,
        COUNT(DISTINCT r) AS distinct_r
        FROM (SELECT x, RAND() AS r FROM UNNEST(GENERATE_ARRAY(1, 10)) AS x)""",
    )
    assert agg == {"big": 5, "n": 10, "in_range": True, "distinct_r": 10}
    limited = client.query("SELECT x FROM UNNEST(GENERATE_ARRAY(1, 10)) AS x ORDER BY x LIMIT 3")
    assert limited.result().total_rows == 3


def test_approx_quantiles_returns_n_plus_one_values(client):
    rows = one(
        client,
        """SELECT APPROX_QUANTILES(x, 2) AS q, APPROX_QUANTILES(x, 4)[OFFSET(1)] AS q1,
        APPROX_QUANTILES(x, 4)[ORDINAL(5)] AS top
        FROM UNNEST([1, 1, 1, 4, 5, 6, 7, 8, 9, 10, NULL]) AS x""",
    )
    # BigQuery's documented example: APPROX_QUANTILES(x, 2) over these values = [1, 5, 10]
    assert rows == {"q": [1, 5, 10], "q1": 1, "top": 10}


def test_named_and_array_parameters(client):
    job_config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("low", "INT64", 3),
            bigquery.ScalarQueryParameter("scale", "FLOAT64", 2),
            bigquery.ArrayQueryParameter("keep", "INT64", [4, 6, 9]),
        ]
    )
    frame = client.query(
        """SELECT x, x * @scale AS scaled FROM UNNEST(GENERATE_ARRAY(1, 10)) AS x
        WHERE x > @low AND x IN UNNEST(@keep) ORDER BY x""",
        job_config=job_config,
    ).to_dataframe()
    assert frame["x"].tolist() == [4, 6, 9]
    assert frame["scaled"].tolist() == [8.0, 12.0, 18.0]
    with pytest.raises(exceptions.BadRequest, match="@missing"):
        client.query("SELECT @missing AS m").result()


def test_course_split_query_matches_pandas(client):
    rng = np.random.default_rng(1)
    n = 5000
    frame = pd.DataFrame(
        {
            "year": rng.integers(1995, 2009, n),
            "month": rng.integers(1, 13, n),
            "weight_pounds": rng.normal(7.3, 1.2, n),
            "mother_age": rng.integers(15, 45, n),
            "plurality": rng.integers(1, 3, n),
            "gestation_weeks": rng.integers(30, 43, n),
        }
    )
    replace = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
    client.load_table_from_dataframe(
        frame, "bigquery-public-data.samples.natality", job_config=replace
    ).result()
    got = client.query(COURSE_SPLIT).to_dataframe()
    kept = frame[(frame.year > 2000) & (frame.weight_pounds > 0)]
    keys = kept.year.astype(str) + kept.month.astype(str)
    hashes = np.array([farmhash.fingerprint64(k) for k in keys], dtype=np.uint64).view(np.int64)
    want = kept.assign(split=np.abs(np.fmod(hashes, 4))).groupby("split").weight_pounds
    assert got["split"].tolist() == want.size().index.tolist()
    assert got["n"].tolist() == want.size().tolist()
    np.testing.assert_allclose(got["mean_weight"], want.mean().to_numpy())
    assert got["n"].sum() == len(kept)


def test_create_or_replace_table_and_datasets(client):
    with pytest.raises(exceptions.NotFound, match="create_dataset"):
        client.query("CREATE OR REPLACE TABLE babyweight.t AS SELECT 1 AS a").result()
    dataset = client.create_dataset("babyweight", exists_ok=True)
    assert dataset.dataset_id == "babyweight" and dataset.project == "local-project"
    with pytest.raises(exceptions.Conflict):
        client.create_dataset("babyweight")
    for _ in range(2):  # OR REPLACE
        client.query(
            "CREATE OR REPLACE TABLE babyweight.t AS "
            "SELECT x AS a, CAST(x AS STRING) AS s FROM UNNEST(GENERATE_ARRAY(1, 4)) AS x"
        ).result()
    table = client.get_table("local-project.babyweight.t")
    assert table.num_rows == 4
    assert [(f.name, f.field_type) for f in table.schema] == [("a", "INTEGER"), ("s", "STRING")]
    rows = client.list_rows("babyweight.t", max_results=2)
    assert rows.total_rows == 4 and len(rows.to_dataframe()) == 2
    assert client.query("SELECT SUM(a) AS s FROM `local-project.babyweight.t`").to_dataframe()[
        "s"
    ].tolist() == [10]
    client.delete_table("babyweight.t")
    client.delete_table("babyweight.t", not_found_ok=True)
    with pytest.raises(exceptions.NotFound, match="local-project:babyweight.t"):
        client.delete_table("babyweight.t")


# -- errors ---------------------------------------------------------------------------------------


def test_missing_table_is_named_in_bigquery_terms(client):
    with pytest.raises(exceptions.NotFound) as err:
        client.query("SELECT * FROM `bigquery-public-data.samples.shakespeare` LIMIT 1").result()
    assert "Not found: Table bigquery-public-data:samples.shakespeare" in str(err.value)
    with pytest.raises(exceptions.NotFound, match="local-project:ds.nope"):
        client.get_table("ds.nope")


@pytest.mark.parametrize(
    "sql, construct",
    [
        # BigQuery ML the local engine does not run (without an engine: test_warehouse_bigquery)
        ("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL `p.d.m`, (SELECT 1 AS x))", "ML.EXPLAIN_PREDICT"),
        ("CREATE MODEL d.m OPTIONS(model_type='kmeans') AS SELECT 1 AS x", "KMEANS"),
        ("SELECT FOO_BAR(1) AS x", "FOO_BAR()"),
        ("SELECT 1 FROM `p.d.events_*`", "wildcard"),
    ],
)
def test_unsupported_sql_names_the_construct(client, sql, construct):
    with pytest.raises(exceptions.BadRequest) as err:
        client.query(sql).result()
    assert construct in err.value.errors[0]["message"]
    assert err.value.errors[0]["reason"] == "invalidQuery"


def test_other_errors_read_like_bigquerys(client):
    with pytest.raises(exceptions.BadRequest) as err:
        client.query("SELECT CAST('abc' AS INT64) AS x").result()
    assert err.value.errors[0] == {
        "reason": "invalidQuery",
        "location": "query",
        "message": "Bad int64 value: abc",
    }
    assert str(err.value).startswith("400 Bad int64 value: abc")


# -- loads ----------------------------------------------------------------------------------------

SCHEMA = [
    bigquery.SchemaField("name", "STRING"),
    bigquery.SchemaField("age", "INTEGER", mode="REQUIRED"),
    bigquery.SchemaField("score", "FLOAT"),
]


def test_dataframe_write_dispositions(client):
    table = "bigquery-public-data.samples.small"
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    job = client.load_table_from_dataframe(frame, table)
    assert job.result().output_rows == 2 and job.state == "DONE" and job.errors is None
    client.load_table_from_dataframe(frame, table).result()  # WRITE_APPEND by default
    assert client.get_table(table).num_rows == 4
    truncate = bigquery.LoadJobConfig(write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
    client.load_table_from_dataframe(frame.head(1), table, job_config=truncate).result()
    assert client.get_table(table).num_rows == 1
    empty = bigquery.LoadJobConfig(write_disposition=bigquery.WriteDisposition.WRITE_EMPTY)
    with pytest.raises(exceptions.Conflict, match="not empty"):
        client.load_table_from_dataframe(frame, table, job_config=empty).result()
    assert client.get_table(table).num_rows == 1


def test_csv_with_schema_counts_bad_rows(client, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("name;age;score\nann;31;1.5\nbob;old;2\ncid;40;\ndan;;3\neve;22;4;extra\n")
    job_config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.CSV,
        schema=SCHEMA,
        skip_leading_rows=1,
        field_delimiter=";",
    )
    job = client.load_table_from_uri(str(path), "local_ds_proj.people.t", job_config=job_config)
    with pytest.raises(exceptions.BadRequest, match="3 bad record"):
        job.result()
    locations = sorted(e["location"].rsplit(" ", 1)[1] for e in job.errors)
    assert locations == ["3", "5", "6"]
    messages = " ".join(e["message"] for e in job.errors)
    assert "'old' to INTEGER in column age" in messages and "required column age" in messages
    assert "Too many columns" in messages
    with pytest.raises(exceptions.NotFound):  # nothing was written
        client.get_table("local_ds_proj.people.t")

    job_config.max_bad_records = 3
    job = client.load_table_from_uri(
        f"file://{path}", "local_ds_proj.people.t", job_config=job_config
    )
    assert job.result().output_rows == 2 and len(job.errors) == 3
    frame = client.list_rows("local_ds_proj.people.t").to_dataframe()
    assert frame["name"].tolist() == ["ann", "cid"]
    assert frame["age"].tolist() == [31, 40] and frame["score"].isna().tolist() == [False, True]
    assert client.get_table("local_ds_proj.people.t").schema[1].mode == "REQUIRED"


def test_csv_autodetect_reads_header_and_types(client, tmp_path):
    path = tmp_path / "auto.csv"
    path.write_text("year,weight,is_male,day\n2001,7.5,true,2001-01-02\n2002,8,false,2002-03-04\n")
    job_config = bigquery.LoadJobConfig(source_format="CSV", autodetect=True)
    job = client.load_table_from_uri(str(path), "other_proj.ds.auto", job_config=job_config)
    assert job.result().output_rows == 2
    schema = [(f.name, f.field_type) for f in client.get_table("other_proj.ds.auto").schema]
    assert schema == [
        ("year", "INTEGER"),
        ("weight", "FLOAT"),
        ("is_male", "BOOLEAN"),
        ("day", "DATE"),
    ]


def test_json_parquet_avro_orc_loads(client, tmp_path):
    frame = pd.DataFrame({"name": ["a", "b", "c"], "age": [1, 2, 3], "score": [0.5, 1.5, None]})
    rows = frame.to_dict("records")

    ndjson = tmp_path / "rows.json"
    ndjson.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json}\n")
    job_config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=SCHEMA, max_bad_records=1
    )
    job = client.load_table_from_uri(str(ndjson), "p.fmt.json", job_config=job_config)
    assert job.result().output_rows == 3
    assert job.errors[0]["location"].endswith("line 4") and "JSON" in job.errors[0]["message"]

    import fastavro
    import pyarrow.orc as orc
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(arrow, tmp_path / "rows.parquet")
    orc.write_table(arrow, tmp_path / "rows.orc")
    avro_schema = {
        "type": "record",
        "name": "row",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "age", "type": "long"},
            {"name": "score", "type": ["null", "double"]},
        ],
    }
    with open(tmp_path / "rows.avro", "wb") as f:
        fastavro.writer(
            f,
            avro_schema,
            [{**r, "score": None if pd.isna(r["score"]) else r["score"]} for r in rows],
        )
    for fmt, ext in (("PARQUET", "parquet"), ("ORC", "orc"), ("AVRO", "avro")):
        job = client.load_table_from_uri(
            str(tmp_path / f"rows.{ext}"),
            f"p.fmt.{ext}",
            job_config=bigquery.LoadJobConfig(source_format=fmt),
        )
        assert job.result().output_rows == 3, fmt
    for ext in ("json", "parquet", "orc", "avro"):
        got = client.query(
            f"SELECT name, age, score FROM `p.fmt.{ext}` ORDER BY name"
        ).to_dataframe()
        assert got["name"].tolist() == ["a", "b", "c"], ext
        assert got["age"].tolist() == [1, 2, 3], ext
        assert got["score"].tolist()[:2] == [0.5, 1.5] and pd.isna(got["score"][2]), ext


def test_gs_and_relative_uris_are_refused_locally(client):
    with pytest.raises(exceptions.BadRequest, match="gs://bucket/x.csv"):
        client.load_table_from_uri("gs://bucket/x.csv", "p.d.t").result()
    with pytest.raises(exceptions.BadRequest, match="relative path"):
        client.load_table_from_uri("data/x.csv", "p.d.t").result()


# -- BigQuery backend -----------------------------------------------------------------------------


def test_bigquery_selection_builds_the_real_client_without_network(run_dir, monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))
    config.configure(warehouse="bigquery", project="my-project", location="EU")
    client = warehouse.client()
    assert type(client) is bigquery.Client
    assert client.project == "my-project" and client.location == "EU"
    assert warehouse.client(project="other").project == "other"

    sent = []

    def api_request(method, path, data=None, **kwargs):
        sent.append((method, path, data))
        raise exceptions.ServiceUnavailable("offline test: request captured, not sent")

    monkeypatch.setattr(client._connection, "api_request", api_request)
    job_config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("year", "INT64", 2000)]
    )
    with pytest.raises(exceptions.GoogleAPICallError):
        client.query("SELECT @year AS y", job_config=job_config, retry=None, job_retry=None)
    method, path, body = sent[0]
    assert method == "POST" and path.startswith("/projects/my-project/")
    request = body.get("configuration", {}).get("query", body)
    assert request["queryParameters"] == [
        {"name": "year", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "2000"}}
    ]
    assert request["useLegacySql"] is False


def test_dry_runs_check_the_query_and_run_nothing(client):
    client.create_dataset("dry")
    dry = bigquery.QueryJobConfig(dry_run=True)
    job = client.query("CREATE TABLE dry.t AS SELECT 1 AS a", job_config=dry)
    assert job.state == "DONE" and job.total_bytes_processed == 0
    with pytest.raises(exceptions.NotFound):
        client.get_table("dry.t")  # nothing ran
    with pytest.raises(exceptions.BadRequest, match="Syntax error"):
        client.query("SELEC 1", job_config=dry).result()
    with pytest.raises(exceptions.BadRequest, match="legacy SQL"):
        client.query("SELECT 1", job_config=bigquery.QueryJobConfig(use_legacy_sql=True)).result()


def test_query_destination_honors_write_disposition(client):
    client.create_dataset("results", exists_ok=True)
    job_config = bigquery.QueryJobConfig(
        destination="local-project.results.squares",
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
    )
    sql = "SELECT x, x * x AS sq FROM UNNEST(GENERATE_ARRAY(1, 3)) AS x"
    for _ in range(2):
        job = client.query(sql, job_config=job_config)
        assert job.result().total_rows == 3 and job.state == "DONE"
    assert client.get_table("results.squares").num_rows == 3
    job_config.write_disposition = bigquery.WriteDisposition.WRITE_APPEND
    client.query(sql, job_config=job_config).result()
    assert client.get_table("results.squares").num_rows == 6


def test_clients_of_one_run_folder_share_one_service(client):
    """Two clients of one run folder (a notebook's, and a pipeline's) talk to one service: each
    sees the other's writes at once, and both run the warehouse's FARM_FINGERPRINT."""
    other = warehouse.client()
    assert other._connection.API_BASE_URL == client._connection.API_BASE_URL
    client.create_dataset("shared", exists_ok=True)
    client.query("CREATE TABLE shared.t AS SELECT 'alphabet' AS s").result()
    got = other.query("SELECT FARM_FINGERPRINT(s) AS f FROM shared.t").to_dataframe()
    assert got["f"].tolist() == [-2427165924636348523]
