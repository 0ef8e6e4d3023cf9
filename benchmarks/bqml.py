"""Time BigQuery ML's CREATE MODEL through the local warehouse service against scikit-learn
fitted directly, in one run.

    .venv/bin/python benchmarks/bqml.py [--rows 1000000] [--repeat 3]

Loads ``prodml.datasets.natality.generate(rows)`` as the public natality table of a run folder
of its own (``<run_dir>/benchmarks/bqml``, ``natality.load`` through the real client) and trains
the course's baseline (06_structured/5_train_bqml's features, ``LINEAR_REG``, ``NO_SPLIT``) with
``client.query(CREATE MODEL ...).result()``: the statement's time covers everything BigQuery ML
does, as a notebook sees it -- the request to the service, the SQL over the public table, DuckDB
-> Arrow -> NumPy, the automatic preprocessing, the fit, the training loss and evaluation
metrics, storing the model in the warehouse file, and the answer.

The floor, in the same run, is the same model fitted directly with scikit-learn on the same rows
already in memory as a DataFrame (fetched once through the client): its own preprocessing (mean
imputation and standardisation of the numbers, one-hot encoding of the strings) and
``LinearRegression`` in one ``Pipeline``. The two models' RMSE on the rows is printed and checked
equal. Prints the best of ``--repeat`` runs of each and ends with ``bqml/direct: R``; also
``bqml/solve: R``, against the bare solve on a ready NumPy design (what no user of either would
run alone, shown for scale).

Before it, a ``LOGISTIC_REG`` model (low birth weight, below 5.5 lb) on the same rows, against
scikit-learn's preprocessing once and the same ``LogisticRegression`` iterations (warm-started,
as many as ML.TRAINING_INFO reports): ``logistic bqml/direct: R``, its final training log loss
checked equal.

The service and this process share the machine's cores; the load average is printed with the
figures (the ratios are measured within one run).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from prodml import config, warehouse
from prodml.datasets import natality
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROWS = """
SELECT weight_pounds, CAST(is_male AS STRING) AS is_male, mother_age,
  CAST(plurality AS STRING) AS plurality, gestation_weeks
FROM publicdata.samples.natality
WHERE year > 2000 AND gestation_weeks > 0 AND mother_age > 0 AND plurality > 0
  AND weight_pounds > 0
"""
CREATE = f"""
CREATE OR REPLACE MODEL bench.baseline
OPTIONS(model_type='linear_reg', labels=['weight_pounds'], data_split_method='NO_SPLIT') AS
{ROWS}
"""
LOGISTIC = f"""
CREATE OR REPLACE MODEL bench.low_weight
OPTIONS(model_type='logistic_reg', labels=['low'], data_split_method='NO_SPLIT') AS
SELECT weight_pounds < 5.5 AS low, * EXCEPT (weight_pounds) FROM ({ROWS})
"""


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def preprocessing() -> ColumnTransformer:
    """scikit-learn's own spelling of BigQuery's automatic preprocessing of these columns."""
    numbers = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler())
    return ColumnTransformer(
        [
            ("numbers", numbers, ["mother_age", "gestation_weeks"]),
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["is_male", "plurality"]),
        ]
    )


def logistic(client, rows, repeat: int) -> None:
    """LOGISTIC_REG through the service against the same library iterations run directly."""
    bqml = best(repeat, lambda: client.query(LOGISTIC).result())
    info = client.query("SELECT * FROM ML.TRAINING_INFO(MODEL bench.low_weight)").to_dataframe()
    features, low = rows.drop(columns="weight_pounds"), rows.weight_pounds < 5.5

    def direct_fit():
        design = preprocessing().fit_transform(features)
        model = LogisticRegression(C=np.inf, max_iter=1, warm_start=True, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(len(info)):
                model.fit(design, low)
        return model, design

    direct = best(repeat, direct_fit)
    model, design = direct_fit()
    p = np.clip(model.predict_proba(design)[:, 1], 1e-15, 1 - 1e-15)
    loss = float(-np.mean(np.where(low, np.log(p), np.log1p(-p))))
    assert abs(loss - info.loss.iloc[-1]) < 1e-6, (loss, info.loss.iloc[-1])
    print(f"LOGISTIC_REG CREATE MODEL via the client ({len(info)} iterations): {bqml:.3f} s")
    print(
        f"scikit-learn preprocessing + the same {len(info)} LogisticRegression iterations: {direct:.3f} s"
    )
    print(f"logistic bqml/direct: {bqml / direct:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    config.configure(run_dir=str(config.settings().run_dir / "benchmarks" / "bqml"))
    client = warehouse.client()
    try:
        natality.load(client=client, rows=args.rows, seed=0)
        client.create_dataset("bench", exists_ok=True)
        rows = client.query(ROWS).to_dataframe()
        print(f"natality: {args.rows:,} rows, {len(rows):,} in the course's training rows")
        print(f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
        client.query(CREATE).result()  # the service imports scikit-learn once: not timed

        bqml = best(args.repeat, lambda: client.query(CREATE).result())
        logistic(client, rows, args.repeat)
        pipeline = make_pipeline(preprocessing(), LinearRegression())
        features = rows.drop(columns="weight_pounds")
        direct = best(args.repeat, lambda: pipeline.fit(features, rows.weight_pounds))
        design = pipeline[0].transform(features)
        solve = best(args.repeat, lambda: LinearRegression().fit(design, rows.weight_pounds))

        predicted = pipeline.predict(features)
        rmse_direct = float(np.sqrt(np.mean((rows.weight_pounds - predicted) ** 2)))
        evaluation = client.query(
            "SELECT SQRT(mean_squared_error) AS rmse FROM ML.EVALUATE(MODEL bench.baseline)"
        ).to_dataframe()
        rmse_bqml = float(evaluation.rmse[0])
        assert abs(rmse_bqml - rmse_direct) < 1e-6, (rmse_bqml, rmse_direct)
    finally:
        warehouse.stop()

    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(
        f"CREATE MODEL via the client (request, SQL, Arrow, preprocessing, fit, metrics, store): {bqml:.3f} s"
    )
    print(f"scikit-learn Pipeline fit on the DataFrame in memory:        {direct:.3f} s")
    print(f"scikit-learn LinearRegression on a ready NumPy design:        {solve:.3f} s")
    print(f"RMSE on the training rows: bqml {rmse_bqml:.6f}, direct {rmse_direct:.6f}")
    print(f"bqml/solve: {bqml / solve:.2f}")
    print(f"bqml/direct: {bqml / direct:.2f}")


if __name__ == "__main__":
    main()
