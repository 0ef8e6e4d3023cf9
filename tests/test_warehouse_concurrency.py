"""Many client processes on one run folder's service: no failed query, no lost or duplicated row,
public tables generated once, and a warehouse file someone else holds named in the error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prodml import warehouse
from prodml.warehouse import service
from warehouse_support import service_pid

TESTS = Path(__file__).resolve().parent
SECONDS = 15  # the stress test: two writers beside two readers for 15 s
MIN_OPS = 5

# One client process: once every process is ready (the parent says "go" on stdin, so that all of
# them overlap), for `seconds` and at least MIN_OPS operations, a writer inserts numbered rows and
# a reader counts them, each through its own warehouse.client() as a notebook, a DAG task or a
# Beam worker would. An insert counts as acknowledged once its job's result() returned.
CLIENT = """
import json, sys, time
from google.cloud import bigquery
from prodml import warehouse

role, ident, seconds, min_ops = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
client = warehouse.client()
done = {"role": role, "ok": 0, "failed": [], "inserted": [], "counts": [], "pid": None}
print("ready", flush=True)
sys.stdin.readline()
start, n = time.monotonic(), 0
while time.monotonic() < start + seconds or n < min_ops:
    try:
        if role == "writer":
            config = bigquery.QueryJobConfig(query_parameters=[
                bigquery.ScalarQueryParameter("w", "INT64", ident),
                bigquery.ScalarQueryParameter("n", "INT64", n),
            ])
            client.query("INSERT INTO load.events (writer, n) VALUES (@w, @n)", job_config=config).result()
            done["inserted"].append(n)
        else:
            rows = client.query("SELECT COUNT(*) AS c FROM load.events").to_dataframe()
            done["counts"].append(int(rows["c"][0]))
        done["ok"] += 1
    except Exception as err:  # every failure is reported, none hidden
        done["failed"].append(f"{type(err).__name__}: {err}")
    n += 1
done["endpoint"] = client._connection.API_BASE_URL
print(json.dumps(done))
"""


def _start_all(procs) -> None:
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()


def _popen(args, env):
    return subprocess.Popen(
        [sys.executable, "-c", *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_writers_and_two_readers_lose_nothing(run_dir):
    client = warehouse.client()
    client.create_dataset("load", exists_ok=True)
    client.query("CREATE TABLE load.events (writer INT64 NOT NULL, n INT64 NOT NULL)").result()
    env = {**os.environ, "PRODML_RUN_DIR": str(run_dir)}
    roles = [("writer", 1), ("writer", 2), ("reader", 3), ("reader", 4)]
    procs = [
        _popen([CLIENT, role, str(ident), str(SECONDS), str(MIN_OPS)], env) for role, ident in roles
    ]
    _start_all(procs)
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [f for r in results for f in r["failed"]] == []
    # one service answered them all
    assert {r["endpoint"] for r in results} == {client._connection.API_BASE_URL}
    writers = [r for r in results if r["role"] == "writer"]
    readers = [r for r in results if r["role"] == "reader"]
    assert all(r["ok"] >= MIN_OPS for r in results), [r["ok"] for r in results]
    rows = client.query("SELECT writer, n FROM load.events").to_dataframe()
    # every acknowledged insert is there once, and nothing else
    want = sorted((w, n) for w, r in zip((1, 2), writers, strict=True) for n in r["inserted"])
    assert sorted(zip(rows["writer"], rows["n"], strict=True)) == want
    # readers saw the table grow, never shrink, and never past the final count
    for r in readers:
        assert r["counts"] == sorted(r["counts"]) and r["counts"][-1] <= len(rows)


FIRST_REFERENCE = """
import sys
from prodml import warehouse

client = warehouse.client()
print("ready", flush=True)
sys.stdin.readline()
rows = client.query("SELECT COUNT(*) AS n FROM publicdata.race.small").to_dataframe()
print(int(rows["n"][0]))
"""


def test_concurrent_first_references_generate_a_public_table_once(run_dir):
    """Two processes start at once: one service starts, and the first references of a public
    table (registered by name, as prodml.datasets registers its own) generate it once."""
    env = {
        **os.environ,
        "PRODML_RUN_DIR": str(run_dir),
        "PRODML_PUBLIC_TABLES": "bigquery-public-data.race.small=warehouse_support:slow_small_table",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    procs = [_popen([FIRST_REFERENCE], env) for _ in range(2)]
    _start_all(procs)
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["100", "100"]
    log = service.log_path(run_dir).read_text().splitlines()
    notices = [line for line in log if "generating" in line]
    assert len(notices) == 1 and "bigquery-public-data.race.small" in notices[0]
    assert sum("on http://127.0.0.1:" in line for line in log) == 1  # one service started
    warehouse.stop(run_dir)


def test_a_warehouse_file_held_by_another_program_is_named(run_dir):
    """DuckDB lets one process hold the file: if another program holds it, the service cannot
    start, and the client says so with the file's name instead of waiting."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(RuntimeError, match="did not start") as err:
            warehouse.client()
        assert str(path) in str(err.value) and "lock" in str(err.value).lower()
    finally:
        holder.kill()
        holder.wait()
    # once it is released the same run folder's warehouse answers
    assert warehouse.client().query("SELECT 1 AS x").to_dataframe()["x"].tolist() == [1]
    assert service_pid(run_dir) > 0
