"""Counting the pipeline's records from the data itself: one dict of counts per run.

Every count is a stream of ``(name, n)`` pairs summed by one combiner (:class:`_Tally`). The
pairs come from one of two places:

- a step that already handles every element counts what it saw and emits ``(name, n)`` once
  per bundle on its :data:`COUNTS` output (``ParseRecords(count_as=...)``,
  ``Predict(count_as=...)``): no extra step per element, for batch runs;
- :func:`count_elements` counts any other PCollection with a step of its own: once per bundle
  in batch, and in streaming per element into one global window fired when the stream ends.

Beam's metric counters are not used: the Python DirectRunner's streaming mode keeps only their
first bundle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms import trigger

__all__ = [
    "COUNTS",
    "BundleCounter",
    "count_elements",
    "in_one_global_window",
]

COUNTS = "counts"  # the tagged output of a step that counts its own input


def in_one_global_window(pcoll: beam.PCollection) -> bool:
    """True for a bounded PCollection in the global window (a batch run): a step may then emit
    per-bundle counts from ``finish_bundle``."""
    return pcoll.is_bounded and isinstance(pcoll.windowing.windowfn, beam.window.GlobalWindows)


class BundleCounter:
    """What a DoFn holds to count its input: ``n += 1`` per element, :meth:`emit` at the end of
    the bundle."""

    def __init__(self, name: str | None):
        self.name, self.n = name, 0

    def emit(self, tag: str | None = COUNTS):
        """The bundle's ``(name, n)`` pair in the global window, on output ``tag`` (None: the
        main output); nothing when no element came or no name was given."""
        n, self.n = self.n, 0
        if self.name is not None and n:
            pair = beam.window.GlobalWindows.windowed_value((self.name, n))
            yield pair if tag is None else beam.pvalue.TaggedOutput(tag, pair)


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
        self.counter = BundleCounter(self.name)

    def process(self, element):
        self.counter.n += 1

    def finish_bundle(self):
        yield from self.counter.emit(tag=None)


def count_elements(
    p: beam.Pipeline,
    counted: Mapping[str, beam.PCollection] | None = None,
    **pcolls: beam.PCollection,
) -> beam.PCollection:
    """One dict ``{name: how many elements that PCollection held}`` over the whole run.

    Batch: each input is counted per bundle and the bundles' counts summed. Streaming: each
    input is first re-windowed into one global window fired once, when the watermark passes
    its end (at the end of a bounded stream; an unbounded stream reports on drain), then
    counted with a combiner. ``counted``: name -> the :data:`COUNTS` output of a step that
    counted its own input (batch), summed in too.
    """
    counted = dict(counted or {})
    streaming = p.options.view_as(StandardOptions).streaming
    if streaming and counted:
        raise ValueError("counted= takes per-bundle counts of a batch run, not of a stream")

    def whole_run(pcoll, label):
        return pcoll | label >> beam.WindowInto(
            beam.window.GlobalWindows(),
            trigger=trigger.AfterWatermark(),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
        )

    seed = p | "CountSeed" >> beam.Create([None])
    parts = [whole_run(seed, "WholeRun_seed") if streaming else seed, *counted.values()]
    for name, pcoll in pcolls.items():
        if streaming:
            count = (
                whole_run(pcoll, f"WholeRun_{name}")
                | f"Count_{name}" >> beam.combiners.Count.Globally().without_defaults()
                | f"Name_{name}" >> beam.Map(lambda n, name=name: (name, n))
            )
        else:
            if not in_one_global_window(pcoll):  # a batch's windowed rows: counted as one run
                pcoll = pcoll | f"OneWindow_{name}" >> beam.WindowInto(beam.window.GlobalWindows())
            count = pcoll | f"Count_{name}" >> beam.ParDo(_CountPerBundle(name))
        parts.append(count)
    return (
        parts
        | "AllCounts" >> beam.Flatten()
        | "Tally" >> beam.CombineGlobally(_Tally([*counted, *pcolls])).without_defaults()
    )
