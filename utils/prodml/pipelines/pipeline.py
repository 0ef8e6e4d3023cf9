"""The pipeline builder: one prediction pipeline for batch and streaming, only the source and the
windowing differ.

::

    source -> ParseRecords -> [streaming: window -> LabelPanes] -> Predict -> WritePredictions
                     \\-> dead letters ---------------------------------------> WriteDeadLetters
    counts (from the data) -------------------------------------------------> counts.json

The steps live in :mod:`~prodml.pipelines.sources`, :mod:`~prodml.pipelines.records`,
:mod:`~prodml.pipelines.transforms` and :mod:`~prodml.pipelines.sinks`; this module wires them.

Counting: one system, counted from the data itself (:mod:`~prodml.pipelines.counting`).
``Outputs.counts`` is one dict, ``records_in``, ``predictions``, ``dead_letters``,
``dropped_late``, with ``records_in == predictions + dead_letters + dropped_late`` in both
modes (``dropped_late`` is zero in batch); a :class:`~prodml.pipelines.sinks.Sink` writes it
to ``<folder>/counts.json`` (:func:`counts` reads it back). In a batch run the parse and
predict steps count their own input per bundle (no extra step per record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import trigger

from prodml.pipelines.counting import count_elements, in_one_global_window
from prodml.pipelines.records import ParseRecords
from prodml.pipelines.sinks import (
    Sink,
    WriteCounts,
    WriteDeadLetters,
    WritePredictions,
    read_counts,
)
from prodml.pipelines.sources import Source
from prodml.pipelines.transforms import (
    ALLOWED_LATENESS,
    WINDOW_SECONDS,
    LabelPanes,
    Predict,
    fixed_windows,
)

MODES = ("batch", "streaming")
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


def _accounting(tally: dict) -> dict:
    return {
        "records_in": tally["records_in"],
        "predictions": tally["predictions"],
        "dead_letters": tally["dead_letters"],
        "dropped_late": tally.get("windowed_in", 0) - tally.get("windowed_out", 0),
    }


def options(mode: str = "batch", **extra) -> PipelineOptions:
    """Pipeline options for ``mode`` on the DirectRunner (pass ``runner=...`` to change)."""
    _check_mode(mode)
    extra.setdefault("runner", "DirectRunner")
    return PipelineOptions(flags=[], streaming=mode == "streaming", **extra)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")


def _check_transform(name: str, value) -> None:
    if value is not None and not isinstance(value, beam.PTransform):
        raise TypeError(
            f"{name} must be a Beam PTransform (e.g. beam.WindowInto(...)), got "
            f"{type(value).__name__}: pass the transform itself, not a function that makes it"
        )


def build_pipeline(
    p: beam.Pipeline,
    source: Source,
    model: ModelHandler,
    mode: str = "batch",
    sink: Sink | None = None,
    window_seconds: float = WINDOW_SECONDS,
    allowed_lateness: float = ALLOWED_LATENESS,
    window: beam.PTransform | None = None,
    parse: beam.PTransform | Callable | None = None,
) -> Outputs:
    """Add the prediction pipeline to ``p`` and return its outputs (:class:`Outputs`).

    Reads ``source``, parses and checks each record (bad ones become dead letters with their
    reason), in streaming mode windows the records, predicts with ``model`` (a Beam
    ``ModelHandler``: :class:`~prodml.pipelines.SavedModelHandler` in process or
    :class:`~prodml.pipelines.HTTPModelHandler` over the prediction service), and writes to
    ``sink`` when given (predictions, dead letters and ``counts.json``).

    ``mode``: ``"batch"`` or ``"streaming"`` (``p`` needs ``options("streaming")``).
    ``window``: the streaming windowing, a ``PTransform`` such as ``beam.WindowInto(...)`` (a
    lab passes the learner's); default :func:`~prodml.pipelines.fixed_windows` of
    ``window_seconds`` with ``allowed_lateness``. Its panes are labelled on each row
    (``window``, ``pane``) and records it drops as too late are counted (``dropped_late``).
    Batch runs do not window.
    ``parse``: the step from raw records to ``(records, dead_letters)``; default
    ``ParseRecords(source.fmt, source.columns)``. Give a ``PTransform`` returning that pair,
    or a function ``record -> model input`` that raises ``ValueError`` for a bad record (its
    message is the dead letter's reason).
    """
    _check_mode(mode)
    if not isinstance(source, Source):
        raise TypeError(f"source must be a prodml.pipelines.Source, got {type(source).__name__}")
    if source.streaming and mode != "streaming":
        raise ValueError("this source is a stream: use mode='streaming'")
    streaming = p.options.view_as(StandardOptions).streaming
    if mode == "streaming" and not streaming:
        raise ValueError("mode='streaming' needs streaming pipeline options: options('streaming')")
    _check_transform("window", window)
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
    # counted: per-bundle counts from the steps themselves; uncounted: a counting step each
    counted, uncounted = {}, {}
    batched = False  # records travel as lists (the parse step's batches) rather than one by one
    if parse is not None and isinstance(parse, beam.PTransform):  # the caller's own step
        records, dead = raw | "Parse" >> parse
        uncounted["records_in"] = raw
    else:
        if parse is not None and not callable(parse):
            raise TypeError(f"parse must be a PTransform or a function, got {type(parse).__name__}")
        batch = mode == "batch" and in_one_global_window(raw)
        # a batch run hands RunInference the parse step's own batches, of the handler's size
        # (unless the handler preprocesses records one by one)
        batch_size = model.batch_elements_kwargs().get("max_batch_size") if batch else None
        batched = bool(batch_size) and not model.get_preprocess_fns()
        parsed = raw | "Parse" >> ParseRecords(
            source.fmt,
            source.columns,
            check=parse,
            count_as="records_in" if batch else None,
            batch_size=batch_size if batched else None,
        )
        if batch:
            records, dead, counted["records_in"] = parsed
        else:
            (records, dead), uncounted["records_in"] = parsed, raw
    uncounted["dead_letters"] = dead
    if mode == "streaming":
        windowing = (
            window if window is not None else fixed_windows(window_seconds, allowed_lateness)
        )
        windowed = records | "Window" >> windowing | "LabelPanes" >> LabelPanes()
        uncounted.update(windowed_in=records, windowed_out=windowed)
        records = windowed
        # dead letters are never late: one global window, a pane (and a file) per arrival
        dead = dead | "DeadLetterPanes" >> beam.WindowInto(
            beam.window.GlobalWindows(),
            trigger=trigger.AfterWatermark(early=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )
    if mode == "batch" and in_one_global_window(records):
        predictions, counted["predictions"] = records | "Predict" >> Predict(
            model, count_as="predictions", batched=batched
        )
    else:
        predictions = uncounted["predictions"] = records | "Predict" >> Predict(model)
    counts_ = count_elements(p, counted, **uncounted)
    accounted = counts_ | "Accounting" >> beam.Map(_accounting)
    dropped = accounted | "DroppedLate" >> beam.Map(lambda c: c["dropped_late"])
    if sink is not None:
        _ = predictions | "WritePredictions" >> WritePredictions(sink)
        _ = dead | "WriteDeadLetters" >> WriteDeadLetters(sink)
        _ = accounted | "WriteCounts" >> WriteCounts(sink)
    return Outputs(predictions, dead, accounted, dropped)


def counts(sink: Sink | str) -> dict[str, int]:
    """The counts a finished run wrote with ``sink`` (a :class:`Sink` or its folder):
    ``records_in``, ``predictions``, ``dead_letters``, ``dropped_late``."""
    return read_counts(sink)
