"""Batch predictions per second: the Beam pipeline on the DirectRunner vs a plain Python loop.

Trains the smoke-size babyweight model (``python -m prodml.babyweight.task --smoke``) unless
``--export-dir`` is given, generates natality rows, and predicts them twice with the same
SavedModel signature: once through ``prodml.pipelines`` (parse, check, RunInference with
``SavedModelHandler``), once in a loop of batched signature calls. Prints both rates and their
ratio. Everything it writes goes under the run folder.

    python benchmarks/pipeline.py [--rows 20000] [--batch 1024] [--export-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402
import pandas as pd  # noqa: E402
from prodml import babyweight, config, pipelines  # noqa: E402
from prodml.datasets import natality  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1024, help="rows per signature call")
    parser.add_argument("--stream-rows", type=int, default=3000, help="rows replayed as a stream")
    parser.add_argument("--export-dir", help="an exported babyweight model (default: train one)")
    args = parser.parse_args(argv)

    export_dir = args.export_dir
    if export_dir is None:
        out = config.run_path("benchmarks", "pipeline", "model", mkdir=True)
        subprocess.run(
            [sys.executable, "-m", "prodml.babyweight.task", "--smoke", "--output-dir", str(out)],
            check=True,
        )
        export_dir = str(out / "export")
    df = natality.generate(args.rows, seed=7)
    df = df[(df.mother_age > 0) & (df.gestation_weeks > 0) & (df.gestation_weeks < 99)]
    df = df.dropna(subset=["mother_age", "plurality", "gestation_weeks"])
    df = df[df.plurality.between(1, 5) & (df.mother_age < 100)]
    records = [
        {
            "key": str(i),
            "is_male": None if pd.isna(r.is_male) else bool(r.is_male),
            "mother_age": float(r.mother_age),
            "plurality": int(r.plurality),
            "gestation_weeks": float(r.gestation_weeks),
        }
        for i, r in enumerate(df.itertuples())
    ]
    n = len(records)

    # 1. the pipeline on the DirectRunner
    handler = pipelines.SavedModelHandler(
        export_dir, min_batch_size=args.batch // 4, max_batch_size=args.batch
    )
    start = time.perf_counter()
    p = beam.Pipeline(options=pipelines.options("batch"))
    pipelines.build_pipeline(p, pipelines.from_records(records), model=handler)
    result = p.run()
    result.wait_until_finish()
    beam_seconds = time.perf_counter() - start
    counts = pipelines.counts(result)
    assert counts["predictions"] + counts["dead_letters"] == counts["records_in"] == n, counts

    # 2. a plain loop: the same feature mapping, batched signature calls
    start = time.perf_counter()
    signature = handler.load_model()
    rows = [pipelines.check(r) for r in records]
    predictions = []
    for i in range(0, len(rows), args.batch):
        predictions.extend(signature(rows[i : i + args.batch]).tolist())
    loop_seconds = time.perf_counter() - start
    assert len(predictions) == len(rows)

    # 3. the same pipeline in streaming mode over a replay (counts from the data)
    streamed = records[: args.stream_rows]
    times = pipelines.event_times(len(streamed), every=0.1)
    start = time.perf_counter()
    p = beam.Pipeline(options=pipelines.options("streaming"))
    pipelines.build_pipeline(
        p,
        pipelines.replay(streamed, times, speed=600, tick=5.0),
        model=handler,
        mode="streaming",
        sink=pipelines.Sink(
            folder=str(config.run_path("benchmarks", "pipeline", "stream")), table=None
        ),
    )
    p.run().wait_until_finish()
    stream_seconds = time.perf_counter() - start
    written = config.run_path("benchmarks", "pipeline", "stream") / "counts.json"
    stream_counts = json.loads(written.read_text())
    assert stream_counts["records_in"] == stream_counts["predictions"] == len(streamed), (
        stream_counts
    )

    beam_rate, loop_rate = n / beam_seconds, n / loop_seconds
    print(f"rows: {n} (dead letters {counts['dead_letters']}), model: {handler.export_dir}")
    print(f"Beam DirectRunner pipeline : {beam_seconds:7.2f} s  {beam_rate:10,.0f} records/s")
    print(f"plain loop over SavedModel : {loop_seconds:7.2f} s  {loop_rate:10,.0f} records/s")
    print(f"ratio loop / pipeline      : {loop_rate / beam_rate:7.1f}x")
    stream_rate = len(streamed) / stream_seconds
    print(
        f"streaming replay pipeline  : {stream_seconds:7.2f} s  {stream_rate:10,.0f} records/s"
        f"  ({len(streamed)} rows, {stream_counts})"
    )
    assert set(babyweight.FEATURES) <= set(rows[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
