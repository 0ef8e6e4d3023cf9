"""The local BigQuery service against DuckDB itself, and against pandas, in one run.

    .venv/bin/python benchmarks/warehouse.py [--rows 1000000] [--seconds 3] [--rounds 3]

1. Loads ``prodml.datasets.natality.generate(rows)`` through the real client
   (``load_table_from_dataframe``) and times the course's FARM_FINGERPRINT split query on it
   beside the same split in pandas (FarmHash of each row's key, MOD 4, groupby); both must give
   the same numbers.
2. Simple queries (``SELECT COUNT(*)`` over the natality rows), for ``--seconds`` at a time:
   DuckDB's own rate on one open connection (the floor: an in-memory copy of the same rows, since
   the service holds the warehouse file), then the service's rate through
   ``google.cloud.bigquery.Client`` from 1 and from 4 client processes at once, each
   process one client, with both of the client's ways to run a query: ``query(sql).result()``
   (jobs.insert, then jobs.getQueryResults twice: three HTTP requests) and
   ``query_and_wait(sql)`` (jobs.query: one), with BigQuery's query cache on (its default: a
   repeated query over unchanged tables is answered from the cache, ``cacheHit``) and off
   (``use_query_cache=False``: DuckDB runs every query). Rounds alternate floor and service;
   medians are printed.
3. Mixed reads and writes from 1 and 4 client processes (one INSERT for every three reads):
   failed queries (expected 0) and acknowledged inserts against the rows that landed.
4. 10,000 rows streamed with ``insert_rows_json`` in batches of 500: every row lands.

Ends with the same two ratios with the cache off, then ``service/duckdb: R`` (one client's
``query_and_wait`` rate over DuckDB's) and ``clients4/clients1: R`` (four clients' total over
one's), both with BigQuery's default, the cache on. The machine's load moves every figure; the
ratios are measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import duckdb
import farmhash
import numpy as np
import pandas as pd
from google.cloud import bigquery
from prodml import config, warehouse
from prodml.datasets import natality

SPLIT = """
SELECT ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(year AS STRING), CAST(month AS STRING))), 4)) AS split,
  COUNT(*) AS n, AVG(weight_pounds) AS mean_weight
FROM `bigquery-public-data.samples.natality`
WHERE year > 2000 AND weight_pounds > 0 AND mother_age > 0 AND plurality > 0
  AND gestation_weeks > 0
GROUP BY split ORDER BY split
"""
SIMPLE = "SELECT COUNT(*) AS n FROM `bigquery-public-data.samples.natality`"
NO_CACHE = bigquery.QueryJobConfig(use_query_cache=False)
READS = [
    "SELECT COUNT(*) AS n FROM bench.events",
    "SELECT year, AVG(weight_pounds) AS w FROM `bigquery-public-data.samples.natality` "
    "WHERE year > 2000 GROUP BY year ORDER BY year",
]


def pandas_split(df: pd.DataFrame) -> pd.DataFrame:
    kept = df[
        (df.year > 2000)
        & (df.weight_pounds > 0)
        & (df.mother_age > 0)
        & (df.plurality > 0)
        & (df.gestation_weeks > 0)
    ].dropna(subset=["year", "month", "weight_pounds"])
    keys = kept.year.astype("int64").astype(str) + kept.month.astype("int64").astype(str)
    hashes = np.fromiter(map(farmhash.fingerprint64, keys), dtype=np.uint64, count=len(keys))
    split = np.abs(np.fmod(hashes.view(np.int64), 4))
    grouped = kept.weight_pounds.groupby(split)
    return pd.DataFrame({"n": grouped.size(), "mean_weight": grouped.mean()}).rename_axis("split")


def best_of(repeat: int, fn):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


# -- client processes --------------------------------------------------------------------------


def _one(client, kind: str, ident: int, i: int) -> None:
    if kind == "result":
        list(client.query(SIMPLE).result())
    elif kind == "query_and_wait":
        list(client.query_and_wait(SIMPLE))
    elif kind == "no_cache":  # the same, with BigQuery's query cache off: DuckDB runs each one
        list(client.query_and_wait(SIMPLE, job_config=NO_CACHE))
    elif i % 4 == 0:  # mixed: one insert for every three reads
        params = [bigquery.ScalarQueryParameter("c", "INT64", ident),
                  bigquery.ScalarQueryParameter("i", "INT64", i)]  # fmt: skip
        config_ = bigquery.QueryJobConfig(query_parameters=params)
        client.query(
            "INSERT INTO bench.events (client, i) VALUES (@c, @i)", job_config=config_
        ).result()
    else:
        client.query(READS[i % 2]).to_dataframe()


def worker(ident: int, kind: str, seconds: float) -> None:
    """One client process: wait for "go" on stdin, then ``kind`` queries for ``seconds``."""
    client = warehouse.client()
    _one(client, "result", ident, 1)  # connect and warm up before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    ok, failed, inserted = 0, 0, 0
    start, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - start < seconds:
        i = ok + failed
        try:
            _one(client, kind, ident, i)
            ok += 1
            inserted += kind == "mixed" and i % 4 == 0
        except Exception as err:  # every failure is counted and shown, none hidden
            failed += 1
            print(f"client {ident}: {type(err).__name__}: {err}", file=sys.stderr)
    print(
        json.dumps(
            {
                "ok": ok,
                "failed": failed,
                "inserted": inserted,
                "seconds": time.monotonic() - start,
                "cpu": time.process_time() - cpu,
            }  # fmt: skip
        )
    )


def _service_cpu() -> float:
    import psutil

    info = json.loads((config.settings().run_dir / "warehouse.json").read_text())
    times = psutil.Process(info["pid"]).cpu_times()
    return times.user + times.system


def clients(count: int, kind: str, seconds: float) -> dict:
    """``count`` client processes at once on this run folder; their summed counts, and the CPU
    seconds per query the clients and the service spent."""
    env = {**os.environ, "PRODML_RUN_DIR": str(config.settings().run_dir)}
    cmd = [sys.executable, __file__, "--kind", kind, "--seconds", str(seconds), "--worker"]
    procs = [
        subprocess.Popen(
            [*cmd, str(i)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for i in range(count)
    ]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a benchmark client did not start")
    service_cpu = _service_cpu()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    total = {k: sum(r[k] for r in results) for k in ("ok", "failed", "inserted")}
    total["rate"] = sum(r["ok"] / r["seconds"] for r in results)
    total["client_ms"] = 1000 * sum(r["cpu"] for r in results) / max(1, total["ok"])
    service_cpu = _service_cpu() - service_cpu
    total["service_ms"] = 1000 * service_cpu / max(1, total["ok"])
    # the cores the clients and the service got: on a shared machine, what bounds the total
    total["cores"] = (sum(r["cpu"] for r in results) + service_cpu) / max(
        r["seconds"] for r in results
    )
    return total


def duckdb_rate(con, seconds: float) -> tuple[float, float]:
    """Queries per second on one open connection, and CPU milliseconds per query."""
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        con.execute("SELECT COUNT(*) AS n FROM natality").fetchall()
        n += 1
    return n / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / n


# -- the sections ------------------------------------------------------------------------------


def split_query(client, df: pd.DataFrame, repeat: int) -> None:
    first = time.perf_counter()
    client.query(SPLIT, job_config=NO_CACHE).to_dataframe()
    first = time.perf_counter() - first
    # the cache off: the query itself is timed, not BigQuery's cached answer
    local_s, local = best_of(
        repeat, lambda: client.query(SPLIT, job_config=NO_CACHE).to_dataframe()
    )
    pandas_s, expected = best_of(repeat, lambda: pandas_split(df))
    assert local["split"].tolist() == expected.index.tolist()
    assert local["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(local["mean_weight"], expected["mean_weight"], rtol=1e-9)
    print(local.to_string(index=False))
    print(
        f"split query through the service: {local_s:.3f} s (best of {repeat}; first {first:.3f} s)"
    )
    print(
        f"pandas (per-row FarmHash, mod, groupby): {pandas_s:.3f} s; pandas / service: {pandas_s / local_s:.1f}x"
    )


def simple_queries(floor_con, seconds: float, rounds: int) -> dict:
    kinds = {"result": "result", "wait": "query_and_wait", "nocache": "no_cache"}
    runs: dict[str, list] = {"duckdb": [], **{f"{k}{n}": [] for k in kinds for n in (1, 4)}}
    for _ in range(rounds):
        runs["duckdb"].append(duckdb_rate(floor_con, seconds))
        for key, kind in kinds.items():
            for n in (1, 4):
                runs[f"{key}{n}"].append(clients(n, kind, seconds))
    med = {k: statistics.median(r["rate"] for r in v) for k, v in runs.items() if k != "duckdb"}
    med["duckdb"] = statistics.median(r for r, _ in runs["duckdb"])
    floor_cpu = statistics.median(c for _, c in runs["duckdb"])
    print(f"DuckDB, one open connection: {med['duckdb']:,.0f} queries/s, {floor_cpu:.2f} ms CPU a query "
          f"(rounds {[round(r) for r, _ in runs['duckdb']]})")  # fmt: skip
    labels = {"result": "query(sql).result()", "wait": "query_and_wait(sql)",
              "nocache": "query_and_wait(sql), cache off"}  # fmt: skip
    for key, label in labels.items():
        one, four = med[f"{key}1"], med[f"{key}4"]
        cpu = {
            (n, side): statistics.median(r[f"{side}_ms"] for r in runs[f"{key}{n}"])
            for n in (1, 4)
            for side in ("client", "service")
        }
        cores = [statistics.median(r["cores"] for r in runs[f"{key}{n}"]) for n in (1, 4)]
        print(f"service, {label}: 1 client {one:,.0f} q/s ({one / med['duckdb']:.0%} of DuckDB), "
              f"4 clients {four:,.0f} q/s ({four / one:.2f}x one); CPU a query, 1 / 4 clients: "
              f"client {cpu[1, 'client']:.2f} / {cpu[4, 'client']:.2f} ms, service "
              f"{cpu[1, 'service']:.2f} / {cpu[4, 'service']:.2f} ms; cores used by clients and "
              f"service: {cores[0]:.2f} (1 client), {cores[1]:.2f} (4 clients)")  # fmt: skip
    return med


def mixed(client, seconds: float) -> None:
    client.create_dataset("bench", exists_ok=True)
    client.query("CREATE OR REPLACE TABLE bench.events (client INT64, i INT64)").result()
    for count in (1, 4):
        before = client.get_table("bench.events").num_rows
        got = clients(count, "mixed", seconds)
        landed = client.get_table("bench.events").num_rows - before
        print(f"mixed read/write, {count} client(s): {got['rate']:.0f} queries/s, {got['ok']} ok, "
              f"{got['failed']} failed, {got['inserted']} inserts acknowledged, {landed} rows landed")  # fmt: skip


def streaming(client) -> None:
    table = "bench.stream"
    client.delete_table(table, not_found_ok=True)
    schema = [bigquery.SchemaField("i", "INTEGER"), bigquery.SchemaField("s", "STRING")]
    client.create_table(bigquery.Table(f"{client.project}.{table}", schema=schema))
    start, errors = time.perf_counter(), []
    for first in range(0, 10_000, 500):
        errors += client.insert_rows_json(
            table, [{"i": i, "s": f"row {i}"} for i in range(first, first + 500)]
        )
    took = time.perf_counter() - start
    got = client.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT i) AS d, SUM(i) AS s FROM {table}"
    ).to_dataframe()
    n, d, s = (int(got[c][0]) for c in ("n", "d", "s"))
    whole = (n, d, s, errors) == (10_000, 10_000, sum(range(10_000)), [])
    print(f"streamed 10,000 rows in batches of 500: {took:.2f} s, {n:,} rows landed "
          f"({d:,} distinct), {'whole' if whole else 'NOT WHOLE'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="of the split query")
    parser.add_argument("--seconds", type=float, default=3.0, help="of each rate measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating floor and service")
    parser.add_argument("--kind", default="result", help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.kind, args.seconds)
        return

    config.configure(run_dir=str(config.settings().run_dir / "benchmarks" / "warehouse"))
    client = warehouse.client()
    df = natality.generate(rows=args.rows, seed=0)
    loads = []
    load = client.load_table_from_dataframe
    client.load_table_from_dataframe = lambda *a, **k: loads.append(1) or load(*a, **k)
    start = time.perf_counter()
    natality.load(client=client, rows=args.rows, seed=0)
    took = time.perf_counter() - start
    how = (
        f"loaded through the client in {took:.2f} s"
        if loads
        else "already there (not loaded again)"
    )
    print(f"natality: {args.rows:,} rows, {how}")
    split_query(client, df, args.repeat)
    floor = duckdb.connect()
    floor.execute("SET enable_progress_bar = false")
    floor.execute("CREATE TABLE natality AS SELECT * FROM df")
    med = simple_queries(floor, args.seconds, args.rounds)
    mixed(client, args.seconds)
    streaming(client)
    print("(the ratios below: query_and_wait(sql), the client's one-request call for rows;")
    print(" query(sql).result() takes three requests: its figures are above. The last two with")
    print(" BigQuery's default, the query cache on; the two before them with it off)")
    print(f"service/duckdb, cache off: {med['nocache1'] / med['duckdb']:.2f}")
    print(f"clients4/clients1, cache off: {med['nocache4'] / med['nocache1']:.2f}")
    print(f"service/duckdb: {med['wait1'] / med['duckdb']:.2f}")
    print(f"clients4/clients1: {med['wait4'] / med['wait1']:.2f}")


if __name__ == "__main__":
    main()
