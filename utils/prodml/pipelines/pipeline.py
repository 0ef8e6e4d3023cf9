"""One prediction pipeline for batch and streaming: only the source and the windowing differ.

::

    source -> ParseRecords -> [streaming: Windowed] -> Predict -> WritePredictions
                     \\-> dead letters ----------------------------> WriteDeadLetters

* Batch reads the warehouse (:func:`from_warehouse`) or CSV files (:func:`from_csv`).
* Streaming replays the same records with event timestamps (:func:`replay`, a ``TestStream``
  whose processing time runs ``speed`` times faster than event time, like the course's
  publisher), or reads Pub/Sub when configured for Google Cloud (:func:`stream_source`). Records
  go into fixed windows of 20 s with 10 s allowed lateness (the course's values); the trigger
  fires when the watermark passes the end of a window and once more for every late record
  within the allowed lateness (discarding panes, so no record is predicted twice). Records later
  than that are dropped by Beam; the pipeline counts them (``dropped_late``) rather than losing
  them silently.

Counters (namespace ``prodml.pipelines``; :func:`counts` reads them): ``records_in``,
``valid_records``, ``dead_letters``, ``windowed_in``, ``windowed_out``, ``predictions``. They
hold ``records_in == predictions + dead_letters + dropped_late`` (``dropped_late`` is
``windowed_in - windowed_out``, zero in batch).
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from prodml import babyweight, config, storage
from prodml.pipelines.records import NAMESPACE, ParseRecords

MODES = ("batch", "streaming")
WINDOW_SECONDS = 20  # the course's FixedWindows(Duration.standardSeconds(20))
ALLOWED_LATENESS = 10  # ... withAllowedLateness(Duration.standardSeconds(10))
PREDICTIONS_TABLE = "babyweight.predictions"
PREDICTION = "predicted_weight_pounds"
#: the columns of a prediction row, in table order
COLUMNS = ("key", *babyweight.FEATURES, PREDICTION, "window", "pane")


# ------------------------------------------------------------------------------------ sources


@dataclass
class Source:
    """A root transform and how to parse what it yields (``fmt``: csv | json | dict)."""

    transform: beam.PTransform
    fmt: str = "dict"
    columns: Sequence[str] | None = None
    streaming: bool = False


def from_records(records: Iterable[Any], fmt: str = "dict", columns=None) -> Source:
    """In-memory records (dicts, CSV lines or JSON messages) for a batch run."""
    return Source(beam.Create(list(records), reshuffle=False), fmt, columns)


def from_csv(pattern: str, columns: Sequence[str] | None = None) -> Source:
    """CSV files with a header line (or give ``columns`` for files without one)."""
    if columns is None:
        fs = storage.filesystem(pattern)
        files = sorted(fs.glob(pattern))
        if not files:
            raise FileNotFoundError(f"no CSV files match {pattern!r}")
        with fs.open(files[0], "r") as f:
            columns = next(csv.reader([f.readline()]))
        return Source(beam.io.ReadFromText(pattern, skip_header_lines=1), "csv", columns)
    return Source(beam.io.ReadFromText(pattern), "csv", columns)


def from_warehouse(sql: str, client=None) -> Source:
    """The rows a warehouse query returns (``prodml.warehouse.client()``: DuckDB here,
    BigQuery when configured), as dicts."""
    if client is None:
        from prodml import warehouse

        client = warehouse.client()
    df = client.query(sql).to_dataframe()
    records = [
        {k: (None if _isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in df.to_dict("records")
    ]
    return from_records(records, "dict")


def _isna(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN, NaT, None
    except (TypeError, ValueError):
        return False


def replay(
    records: Sequence[Any],
    timestamps: Sequence[float],
    fmt: str = "dict",
    columns=None,
    speed: float = 60.0,
    max_delay: float = 0.0,
) -> Source:
    """Replay records as an event-time stream (``TestStream``).

    ``timestamps`` are event times in seconds, one per record, in arrival order. The watermark
    follows arrivals, ``max_delay`` seconds behind the latest event time seen (records older
    than the watermark arrive late); processing time advances by the event-time gap divided by
    ``speed`` (``speed=60``: a minute of events per second, like the course's publisher).
    """
    if len(records) != len(timestamps):
        raise ValueError(f"{len(records)} records but {len(timestamps)} timestamps")
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    stream = TestStream()
    latest = watermark = None
    for record, ts in zip(records, timestamps, strict=True):
        if latest is not None and ts > latest:
            step = round((ts - latest) / speed, 3)  # TestStream counts processing time in ms
            if step > 0:
                stream.advance_processing_time(step)
        stream.add_elements([window.TimestampedValue(record, ts)])
        latest = ts if latest is None else max(latest, ts)
        if watermark is None or latest - max_delay > watermark:
            watermark = latest - max_delay
            stream.advance_watermark_to(watermark)
    stream.advance_watermark_to_infinity()
    return Source(stream, fmt, columns, streaming=True)


def from_pubsub(subscription: str, timestamp_attribute: str | None = "event_time") -> Source:
    """JSON messages from a Pub/Sub subscription (Google Cloud; needs ``prodml[gcp]``), event
    time from the message attribute ``timestamp_attribute``."""
    transform = beam.io.ReadFromPubSub(
        subscription=subscription, timestamp_attribute=timestamp_attribute
    )
    return Source(transform, "json", streaming=True)


def stream_source(
    records: Sequence[Any],
    timestamps: Sequence[float],
    fmt: str = "dict",
    subscription: str | None = None,
    **replay_args,
) -> Source:
    """The streaming source the configuration asks for: Pub/Sub when configured for Google
    Cloud (``subscription``, default ``projects/<project>/subscriptions/babyweight``), else a
    local replay of ``records``."""
    settings = config.settings()
    if subscription or not settings.local:
        name = subscription or f"projects/{settings.project}/subscriptions/babyweight"
        return from_pubsub(name)
    return replay(records, timestamps, fmt=fmt, **replay_args)


# ------------------------------------------------------------------------------- transforms


class Windowed(beam.PTransform):
    """Fixed event-time windows with allowed lateness; records come out per fired pane with
    ``window`` and ``pane`` (EARLY / ON_TIME / LATE) set. Late data beyond the allowed lateness
    is dropped by Beam and counted (``windowed_in - windowed_out``)."""

    def __init__(
        self,
        seconds: float = WINDOW_SECONDS,
        allowed_lateness: float = ALLOWED_LATENESS,
        shards: int = 4,
    ):
        super().__init__()
        self.seconds, self.allowed_lateness, self.shards = seconds, allowed_lateness, shards

    def expand(self, records):
        shards = self.shards
        return (
            records
            | "CountIn" >> beam.Map(_count, Metrics.counter(NAMESPACE, "windowed_in"))
            | "FixedWindows"
            >> beam.WindowInto(
                window.FixedWindows(self.seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=self.allowed_lateness),
            )
            | "Shard" >> beam.Map(lambda r: (zlib.crc32(r["key"].encode()) % shards, r))
            | "GroupPerWindow" >> beam.GroupByKey()
            | "Panes" >> beam.ParDo(_Panes())
        )


def _count(element, counter):
    counter.inc()
    return element


class _Panes(beam.DoFn):
    def __init__(self):
        self.out = Metrics.counter(NAMESPACE, "windowed_out")

    def process(self, item, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        _, records = item
        label = _window_label(win)
        timing = PaneInfoTiming.to_string(pane.timing)
        for record in records:
            self.out.inc()
            yield {**record, "window": label, "pane": timing}


def _window_label(win) -> str:
    if isinstance(win, window.IntervalWindow):
        start = win.start.to_utc_datetime().strftime("%Y-%m-%dT%H:%M:%S")
        end = win.end.to_utc_datetime().strftime("%Y-%m-%dT%H:%M:%S")
        return f"[{start}, {end})"
    return "global"


class Predict(beam.PTransform):
    """Model inputs -> prediction rows (:data:`COLUMNS`) through ``RunInference(handler)``."""

    def __init__(self, handler: ModelHandler):
        super().__init__()
        if not isinstance(handler, ModelHandler):
            raise TypeError(f"Predict needs a Beam ModelHandler, got {type(handler).__name__}")
        self.handler = handler

    def expand(self, records):
        return (
            records
            | "RunInference" >> RunInference(self.handler)
            | "ToRow" >> beam.Map(_row, Metrics.counter(NAMESPACE, "predictions"))
        )


def _row(result, counter) -> dict:
    counter.inc()
    example = result.example
    row = {name: example.get(name) for name in COLUMNS if name != PREDICTION}
    row[PREDICTION] = float(result.inference)
    row["window"] = example.get("window", "global")
    row["pane"] = example.get("pane", "batch")
    return row


# ------------------------------------------------------------------------------------ sinks


@dataclass
class Sink:
    """Where predictions and dead letters go: files (JSONL and CSV) under ``folder`` (a run
    folder path or ``gs://``), and warehouse tables (``None`` to skip)."""

    folder: str = field(default_factory=lambda: str(config.run_path("pipelines", "predictions")))
    table: str | None = PREDICTIONS_TABLE
    dead_letter_table: str | None = None
    write_disposition: str = "WRITE_APPEND"


class _WritePane(beam.DoFn):
    """Write one window pane's rows (all rows in batch): a JSONL and a CSV file, and a table."""

    def __init__(self, folder: str, prefix: str, table: str | None, disposition: str, columns):
        self.folder, self.prefix, self.table = folder, prefix, table
        self.disposition, self.columns = disposition, list(columns)

    def process(self, rows, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        if not rows:
            return
        rows = sorted(rows, key=lambda r: str(r.get("key", r.get("record", ""))))
        part = "global" if not isinstance(win, window.IntervalWindow) else str(int(win.start))
        stem = f"{self.folder}/{self.prefix}-{part}-{pane.index:03d}"
        fs = storage.filesystem(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        with fs.open(f"{stem}.jsonl", "w") as f:
            f.writelines(json.dumps(r, default=str) + "\n" for r in rows)
        with fs.open(f"{stem}.csv", "w") as f:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            f.write(buffer.getvalue())
        if self.table:
            _load(rows, self.columns, self.table, self.disposition)
        yield f"{stem}.jsonl"


def _load(rows: list[dict], columns: Sequence[str], table: str, disposition: str) -> None:
    import pandas as pd
    from google.cloud import bigquery

    from prodml import warehouse

    df = pd.DataFrame(rows, columns=list(columns))
    job_config = bigquery.LoadJobConfig(write_disposition=disposition)
    warehouse.client().load_table_from_dataframe(df, table, job_config=job_config).result()


class _WriteRows(beam.PTransform):
    def __init__(self, sink: Sink, prefix: str, table: str | None, columns):
        super().__init__()
        self.sink, self.prefix, self.table, self.columns = sink, prefix, table, columns

    def expand(self, rows):
        return (
            rows
            | "PerPane" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
            | "Write"
            >> beam.ParDo(
                _WritePane(
                    self.sink.folder,
                    self.prefix,
                    self.table,
                    self.sink.write_disposition,
                    self.columns,
                )
            )
        )


class WritePredictions(_WriteRows):
    """Prediction rows -> ``<folder>/predictions-*.jsonl|csv`` and the ``sink.table`` table."""

    def __init__(self, sink: Sink):
        super().__init__(sink, "predictions", sink.table, COLUMNS)


class WriteDeadLetters(_WriteRows):
    """Dead letters (``record``, ``reason``) -> ``<folder>/dead_letters-*`` (and a table)."""

    def __init__(self, sink: Sink):
        super().__init__(sink, "dead_letters", sink.dead_letter_table, ("record", "reason"))


# ------------------------------------------------------------------------------ the pipeline


@dataclass
class Outputs:
    """The pipeline's results; ``dropped_late`` (streaming) holds one number: the records that
    arrived after the allowed lateness, counted from the data itself."""

    predictions: beam.PCollection
    dead_letters: beam.PCollection
    dropped_late: beam.PCollection | None = None


def count_dropped(before: beam.PCollection, after: beam.PCollection) -> beam.PCollection:
    """One element: how many records entered the windowing and never came out of a pane.

    Beam drops records later than the allowed lateness without a trace; comparing the counts
    on both sides of the window's GroupByKey makes the loss visible. (The counters
    ``windowed_in``/``windowed_out`` say the same on runners whose streaming metrics are
    complete; the Python DirectRunner's streaming mode keeps only its first bundle's counter
    updates, so count from the data there.)
    """

    def whole_stream(label):  # one global window, fired once when the stream ends
        return label >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=trigger.AfterWatermark(),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )

    total = before | whole_stream("AllIn") | "CountIn" >> beam.combiners.Count.Globally()
    out = after | whole_stream("AllOut") | "CountOut" >> beam.combiners.Count.Globally()
    return total | "Dropped" >> beam.Map(lambda n, m: n - m, beam.pvalue.AsSingleton(out))


def options(mode: str = "batch", **extra) -> PipelineOptions:
    """Pipeline options for ``mode`` on the DirectRunner (pass ``runner=...`` to change)."""
    _check_mode(mode)
    extra.setdefault("runner", "DirectRunner")
    return PipelineOptions(flags=[], streaming=mode == "streaming", **extra)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")


def build_pipeline(
    p: beam.Pipeline,
    source: Source,
    model: ModelHandler,
    mode: str = "batch",
    sink: Sink | None = None,
    window_seconds: float = WINDOW_SECONDS,
    allowed_lateness: float = ALLOWED_LATENESS,
) -> Outputs:
    """Add the prediction pipeline to ``p``: read ``source``, parse and check, (streaming:
    window), predict with ``model``, and write to ``sink`` when given. Returns the prediction
    rows and the dead letters."""
    _check_mode(mode)
    if not isinstance(source, Source):
        raise TypeError(f"source must be a prodml.pipelines.Source, got {type(source).__name__}")
    if source.streaming and mode != "streaming":
        raise ValueError("this source is a stream: use mode='streaming'")
    if (
        mode == "streaming"
        and not p.options.view_as(beam.options.pipeline_options.StandardOptions).streaming
    ):
        raise ValueError("mode='streaming' needs streaming pipeline options: options('streaming')")
    raw = p | "Read" >> source.transform
    records, dead = raw | "Parse" >> ParseRecords(source.fmt, source.columns)
    dropped = None
    if mode == "streaming":
        windowed = records | "Window" >> Windowed(window_seconds, allowed_lateness)
        dropped = count_dropped(records, windowed)
        records = windowed
    predictions = records | "Predict" >> Predict(model)
    if mode == "streaming":  # dead letters are never late: write them every 100 or every 10 s
        dead = dead | "DeadLetterPanes" >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=trigger.Repeatedly(
                trigger.AfterAny(trigger.AfterCount(100), trigger.AfterProcessingTime(10))
            ),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )
    if sink is not None:
        _ = predictions | "WritePredictions" >> WritePredictions(sink)
        _ = dead | "WriteDeadLetters" >> WriteDeadLetters(sink)
    return Outputs(predictions, dead, dropped)


COUNTERS = ("records_in", "valid_records", "dead_letters", "windowed_in", "windowed_out")


def counts(result) -> dict[str, int]:
    """The pipeline's counters after ``result.wait_until_finish()``, with ``dropped_late``.

    Complete for batch runs. The Python DirectRunner's *streaming* mode keeps only the first
    bundle's updates of each step (its state sampler caches the first metrics container), so
    for streaming runs there use the data-based ``Outputs.dropped_late`` and output counts.
    """
    found = {name: 0 for name in (*COUNTERS, "predictions", "http_retries")}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        if counter.key.metric.name in found:
            found[counter.key.metric.name] += counter.committed or counter.attempted or 0
    found["dropped_late"] = found["windowed_in"] - found["windowed_out"]
    return found


def event_times(n: int, start: float = 0.0, every: float = 1.0) -> list[float]:
    """Evenly spaced event times (seconds), for replaying records that carry none."""
    return [start + i * every for i in range(n)]


__all__ = [
    "ALLOWED_LATENESS",
    "COLUMNS",
    "MODES",
    "PREDICTIONS_TABLE",
    "WINDOW_SECONDS",
    "Outputs",
    "Predict",
    "Sink",
    "Source",
    "Windowed",
    "WriteDeadLetters",
    "WritePredictions",
    "build_pipeline",
    "count_dropped",
    "counts",
    "event_times",
    "from_csv",
    "from_pubsub",
    "from_records",
    "from_warehouse",
    "options",
    "replay",
    "stream_source",
]
