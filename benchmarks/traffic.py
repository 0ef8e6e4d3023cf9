"""The traffic lab's feature pipeline: events/s in streaming and a batch week, beside the floor.

Each figure is measured twice in the same run on the same DirectRunner: once through the lab's
feature pipeline (``prodml.pipelines.build_pipeline`` with
``solutions/traffic_prediction/traffic_features.py``'s readings contract and features: parse and
check, 15-min sliding windows every 5 min, per-location features, the sink), and once through the *floor*:
the same source and the same sink with no feature logic (each record goes straight to the sink
as a row). The ratio is what the feature logic costs on top of moving the records at all.

* batch: one simulated week of readings (CSV, the lab's batch source) into the files of a
  ``pipelines.Sink`` (the library's pipeline, with the lab's readings contract and features);
* streaming: ``--stream-hours`` of readings replayed as Pub/Sub-shaped JSON messages
  (``pipelines.replay``, 5 minutes of event time per tick) into the files and the online store
  (SQLite).

    python benchmarks/traffic.py [--stations-per-direction 3] [--stream-hours 6]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import apache_beam as beam
import pandas as pd
from prodml import config, pipelines
from prodml.datasets import traffic

LAB = Path(__file__).resolve().parents[1] / "solutions" / "traffic_prediction"


def _features_module():
    spec = importlib.util.spec_from_file_location("traffic_features", LAB / "traffic_features.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _Passthrough(beam.DoFn):
    """The floor's only step: a raw record becomes a row the sink accepts, with no parsing
    beyond what the sink needs, no windows and no grouping."""

    def process(self, raw):
        yield {"station": 0, "window_end": 0.0, "speed": 0.0, "lanes": 1, "min_lane": 0.0,
               "slow_lanes": 0, "raw": len(raw)}  # fmt: skip


def _timed(build, mode: str) -> float:
    started = time.perf_counter()
    with beam.Pipeline(options=pipelines.options(mode)) as p:
        build(p)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations-per-direction", type=int, default=3)
    parser.add_argument("--stream-hours", type=float, default=6.0)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    tf = _features_module()

    sim = traffic.simulate(
        days=7, stations_per_direction=args.stations_per_direction, regime_day=None
    )
    stations = tf.station_index(sim.stations)
    work = config.run_path("benchmarks", "traffic", "x").parent
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    week_csv = work / "week.csv"
    sim.readings.to_csv(week_csv, index=False)
    n_week = len(sim.readings)

    contract = tf.readings_contract(stations)

    def sink(name):
        return pipelines.Sink(folder=str(work / name), table=None)

    def batch_features(p):
        source = pipelines.from_csv(str(week_csv))
        pipelines.build_pipeline(
            p, source, contract, sink=sink("batch-features"), transform=tf.Features()
        )

    def batch_floor(p):
        source = pipelines.from_csv(str(week_csv))
        rows = p | source.transform | beam.ParDo(_Passthrough())
        _ = rows | pipelines.WriteRows(sink("batch-floor"), contract)

    end = sim.readings["TIMESTAMP"].min() + pd.Timedelta(hours=args.stream_hours)
    recent = sim.readings[sim.readings["TIMESTAMP"] < end]
    payloads, times = traffic.messages(recent)

    def replay():
        return pipelines.replay(payloads, times, "json", tick=300, speed=1e6)

    def stream_features(p):
        out = pipelines.build_pipeline(
            p,
            replay(),
            contract,
            mode="streaming",
            sink=sink("stream-features"),
            transform=tf.Features(),
        )
        _ = out.rows | tf.WriteToOnlineStore(work / "online.db")

    def stream_floor(p):
        rows = p | replay().transform | beam.ParDo(_Passthrough())
        # a stream's rows reach the file sink one window pane at a time, as the features do
        # (5-minute windows: one pane per tick, as many as the features' windows)
        panes = rows | beam.WindowInto(beam.window.FixedWindows(tf.PERIOD_SECONDS))
        _ = panes | pipelines.WriteRows(sink("stream-floor"), contract)
        _ = rows | tf.WriteToOnlineStore(work / "floor.db")

    figures = {}
    for name, build, mode, n in (
        ("batch, one week", batch_features, "batch", n_week),
        ("batch floor", batch_floor, "batch", n_week),
        ("streaming", stream_features, "streaming", len(payloads)),
        ("streaming floor", stream_floor, "streaming", len(payloads)),
    ):
        seconds = _timed(build, mode)
        figures[name] = {"records": n, "seconds": round(seconds, 2), "per_s": round(n / seconds)}
        print(f"{name:>16}: {n:,} readings in {seconds:.1f} s = {n / seconds:,.0f} readings/s")
    for name in ("batch, one week", "streaming"):
        floor = figures["batch floor" if name.startswith("batch") else "streaming floor"]
        ratio = figures[name]["seconds"] / floor["seconds"]
        print(f"{name}: {ratio:.1f}x the floor's time (same source and sink, no feature logic)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
