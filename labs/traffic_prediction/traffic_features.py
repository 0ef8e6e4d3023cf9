"""Traffic features: one Apache Beam definition for the batch run over history and the stream.

::

    source -> ParseReadings -> lane_windows (the notebook's sliding-window transform)
                   |                -> per location: average, slowest lane, alert -> sink
                   \\-> dead letters (the record as it came, and why) -> dead_letters.jsonl
    counts from the data: records_in = readings + dead_letters -> counts.json

* ``lane_windows`` is a parameter (default :class:`LaneWindows`, the lab's TODO 1: readings
  with event times in, one ``{(station, lane): average speed}`` per sliding window out).
* Batch: :class:`WarehouseSink` loads every feature row into a warehouse table (training data).
* Streaming: :class:`OnlineStoreSink` keeps the latest row per station in an
  :class:`OnlineStore` (SQLite, the Bigtable role) and appends every fired row to a JSONL log.

A feature row: ``station``, ``window_end`` (seconds since the epoch; the window covers the
readings stamped in ``[window_end - WINDOW_SECONDS, window_end)``), ``speed`` (the location's
average: the mean of its lanes' averages), ``lanes`` (lanes that reported), ``min_lane`` (the
slowest lane's average) and ``slow_lanes`` (lanes below half the location's average: the
course demo's alert, raised when it is above zero).
"""

from __future__ import annotations

import datetime
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import pandas as pd
from apache_beam.transforms import window
from prodml import pipelines, storage

WINDOW_SECONDS = 15 * 60
PERIOD_SECONDS = 5 * 60
FEATURES = ("station", "window_end", "speed", "lanes", "min_lane", "slow_lanes")
LOCATION = ("LATITUDE", "LONGITUDE", "FREEWAY_ID", "FREEWAY_DIR")
_REQUIRED = ("TIMESTAMP", *LOCATION, "LANE", "SPEED")


def location_key(latitude, longitude, freeway, direction) -> tuple:
    """The key a station is known by in the readings (rounded like the sensor file)."""
    return (round(float(latitude), 6), round(float(longitude), 6), int(freeway), str(direction))


def station_index(stations: pd.DataFrame) -> dict[tuple, int]:
    """{location key: station id} from ``prodml.datasets.traffic.stations()``."""
    return {
        location_key(r.LATITUDE, r.LONGITUDE, r.FREEWAY_ID, r.FREEWAY_DIR): int(r.station)
        for r in stations.itertuples()
    }


def check_reading(raw, fmt: str, columns: Sequence[str] | None, stations: Mapping) -> dict:
    """One raw reading -> ``{station, LANE, SPEED, event_time}``; raises
    ``pipelines.RecordError`` naming the problem (the dead letter's reason)."""
    record = pipelines.parse(raw, fmt, columns)
    missing = [c for c in _REQUIRED if c not in record]
    if missing:
        raise pipelines.RecordError(f"missing field(s) {missing}")
    speed = record["SPEED"]
    if speed is None or (isinstance(speed, str) and speed.strip() == ""):
        raise pipelines.RecordError("SPEED is null")
    try:
        speed = float(speed)
        lane = int(float(record["LANE"]))
        key = location_key(*(record[c] for c in LOCATION))
    except (TypeError, ValueError) as err:
        raise pipelines.RecordError(f"not a number: {err}") from None
    if math.isnan(speed):
        raise pipelines.RecordError("SPEED is null")
    if speed < 0:
        raise pipelines.RecordError(f"SPEED {speed:g} is negative (a detector error code)")
    if not 0 < speed < 150:
        raise pipelines.RecordError(f"SPEED {speed:g} is out of range (0, 150) mph")
    if key not in stations:
        raise pipelines.RecordError(f"unknown location {key}")
    if not 1 <= lane <= 8:
        raise pipelines.RecordError(f"LANE {lane} is out of range 1..8")
    return {
        "station": stations[key],
        "LANE": lane,
        "SPEED": speed,
        "event_time": event_seconds(record["TIMESTAMP"]),
    }


def event_seconds(value) -> float:
    """A reading's TIMESTAMP (ISO text or a datetime; naive means UTC, as in the generator) ->
    seconds since the epoch. ``datetime.fromisoformat`` rather than ``pd.Timestamp``: the same
    answer, an order of magnitude cheaper per record."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise pipelines.RecordError(f"TIMESTAMP {value!r} is not a time") from None
    if value is None or value is pd.NaT or not isinstance(value, datetime.datetime):
        raise pipelines.RecordError(f"TIMESTAMP {value!r} is not a time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


class _Parse(beam.DoFn):
    def __init__(self, fmt, columns, stations):
        self.fmt, self.columns, self.stations = fmt, columns, dict(stations)

    def process(self, raw):
        try:
            reading = check_reading(raw, self.fmt, self.columns, self.stations)
        except pipelines.RecordError as err:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            record = text if isinstance(text, str) else json.dumps(text, default=str)
            yield beam.pvalue.TaggedOutput("dead", {"record": record, "reason": str(err)})
            return
        yield window.TimestampedValue(reading, reading["event_time"])


class ParseReadings(beam.PTransform):
    """Raw readings -> (readings stamped with their event time, dead letters)."""

    def __init__(self, fmt: str, columns, stations: Mapping):
        super().__init__()
        self.fmt, self.columns, self.stations = fmt, columns, stations

    def expand(self, raw):
        out = raw | beam.ParDo(_Parse(self.fmt, self.columns, self.stations)).with_outputs(
            "dead", main="readings"
        )
        return out.readings, out.dead


class LaneMeans(beam.CombineFn):
    """Average speed per (station, lane) over the readings of one window, all lanes at once.

    The accumulator maps ``(station, lane)`` to ``[sum, count]``; the output maps it to the
    average. (One combine per window rather than ``CombinePerKey`` per lane: the same result,
    and the DirectRunner pays per group, so it is several times faster here.)
    """

    def create_accumulator(self):
        return {}

    def add_input(self, acc, reading):
        key = (reading["station"], reading["LANE"])
        total = acc.get(key)
        if total is None:
            acc[key] = [reading["SPEED"], 1]
        else:
            total[0] += reading["SPEED"]
            total[1] += 1
        return acc

    def merge_accumulators(self, accumulators):
        merged = {}
        for acc in accumulators:
            for key, (total, count) in acc.items():
                into = merged.setdefault(key, [0.0, 0])
                into[0] += total
                into[1] += count
        return merged

    def extract_output(self, acc):
        return {key: total / count for key, (total, count) in acc.items()}


class LaneWindows(beam.PTransform):
    """Readings (dicts with station, LANE, SPEED, stamped with their event time) -> for every
    sliding window of WINDOW_SECONDS starting every PERIOD_SECONDS that holds readings, one
    dict ``{(station, lane): average SPEED}`` in that window."""

    def expand(self, readings):
        # TODO 1: the sliding-window feature transform (15-minute windows, one every 5 minutes).
        # Inputs: `readings`, dicts with station, LANE and SPEED, event times already set;
        #   WINDOW_SECONDS and PERIOD_SECONDS.
        # Output: one element per window that holds readings, {(station, lane): average SPEED},
        #   made by the LaneMeans combiner above. Every feature of the lab comes out of it.
        # Graded by: test-windows, test-batch, test-stream
        raise NotImplementedError("TODO 1: the sliding-window feature transform (15-minute windows, one every 5 minutes)")


class _Locations(beam.DoFn):
    """One window's lane averages -> a feature row per location."""

    def process(self, lane_averages, win=beam.DoFn.WindowParam):
        end = float(win.end.micros) / 1e6
        by_station: dict[int, list[float]] = {}
        for (station, _lane), speed in sorted(lane_averages.items()):
            by_station.setdefault(int(station), []).append(speed)
        for station, speeds in sorted(by_station.items()):
            average = sum(speeds) / len(speeds)
            yield {
                "station": station,
                "window_end": end,
                "speed": average,
                "lanes": len(speeds),
                "min_lane": min(speeds),
                "slow_lanes": sum(speed < 0.5 * average for speed in speeds),
            }


class LocationFeatures(beam.PTransform):
    """Per window ``{(station, lane): average}`` -> one feature row per station per window."""

    def expand(self, lane_averages):
        return lane_averages | "Rows" >> beam.ParDo(_Locations())


# ------------------------------------------------------------------------------------ sinks


class OnlineStore:
    """The latest feature row per station in SQLite: the Bigtable role, embedded.

    Why SQLite: it is in Python's standard library (nothing to install or run), a point look-up
    by primary key is one B-tree probe (microseconds), and in WAL mode readers (the serving
    path) never block the writer (the stream) or each other. An upsert keeps a row only when
    its window is newer than the stored one, so late or replayed panes cannot roll a station
    back. Bigtable plays this part at scale (row key = station, newest cell wins).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{c} REAL" for c in FEATURES[1:])
        self._con.execute(
            f"CREATE TABLE IF NOT EXISTS latest (station INTEGER PRIMARY KEY, {cols})"
        )
        self._con.commit()

    def put(self, rows: Sequence[Mapping]) -> None:
        names = ", ".join(FEATURES)
        marks = ", ".join("?" for _ in FEATURES)
        updates = ", ".join(f"{c} = excluded.{c}" for c in FEATURES[1:])
        self._con.executemany(
            f"INSERT INTO latest ({names}) VALUES ({marks}) ON CONFLICT(station) DO UPDATE SET "
            f"{updates} WHERE excluded.window_end >= latest.window_end",
            [tuple(row[c] for c in FEATURES) for row in rows],
        )
        self._con.commit()

    def get(self, station: int) -> dict | None:
        """The latest feature row of ``station``, or None."""
        found = self._con.execute(
            f"SELECT {', '.join(FEATURES)} FROM latest WHERE station = ?", (int(station),)
        ).fetchone()
        return None if found is None else dict(zip(FEATURES, found, strict=True))

    def frame(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM latest ORDER BY station", self._con)

    def close(self) -> None:
        self._con.close()


class _AppendJsonl(beam.DoFn):
    def __init__(self, path):
        self.path = path

    def start_bundle(self):
        self.rows = []

    def process(self, row):
        self.rows.append(row)

    def finish_bundle(self):
        if self.rows:
            with open(self.path, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.rows)
        self.rows = []


class _StoreRows(_AppendJsonl):
    """A bundle's rows into the online store, then appended to the log like any JSONL file."""

    def __init__(self, store_path: str, log_path: str):
        super().__init__(log_path)
        self.store_path = store_path

    def setup(self):
        self.store = OnlineStore(self.store_path)

    def finish_bundle(self):
        if self.rows:
            self.store.put(self.rows)
        super().finish_bundle()

    def teardown(self):
        self.store.close()


@dataclass
class OnlineStoreSink:
    """Streaming: the latest row per station in ``store`` (SQLite), every row in ``log``."""

    store: str
    log: str

    def write(self, features):
        return features | "ToOnlineStore" >> beam.ParDo(_StoreRows(self.store, self.log))


@dataclass
class FileSink:
    """Every feature row appended to the JSONL file ``path`` (for looking at a run's rows)."""

    path: str

    def write(self, features):
        return features | "ToFile" >> beam.ParDo(_AppendJsonl(str(self.path)))


class _LoadTable(beam.DoFn):
    def __init__(self, table):
        self.table = table

    def process(self, rows):
        from google.cloud import bigquery
        from prodml import warehouse

        frame = pd.DataFrame(rows, columns=list(FEATURES)).sort_values(["station", "window_end"])
        config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
        warehouse.client().load_table_from_dataframe(frame, self.table, job_config=config).result()
        yield len(frame)


@dataclass
class WarehouseSink:
    """Batch: every feature row into the warehouse table ``table`` (replacing it)."""

    table: str = "traffic.features"

    def write(self, features):
        return (
            features
            | "OneWindow" >> beam.WindowInto(window.GlobalWindows())  # one load, not one per window
            | "AllRows" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
            | "LoadTable" >> beam.ParDo(_LoadTable(self.table))
        )


class _WriteCounts(beam.DoFn):
    def __init__(self, path):
        self.path = path

    def process(self, counts):
        Path(self.path).write_text(json.dumps(counts, sort_keys=True) + "\n")
        yield counts


@dataclass
class Outputs:
    features: beam.PCollection
    dead_letters: beam.PCollection
    counts: beam.PCollection  #: one dict: records_in, readings, dead_letters


def build_features(
    p: beam.Pipeline,
    source: pipelines.Source,
    stations: Mapping,
    lane_windows: beam.PTransform | None = None,
    sink=None,
    folder: str | Path | None = None,
) -> Outputs:
    """Add the feature pipeline to ``p``. ``stations`` maps a location key to its station id
    (:func:`station_index`); ``lane_windows`` (default :class:`LaneWindows`) turns readings
    (dicts with station, LANE, SPEED, stamped with their event time) into one
    ``{(station, lane): average speed}`` per window; ``sink`` is a :class:`WarehouseSink` (batch), an :class:`OnlineStoreSink`
    (streaming) or None; ``folder`` gets ``dead_letters.jsonl`` and ``counts.json``."""
    if not isinstance(source, pipelines.Source):
        raise TypeError(f"source must be a prodml.pipelines.Source, got {type(source).__name__}")
    lane_windows = LaneWindows() if lane_windows is None else lane_windows
    if not isinstance(lane_windows, beam.PTransform):
        raise TypeError(
            f"lane_windows must be a beam.PTransform, got {type(lane_windows).__name__}"
        )
    raw = p | "Read" >> source.transform
    readings, dead = raw | "Parse" >> ParseReadings(source.fmt, source.columns, stations)
    if source.streaming:  # dead letters are never late: a pane per arrival
        dead = dead | "DeadLetterPanes" >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=beam.trigger.AfterWatermark(early=beam.trigger.AfterCount(1)),
            accumulation_mode=beam.trigger.AccumulationMode.DISCARDING,
        )
    lanes = readings | "LaneWindows" >> lane_windows
    features = lanes | "PerLocation" >> LocationFeatures()
    counts = pipelines.count_elements(p, records_in=raw, readings=readings, dead_letters=dead)
    if sink is not None:
        sink.write(features)
    if folder is not None:
        folder = str(folder)
        storage.filesystem(folder).makedirs(folder, exist_ok=True)
        _ = dead | "WriteDeadLetters" >> beam.ParDo(_AppendJsonl(f"{folder}/dead_letters.jsonl"))
        _ = counts | "WriteCounts" >> beam.ParDo(_WriteCounts(f"{folder}/counts.json"))
    return Outputs(features, dead, counts)
