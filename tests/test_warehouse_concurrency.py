"""Many client processes on one run folder: no failed query, no lost or duplicated row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from google.cloud import bigquery
from prodml import warehouse

# One client process: once every process is ready (the parent says "go" on stdin, so that all of
# them overlap), for `seconds` and at least MIN_OPS operations, a writer inserts numbered rows and
# a reader counts them, each through its own warehouse.client() as a notebook, a DAG task or a
# Beam worker would. Prints what it did.
MIN_OPS = 5
CLIENT = """
import json, sys, time
from google.cloud import bigquery
from prodml import warehouse

role, ident, seconds, min_ops = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
client = warehouse.client()
done = {"role": role, "ok": 0, "failed": [], "inserted": [], "counts": []}
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
            client.query("INSERT INTO load.events (writer, n) VALUES (@w, @n)", job_config=config)
            done["inserted"].append(n)
        else:
            rows = client.query("SELECT COUNT(*) AS c FROM load.events").to_dataframe()
            done["counts"].append(int(rows["c"][0]))
        done["ok"] += 1
    except Exception as err:  # every failure is reported, none hidden
        done["failed"].append(f"{type(err).__name__}: {err}")
    n += 1
print(json.dumps(done))
"""


def test_two_writers_and_two_readers_lose_nothing(run_dir):
    client = warehouse.client()
    client.create_dataset("load", exists_ok=True)
    client.query("CREATE TABLE load.events (writer INT64 NOT NULL, n INT64 NOT NULL)")
    env = {**os.environ, "PRODML_RUN_DIR": str(run_dir)}
    roles = [("writer", 1), ("writer", 2), ("reader", 3), ("reader", 4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, role, str(ident), "3", str(MIN_OPS)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role, ident in roles
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    failed = [f for r in results for f in r["failed"]]
    assert failed == []
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


def test_waiting_for_the_file_is_bounded(run_dir, tmp_path):
    """A process that keeps the file open blocks others for at most lock_timeout seconds."""
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        client = warehouse.LocalClient(path, project="local-project", lock_timeout=0.5)
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="stayed in use by another process"):
            client.query("SELECT 1 AS x")
        assert time.monotonic() - began >= 0.5
    finally:
        holder.kill()
        holder.wait()
    # once it is released the same client answers
    job = client.query("SELECT 1 AS x", job_config=bigquery.QueryJobConfig())
    assert job.to_dataframe()["x"].tolist() == [1]


# A process that registers a small public table (as prodml.datasets does for natality) and, once
# told "go", queries it: the first reference generates it.
FIRST_REFERENCE = """
import sys, time
import pandas as pd
from prodml import warehouse
from prodml.datasets import PUBLIC_TABLES

def generate():
    time.sleep(1.0)  # a slow generator widens the race
    return pd.DataFrame({"i": range(100)})

PUBLIC_TABLES["bigquery-public-data.race.small"] = generate
client = warehouse.client()
print("ready", flush=True)
sys.stdin.readline()
rows = client.query("SELECT COUNT(*) AS n FROM publicdata.race.small").to_dataframe()
print(int(rows["n"][0]))
"""


def test_concurrent_first_references_generate_a_public_table_once(run_dir):
    env = {**os.environ, "PRODML_RUN_DIR": str(run_dir)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_REFERENCE],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["100", "100"]  # generated once, not twice
    notices = [line for _, err in outputs for line in err.splitlines() if "generating" in line]
    assert len(notices) == 1 and "bigquery-public-data.race.small" in notices[0]
