"""Time the course's natality split query on the local warehouse, beside the same in pandas.

    .venv/bin/python benchmarks/warehouse.py [--rows 1000000] [--repeat 3]

Loads ``prodml.datasets.natality.generate(rows)`` into the local DuckDB warehouse (under the run
folder, ``<run_dir>/benchmarks/warehouse``), runs the BigQuery SQL through
``warehouse.client().query(...)`` and computes the same split counts and mean weights in pandas
(FarmHash fingerprint of each row's key, MOD 4, groupby). Prints seconds and their ratio, and
checks that both give the same numbers.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
