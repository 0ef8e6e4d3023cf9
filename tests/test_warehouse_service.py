"""The local BigQuery service itself: its lifecycle (one per run folder, shared, idle stop,
stale and hung services replaced, a crashed kernel's service reused), its faults (malformed
requests answered with BigQuery's 400, a client killed mid-query), the client surfaces beyond
``query`` (DB-API, ``query_and_wait``, paging, uploads, the BigQuery Storage API never used),
the BigQuery ML hook, and the package's shape (layering, sizes)."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery
from prodml import config, warehouse
from prodml.warehouse import encoding, service
from warehouse_support import alive, clean_client, service_pid, shared_run

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "utils" / "prodml" / "warehouse"


def _wait(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _in_subprocess(code: str, run_dir: Path, **env) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PRODML_RUN_DIR": str(run_dir), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- lifecycle -----------------------------------------------------------------------------------


def test_one_service_per_run_folder_shared_by_its_processes(run_dir, tmp_path):
    client = warehouse.client()
    assert isinstance(client, bigquery.Client)
    info = json.loads((run_dir / "warehouse.json").read_text())
    assert client._connection.API_BASE_URL == info["url"] and info["url"].startswith(
        "http://127.0.0.1:"
    )
    assert service.log_path(run_dir).is_file() and (run_dir / "warehouse.duckdb").is_file()
    # another process of the run folder (a Beam worker, an Airflow task) finds the same one
    code = "from prodml import warehouse; print(warehouse.client()._connection.API_BASE_URL)"
    assert _in_subprocess(code, run_dir) == info["url"]
    assert service_pid(run_dir) == info["pid"]
    # another run folder gets its own service and file
    other = tmp_path / "other"
    second = warehouse.client(run_dir=other)
    assert second._connection.API_BASE_URL != info["url"] and service_pid(other) != info["pid"]
    assert second.warehouse_file == other.resolve() / "warehouse.duckdb"
    client.create_dataset("mine")
    assert [d.dataset_id for d in second.list_datasets()] == []
    other_pid = service_pid(other)
    assert warehouse.stop(other) and not alive(other_pid)
    assert not (other / "warehouse.json").exists() and alive(info["pid"])


def test_bigquery_backend_starts_no_service(run_dir, monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))
    config.configure(warehouse="bigquery", project="my-project")
    client = warehouse.client()
    assert type(client) is bigquery.Client and not warehouse.is_local(client)
    assert not (run_dir / "warehouse.json").exists()


def test_an_idle_service_stops_and_its_client_starts_it_again(run_dir, monkeypatch):
    monkeypatch.setenv("PRODML_WAREHOUSE_IDLE_SECONDS", "1")
    client = warehouse.client()
    client.create_dataset("keep")
    client.query("CREATE TABLE keep.t AS SELECT 42 AS answer").result()
    pid, url = service_pid(run_dir), client._connection.API_BASE_URL
    assert _wait(lambda: not alive(pid)), "the idle service did not stop"
    assert not (run_dir / "warehouse.json").exists()
    # the same client object carries on: its session starts the service again, on its port
    assert client.query("SELECT answer FROM keep.t").to_dataframe()["answer"].tolist() == [42]
    assert service_pid(run_dir) != pid
    assert json.loads((run_dir / "warehouse.json").read_text())["url"] == url


KERNEL_WORK = """
from prodml import warehouse
client = warehouse.client()
client.create_dataset("kernel", exists_ok=True)
client.query("CREATE OR REPLACE TABLE kernel.rows AS SELECT x FROM UNNEST([1, 2, 3]) AS x").result()
print("done", flush=True)
"""


def test_a_kernel_killed_mid_session_leaves_its_service_to_the_next(run_dir):
    """A real Jupyter kernel starts the service and is killed; the service outlives it (it is
    detached) and the next client reuses it, with the kernel's rows."""
    from jupyter_client.manager import start_new_kernel

    run_dir.mkdir(parents=True, exist_ok=True)
    manager, kernel = start_new_kernel(
        kernel_name="python3", env={**os.environ, "PRODML_RUN_DIR": str(run_dir)}
    )
    try:
        reply = kernel.execute_interactive(KERNEL_WORK, timeout=120, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        pid = service_pid(run_dir)
        os.kill(manager.provisioner.process.pid, signal.SIGKILL)  # the kernel dies mid-session
        assert _wait(lambda: not manager.is_alive())
    finally:
        kernel.stop_channels()
        manager.cleanup_resources()
    assert alive(pid)
    client = warehouse.client()
    assert service_pid(run_dir) == pid  # reused, not replaced
    assert client.query("SELECT SUM(x) AS s FROM kernel.rows").to_dataframe()["s"].tolist() == [6]


def test_a_dead_or_hung_service_is_replaced_and_the_file_is_intact(run_dir):
    client = warehouse.client()
    client.create_dataset("safe")
    client.query(
        "CREATE TABLE safe.t AS SELECT x FROM UNNEST(GENERATE_ARRAY(1, 100)) AS x"
    ).result()
    dead = service_pid(run_dir)
    os.kill(dead, signal.SIGKILL)  # a crash: the port file stays behind
    assert _wait(lambda: not alive(dead))
    assert warehouse.client().query("SELECT SUM(x) AS s FROM safe.t").to_dataframe()["s"][0] == 5050
    hung = service_pid(run_dir)
    assert hung != dead
    os.kill(hung, signal.SIGSTOP)  # alive, holding the file, answering nothing
    try:
        service._known.clear()
        fresh = warehouse.client()
    finally:
        if alive(hung):
            os.kill(hung, signal.SIGCONT)
    assert _wait(lambda: not alive(hung)) and service_pid(run_dir) not in (dead, hung)
    assert fresh.query("SELECT COUNT(*) AS n FROM safe.t").to_dataframe()["n"][0] == 100


SLOW_CLIENT = """
import sys
from prodml import warehouse
client = warehouse.client()
print("querying", flush=True)
client.query("SELECT COUNT(*) AS n FROM UNNEST(GENERATE_ARRAY(1, 30000)) AS a, UNNEST(GENERATE_ARRAY(1, 30000)) AS b WHERE MOD(a * b, 7) = 3").result()
"""


def test_a_client_killed_mid_query_leaves_the_service_and_the_file_intact(run_dir):
    client = warehouse.client()
    client.create_dataset("before")
    client.query(
        "CREATE TABLE before.t AS SELECT x FROM UNNEST(GENERATE_ARRAY(1, 10)) AS x"
    ).result()
    pid = service_pid(run_dir)
    slow = subprocess.Popen([sys.executable, "-c", SLOW_CLIENT], env={**os.environ, "PRODML_RUN_DIR": str(run_dir)},
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert slow.stdout.readline().strip() == "querying"
    time.sleep(1.0)  # the query is running in the service
    slow.kill()
    slow.wait()
    # the service answers others meanwhile and after, and the file holds what it held
    assert client.query("SELECT SUM(x) AS s FROM before.t").to_dataframe()["s"].tolist() == [55]
    client.query("INSERT INTO before.t (x) VALUES (11)").result()
    assert client.get_table("before.t").num_rows == 11
    assert service_pid(run_dir) == pid and alive(pid)


# -- faults: malformed requests get BigQuery's 400 -----------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    yield from shared_run(tmp_path_factory, "service")


@pytest.fixture
def client(run, monkeypatch):
    yield from clean_client(run, monkeypatch)


BAD = [
    ("POST", "/bigquery/v2/projects/p/jobs", b"{not json", 400, "invalid"),
    ("POST", "/bigquery/v2/projects/p/jobs", b"[1, 2]", 400, "invalid"),
    ("POST", "/bigquery/v2/projects/p/jobs", b'{"configuration": {}}', 400, "invalid"),
    ("POST", "/bigquery/v2/projects/p/jobs", b'{"configuration": {"query": {}, "load": {}}}', 400, "invalid"),
    ("POST", "/bigquery/v2/projects/p/queries", b'{"query": "SELECT @n AS n", "queryParameters": '
     b'[{"name": "n", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "abc"}}]}', 400, "invalid"),
    ("POST", "/bigquery/v2/projects/p/queries", b'{"query": "SELEC 1"}', 400, "invalidQuery"),
    ("GET", "/bigquery/v2/projects/p/queries/nope", b"", 404, "notFound"),
    ("GET", "/bigquery/v2/projects/p/queries/nope?maxResults=abc", b"", 400, "invalid"),
    ("GET", "/bigquery/v2/projects/p/datasets/nope/tables/t/data?startIndex=-1", b"", 400, "invalid"),
    ("POST", "/bigquery/v2/projects/p/datasets", b'{"datasetReference": {}}', 400, "invalid"),
    ("POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart", b"no boundary", 400, "invalid"),
    ("POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=other", b"", 400, "invalid"),
    ("PUT", "/upload/bigquery/v2/projects/p/jobs?uploadType=resumable&upload_id=x", b"data", 404, "notFound"),
    ("GET", "/bigquery/v2/nowhere", b"", 404, "invalid"),
    ("DELETE", "/bigquery/v2/projects", b"", 405, "invalid"),
]  # fmt: skip


@pytest.mark.parametrize("method, path, body, status, reason", BAD)
def test_malformed_requests_get_bigquerys_error_body(client, method, path, body, status, reason):
    answer = requests.request(method, client._connection.API_BASE_URL + path, data=body, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == status and error["message"] and error["status"] != "INTERNAL"
    assert error["errors"][0]["reason"] == reason and error["errors"][0]["message"]


# -- the client's other surfaces -----------------------------------------------------------------


def test_db_api_and_query_and_wait(client):
    from google.cloud.bigquery import dbapi

    cursor = dbapi.connect(client).cursor()
    cursor.execute(
        "SELECT x FROM UNNEST(GENERATE_ARRAY(1, 10)) AS x WHERE x > %(low)s ORDER BY x", {"low": 7}
    )
    assert [tuple(row) for row in cursor.fetchall()] == [(8,), (9,), (10,)]
    rows = client.query_and_wait("SELECT 'a' AS s, 1.5 AS f, TRUE AS b, DATE '2020-01-02' AS d")
    assert [tuple(r.values()) for r in rows][0][:3] == ("a", 1.5, True)
    client.create_dataset("qaw")
    client.query_and_wait("CREATE TABLE qaw.t (x INT64)")
    inserted = client.query_and_wait("INSERT INTO qaw.t (x) VALUES (1), (2), (3)")
    assert inserted.num_dml_affected_rows == 3
    with pytest.raises(exceptions.BadRequest, match="Unrecognized name: y"):
        client.query_and_wait("SELECT y FROM qaw.t")


def test_a_retried_jobs_query_runs_once(client):
    """jobs.query with a requestId (a client retrying after a dropped connection) answers the
    first run's job again instead of running the statement twice."""
    client.create_dataset("retry")
    client.query("CREATE TABLE retry.t (x INT64)").result()
    url = client._connection.API_BASE_URL + "/bigquery/v2/projects/local-project/queries"
    body = {
        "query": "INSERT INTO retry.t (x) VALUES (1)",
        "useLegacySql": False,
        "requestId": "r-1",
    }
    first, second = (requests.post(url, json=body, timeout=30).json() for _ in range(2))
    assert first["jobReference"] == second["jobReference"] and first["numDmlAffectedRows"] == "1"
    assert client.get_table("retry.t").num_rows == 1


def test_results_page_through_the_rest_api(client):
    sql = "SELECT x, REPEAT('x', 40) AS pad FROM UNNEST(GENERATE_ARRAY(1, 300000)) AS x"
    rows = client.query(sql).result(page_size=70_000)
    pages = [page.num_items for page in rows.pages]
    assert pages == [70_000] * 4 + [20_000]
    frame = client.query(sql).to_dataframe()  # about 20 MB of JSON: more than one page
    assert len(frame) == 300_000 and frame["x"].sum() == 300_000 * 300_001 // 2
    assert 300_000 * 50 > encoding.PAGE_BYTES
    client.create_dataset("paged")
    client.query(f"CREATE TABLE paged.t AS {sql}").result()
    listed = client.list_rows("paged.t", page_size=120_000)
    assert [p.num_items for p in listed.pages] == [120_000, 120_000, 60_000]


TYPES = """
SELECT x AS i, x / 3 AS f, CONCAT('row ', CAST(x AS STRING)) AS s, MOD(x, 2) = 0 AS b,
  DATE_ADD(DATE '2020-01-01', INTERVAL x DAY) AS d,
  TIMESTAMP_ADD(TIMESTAMP '2020-01-02 03:04:05.123456+00', INTERVAL x SECOND) AS ts,
  DATETIME '2020-01-02 03:04:05' AS dt, TIME '01:02:03' AS t, NUMERIC '1.25' AS n,
  [x, x + 1] AS a, STRUCT(x AS x, 'y' AS y) AS st, IF(MOD(x, 3) = 0, NULL, x) AS maybe,
  b'ab' AS by
FROM UNNEST(GENERATE_ARRAY(1, 3000)) AS x
"""


def test_the_workbook_client_reads_arrow_and_gets_what_json_pages_give(client):
    """warehouse.client()'s to_dataframe()/to_arrow() read Arrow from the service; a hand-made
    client reads JSON pages; the frames are the same, value for value and dtype for dtype."""
    from google.auth.credentials import AnonymousCredentials
    from prodml.warehouse.bqclient import LocalRowIterator

    plain = bigquery.Client(project="local-project", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": client._connection.API_BASE_URL})  # fmt: skip
    rows = client.query(TYPES).result()
    assert isinstance(rows, LocalRowIterator)
    fast, slow = rows.to_dataframe(), plain.query(TYPES).to_dataframe()
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) == 3000 and fast["maybe"].isna().sum() == 1000
    assert client.query(TYPES).to_arrow().equals(plain.query(TYPES).to_arrow())
    client.create_dataset("typed")
    client.query(f"CREATE TABLE typed.t AS {TYPES}").result()
    window = client.list_rows(
        "typed.t",
        start_index=10,
        max_results=25,
        selected_fields=client.get_table("typed.t").schema[:3],
    )
    pd.testing.assert_frame_equal(
        window.to_dataframe(),
        plain.list_rows(
            "typed.t",
            start_index=10,
            max_results=25,
            selected_fields=plain.get_table("typed.t").schema[:3],
        ).to_dataframe(),
    )
    assert client.query_and_wait(TYPES).to_dataframe()["i"].sum() == 3000 * 3001 // 2


def test_the_storage_read_api_is_never_asked(client, monkeypatch):
    """google-cloud-bigquery-storage is installed here (as on Colab): rows must come over REST
    from the local service, for the workbook's client and for a hand-made one."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery_storage

    def refuse(*args, **kwargs):
        raise AssertionError("the BigQuery Storage Read API was asked for rows")

    monkeypatch.setattr(bigquery_storage.BigQueryReadClient, "create_read_session", refuse)
    client.create_dataset("storage")
    client.query(
        "CREATE TABLE storage.t AS SELECT x FROM UNNEST(GENERATE_ARRAY(1, 50000)) AS x"
    ).result()
    assert client.list_rows("storage.t").to_dataframe()["x"].sum() == 50000 * 50001 // 2
    destination = bigquery.QueryJobConfig(destination="local-project.storage.copy")
    assert (
        len(client.query("SELECT * FROM storage.t", job_config=destination).to_dataframe()) == 50000
    )
    plain = bigquery.Client(project="local-project", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": client._connection.API_BASE_URL})  # fmt: skip
    assert plain.query("SELECT * FROM storage.t").to_dataframe()["x"].sum() == 50000 * 50001 // 2


def test_uploads_multipart_and_resumable_in_chunks(client, monkeypatch, tmp_path):
    from google.cloud.bigquery import client as client_module

    client.create_dataset("up")
    job = client.load_table_from_json([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], "up.small")
    assert job.result().output_rows == 2  # a multipart upload
    frame = pd.DataFrame({"i": range(400_000), "s": [f"row {i}" for i in range(400_000)]})
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    assert path.stat().st_size > 5 * 1024 * 1024  # resumable
    monkeypatch.setattr(client_module, "_DEFAULT_CHUNKSIZE", 1024 * 1024)  # several chunks
    config_ = bigquery.LoadJobConfig(source_format="CSV", skip_leading_rows=1, autodetect=True)
    with open(path, "rb") as f:
        job = client.load_table_from_file(f, "up.big", job_config=config_)
    assert job.result().output_rows == 400_000
    got = client.query("SELECT COUNT(*) AS n, SUM(i) AS s, MAX(s) AS m FROM up.big").to_dataframe()
    assert got.values.tolist() == [[400_000, 400_000 * 399_999 // 2, "row 99999"]]


# -- the BigQuery ML hook ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    """A service whose BigQuery ML engine is tests/fake_bqml.py (a stand-in for the hook)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRODML_WAREHOUSE_ML_ENGINE", "fake_bqml")
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        )
        yield from shared_run(tmp_path_factory, "ml")


def test_bigquery_ml_statements_and_models_reach_the_engine(ml_run, monkeypatch):
    client = next(clean_client(ml_run, monkeypatch))
    client.create_dataset("ml")
    assert list(client.list_models("ml")) == []
    client.query(
        "CREATE TABLE ml.train AS SELECT x, 2.0 * x AS label FROM UNNEST(GENERATE_ARRAY(1, 5)) AS x"
    ).result()
    client.query(
        "CREATE OR REPLACE MODEL ml.mean OPTIONS(model_type='linear_reg') AS SELECT x, label FROM ml.train"
    ).result()
    model = client.get_model("ml.mean")
    assert model.model_id == "mean" and model.model_type == "LINEAR_REGRESSION"
    assert [m.model_id for m in client.list_models("ml")] == ["mean"]
    predicted = client.query(
        "SELECT x, predicted_label FROM ML.PREDICT(MODEL ml.mean, (SELECT x FROM ml.train)) ORDER BY x"
    ).to_dataframe()
    assert predicted["predicted_label"].tolist() == [6.0] * 5 and predicted["x"].tolist() == [
        1,
        2,
        3,
        4,
        5,
    ]
    client.delete_model("ml.mean")
    assert list(client.list_models("ml")) == []
    with pytest.raises(exceptions.NotFound, match="Model"):
        client.get_model("ml.mean")


def test_without_an_engine_models_are_not_found(client):
    client.create_dataset("noml")
    assert list(client.list_models("noml")) == []
    with pytest.raises(exceptions.NotFound, match="Not found: Model local-project:noml.m"):
        client.get_model("noml.m")


# -- the package's shape -------------------------------------------------------------------------


def test_the_warehouse_imports_no_data_set_or_model():
    """Layering: the warehouse is below prodml.datasets (which registers its tables by name)
    and knows no model."""
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('prodml.warehouse.' + m)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('prodml.datasets', 'prodml.babyweight'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    for path in PACKAGE.glob("*.py"):  # not even inside a function
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [
                n for n in names if n.startswith(("prodml.datasets", "prodml.babyweight"))
            ], path


def test_no_module_over_500_lines_or_function_over_60_lines_or_complexity_15():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 500:
            offenders.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.end_lineno - node.lineno >= 60
            ):
                offenders.append(
                    f"{path.name}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
                )
    ruff = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "--select", "C901", "--config",
         "lint.mccabe.max-complexity = 15", "--output-format", "concise", str(PACKAGE)],
        capture_output=True, text=True,
    )  # fmt: skip
    offenders += [line for line in ruff.stdout.splitlines() if "C901" in line]
    assert offenders == []
