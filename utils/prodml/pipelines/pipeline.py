"""The pipeline builder: one prediction pipeline for batch and streaming, only the source and the
windowing differ.

::

    source -> ParseRecords -> [streaming: window -> LabelPanes] -> Predict -> WritePredictions
                     \\-> dead letters ---------------------------------------> WriteDeadLetters
    counts (from the data) -------------------------------------------------> counts.json

The steps live in :mod:`~prodml.pipelines.sources`, :mod:`~prodml.pipelines.records`,
:mod:`~prodml.pipelines.transforms` and :mod:`~prodml.pipelines.sinks`; this module wires them.

Counting: one system, counted from the data itself. ``Outputs.counts`` is one dict,
``records_in``, ``predictions``, ``dead_letters``, ``dropped_late``, with ``records_in ==
predictions + dead_letters + dropped_late`` in both modes (``dropped_late`` is zero in batch);
a :class:`~prodml.pipelines.sinks.Sink` writes it to ``<folder>/counts.json``
(:func:`counts` reads it back). Beam's metric counters are not used for this: the Python
DirectRunner's streaming mode keeps only their first bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms import trigger

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


class _Tally(beam.CombineFn):
    """``(name, count)`` pairs -> one dict with every name present (zero when none came)."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)

    def create_accumulator(self):
        return dict.fromkeys(self.names, 0)

    def add_input(self, acc, item):
        if item is not None:  # None: the seed that makes an empty run report zeros
            name, n = item
            acc[name] += n
        return acc

    def merge_accumulators(self, accumulators):
        total = self.create_accumulator()
        for acc in accumulators:
            for name, n in acc.items():
                total[name] += n
        return total

    def extract_output(self, acc):
        return dict(acc)


class _CountPerBundle(beam.DoFn):
    """``(name, n)`` once per bundle, ``n`` the elements it saw: one cheap call per element
    (no key, no combiner) for a batch run, whose elements all sit in the global window."""

    def __init__(self, name: str):
        self.name = name

    def start_bundle(self):
        self.n = 0

    def process(self, element):
        self.n += 1

    def finish_bundle(self):
        if self.n:
            yield beam.window.GlobalWindows.windowed_value((self.name, self.n))


def count_elements(p: beam.Pipeline, **pcolls: beam.PCollection) -> beam.PCollection:
    """One dict ``{name: how many elements that PCollection held}`` over the whole run.

    Batch: each input is counted per bundle and the bundles' counts summed. Streaming: each
    input is first re-windowed into one global window fired once, when the watermark passes
    its end (at the end of a bounded stream; an unbounded stream reports on drain), then
    counted with a combiner.
    """
    streaming = p.options.view_as(StandardOptions).streaming

    def whole_run(pcoll, label):
        return pcoll | label >> beam.WindowInto(
            beam.window.GlobalWindows(),
            trigger=trigger.AfterWatermark(),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )

    seed = p | "CountSeed" >> beam.Create([None])
    counted = [whole_run(seed, "WholeRun_seed") if streaming else seed]
    for name, pcoll in pcolls.items():
        if streaming:
            count = (
                whole_run(pcoll, f"WholeRun_{name}")
                | f"Count_{name}" >> beam.combiners.Count.Globally().without_defaults()
                | f"Name_{name}" >> beam.Map(lambda n, name=name: (name, n))
            )
        else:
            count = pcoll | f"Count_{name}" >> beam.ParDo(_CountPerBundle(name))
        counted.append(count)
    return (
        counted
        | "AllCounts" >> beam.Flatten()
        | "Tally" >> beam.CombineGlobally(_Tally(list(pcolls))).without_defaults()
    )


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
    if parse is None:
        parse = ParseRecords(source.fmt, source.columns)
    elif not isinstance(parse, beam.PTransform):
        if not callable(parse):
            raise TypeError(f"parse must be a PTransform or a function, got {type(parse).__name__}")
        parse = ParseRecords(source.fmt, source.columns, check=parse)

    raw = p | "Read" >> source.transform
    records, dead = raw | "Parse" >> parse
    counted = {"records_in": raw, "dead_letters": dead}
    if mode == "streaming":
        windowing = (
            window if window is not None else fixed_windows(window_seconds, allowed_lateness)
        )
        windowed = records | "Window" >> windowing | "LabelPanes" >> LabelPanes()
        counted.update(windowed_in=records, windowed_out=windowed)
        records = windowed
        # dead letters are never late: one global window, a pane (and a file) per arrival
        dead = dead | "DeadLetterPanes" >> beam.WindowInto(
            beam.window.GlobalWindows(),
            trigger=trigger.AfterWatermark(early=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )
    predictions = records | "Predict" >> Predict(model)
    counts_ = count_elements(p, predictions=predictions, **counted)
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
