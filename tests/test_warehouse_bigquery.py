"""The local warehouse as the course's code meets it, through google-cloud-bigquery's own client:
public tables that exist, BigQuery's errors, DDL and catalogue, read-only public data, BigQuery
SQL only, extracts, copies, %%bigquery."""

from __future__ import annotations

import contextlib
import io
import json
from importlib import metadata

import fastavro
import pandas as pd
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from prodml import config, warehouse
from prodml.datasets import PUBLIC_TABLES, natality
from prodml.warehouse import service
from prodml.warehouse.refusals import BIGQUERY_ML
from warehouse_support import clean_client, shared_run

# The course's split, as its notebooks write it (publicdata is BigQuery's alias)
COURSE_SPLIT = """
SELECT
  ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(year AS STRING), CAST(month AS STRING))), 4)) AS split,
  COUNT(*) AS n
FROM publicdata.samples.natality
WHERE year > 2000 AND weight_pounds > 0 AND mother_age > 0 AND plurality > 0
  AND gestation_weeks > 0
GROUP BY split ORDER BY split
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The module's run folder; its service runs with no BigQuery ML engine (the refusals)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRODML_WAREHOUSE_ML_ENGINE", "")
        yield from shared_run(tmp_path_factory, "bigquery")


@pytest.fixture(scope="module")
def public(run):
    """A client on a fresh warehouse file; its first query generates natality (once for the
    module: 1,000,000 rows take a few seconds). Returns (client, the service's log lines about
    generating tables, the split)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRODML_RUN_DIR", str(run))
        config.reset()
        client = warehouse.client()
        split = client.query(COURSE_SPLIT).to_dataframe()
        log = service.log_path(run).read_text()
        yield client, [line for line in log.splitlines() if "generating" in line], split
    config.reset()


@pytest.fixture
def client(run, monkeypatch):
    yield from clean_client(run, monkeypatch)


def test_registry_maps_public_ids_to_generators():
    assert PUBLIC_TABLES[natality.TABLE] is natality.public_table
    assert all(len(t.split(".")) == 3 and callable(g) for t, g in PUBLIC_TABLES.items())
    # the warehouse learns them by name, from the package's entry points: the same tables
    registered = {e.name: e.load() for e in metadata.entry_points(group="prodml.public_tables")}
    assert registered == PUBLIC_TABLES


def test_a_fresh_warehouse_answers_the_course_split_on_publicdata(public):
    client, notices, split = public
    assert len(notices) == 1 and natality.TABLE in notices[0]  # one line, once, in the log
    assert split["split"].tolist() == [0, 1, 2, 3]
    kept = client.query(
        "SELECT COUNT(*) AS n FROM `bigquery-public-data.samples.natality` WHERE year > 2000 "
        "AND weight_pounds > 0 AND mother_age > 0 AND plurality > 0 AND gestation_weeks > 0"
    ).to_dataframe()["n"][0]
    assert split["n"].sum() == kept and 750_000 < kept < 800_000
    # the default size, and nothing generated the second time
    assert client.get_table("publicdata.samples.natality").num_rows == 1_000_000
    log = service.log_path(client.run_dir).read_text()
    assert sum("generating" in line for line in log.splitlines()) == 1


def test_select_star_has_the_public_tables_31_columns(public):
    client = public[0]
    rows = client.query("SELECT * FROM publicdata.samples.natality LIMIT 3").to_dataframe()
    assert list(rows.columns) == [name for name, _, _ in natality.SCHEMA_SPEC]
    schema = client.get_table(natality.TABLE).schema
    assert [(f.name, f.field_type, f.mode) for f in schema] == natality.SCHEMA_SPEC
    # the course's hash column query
    hashed = client.query(
        "SELECT weight_pounds, is_male, mother_age, plurality, gestation_weeks, "
        "FARM_FINGERPRINT(CONCAT(CAST(YEAR AS STRING), CAST(month AS STRING))) AS hashmonth "
        "FROM publicdata.samples.natality WHERE year > 2000 LIMIT 10"
    ).to_dataframe()
    assert len(hashed) == 10 and hashed["hashmonth"].dtype == "Int64"


def test_information_schema_columns_in_bigquery_terms(public):
    client = public[0]
    columns = client.query(
        "SELECT column_name, data_type, is_nullable, ordinal_position "
        "FROM `bigquery-public-data.samples.INFORMATION_SCHEMA.COLUMNS` "
        "WHERE table_name = 'natality' ORDER BY ordinal_position"
    ).to_dataframe()
    standard = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "STRING": "STRING"}
    assert columns.values.tolist() == [
        [name, standard[kind], "NO" if mode == "REQUIRED" else "YES", i + 1]
        for i, (name, kind, mode) in enumerate(natality.SCHEMA_SPEC)
    ]


def test_unknown_names_in_bigquerys_words(public):
    client = public[0]
    with pytest.raises(exceptions.BadRequest) as err:
        client.query("SELECT mother_birth_stat FROM publicdata.samples.natality").result()
    assert err.value.errors[0]["message"] == "Unrecognized name: mother_birth_stat at [1:8]"
    assert str(err.value).startswith("400 Unrecognized name: mother_birth_stat at [1:8]")
    with pytest.raises(exceptions.BadRequest) as err:
        client.query("SELECT year,\n  nope\nFROM publicdata.samples.natality").result()
    assert err.value.errors[0]["message"] == "Unrecognized name: nope at [2:3]"
    with pytest.raises(exceptions.NotFound) as err:
        client.query("SELECT * FROM publicdata.samples.natalityx").result()
    assert "Not found: Table bigquery-public-data:samples.natalityx" in str(err.value)
    with pytest.raises(exceptions.BadRequest) as err:
        client.query("SELECT year FROM publicdata.samples.natality WHERE (").result()
    message = err.value.errors[0]["message"]
    assert message.startswith("Syntax error: ") and "at [1:" in message
    for message in (str(e) for e in _errors(client)):
        assert "\x1b" not in message
        for duckdb_word in ("DuckDB", "Binder", "Catalog Error", "Candidate bindings", "LINE 1"):
            assert duckdb_word not in message, message


def _errors(client):
    for sql in (
        "SELECT nope FROM UNNEST([1]) AS x",
        "SELECT * FROM ds.missing",
        "SELECT FROM WHERE",
        "SELECT * FROM ML.EVALUATE(MODEL `d.m`)",
        "SELECT CAST('x' AS INT64) AS y",
    ):
        with pytest.raises(exceptions.GoogleAPICallError) as err:
            client.query(sql).result()
        yield err.value


ML = [
    ("CREATE MODEL d.m OPTIONS(model_type='linear_reg') AS SELECT 1 AS label", "CREATE MODEL"),
    ("CREATE OR REPLACE MODEL `p.d.m` OPTIONS(model_type='dnn_regressor') AS SELECT 1 AS label",
     "CREATE MODEL"),
    ("DROP MODEL d.m", "DROP MODEL"),
    ("SELECT * FROM ML.PREDICT(MODEL `p.d.m`, (SELECT 1 AS x))", "ML.PREDICT"),
    ("SELECT * FROM ML.EVALUATE(MODEL `d.m`)", "ML.EVALUATE"),
    ("SELECT * FROM ML.EVALUATE(MODEL d.m, (SELECT 1 AS x))", "ML.EVALUATE"),
    ("SELECT * FROM ML.TRAINING_INFO(MODEL d.m)", "ML.TRAINING_INFO"),
    ("SELECT * FROM ML.FEATURE_INFO(MODEL `d.m`)", "ML.FEATURE_INFO"),
    ("SELECT * FROM ML.WEIGHTS(MODEL d.m)", "ML.WEIGHTS"),
    ("SELECT * FROM ML.CONFUSION_MATRIX(MODEL d.m)", "ML.CONFUSION_MATRIX"),
]  # fmt: skip


@pytest.mark.parametrize("sql, construct", ML)
def test_bigquery_ml_is_refused_with_one_message(client, sql, construct):
    with pytest.raises(exceptions.BadRequest) as err:
        client.query(sql).result()
    assert err.value.errors[0]["message"] == BIGQUERY_ML.format(construct=construct)
    assert "BigQuery ML" in str(err.value) and "Keras" in str(err.value)


NOT_BIGQUERY = [
    ("COPY (SELECT 1 AS a) TO 'out.csv'", "COPY"),
    ("ATTACH 'other.duckdb' AS other", "ATTACH"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD"),
    ("PRAGMA database_list", "PRAGMA"),
    ("SET threads = 1", "SET"),
    ("EXPORT DATABASE 'dump'", "EXPORT DATABASE"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto()"),
    ("SELECT * FROM read_parquet('x.parquet')", "read_parquet()"),
    ("SELECT * FROM read_json('x.json')", "read_json()"),
    ("SELECT * FROM glob('/etc/*')", "glob()"),
    ("SELECT * FROM duckdb_tables()", "duckdb_tables()"),
    ("SELECT getenv('HOME') AS home", "getenv()"),
    ("SELECT 1 AS a; COPY (SELECT 1) TO 'x.csv'", "COPY"),
]


@pytest.mark.parametrize("sql, construct", NOT_BIGQUERY)
def test_sql_that_is_not_bigquerys_is_refused(client, sql, construct):
    with pytest.raises(exceptions.BadRequest) as err:
        client.query(sql).result()
    assert err.value.errors[0]["message"].startswith(f"{construct} is not BigQuery SQL")


def test_bigquery_ddl(client):
    client.create_dataset(bigquery.DatasetReference("local-project", "scratch"), exists_ok=True)

    def run(sql):
        job = client.query(sql)
        job.result()
        return job

    run(
        "CREATE TABLE scratch.t2 (a INT64 NOT NULL, b STRING, d DATE) "
        "PARTITION BY d CLUSTER BY b OPTIONS(description='partitioning only changes cost')"
    )
    run("CREATE TABLE IF NOT EXISTS scratch.t2 (a INT64, b STRING)")  # no-op
    with pytest.raises(exceptions.Conflict, match="Already Exists: Table local-project:scratch.t2"):
        run("CREATE TABLE scratch.t2 (a INT64)")
    assert run("INSERT INTO scratch.t2 (a, b) VALUES (1, 'x'), (2, 'y')").num_dml_affected_rows == 2
    with pytest.raises(exceptions.BadRequest, match="Required field a cannot be null"):
        run("INSERT INTO scratch.t2 (b) VALUES ('z')")
    columns = run(
        "SELECT column_name, data_type, is_nullable FROM scratch.INFORMATION_SCHEMA.COLUMNS "
        "WHERE table_name = 't2' ORDER BY ordinal_position"
    ).to_dataframe()
    assert columns.values.tolist() == [
        ["a", "INT64", "NO"],
        ["b", "STRING", "YES"],
        ["d", "DATE", "YES"],
    ]
    run("CREATE TABLE scratch.empty LIKE scratch.t2")
    run("CREATE TABLE scratch.copy COPY scratch.t2")
    run("CREATE OR REPLACE TABLE scratch.copy COPY scratch.t2")
    assert client.get_table("scratch.empty").num_rows == 0
    assert client.get_table("scratch.copy").num_rows == 2
    run("ALTER TABLE scratch.t2 ADD COLUMN c FLOAT64")
    assert [f.name for f in client.get_table("scratch.t2").schema] == ["a", "b", "d", "c"]
    run("ALTER TABLE scratch.t2 DROP COLUMN c")
    run("ALTER TABLE scratch.t2 RENAME TO t3")
    assert client.get_table("scratch.t3").num_rows == 2
    run("TRUNCATE TABLE scratch.t3")
    assert client.get_table("scratch.t3").num_rows == 0
    run("CREATE OR REPLACE VIEW scratch.v AS SELECT a FROM scratch.copy")
    tables = run(
        "SELECT table_name, table_type FROM scratch.INFORMATION_SCHEMA.TABLES ORDER BY table_name"
    ).to_dataframe()
    assert tables.values.tolist() == [
        ["copy", "BASE TABLE"],
        ["empty", "BASE TABLE"],
        ["t3", "BASE TABLE"],
        ["v", "VIEW"],
    ]
    run("DROP TABLE scratch.t3")
    run("DROP TABLE IF EXISTS scratch.t3")
    with pytest.raises(exceptions.NotFound, match="Not found: Table local-project:scratch.t3"):
        run("DROP TABLE scratch.t3")
    with pytest.raises(exceptions.NotFound, match="Not found: Table local-project:scratch.t3"):
        run("ALTER TABLE scratch.t3 ADD COLUMN e INT64")
    with pytest.raises(exceptions.NotFound, match="Not found: Dataset local-project:nowhere"):
        run("CREATE TABLE nowhere.t (a INT64)")
    run("CREATE SCHEMA IF NOT EXISTS scratch2")
    run("CREATE TABLE scratch2.t (a INT64)")
    schemata = run("SELECT schema_name FROM `region-us`.INFORMATION_SCHEMA.SCHEMATA ORDER BY 1")
    assert schemata.to_dataframe()["schema_name"].tolist() == ["scratch", "scratch2"]
    with pytest.raises(exceptions.BadRequest):
        run("DROP SCHEMA scratch2")  # not empty
    run("DROP SCHEMA scratch2 CASCADE")
    with pytest.raises(exceptions.NotFound, match="Dataset local-project:scratch2"):
        client.get_dataset("scratch2")


WRITES = [
    "DELETE FROM `bigquery-public-data.samples.natality` WHERE TRUE",
    "UPDATE publicdata.samples.natality SET weight_pounds = 0 WHERE TRUE",
    "INSERT INTO `bigquery-public-data.samples.natality` (source_year, is_male) VALUES (1, TRUE)",
    "MERGE publicdata.samples.natality T USING (SELECT 1 AS y) S ON FALSE "
    "WHEN NOT MATCHED BY SOURCE THEN DELETE",
    "DROP TABLE `bigquery-public-data.samples.natality`",
    "TRUNCATE TABLE publicdata.samples.natality",
    "ALTER TABLE publicdata.samples.natality ADD COLUMN x INT64",
    "CREATE OR REPLACE TABLE `bigquery-public-data.samples.natality` AS SELECT 1 AS a",
    "CREATE TABLE `bigquery-public-data.samples.mine` AS SELECT 1 AS a",
    "DROP SCHEMA `bigquery-public-data.samples` CASCADE",
]


def test_public_tables_are_read_only(public):
    client = public[0]
    fingerprint = (  # integer sums: exact in any order of aggregation
        "SELECT COUNT(*) AS n, SUM(CAST(weight_pounds * 1e6 AS INT64)) AS w, SUM(year) AS y "
        "FROM publicdata.samples.natality"
    )
    before = client.query(fingerprint).to_dataframe().values.tolist()
    for sql in WRITES:
        with pytest.raises(exceptions.Forbidden) as err:
            client.query(sql).result()
        assert "Access Denied" in str(err.value) and "bigquery-public-data:samples" in str(
            err.value
        ), sql
    for call in (
        lambda: client.delete_table(natality.TABLE),
        lambda: client.delete_dataset("bigquery-public-data.samples", delete_contents=True),
        lambda: client.create_dataset("publicdata.mine"),
    ):
        with pytest.raises(exceptions.Forbidden, match="Access Denied"):
            call()
    assert client.query(fingerprint).to_dataframe().values.tolist() == before
    assert [f.name for f in client.get_table(natality.TABLE).schema][-1] == "record_weight"


# -- the client surface -------------------------------------------------------------------


FRAME = pd.DataFrame(
    {
        "n": pd.array([1, 2, None, 4], dtype="Int64"),
        "x": [0.5, -1.25, 3.0, None],
        "s": ["a", 'b "quoted", comma', None, "line\nbreak"],
        "ok": pd.array([True, False, None, True], dtype="boolean"),
    }
)
SCHEMA = [
    bigquery.SchemaField("n", "INTEGER"),
    bigquery.SchemaField("x", "FLOAT"),
    bigquery.SchemaField("s", "STRING"),
    bigquery.SchemaField("ok", "BOOLEAN"),
]
FORMATS = {"CSV": "csv", "NEWLINE_DELIMITED_JSON": "json", "AVRO": "avro", "PARQUET": "parquet"}


@pytest.fixture
def small(client):
    client.create_dataset("course", exists_ok=True)
    client.load_table_from_dataframe(FRAME, "course.small").result()
    return bigquery.TableReference.from_string("local-project.course.small")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_extract_table_round_trips(client, small, fmt):
    from prodml import storage

    uri = storage.path("exports", f"small.{FORMATS[fmt]}")
    job = client.extract_table(
        small, uri, job_config=bigquery.ExtractJobConfig(destination_format=fmt)
    )
    assert job.result().destination_uri_file_counts == [1] and job.state == "DONE"
    load = bigquery.LoadJobConfig(source_format=fmt, schema=SCHEMA, allow_quoted_newlines=True)
    if fmt == "CSV":
        load.skip_leading_rows = 1
    client.load_table_from_uri(uri, "course.back", job_config=load).result()
    back = client.query("SELECT * FROM course.back ORDER BY n NULLS LAST").to_dataframe()
    want = client.query("SELECT * FROM course.small ORDER BY n NULLS LAST").to_dataframe()
    pd.testing.assert_frame_equal(back, want)
    if fmt == "AVRO":  # a real Avro file with BigQuery's nullable unions
        with open(uri, "rb") as f:
            fields = fastavro.reader(f).writer_schema["fields"]
        assert [fl["type"] for fl in fields] == [
            ["null", "long"],
            ["null", "double"],
            ["null", "string"],
            ["null", "boolean"],
        ]
    if fmt == "NEWLINE_DELIMITED_JSON":
        with open(uri) as f:
            first = json.loads(f.readline())
        assert first == {"n": 1, "x": 0.5, "s": "a", "ok": True}


def test_extract_wildcard_shards(client):
    from prodml import storage

    client.create_dataset("course", exists_ok=True)
    rows = 250_000  # the service writes 100,000 rows per file of a wildcard extract
    client.query(
        f"CREATE TABLE course.many AS SELECT x FROM UNNEST(GENERATE_ARRAY(1, {rows})) AS x"
    ).result()
    uri = storage.path("shards", "part-*.parquet")
    job = client.extract_table(
        "course.many", [uri], job_config=bigquery.ExtractJobConfig(destination_format="PARQUET")
    ).result()
    assert job.destination_uri_file_counts == [3]
    parts = [uri.replace("*", f"{i:012d}") for i in range(3)]
    assert [pq.read_table(p).num_rows for p in parts] == [100_000, 100_000, 50_000]
    got = sorted(x for p in parts for x in pq.read_table(p)["x"].to_pylist())
    assert got == list(range(1, rows + 1))
    with pytest.raises(exceptions.BadRequest, match="local folder"):
        client.extract_table("course.many", "gs://bucket/out.csv").result()


def test_references_and_the_rest_of_the_client(client, small):
    dataset = bigquery.DatasetReference("local-project", "course")
    assert client.create_dataset(dataset, exists_ok=True).dataset_id == "course"
    with pytest.raises(exceptions.Conflict):
        client.create_dataset(bigquery.Dataset(dataset))
    table = dataset.table("small")
    assert [f.name for f in client.get_table(table).schema] == ["n", "x", "s", "ok"]
    rows = client.list_rows(table, max_results=2)
    assert len(list(rows)) == 2 and rows.total_rows == 4
    picked = client.list_rows("course.small", selected_fields=SCHEMA[:1], start_index=3)
    assert picked.to_dataframe()["n"].tolist() == [4]
    assert [t.table_id for t in client.list_tables(dataset)] == ["small"]
    # what LocalClient lacked, the real client has: copies, insert_rows, jobs
    client.copy_table(table, "course.other").result()
    client.copy_table([table, "course.other"], "course.both").result()
    assert client.get_table("course.both").num_rows == 8
    assert client.insert_rows(client.get_table(table), [{"n": 5, "s": "e"}]) == []
    assert client.get_table(table).num_rows == 5
    job = client.query("SELECT COUNT(*) AS n FROM course.small")
    assert job.result().to_dataframe()["n"].tolist() == [5]
    assert job.job_id in {j.job_id for j in client.list_jobs()}
    assert client.get_job(job.job_id).state == "DONE" and job.cancel()
    with pytest.raises(AttributeError):
        client.no_such_method()  # a typo is still a typo
    for name in ("small", "other", "both"):
        client.delete_table(dataset.table(name))
    client.delete_dataset(dataset)
    with pytest.raises(exceptions.NotFound, match="local-project:course"):
        client.get_dataset(dataset)


def test_csv_quoted_newlines_report_the_line_a_bad_record_starts_on(client, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text(
        "name,age\n"  # line 1
        '"Ann\nSmith",31\n'  # lines 2-3
        "Bob,not a number\n"  # line 4
        '"Cy\n\nDo",7\n'  # lines 5-7
        "Di,8,extra\n"  # line 8
        "Ed,9\n"  # line 9
    )
    client.create_dataset("course", exists_ok=True)
    config_ = bigquery.LoadJobConfig(
        source_format="CSV",
        skip_leading_rows=1,
        allow_quoted_newlines=True,
        max_bad_records=5,
        schema=[bigquery.SchemaField("name", "STRING"), bigquery.SchemaField("age", "INTEGER")],
    )
    job = client.load_table_from_uri(str(source), "course.people", job_config=config_).result()
    assert sorted(e["location"] for e in job.errors) == [f"{source} line 4", f"{source} line 8"]
    rows = client.query("SELECT name, age FROM course.people ORDER BY age").to_dataframe()
    assert rows.values.tolist() == [["Cy\n\nDo", 7], ["Ed", 9], ["Ann\nSmith", 31]]


# -- %%bigquery -------------------------------------------------------------------------------


@pytest.fixture
def ipython(client, ipython_shell):
    shell = ipython_shell
    yield shell
    for name in ("df", "params", "sql"):
        shell.user_ns.pop(name, None)


def _cell(shell, source: str):
    result = shell.run_cell(source)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def test_bigquery_magic_in_an_ipython_shell(ipython, client):
    """bigquery-magics' own %%bigquery, pointed at the run folder's service."""
    client.create_dataset("course", exists_ok=True)
    client.load_table_from_dataframe(
        pd.DataFrame({"year": [2001, 2001, 2002, 2003], "w": [7.0, 8.0, 6.0, 9.0]}),
        "course.births",
    ).result()
    shown = _cell(
        ipython,
        "%%bigquery\nSELECT year, AVG(w) AS w FROM course.births GROUP BY year ORDER BY year",
    )
    assert shown.values.tolist() == [[2001, 7.5], [2002, 6.0], [2003, 9.0]]
    assert _cell(ipython, "%%bigquery df\nSELECT COUNT(*) AS n FROM course.births") is None
    assert ipython.user_ns["df"]["n"].tolist() == [4]
    # --params as a dict and as a $variable; --project
    query = "SELECT COUNT(*) AS n FROM course.births WHERE year >= @year AND w > @w"
    _cell(ipython, f'%%bigquery df --params {{"year": 2003, "w": 5}}\n{query}')
    assert ipython.user_ns["df"]["n"].tolist() == [1]
    ipython.user_ns["params"] = {"year": 2001, "w": 7.5}
    _cell(ipython, f"%%bigquery df --project local-project --params $params\n{query}")
    assert ipython.user_ns["df"]["n"].tolist() == [2]
    ipython.user_ns["sql"] = "SELECT 42 AS answer"
    assert _cell(ipython, "%%bigquery\n$sql")["answer"].tolist() == [42]
    # a table id previews its rows (list_rows), with a destination table written
    assert len(_cell(ipython, "%%bigquery\ncourse.births")) == 4
    _cell(ipython, "%%bigquery --destination_table course.copy\nSELECT * FROM course.births")
    assert client.get_table("course.copy").num_rows == 4
    # bigquery-magics reports a failed query on stderr, in BigQuery's words, and returns nothing
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        assert _cell(ipython, "%%bigquery\nSELECT nope FROM course.births") is None
    assert "Unrecognized name: nope at [1:8]" in printed.getvalue()
    # the magic answers from the configured warehouse: the run folder's service
    import bigquery_magics

    options = bigquery_magics.context.bigquery_client_options
    assert options.api_endpoint == client._connection.API_BASE_URL
    assert config.settings().duckdb_path == client.warehouse_file
