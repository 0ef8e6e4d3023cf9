"""Time the course's natality split query on the local warehouse, beside the same in pandas,
and the queries per second of 1 and 4 client processes sharing one run folder.

    .venv/bin/python benchmarks/warehouse.py [--rows 1000000] [--repeat 3] [--seconds 5]

Loads ``prodml.datasets.natality.generate(rows)`` into the local DuckDB warehouse (under the run
folder, ``<run_dir>/benchmarks/warehouse``), runs the BigQuery SQL through
``warehouse.client().query(...)`` and computes the same split counts and mean weights in pandas
(FarmHash fingerprint of each row's key, MOD 4, groupby). Prints seconds and their ratio, and
checks that both give the same numbers.

Then the mixed load: 1, then 4 client processes (``python benchmarks/warehouse.py --worker``)
on the same run folder, each for ``--seconds`` after all are ready, one INSERT for every three
reads (a COUNT of the inserted rows, a per-year AVG over natality). Prints queries per second in
total and per client, failed queries (expected 0) and the ratio of 4 clients to 1. Every client
takes its turn at the DuckDB file per call (see ``prodml.warehouse.local``): calls are served one
at a time, so the total rate cannot grow with clients; the figures to watch are that nothing
fails and that the total does not collapse as clients are added.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import farmhash
import numpy as np
import pandas as pd
from prodml import config, warehouse
from prodml.datasets import natality

QUERY = """
SELECT ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(year AS STRING), CAST(month AS STRING))), 4)) AS split,
  COUNT(*) AS n, AVG(weight_pounds) AS mean_weight
FROM `bigquery-public-data.samples.natality`
WHERE year > 2000 AND weight_pounds > 0 AND mother_age > 0 AND plurality > 0
  AND gestation_weeks > 0
GROUP BY split ORDER BY split
"""


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


READS = [
    "SELECT COUNT(*) AS n FROM bench.events",
    "SELECT year, AVG(weight_pounds) AS w FROM `bigquery-public-data.samples.natality` "
    "WHERE year > 2000 GROUP BY year ORDER BY year",
]


def worker(ident: int, seconds: float) -> None:
    """One client process: wait for "go" on stdin, then mixed queries for ``seconds``."""
    from google.cloud import bigquery

    client = warehouse.client()
    print("ready", flush=True)
    sys.stdin.readline()
    ok = failed = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        i = ok + failed
        try:
            if i % 4 == 0:
                params = [
                    bigquery.ScalarQueryParameter("c", "INT64", ident),
                    bigquery.ScalarQueryParameter("i", "INT64", i),
                ]
                client.query(
                    "INSERT INTO bench.events (client, i) VALUES (@c, @i)",
                    job_config=bigquery.QueryJobConfig(query_parameters=params),
                )
            else:
                client.query(READS[i % 2]).to_dataframe()
            ok += 1
        except Exception as err:
            failed += 1
            print(f"client {ident}: {type(err).__name__}: {err}", file=sys.stderr)
    print(json.dumps({"ok": ok, "failed": failed, "seconds": time.monotonic() - start}))


def concurrent(clients: int, seconds: float) -> dict:
    """Run ``clients`` worker processes at once on this run folder; their summed counts."""
    env = {**os.environ, "PRODML_RUN_DIR": str(config.settings().run_dir)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(i), "--seconds", str(seconds)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(clients)
    ]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a benchmark client did not start")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    return {
        "ok": sum(r["ok"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "seconds": max(r["seconds"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="of each concurrent run")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.seconds)
        return

    config.configure(run_dir=str(config.settings().run_dir / "benchmarks" / "warehouse"))
    client = warehouse.client()
    start = time.perf_counter()
    df = natality.generate(rows=args.rows, seed=0)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    table = natality.load(client=client, rows=args.rows, seed=0)
    loaded = time.perf_counter() - start
    print(f"natality: {args.rows:,} rows generated in {generated:.2f} s, loaded in {loaded:.2f} s")

    first = time.perf_counter()
    client.query(QUERY).to_dataframe()
    first = time.perf_counter() - first
    local_s, local = best_of(args.repeat, lambda: client.query(QUERY).to_dataframe())
    pandas_s, expected = best_of(args.repeat, lambda: pandas_split(df))

    assert table == natality.TABLE
    assert local["split"].tolist() == expected.index.tolist()
    assert local["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(local["mean_weight"], expected["mean_weight"], rtol=1e-9)

    print(local.to_string(index=False))
    print(
        f"local warehouse query: {local_s:.3f} s (best of {args.repeat}; first run {first:.3f} s)"
    )
    print(f"pandas (per-row FarmHash, mod, groupby): {pandas_s:.3f} s (best of {args.repeat})")
    print(f"ratio pandas / warehouse: {pandas_s / local_s:.1f}x")

    client.create_dataset("bench", exists_ok=True)
    client.query("CREATE OR REPLACE TABLE bench.events (client INT64, i INT64)")
    rates = {}
    for clients in (1, 4):
        before = client.get_table("bench.events").num_rows
        got = concurrent(clients, args.seconds)
        inserted = client.get_table("bench.events").num_rows - before
        rates[clients] = got["ok"] / got["seconds"]
        print(
            f"{clients} client process(es), mixed read/write: {rates[clients]:.1f} queries/s "
            f"({rates[clients] / clients:.1f} per client), {got['ok']} ok, "
            f"{got['failed']} failed, {inserted} rows inserted"
        )
    print(f"ratio 4 clients / 1 client (total queries/s): {rates[4] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
