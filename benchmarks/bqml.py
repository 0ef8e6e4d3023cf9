"""Time BigQuery ML's CREATE MODEL on the local warehouse against scikit-learn fitted directly.

    .venv/bin/python benchmarks/bqml.py [--rows 1000000] [--repeat 3]

Loads ``prodml.datasets.natality.generate(rows)`` into a DuckDB file under the run folder
(``<run_dir>/benchmarks/bqml``) and trains the course's baseline (06_structured/5_train_bqml's
features, ``LINEAR_REG``, ``NO_SPLIT``) through the engine's seam. The statement's time covers
everything BigQuery ML does: the SQL over the public table, DuckDB -> Arrow -> NumPy, the
automatic preprocessing, the fit, the training loss and evaluation metrics, and storing the
model in the warehouse file.

The floor, in the same run, is the same model fitted directly with scikit-learn on the same rows
already in memory as a DataFrame: its own preprocessing (mean imputation and standardisation of
the numbers, one-hot encoding of the strings) and ``LinearRegression`` in one ``Pipeline``. The
two models' RMSE on the rows is printed and checked equal. Prints the best of ``--repeat`` runs
of each and ends with ``bqml/direct: R``; also ``bqml/solve: R``, against the bare solve on a
ready NumPy design (what no user of either would run alone, shown for scale).

Before it, a ``LOGISTIC_REG`` model (low birth weight, below 5.5 lb) on the same rows, against
scikit-learn's preprocessing once and the same ``LogisticRegression`` iterations (warm-started,
as many as ML.TRAINING_INFO reports): ``logistic bqml/direct: R``, its final training log loss
checked equal.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from prodml import config
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# The test MLContext (DuckDB + the warehouse's translation) until the warehouse service serves
# BigQuery ML: one piece of code for both, kept with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bqml_support import Warehouse, load_natality  # noqa: E402

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


def logistic(warehouse, rows, repeat: int) -> None:
    """LOGISTIC_REG through the engine against the same library iterations run directly."""
    bqml = best(repeat, lambda: warehouse.run(LOGISTIC))
    info = warehouse.run("SELECT * FROM ML.TRAINING_INFO(MODEL bench.low_weight)").to_pandas()
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
    print(f"LOGISTIC_REG CREATE MODEL ({len(info)} iterations):            {bqml:.3f} s")
    print(
        f"scikit-learn preprocessing + the same {len(info)} LogisticRegression iterations: {direct:.3f} s"
    )
    print(f"logistic bqml/direct: {bqml / direct:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    folder = config.settings().run_dir / "benchmarks" / "bqml"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    warehouse = Warehouse(path)
    load_natality(warehouse, args.rows)
    warehouse.run("CREATE SCHEMA IF NOT EXISTS bench")
    rows = warehouse.run(ROWS).to_pandas()
    print(f"natality: {args.rows:,} rows generated, {len(rows):,} in the course's training rows")

    bqml = best(args.repeat, lambda: warehouse.run(CREATE))
    logistic(warehouse, rows, args.repeat)
    pipeline = make_pipeline(preprocessing(), LinearRegression())
    direct = best(
        args.repeat, lambda: pipeline.fit(rows.drop(columns="weight_pounds"), rows.weight_pounds)
    )
    design = pipeline[0].transform(rows.drop(columns="weight_pounds"))
    solve = best(args.repeat, lambda: LinearRegression().fit(design, rows.weight_pounds))

    predicted = pipeline.predict(rows.drop(columns="weight_pounds"))
    rmse_direct = float(np.sqrt(np.mean((rows.weight_pounds - predicted) ** 2)))
    evaluation = warehouse.run(
        "SELECT SQRT(mean_squared_error) AS rmse FROM ML.EVALUATE(MODEL bench.baseline)"
    )
    rmse_bqml = evaluation.column(0)[0].as_py()
    assert abs(rmse_bqml - rmse_direct) < 1e-6, (rmse_bqml, rmse_direct)
    warehouse.close()

    print(f"CREATE MODEL (SQL, Arrow, preprocessing, fit, metrics, store): {bqml:.3f} s")
    print(f"scikit-learn Pipeline fit on the DataFrame in memory:        {direct:.3f} s")
    print(f"scikit-learn LinearRegression on a ready NumPy design:        {solve:.3f} s")
    print(f"RMSE on the training rows: bqml {rmse_bqml:.6f}, direct {rmse_direct:.6f}")
    print(f"bqml/solve: {bqml / solve:.2f}")
    print(f"bqml/direct: {bqml / direct:.2f}")


if __name__ == "__main__":
    main()
