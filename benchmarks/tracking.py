"""What MLflow tracking costs: the babyweight trainer with tracking over without, and the time
``mlflow.search_runs`` takes over 1,000 runs.

    .venv/bin/python benchmarks/tracking.py [--rows 400000] [--epochs 4] [--repeat 3] [--runs 1000]

Trainer: ``task.train_and_export`` in this process, tracked and untracked in turn (``--repeat``
times each, after one untimed warm-up of each, which also imports MLflow and creates the
store), on the same data; prints each mode's median seconds and ``tracking/untracked: R``
(goal <= 1.1). The defaults are the trainer's own (``task.DEFAULTS``). Tracking adds a fixed
cost per job, not per step: the dataset inputs (digest, MLflow's schema inference over the
rows), a metric write per epoch (asynchronous), the SavedModel copied into the run's artifacts
and its registration; so the ratio grows as the job shrinks (``--rows 100000 --epochs 2``).

Search: ``--runs`` runs with 8 params and 4 metrics each are written to a fresh experiment
(``MlflowClient.log_batch``), then ``mlflow.search_runs`` is timed unfiltered (every run into a
DataFrame) and with a filter and an order (the best 10 of one learning rate). The floor is the
same rows read from the SQLite store with one SQL query into pandas, in the same run.

Everything is written under ``<run folder>/benchmarks/tracking``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time

import pandas as pd
from prodml import config

RATES = (0.0003, 0.001, 0.003, 0.01, 0.03)


def time_trainer(rows: int, epochs: int, repeat: int) -> dict[str, list[float]]:
    from prodml.babyweight import task

    def once(track: bool, tag: str) -> float:
        started = time.perf_counter()
        task.train_and_export(f"bench-{tag}", rows=rows, epochs=epochs, verbose=0, track=track)
        return time.perf_counter() - started

    print(f"warm-up: untracked {once(False, 'warm'):.1f} s", flush=True)
    print(f"warm-up: tracked {once(True, 'warm'):.1f} s (imports MLflow, creates the store)")
    seconds: dict[str, list[float]] = {"untracked": [], "tracked": []}
    for i in range(repeat):
        for track in (False, True):  # alternating: the machine's load hits both alike
            mode = "tracked" if track else "untracked"
            seconds[mode].append(once(track, f"{mode}-{i}"))
            print(f"  {mode:9s} {seconds[mode][-1]:6.1f} s", flush=True)
    return seconds


def write_runs(count: int) -> str:
    import mlflow
    from mlflow.entities import Metric, Param
    from prodml import tracking

    experiment = tracking.use(f"search-bench-{time.time_ns()}")
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    for i in range(count):
        run = client.create_run(experiment, run_name=f"trial-{i:04d}")
        rate = RATES[i % len(RATES)]
        params = {"learning_rate": rate, "batch_size": 256, "epochs": 2, "rows": 100_000,
                  "seed": i, "hidden": "64,32", "embed": 8, "smoke": False}  # fmt: skip
        metrics = {"val_rmse": 1.0 + (i % 97) / 500, "rmse": 1.05 + (i % 89) / 500,
                   "eval_rmse": 1.0 + (i % 83) / 400, "seconds": 10 + i % 7}  # fmt: skip
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        client.set_terminated(run.info.run_id)
    return experiment


def floor_query(db: str, experiment: str) -> pd.DataFrame:
    """The same runs with their params and latest metrics, read with one SQL query."""
    sql = """
        SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, p.key AS name_key,
               p.value, 'param' AS kind
        FROM runs r JOIN params p ON p.run_uuid = r.run_uuid WHERE r.experiment_id = ?
        UNION ALL
        SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, m.key, m.value, 'metric'
        FROM runs r JOIN latest_metrics m ON m.run_uuid = r.run_uuid WHERE r.experiment_id = ?
    """
    with sqlite3.connect(db) as conn:
        long = pd.read_sql_query(sql, conn, params=(experiment, experiment))
    return long.pivot_table(
        index="run_uuid", columns=["kind", "name_key"], values="value", aggfunc="first"
    )


def _median_seconds(fn, repeat: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def time_search(count: int) -> None:
    import mlflow
    from prodml import tracking

    started = time.perf_counter()
    experiment = write_runs(count)
    print(f"wrote {count} runs in {time.perf_counter() - started:.1f} s")
    every, frame = _median_seconds(lambda: mlflow.search_runs([experiment], max_results=count + 1))
    assert len(frame) == count, len(frame)
    best, top = _median_seconds(
        lambda: mlflow.search_runs(
            [experiment],
            filter_string="params.learning_rate = '0.001' and metrics.val_rmse < 1.1",
            order_by=["metrics.val_rmse ASC"],
            max_results=10,
        )
    )
    assert len(top) == 10 and top["metrics.val_rmse"].is_monotonic_increasing
    floor, rows = _median_seconds(lambda: floor_query(str(tracking.store_path()), experiment))
    assert len(rows) == count
    print(f"search_runs, all {count} runs into a DataFrame: {every * 1000:.0f} ms")
    print(f"search_runs, filtered and ordered, best 10: {best * 1000:.0f} ms")
    print(f"floor, one SQL query + pivot over the same store: {floor * 1000:.0f} ms")
    print(f"search_runs/floor: {every / floor:.1f} (all), {best / floor:.2f} (best 10)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    config.configure(run_dir=str(config.settings().run_dir / "benchmarks" / "tracking"))
    if not args.skip_trainer:
        seconds = time_trainer(args.rows, args.epochs, args.repeat)
        tracked, untracked = (statistics.median(seconds[k]) for k in ("tracked", "untracked"))
        print(f"trainer, {args.rows:,} rows x {args.epochs} epochs, median of {args.repeat}:")
        print(f"  untracked {untracked:.1f} s, tracked {tracked:.1f} s")
        print(f"tracking/untracked: {tracked / untracked:.3f} (goal <= 1.1)")
    if not args.skip_search:
        time_search(args.runs)


if __name__ == "__main__":
    main()
