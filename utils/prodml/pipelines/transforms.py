"""The steps between the source and the sinks: windowing (streaming) and prediction.

Parsing and checking records is :mod:`prodml.pipelines.records`.
"""

from __future__ import annotations

import zlib

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from prodml.contracts import RecordContract
from prodml.pipelines.counting import COUNTS, BundleCounter, in_one_global_window

__all__ = [
    "ALLOWED_LATENESS",
    "WINDOW_SECONDS",
    "LabelPanes",
    "Predict",
    "Windowed",
    "fixed_windows",
    "row_maker",
]

WINDOW_SECONDS = 20  # the course's FixedWindows(Duration.standardSeconds(20))
ALLOWED_LATENESS = 10  # ... withAllowedLateness(Duration.standardSeconds(10))


def fixed_windows(
    seconds: float = WINDOW_SECONDS, allowed_lateness: float = ALLOWED_LATENESS
) -> beam.WindowInto:
    """The course's windowing: fixed event-time windows of ``seconds``, a pane when the
    watermark passes a window's end and one more per late record within ``allowed_lateness``
    (discarding: no record is emitted twice)."""
    return beam.WindowInto(
        window.FixedWindows(seconds),
        trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.DISCARDING,
        allowed_lateness=Duration(seconds=allowed_lateness),
    )


class LabelPanes(beam.PTransform):
    """Windowed records -> the same records, each with ``window`` (``[start, end)`` in UTC) and
    ``pane`` (EARLY / ON_TIME / LATE) of the pane that emitted it.

    Records are grouped per window (over ``shards`` keys, so one window's records are not all
    on one worker); the grouping is where the trigger fires and where Beam drops records later
    than the allowed lateness.
    """

    def __init__(self, shards: int = 4):
        super().__init__()
        self.shards = shards

    def expand(self, records):
        shards = self.shards
        return (
            records
            | "Shard" >> beam.Map(lambda r: (zlib.crc32(repr(r).encode()) % shards, r))
            | "GroupPerWindow" >> beam.GroupByKey()
            | "Panes" >> beam.ParDo(_Panes())
        )


class _Panes(beam.DoFn):
    def process(self, item, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        _, records = item
        label = _window_label(win)
        timing = PaneInfoTiming.to_string(pane.timing)
        for record in records:
            yield {**record, "window": label, "pane": timing}


def _window_label(win) -> str:
    if isinstance(win, window.IntervalWindow):
        start = win.start.to_utc_datetime().strftime("%Y-%m-%dT%H:%M:%S")
        end = win.end.to_utc_datetime().strftime("%Y-%m-%dT%H:%M:%S")
        return f"[{start}, {end})"
    return "global"


class Windowed(beam.PTransform):
    """Window records and label their panes: ``window`` (a ``beam.WindowInto``, by default
    :func:`fixed_windows` of ``seconds`` with ``allowed_lateness``) then :class:`LabelPanes`.
    Records later than the allowed lateness are dropped by Beam; the pipeline counts them."""

    def __init__(
        self,
        seconds: float = WINDOW_SECONDS,
        allowed_lateness: float = ALLOWED_LATENESS,
        shards: int = 4,
        window: beam.PTransform | None = None,
    ):
        super().__init__()
        self.window = window if window is not None else fixed_windows(seconds, allowed_lateness)
        if not isinstance(self.window, beam.PTransform):
            raise TypeError(
                f"window must be a Beam PTransform such as beam.WindowInto(...), got "
                f"{type(self.window).__name__}"
            )
        self.shards = shards

    def expand(self, records):
        return records | "WindowInto" >> self.window | "LabelPanes" >> LabelPanes(self.shards)


class Predict(beam.PTransform):
    """Model inputs -> prediction rows (``contract.columns``) through ``RunInference(handler)``.

    ``count_as``: also count the predictions under this name, per bundle, and return
    ``(rows, counts)``, ``counts`` a PCollection of ``(count_as, n)`` pairs
    (:mod:`~prodml.pipelines.counting`); batch input only. ``batched``: the input's elements
    are lists of records already batched (``ParseRecords(batch_size=...)``), given to
    ``RunInference(handler.with_no_batching())``.
    """

    def __init__(
        self,
        handler: ModelHandler,
        contract: RecordContract,
        count_as: str | None = None,
        batched: bool = False,
    ):
        super().__init__()
        if not isinstance(handler, ModelHandler):
            raise TypeError(f"Predict needs a Beam ModelHandler, got {type(handler).__name__}")
        if not isinstance(contract, RecordContract):
            raise TypeError(f"Predict needs a RecordContract, got {type(contract).__name__}")
        if hasattr(handler, "with_contract"):  # the workbook's handlers predict for a contract
            handler = handler.with_contract(contract)
        self.handler, self.contract = handler, contract
        self.count_as, self.batched = count_as, batched

    def expand(self, records):
        handler = self.handler.with_no_batching() if self.batched else self.handler
        results = records | "RunInference" >> RunInference(handler)
        row = row_maker(self.contract)
        if not self.count_as:
            return results | "ToRow" >> beam.Map(row)
        if not in_one_global_window(results):
            raise ValueError(
                "Predict(count_as=...) counts per bundle, which needs a batch input "
                "(bounded, in the global window); count a stream with count_elements"
            )
        rows = results | "ToRow" >> beam.ParDo(_CountedRows(self.count_as, row)).with_outputs(
            COUNTS, main="rows"
        )
        return rows.rows, rows[COUNTS]


class _CountedRows(beam.DoFn):
    """The row of each result, counting them (one step per prediction, not two)."""

    def __init__(self, name: str, row):
        self.name, self.row = name, row

    def start_bundle(self):
        self.counter = BundleCounter(self.name)

    def process(self, result):
        self.counter.n += 1
        return (self.row(result),)

    def finish_bundle(self):
        yield from self.counter.emit()


def row_maker(contract: RecordContract):
    """The function from a ``PredictionResult`` to its prediction row (``contract.columns``):
    the example's key and features, the prediction as a float, and the window and pane
    (``global`` and ``batch`` in a batch run)."""
    taken = ((contract.key,) if contract.key else ()) + tuple(contract.features)
    exact = set(taken)
    prediction = contract.prediction

    def row(result) -> dict:
        example = result.example
        # a checked record holds the key and the features in column order: copy it whole
        # (the cheapest per-record copy); anything else is picked column by column
        out = example.copy() if example.keys() == exact else {c: example[c] for c in taken}
        get = example.get
        out[prediction] = float(result.inference)
        out["window"] = get("window", "global")
        out["pane"] = get("pane", "batch")
        return out

    return row
