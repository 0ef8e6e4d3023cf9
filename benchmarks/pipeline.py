"""Batch predictions per second: the Beam pipeline against the runner's floor and a plain loop.

Trains the smoke-size babyweight model (``python -m prodml.babyweight.task --smoke``) unless
``--export-dir`` is given, writes ``--rows`` natality rows (the clean ones) to a CSV file, and
times three things over that same file, in one run (the two Beam pipelines alternately,
``--repeat`` times each, their medians kept):

1. the pipeline: ``prodml.pipelines.build_pipeline`` (read the file, parse and check every
   record, ``RunInference`` with ``SavedModelHandler``, write predictions, dead letters and
   counts) on the DirectRunner;
2. the runner's floor: the same source and the same sink with no model and no checks (each
   line becomes a row as it is), i.e. the fastest this runner moves these records;
3. a plain Python loop: read the file, the same checks, batched signature calls, the same files.

Before timing, both Beam pipelines run once over the file's first 2,000 rows, so that neither
pays the runner's one-time costs (lazy imports, first pipeline construction) inside its timing;
the timed pipeline still loads its model. It ends with ``pipeline/floor: R``, the share of the runner's speed the pipeline keeps. Then it
replays ``--stream-rows`` records as a stream through the same pipeline. Everything it writes
goes under the run folder.

    python benchmarks/pipeline.py [--rows 100000] [--batch 1024] [--repeat 3] [--export-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402, F401  (imported before any timing: records are measured, not imports)
from prodml import babyweight, config, pipelines, savedmodel  # noqa: E402
from prodml.datasets import natality  # noqa: E402

COLUMNS = ["key", *babyweight.FEATURES]


def write_input(path, rows: int) -> int:
    """``rows`` clean natality rows as CSV (key + the four features); returns the number."""
    df = babyweight.clean(natality.generate(rows * 3 // 2, seed=7))[list(babyweight.FEATURES)]
    df = df.head(rows)
    df = df.assign(key=[f"r{i:07d}" for i in range(len(df))])[COLUMNS]
    df["is_male"] = df["is_male"].map({True: "true", False: "false"}).fillna("")
    df.to_csv(path, index=False)
    return len(df)


def timed(build) -> float:
    start = time.perf_counter()
    p = beam.Pipeline(options=pipelines.options("batch"))
    build(p)
    p.run().wait_until_finish()
    return time.perf_counter() - start


def fresh(folder) -> str:
    shutil.rmtree(folder, ignore_errors=True)
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="natality rows generated")
    parser.add_argument("--batch", type=int, default=1024, help="rows per signature call")
    parser.add_argument("--stream-rows", type=int, default=3000, help="rows replayed as a stream")
    parser.add_argument("--export-dir", help="an exported babyweight model (default: train one)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each Beam pipeline (median kept)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")

    work = config.run_path("benchmarks", "pipeline", "x").parent
    export_dir = args.export_dir
    if export_dir is None:
        out = work / "model"
        subprocess.run(
            [sys.executable, "-m", "prodml.babyweight.task", "--smoke", "--output-dir", str(out)],
            check=True,
        )
        export_dir = str(out / "export")
    source_file = work / "input.csv"
    n = write_input(source_file, args.rows)
    handler = pipelines.SavedModelHandler(
        export_dir, min_batch_size=args.batch, max_batch_size=args.batch
    )

    def pipeline(path, sink):
        return lambda p: pipelines.build_pipeline(
            p, pipelines.from_csv(str(path)), babyweight.CONTRACT, model=handler, sink=sink
        )

    def floor(path, sink):
        def build(p):
            source = pipelines.from_csv(str(path))
            rows = (
                p
                | "Read" >> source.transform
                | "AsRow" >> beam.Map(lambda line: dict(zip(COLUMNS, line.split(","), strict=True)))
            )
            _ = rows | "WriteRows" >> pipelines.WriteRows(sink, babyweight.CONTRACT)

        return build

    # 0. warm-up: both pipelines once over the first rows, untimed
    warm_file = work / "warm-up.csv"
    with open(source_file) as f, open(warm_file, "w") as out:
        out.writelines(line for _, line in zip(range(2001), f, strict=False))
    for make in (pipeline, floor):
        timed(make(warm_file, pipelines.Sink(folder=fresh(work / "warm-up"), table=None)))
    # The process now holds TensorFlow's and Beam's long-lived objects (hundreds of
    # thousands). Frozen out of the garbage collector's generations, as `prodml serve` does,
    # a collection triggered by the records no longer walks them all: without this, those
    # walks cost 0.4-0.9 s of a 100k-row run and make its time vary by a third.
    gc.collect()
    gc.freeze()

    # 1. the pipeline and 2. the runner's floor (the same source and sink, no model, no
    # checks), timed alternately --repeat times; the medians are compared, so that one
    # disturbed run on a shared machine does not decide the ratio
    pipeline_runs, floor_runs = [], []
    for _ in range(args.repeat):
        sink = pipelines.Sink(folder=fresh(work / "pipeline"), table=None)
        pipeline_runs.append(timed(pipeline(source_file, sink)))
        counts = pipelines.counts(sink)
        assert counts["records_in"] == counts["predictions"] + counts["dead_letters"] == n, counts

        floor_sink = pipelines.Sink(folder=fresh(work / "floor"), table=None)
        floor_runs.append(timed(floor(source_file, floor_sink)))
        with open(f"{floor_sink.folder}/predictions-global-000.csv") as f:
            assert sum(1 for _ in f) == n + 1
    pipeline_s, floor_s = statistics.median(pipeline_runs), statistics.median(floor_runs)

    # 3. a plain loop: the same checks, batched signature calls, the same files
    start = time.perf_counter()
    signature = savedmodel.load_signature(export_dir)
    with open(source_file, newline="") as f:
        reader = csv.reader(f)
        columns = next(reader)
        check = babyweight.CONTRACT.check
        checked = [check(dict(zip(columns, line, strict=True))) for line in reader]
    weights = np.concatenate(
        [
            savedmodel.predict_columns(signature, checked[i : i + args.batch])["weight"].reshape(-1)
            for i in range(0, len(checked), args.batch)
        ]
    )
    loop_folder = fresh(work / "loop")
    os.makedirs(loop_folder)
    rows = [
        {**r, "predicted_weight_pounds": float(w)} for r, w in zip(checked, weights, strict=True)
    ]
    with open(f"{loop_folder}/predictions.jsonl", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    with open(f"{loop_folder}/predictions.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=list(babyweight.CONTRACT.columns), extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
    loop_s = time.perf_counter() - start
    assert len(rows) == n

    # 4. the same pipeline in streaming mode over a replay (counts from the data)
    streamed = [dict(zip(COLUMNS, (r[c] for c in COLUMNS), strict=True)) for r in checked]
    streamed = streamed[: args.stream_rows]
    times = pipelines.event_times(len(streamed), every=0.1)
    stream_sink = pipelines.Sink(folder=fresh(work / "stream"), table=None)
    start = time.perf_counter()
    p = beam.Pipeline(options=pipelines.options("streaming"))
    pipelines.build_pipeline(
        p,
        pipelines.replay(streamed, times, speed=600, tick=5.0),
        babyweight.CONTRACT,
        model=handler,
        mode="streaming",
        sink=stream_sink,
    )
    p.run().wait_until_finish()
    stream_s = time.perf_counter() - start
    stream_counts = pipelines.counts(stream_sink)
    assert stream_counts["records_in"] == stream_counts["predictions"] == len(streamed)

    rate = {
        name: n / s for name, s in (("pipeline", pipeline_s), ("floor", floor_s), ("loop", loop_s))
    }
    print(f"rows: {n:,} from {source_file.name} (dead letters {counts['dead_letters']})")
    print(f"model: {savedmodel.resolve(export_dir)}, {args.batch} rows per signature call")
    runs = f"median of {args.repeat} runs"
    print(
        f"pipeline (DirectRunner)       : {pipeline_s:7.2f} s {rate['pipeline']:10,.0f} records/s"
        f" ({runs}: {', '.join(f'{t:.2f}' for t in pipeline_runs)} s)"
    )
    print(
        f"runner's floor (no model/checks): {floor_s:5.2f} s {rate['floor']:10,.0f} records/s"
        f" ({runs}: {', '.join(f'{t:.2f}' for t in floor_runs)} s)"
    )
    print(f"plain loop                    : {loop_s:7.2f} s {rate['loop']:10,.0f} records/s")
    print(
        f"streaming replay pipeline     : {stream_s:7.2f} s "
        f"{len(streamed) / stream_s:10,.0f} records/s ({len(streamed):,} rows)"
    )
    print(f"pipeline/floor: {rate['pipeline'] / rate['floor']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
