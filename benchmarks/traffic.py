"""The traffic lab's feature pipeline: readings/s in batch and streaming, beside the floor, and
the lab's two-stage windows against one stage.

Each figure is measured in the same run on the same DirectRunner, and printed as a ratio of
the *floor*: the same source and the same sink with no feature logic (each record goes straight
to the sink as a row), so the ratio is what the feature logic costs on top of moving the
records at all, whatever the machine's speed and load.

* the lab's pipeline: ``prodml.pipelines.build_pipeline`` with
  ``solutions/traffic_prediction/traffic_features.py``'s readings contract and ``Features``
  (each 5-minute tick's readings summed per lane, then the solution notebook's windowing,
  TODO 1: 15-minute sliding windows every 5 minutes, late panes for 10 minutes, accumulating;
  the sums merged per window, keyed by the window's end);
* one stage (batch only): the same windowing applied to the readings themselves and one global
  combine for every window, as the lab did before: each reading is handled in its three
  windows, the trigger keeps Beam from combining in each bundle first, and the DirectRunner's
  trigger machinery scans every open window of its one key for each window it fires;
* batch: one simulated week of readings (CSV, the lab's batch source) into a ``pipelines.Sink``;
* streaming: ``--stream-hours`` of readings replayed as Pub/Sub-shaped JSON messages
  (``pipelines.replay``, 5 minutes of event time per tick) into the files and the online store.

    python benchmarks/traffic.py [--stations-per-direction 3] [--days 7] [--stream-hours 4]
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
from apache_beam.transforms import trigger, window
from prodml import config, pipelines
from prodml.datasets import traffic
from prodml.workbook import notebooks

LAB = Path(__file__).resolve().parents[1] / "solutions" / "traffic_prediction"


def _features_module():
    spec = importlib.util.spec_from_file_location("traffic_features", LAB / "traffic_features.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _solution_windowing(module):
    """``feature_windows`` as the solution notebook defines it (its TODO 1's answer)."""
    nb = notebooks.read(LAB / "01_traffic_prediction.ipynb")
    source = {c.get("id"): c.source for c in nb.cells if c.cell_type == "code"}
    namespace = {"beam": beam, "window": window, "trigger": trigger, "traffic_features": module}
    for cell_id in ("requirement", "windowing"):
        exec(compile(source[cell_id], cell_id, "exec"), namespace)
    return namespace["feature_windows"]


class _Passthrough(beam.DoFn):
    """The floor's only step: a raw record becomes a row the sink accepts, with no parsing
    beyond what the sink needs, no windows and no grouping."""

    def process(self, raw):
        yield {"station": 0, "window_end": 0.0, "pane": 0, "speed": 0.0, "lanes": 1,
               "min_lane": 0.0, "slow_lanes": 0, "raw": len(raw)}  # fmt: skip


class _OneStage(beam.PTransform):
    """The readings windowed directly, one global combine of every window's lane averages."""

    def __init__(self, module, windowing):
        super().__init__()
        self.module, self.windowing = module, windowing

    def expand(self, readings):
        m = self.module
        lanes = (
            readings
            | "Windows" >> self.windowing
            | "LaneMeans" >> beam.CombineGlobally(m.LaneMeans()).without_defaults()
        )
        return lanes | "PerLocation" >> m.LocationFeatures()


def _timed(build, mode: str) -> float:
    started = time.perf_counter()
    with beam.Pipeline(options=pipelines.options(mode)) as p:
        build(p)
    return time.perf_counter() - started


def _builders(tf, windows, contract, work, week_csv, payloads, times):
    def sink(name):
        return pipelines.Sink(folder=str(work / name), table=None)

    def batch(transform, name):
        def build(p):
            source = pipelines.from_csv(str(week_csv))
            pipelines.build_pipeline(p, source, contract, sink=sink(name), transform=transform())

        return build

    def batch_floor(p):
        rows = p | pipelines.from_csv(str(week_csv)).transform | beam.ParDo(_Passthrough())
        _ = rows | pipelines.WriteRows(sink("batch-floor"), contract)

    def replay():
        return pipelines.replay(payloads, times, "json", tick=300, speed=1e6)

    def stream(p):
        out = pipelines.build_pipeline(p, replay(), contract, mode="streaming",
                                       sink=sink("stream"), transform=tf.Features(windows()))  # fmt: skip
        _ = out.rows | tf.WriteToOnlineStore(work / "online.db")

    def stream_floor(p):
        rows = p | replay().transform | beam.ParDo(_Passthrough())
        # a stream's rows reach the file sink one window pane at a time, as the features do
        # (5-minute windows: one pane per tick, as many as the features' windows)
        panes = rows | beam.WindowInto(beam.window.FixedWindows(tf.PERIOD_SECONDS))
        _ = panes | pipelines.WriteRows(sink("stream-floor"), contract)
        _ = rows | tf.WriteToOnlineStore(work / "floor.db")

    return {
        "batch floor": (batch_floor, "batch"),
        "batch, the lab's two stages": (batch(lambda: tf.Features(windows()), "two"), "batch"),
        "batch, one stage": (batch(lambda: _OneStage(tf, windows()), "one"), "batch"),
        "streaming floor": (stream_floor, "streaming"),
        "streaming, the lab's two stages": (stream, "streaming"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations-per-direction", type=int, default=3)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--stream-hours", type=float, default=4.0)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    tf = _features_module()
    windows = _solution_windowing(tf)

    sim = traffic.simulate(
        days=args.days, stations_per_direction=args.stations_per_direction, regime_day=None
    )
    contract = tf.readings_contract(tf.station_index(sim.stations))
    work = config.run_path("benchmarks", "traffic", "x").parent
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    week_csv = work / "week.csv"
    sim.readings.to_csv(week_csv, index=False)
    end = sim.readings["TIMESTAMP"].min() + pd.Timedelta(hours=args.stream_hours)
    payloads, times = traffic.messages(sim.readings[sim.readings["TIMESTAMP"] < end])
    sizes = {"batch": len(sim.readings), "streaming": len(payloads)}

    figures = {}
    builders = _builders(tf, windows, contract, work, week_csv, payloads, times)
    for name, (build, mode) in builders.items():
        seconds = _timed(build, mode)
        n = sizes[mode]
        figures[name] = {"records": n, "seconds": round(seconds, 2), "per_s": round(n / seconds)}
        print(f"{name:>32}: {n:,} readings in {seconds:.1f} s = {n / seconds:,.0f} readings/s")
    for name, figure in figures.items():
        floor = figures["batch floor" if name.startswith("batch") else "streaming floor"]
        if "floor" not in name:
            ratio = figure["seconds"] / floor["seconds"]
            print(f"{name}: {ratio:.1f}x the floor's time (same source and sink, no feature logic)")
    one, two = figures["batch, one stage"], figures["batch, the lab's two stages"]
    print(f"batch: one stage takes {one['seconds'] / two['seconds']:.1f}x the two stages' time")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
