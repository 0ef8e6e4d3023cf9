"""One prediction pipeline for batch and streaming: only the source and the windowing differ.

::

    source -> ParseRecords -> [streaming: Windowed] -> Predict -> WritePredictions
                     \\-> dead letters ----------------------------> WriteDeadLetters

* Batch reads the warehouse (:func:`from_warehouse`) or CSV files (:func:`from_csv`).
* Streaming replays the same records with event timestamps (:func:`replay`, a ``TestStream``
  released one tick of event time at a time, its processing time running ``speed`` times faster
  than event time, like the course's publisher), or reads Pub/Sub when configured for Google
  Cloud (:func:`stream_source`). Records go into fixed windows of 20 s with 10 s allowed
  lateness (the course's values); the trigger fires when the watermark passes the end of a
  window and once more for every late record within the allowed lateness (discarding panes, so
  no record is predicted twice). Records later than that are dropped by Beam; the pipeline
  counts them (``dropped_late``) rather than losing them silently. Dead letters are never
  late: they stay in the global window and are written as they come (a pane per arrival).

Counts: ``Outputs.counts`` is one dict counted from the data itself, ``records_in``,
``predictions``, ``dead_letters``, ``dropped_late``, with ``records_in == predictions +
dead_letters + dropped_late`` in both modes (``dropped_late`` is zero in batch); a
:class:`Sink` writes it to ``<folder>/counts.json`` (a stream: when it ends). The Beam counters
(namespace ``prodml.pipelines``, read by :func:`counts`) say the same in batch; the Python
DirectRunner's streaming mode keeps only their first bundle, so do not rely on them there.
"""

from __future__ import annotations

import csv
import io
import json
import math
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
from apache_beam.utils.timestamp import Duration, Timestamp
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
    tick: float = 1.0,
) -> Source:
    """Replay records as an event-time stream (``TestStream``), one tick of event time at a time.

    ``timestamps`` are event times in seconds, one per record, in arrival order. Consecutive
    records whose event times fall in the same tick (``[k * tick, (k + 1) * tick)``) arrive
    together, in one ``add_elements``; after each such group the watermark moves once, to the
    latest event time seen less ``max_delay`` (so a record older than the watermark set by an
    earlier group arrives late; lateness is decided tick by tick). Before each group processing
    time advances to ``(k - k0) * tick / speed`` seconds after the first group's tick ``k0``,
    in whole milliseconds (TestStream's unit, as for the watermark and event times; a zero step
    is skipped): ``speed=60`` replays a minute of events per second of processing time, like
    the course's publisher. The DirectRunner's cost is per group, not per record: raise
    ``tick`` for dense streams (a few thousand records in a few dozen ticks replay in
    seconds).
    """
    if len(records) != len(timestamps):
        raise ValueError(f"{len(records)} records but {len(timestamps)} timestamps")
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if tick <= 0:
        raise ValueError(f"tick must be > 0, got {tick}")
    groups: list[tuple[int, list]] = []  # (tick number, the records arriving in it)
    for record, ts in zip(records, timestamps, strict=True):
        k = math.floor(ts / tick)
        if not groups or groups[-1][0] != k:
            groups.append((k, []))
        groups[-1][1].append(window.TimestampedValue(record, ts))
    stream = TestStream()
    clock_ms = 0  # processing time since the first group, in whole milliseconds
    latest = watermark_ms = None
    for k, values in groups:
        due_ms = round((k - groups[0][0]) * tick / speed * 1000)
        if due_ms > clock_ms:
            stream.advance_processing_time(Duration(micros=(due_ms - clock_ms) * 1000))
            clock_ms = due_ms
        stream.add_elements(values)
        newest = max(float(v.timestamp) for v in values)
        latest = newest if latest is None else max(latest, newest)
        due_watermark = math.floor((latest - max_delay) * 1000 + 1e-6)  # whole ms, never ahead
        if watermark_ms is None or due_watermark > watermark_ms:
            watermark_ms = due_watermark
            stream.advance_watermark_to(Timestamp(micros=watermark_ms * 1000))
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


COUNTED = ("records_in", "predictions", "dead_letters", "dropped_late")


@dataclass
class Outputs:
    """The pipeline's results. ``counts`` holds one dict counted from the data itself (complete
    in both modes, on every runner): ``records_in``, ``predictions``, ``dead_letters`` and
    ``dropped_late`` (records that arrived after the allowed lateness; zero in batch), with
    ``records_in == predictions + dead_letters + dropped_late``. ``dropped_late`` holds that
    one number alone."""

    predictions: beam.PCollection
    dead_letters: beam.PCollection
    counts: beam.PCollection
    dropped_late: beam.PCollection


class _Tally(beam.CombineFn):
    """Count labels into a dict with every name present (zero when none came)."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)

    def create_accumulator(self):
        return dict.fromkeys(self.names, 0)

    def add_input(self, acc, name):
        if name is not None:  # the seed that makes an empty run report zeros
            acc[name] += 1
        return acc

    def merge_accumulators(self, accumulators):
        total = self.create_accumulator()
        for acc in accumulators:
            for name, n in acc.items():
                total[name] += n
        return total

    def extract_output(self, acc):
        return dict(acc)


def count_elements(p: beam.Pipeline, **pcolls: beam.PCollection) -> beam.PCollection:
    """One dict ``{name: how many elements that PCollection held}`` over the whole run.

    Each input is re-windowed into one global window fired once, when the watermark passes its
    end: at the end of a batch or of a bounded stream (an unbounded stream reports on drain).
    Counting the data, not Beam counters, works on every runner: the Python DirectRunner's
    streaming mode keeps only the first bundle's counter updates.
    """

    def whole_run(label):  # one global window, fired once when the watermark passes its end
        return label >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=trigger.AfterWatermark(),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )

    labelled = [p | "CountSeed" >> beam.Create([None]) | whole_run("WholeRun_seed")]
    for name, pcoll in pcolls.items():
        labelled.append(
            pcoll | f"Label_{name}" >> beam.Map(lambda _, n=name: n) | whole_run(f"WholeRun_{name}")
        )
    return (
        labelled
        | "AllLabels" >> beam.Flatten()
        | "Tally" >> beam.CombineGlobally(_Tally(list(pcolls))).without_defaults()
    )


def _accounting(tally: dict) -> dict:
    return {
        "records_in": tally["records_in"],
        "predictions": tally["predictions"],
        "dead_letters": tally["dead_letters"],
        "dropped_late": tally["windowed_in"] - tally["windowed_out"],
    }


class _WriteCounts(beam.DoFn):
    def __init__(self, folder: str):
        self.folder = folder

    def process(self, counts):
        fs = storage.filesystem(self.folder)
        fs.makedirs(self.folder, exist_ok=True)
        with fs.open(f"{self.folder}/counts.json", "w") as f:
            f.write(json.dumps(counts, sort_keys=True) + "\n")
        yield f"{self.folder}/counts.json"


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
    window), predict with ``model``, and write to ``sink`` when given (predictions, dead
    letters and ``counts.json``). Returns the prediction rows, the dead letters and the
    data-based counts (:class:`Outputs`)."""
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
    if (
        mode == "streaming"
        and sink is not None
        and (sink.table or sink.dead_letter_table)
        and sink.write_disposition == "WRITE_TRUNCATE"
    ):
        raise ValueError(
            "a streaming sink loads its tables one window pane at a time, so WRITE_TRUNCATE "
            "would keep only the last pane: use write_disposition='WRITE_APPEND' (or table=None)"
        )
    raw = p | "Read" >> source.transform
    records, dead = raw | "Parse" >> ParseRecords(source.fmt, source.columns)
    windowed = records
    if mode == "streaming":
        windowed = records | "Window" >> Windowed(window_seconds, allowed_lateness)
        # dead letters are never late: one global window, a pane (and a file) per arrival
        dead = dead | "DeadLetterPanes" >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=trigger.AfterWatermark(early=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )
    predictions = windowed | "Predict" >> Predict(model)
    tally = count_elements(
        p,
        records_in=raw,
        predictions=predictions,
        dead_letters=dead,
        windowed_in=records,
        windowed_out=windowed,
    )
    counted = tally | "Accounting" >> beam.Map(_accounting)
    dropped = counted | "DroppedLate" >> beam.Map(lambda c: c["dropped_late"])
    if sink is not None:
        _ = predictions | "WritePredictions" >> WritePredictions(sink)
        _ = dead | "WriteDeadLetters" >> WriteDeadLetters(sink)
        _ = counted | "WriteCounts" >> beam.ParDo(_WriteCounts(sink.folder))
    return Outputs(predictions, dead, counted, dropped)


COUNTERS = ("records_in", "valid_records", "dead_letters", "windowed_in", "windowed_out")


def counts(result) -> dict[str, int]:
    """The pipeline's counters after ``result.wait_until_finish()``, with ``dropped_late``.

    Complete for batch runs. The Python DirectRunner's *streaming* mode keeps only the first
    bundle's updates of each step (its state sampler caches the first metrics container), so
    for streaming runs there use the data-based ``Outputs.counts`` (or the sink's
    ``counts.json``).
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
