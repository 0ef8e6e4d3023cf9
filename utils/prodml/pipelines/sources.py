"""Where the prediction pipeline's records come from: files, the warehouse, or a stream.

A :class:`Source` is a Beam root transform and how to parse what it yields. Batch sources hand
Beam *files* (``ReadFromText`` for CSV, ``ReadFromParquet`` for Parquet and for the warehouse's
query results), which the runner reads in bundles as fast as it reads anything; an in-memory
list (:func:`from_records`) is for a handful of records only: ``beam.Create`` pickles every
element into the pipeline graph.

Streaming sources give records event times: :func:`replay` (a ``TestStream``, the local stand-in
for the course's publisher) or :func:`from_pubsub` on Google Cloud; :func:`stream_source` picks
one from the configuration.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Duration, Timestamp

from prodml import config, storage

__all__ = [
    "Source",
    "event_times",
    "from_csv",
    "from_parquet",
    "from_pubsub",
    "from_records",
    "from_warehouse",
    "replay",
    "replay_schedule",
    "stream_source",
]


@dataclass
class Source:
    """A root transform and how to parse what it yields: ``fmt`` is ``csv`` (lines; give
    ``columns``), ``json`` (messages) or ``dict`` (rows); ``streaming`` for unbounded sources."""

    transform: beam.PTransform
    fmt: str = "dict"
    columns: Sequence[str] | None = None
    streaming: bool = False


def from_records(records: Iterable[Any], fmt: str = "dict", columns=None) -> Source:
    """A few in-memory records (dicts, CSV lines or JSON messages) for a batch run. For more
    than a few thousand, write them to a file and use :func:`from_csv` or :func:`from_parquet`."""
    return Source(beam.Create(list(records), reshuffle=False), fmt, columns)


def from_csv(pattern: str, columns: Sequence[str] | None = None) -> Source:
    """CSV files (a path or glob, local or ``gs://``) with a header line, or give ``columns``
    for files without one. Each line is one record (no newlines inside quoted fields)."""
    if columns is None:
        fs = storage.filesystem(pattern)
        files = sorted(fs.glob(pattern))
        if not files:
            raise FileNotFoundError(f"no CSV files match {pattern!r}")
        with fs.open(files[0], "r") as f:
            columns = next(csv.reader([f.readline()]))
        return Source(beam.io.ReadFromText(pattern, skip_header_lines=1), "csv", columns)
    return Source(beam.io.ReadFromText(pattern), "csv", columns)


def from_parquet(pattern: str, columns: Sequence[str] | None = None) -> Source:
    """Parquet files (a path or glob, local or ``gs://``): one dict per row, NULL as None.
    ``columns`` reads only those columns."""
    fs = storage.filesystem(pattern)
    if not fs.glob(pattern):
        raise FileNotFoundError(f"no Parquet files match {pattern!r}")
    read = beam.io.ReadFromParquet(pattern, columns=list(columns) if columns else None)
    return Source(read, "dict")


def from_warehouse(sql: str, client=None, folder: str | None = None) -> Source:
    """The rows a warehouse query returns (``prodml.warehouse.client()``: DuckDB here, BigQuery
    when configured), as dicts.

    The query's result is exported once to a Parquet file under ``folder`` (default: the run
    folder's ``pipelines/exports/``) and the pipeline reads that file, as a Dataflow job reads
    a BigQuery export rather than pulling rows through the client. (On Google Cloud at scale,
    ``beam.io.ReadFromBigQuery`` does the export itself.)
    """
    import hashlib

    if client is None:
        from prodml import warehouse

        client = warehouse.client()
    if folder is None:
        folder = str(config.run_path("pipelines", "exports", "x").parent)
    path = f"{folder.rstrip('/')}/query-{hashlib.sha1(sql.encode()).hexdigest()[:12]}.parquet"
    frame = client.query(sql).to_dataframe()
    if frame.empty:
        raise ValueError(f"the query returned no rows: nothing to predict\n{sql}")
    fs = storage.filesystem(path)
    fs.makedirs(folder, exist_ok=True)
    with fs.open(path, "wb") as f:
        frame.to_parquet(f, index=False)
    return from_parquet(path)


def replay_schedule(
    timestamps: Sequence[float], speed: float = 60.0, max_delay: float = 0.0, tick: float = 1.0
) -> list[tuple[str, float]]:
    """The events :func:`replay` sends for records with these event times, in order:
    ``("elements", n)`` (the next ``n`` records arrive together), ``("watermark", seconds)``
    (the last one is ``inf``) and ``("processing", seconds)`` (processing time advances by that
    much). See :func:`replay` for the rules."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if tick <= 0:
        raise ValueError(f"tick must be > 0, got {tick}")
    groups: list[tuple[int, list[float]]] = []  # (tick number, the event times arriving in it)
    for ts in timestamps:
        k = math.floor(ts / tick)
        if not groups or groups[-1][0] != k:
            groups.append((k, []))
        groups[-1][1].append(float(ts))
    events: list[tuple[str, float]] = []
    clock_ms = 0  # processing time since the first group, in whole milliseconds
    latest = watermark_ms = None
    for k, times in groups:
        due_ms = round((k - groups[0][0]) * tick / speed * 1000)
        if due_ms > clock_ms:
            events.append(("processing", (due_ms - clock_ms) / 1000))
            clock_ms = due_ms
        events.append(("elements", len(times)))
        latest = max(times) if latest is None else max(latest, *times)
        due_watermark = math.floor((latest - max_delay) * 1000 + 1e-6)  # whole ms, never ahead
        if watermark_ms is None or due_watermark > watermark_ms:
            watermark_ms = due_watermark
            events.append(("watermark", watermark_ms / 1000))
    events.append(("watermark", math.inf))
    return events


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
    seconds). :func:`replay_schedule` lists the events.
    """
    if len(records) != len(timestamps):
        raise ValueError(f"{len(records)} records but {len(timestamps)} timestamps")
    stream, i = TestStream(), 0
    for kind, value in replay_schedule(timestamps, speed, max_delay, tick):
        if kind == "elements":
            n = int(value)
            stream.add_elements(
                [window.TimestampedValue(records[j], timestamps[j]) for j in range(i, i + n)]
            )
            i += n
        elif kind == "processing":
            stream.advance_processing_time(Duration(micros=round(value * 1000) * 1000))
        elif math.isinf(value):
            stream.advance_watermark_to_infinity()
        else:
            stream.advance_watermark_to(Timestamp(micros=round(value * 1000) * 1000))
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
    Cloud, else a local replay of ``records``. ``subscription``: the Pub/Sub subscription, a
    full name or a short one (``projects/<project>/subscriptions/<short name>``); needed on
    Google Cloud."""
    settings = config.settings()
    if subscription or not settings.local:
        if not subscription:
            raise ValueError("on Google Cloud the stream is a Pub/Sub subscription: name it")
        if "/" not in subscription:
            subscription = f"projects/{settings.project}/subscriptions/{subscription}"
        return from_pubsub(subscription)
    return replay(records, timestamps, fmt=fmt, **replay_args)


def event_times(n: int, start: float = 0.0, every: float = 1.0) -> list[float]:
    """Evenly spaced event times (seconds), for replaying records that carry none."""
    return [start + i * every for i in range(n)]
