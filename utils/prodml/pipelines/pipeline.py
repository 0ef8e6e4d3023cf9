"""The pipeline builder: one pipeline for batch and streaming and for any record contract; only
the source and the windowing differ between the modes.

::

    source -> ParseRecords(contract) -> [window] -> Predict (a model) | transform -> WriteRows
                     \\-> dead letters ---------------------------------------------> WriteDeadLetters
    counts (from the data) ---------------------------------------------------------> counts.json

With a model (a Beam ``ModelHandler``) it is a prediction pipeline: streams are windowed (the
window's panes labelled on each row) and each record predicted. With a ``transform`` (a
``PTransform`` from checked records to output rows, e.g. a feature computation with its own
windows) that transform runs instead, in both modes. The steps live in
:mod:`~prodml.pipelines.sources`, :mod:`~prodml.pipelines.records`,
:mod:`~prodml.pipelines.transforms` and :mod:`~prodml.pipelines.sinks`; this module wires them.

Counting: one system, counted from the data itself (:mod:`~prodml.pipelines.counting`).
``Outputs.counts`` is one dict. A prediction pipeline counts ``records_in``, ``predictions``
(the contract's ``rows``), ``dead_letters``, ``dropped_late``, with ``records_in ==
predictions + dead_letters + dropped_late`` in both modes (``dropped_late`` is zero in
batch); a transform pipeline counts ``records_in``, the checked records (the contract's
``records``), ``dead_letters`` and its rows, with ``records_in == records + dead_letters``.
A :class:`~prodml.pipelines.sinks.Sink` writes the dict to ``<folder>/counts.json``
(:func:`counts` reads it back). In a batch run the parse and predict steps count their own
input per bundle (no extra step per record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import trigger

from prodml.contracts import RecordContract
from prodml.pipelines.counting import count_elements, in_one_global_window
from prodml.pipelines.records import ParseRecords
from prodml.pipelines.sinks import Sink, WriteCounts, WriteDeadLetters, WriteRows, read_counts
from prodml.pipelines.sources import Source
from prodml.pipelines.transforms import (
    ALLOWED_LATENESS,
    WINDOW_SECONDS,
    LabelPanes,
    Predict,
    fixed_windows,
)

__all__ = [
    "COUNTED",
    "MODES",
    "Outputs",
    "build_pipeline",
    "counts",
    "options",
]

MODES = ("batch", "streaming")
COUNTED = ("records_in", "predictions", "dead_letters", "dropped_late")


@dataclass
class Outputs:
    """The pipeline's results: ``rows`` (predictions, or the transform's rows), dead letters,
    and ``counts``, one dict counted from the data itself (complete in both modes, on every
    runner; see the module's docs). ``dropped_late`` holds that one number alone (records a
    prediction pipeline's window dropped as later than the allowed lateness)."""

    rows: beam.PCollection
    dead_letters: beam.PCollection
    counts: beam.PCollection
    dropped_late: beam.PCollection

    @property
    def predictions(self) -> beam.PCollection:
        """``rows``, by its name in a prediction pipeline."""
        return self.rows


def _accounting(tally: dict, rows: str) -> dict:
    return {
        "records_in": tally["records_in"],
        rows: tally[rows],
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


def _check_arguments(p, source, contract, model, transform, mode, sink, window) -> None:
    _check_mode(mode)
    if not isinstance(contract, RecordContract):
        raise TypeError(
            "build_pipeline needs the record contract (prodml.contracts.RecordContract, e.g. "
            f"prodml.babyweight.CONTRACT), got {type(contract).__name__}"
        )
    if not isinstance(source, Source):
        raise TypeError(f"source must be a prodml.pipelines.Source, got {type(source).__name__}")
    if (model is None) == (transform is None):
        raise ValueError("give build_pipeline either model= (a ModelHandler) or transform=")
    if model is not None and not isinstance(model, ModelHandler):
        raise TypeError(f"model must be a Beam ModelHandler, got {type(model).__name__}")
    _check_transform("transform", transform)
    _check_transform("window", window)
    if transform is not None and window is not None:
        raise ValueError("a transform windows as it needs: window= is for a model's predictions")
    if source.streaming and mode != "streaming":
        raise ValueError("this source is a stream: use mode='streaming'")
    if mode == "streaming" and not p.options.view_as(StandardOptions).streaming:
        raise ValueError("mode='streaming' needs streaming pipeline options: options('streaming')")
    if (
        mode == "streaming"
        and sink is not None
        and (sink.table_for(contract) or sink.dead_letter_table)
        and sink.write_disposition == "WRITE_TRUNCATE"
    ):
        raise ValueError(
            "a streaming sink loads its tables one window pane at a time, so WRITE_TRUNCATE "
            "would keep only the last pane: use write_disposition='WRITE_APPEND' (or table=None)"
        )


def _parse_step(raw, contract, source, parse, model, batch: bool, counted, uncounted):
    """Raw records -> (records, dead letters, batched): the caller's own parse step, or
    :class:`ParseRecords` with the contract (counting its input per bundle in batch, and
    handing a model's handler batches of its size unless it preprocesses records)."""
    if isinstance(parse, beam.PTransform):  # the caller's own step
        uncounted["records_in"] = raw
        records, dead = raw | "Parse" >> parse
        return records, dead, False
    if parse is not None and not callable(parse):
        raise TypeError(f"parse must be a PTransform or a function, got {type(parse).__name__}")
    size = model.batch_elements_kwargs().get("max_batch_size") if batch and model else None
    batched = bool(size) and not model.get_preprocess_fns()
    parsed = raw | "Parse" >> ParseRecords(
        contract,
        source.fmt,
        source.columns,
        check=parse,
        count_as="records_in" if batch else None,
        batch_size=size if batched else None,
    )
    if batch:
        records, dead, counted["records_in"] = parsed
    else:
        (records, dead), uncounted["records_in"] = parsed, raw
    return records, dead, batched


def _dead_letter_panes(dead):
    """A stream's dead letters in one global window, a pane per arrival (they are never late)."""
    return dead | "DeadLetterPanes" >> beam.WindowInto(
        beam.window.GlobalWindows(),
        trigger=trigger.AfterWatermark(early=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.DISCARDING,
    )


def _rows_step(records, contract, model, transform, mode, window, batched, counted, uncounted):
    """Checked records -> output rows: the transform, or (windowed first in a stream, panes
    labelled) the model's predictions, counted per bundle in a batch run."""
    if transform is not None:
        uncounted[contract.records] = records
        rows = uncounted[contract.rows] = records | "Transform" >> transform
        return rows
    if mode == "streaming":
        windowed = records | "Window" >> window | "LabelPanes" >> LabelPanes()
        uncounted.update(windowed_in=records, windowed_out=windowed)
        records = windowed
    if mode == "batch" and in_one_global_window(records):
        predict = Predict(model, contract, count_as=contract.rows, batched=batched)
        rows, counted[contract.rows] = records | "Predict" >> predict
        return rows
    rows = uncounted[contract.rows] = records | "Predict" >> Predict(model, contract)
    return rows


def build_pipeline(
    p: beam.Pipeline,
    source: Source,
    contract: RecordContract,
    model: ModelHandler | None = None,
    mode: str = "batch",
    sink: Sink | None = None,
    window_seconds: float = WINDOW_SECONDS,
    allowed_lateness: float = ALLOWED_LATENESS,
    window: beam.PTransform | None = None,
    parse: beam.PTransform | Callable | None = None,
    transform: beam.PTransform | None = None,
) -> Outputs:
    """Add the pipeline to ``p`` and return its outputs (:class:`Outputs`).

    Reads ``source``, parses each record and checks it against ``contract`` (bad ones become
    dead letters with their reason), then either predicts with ``model`` (a Beam
    ``ModelHandler``: :class:`~prodml.pipelines.SavedModelHandler` in process or
    :class:`~prodml.pipelines.HTTPModelHandler` over the prediction service; given the
    contract when it has none), windowing streams first, or runs ``transform`` (a
    ``PTransform`` from checked records to output rows, which windows as it needs), and
    writes to ``sink`` when given (rows, dead letters and ``counts.json``).

    ``mode``: ``"batch"`` or ``"streaming"`` (``p`` needs ``options("streaming")``).
    ``window`` (with a model): the streaming windowing, a ``PTransform`` such as
    ``beam.WindowInto(...)`` (a lab passes the learner's); default
    :func:`~prodml.pipelines.fixed_windows` of ``window_seconds`` with ``allowed_lateness``.
    Its panes are labelled on each row (``window``, ``pane``) and records it drops as too late
    are counted (``dropped_late``). Batch predictions are not windowed.
    ``parse``: the step from raw records to ``(records, dead_letters)``; default
    ``ParseRecords(contract, source.fmt, source.columns)``. Give a ``PTransform`` returning
    that pair, or a function ``record -> model input`` that raises ``ValueError`` for a bad
    record (its message is the dead letter's reason).
    """
    _check_arguments(p, source, contract, model, transform, mode, sink, window)
    if model is not None and hasattr(model, "with_contract"):
        model = model.with_contract(contract)
    raw = p | "Read" >> source.transform
    # counted: per-bundle counts from the steps themselves; uncounted: a counting step each
    counted, uncounted = {}, {}
    batch = mode == "batch" and in_one_global_window(raw)
    records, dead, batched = _parse_step(
        raw, contract, source, parse, model, batch, counted, uncounted
    )
    if mode == "streaming":
        dead = _dead_letter_panes(dead)
        if window is None and transform is None:
            window = fixed_windows(window_seconds, allowed_lateness)
    uncounted["dead_letters"] = dead
    rows = _rows_step(
        records, contract, model, transform, mode, window, batched, counted, uncounted
    )
    return _outputs(p, contract, transform is not None, rows, dead, sink, counted, uncounted)


def _outputs(p, contract, transformed: bool, rows, dead, sink, counted, uncounted) -> Outputs:
    """Count the run (one dict), write rows, dead letters and counts to ``sink`` when given."""
    tally = count_elements(p, counted, **uncounted)
    if transformed:
        names = ("records_in", contract.records, "dead_letters", contract.rows)
        accounted = tally | "Accounting" >> beam.Map(lambda t: {n: t[n] for n in names})
    else:
        accounted = tally | "Accounting" >> beam.Map(_accounting, contract.rows)
    dropped = accounted | "DroppedLate" >> beam.Map(lambda c: c.get("dropped_late", 0))
    if sink is not None:
        _ = rows | "WriteRows" >> WriteRows(sink, contract)
        _ = dead | "WriteDeadLetters" >> WriteDeadLetters(sink)
        _ = accounted | "WriteCounts" >> WriteCounts(sink)
    return Outputs(rows, dead, accounted, dropped)


def counts(sink: Sink | str) -> dict[str, int]:
    """The counts a finished run wrote with ``sink`` (a :class:`Sink` or its folder): see the
    module's docs for the names."""
    return read_counts(sink)
