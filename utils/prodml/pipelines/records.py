"""Parse and check incoming records; bad ones go to a dead-letter output with their reason.

A record arrives as a CSV line (with a known column list), a JSON message (str or bytes), or a
dict (a warehouse row). :func:`parse` reads it into a dict; the pipeline's record contract
(:class:`prodml.contracts.RecordContract`, e.g. ``prodml.babyweight.CONTRACT``) turns that into
the model's input, or raises :class:`RecordError` naming what is wrong. :class:`ParseRecords`
does both in Beam, checking a batch run's CSV lines many at a time (:func:`check_csv_lines`).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.utils.windowed_value import WindowedValue

from prodml.contracts import RecordContract, RecordError, record_key
from prodml.pipelines.counting import COUNTS, BundleCounter, in_one_global_window

__all__ = [
    "DEAD_LETTERS",
    "FORMATS",
    "ParseRecords",
    "check_csv_lines",
    "dead_letter",
    "parse",
]

DEAD_LETTERS = "dead_letters"
FORMATS = ("csv", "json", "dict")


def parse(raw: Any, fmt: str = "dict", columns: Sequence[str] | None = None) -> dict:
    """One raw record -> a dict of its fields (still unchecked). Raises :class:`RecordError`."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise RecordError("empty record")
    if fmt == "dict":
        if not isinstance(raw, Mapping):
            raise RecordError(f"expected a dict, got {type(raw).__name__}")
        return dict(raw)
    if fmt == "json":
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise RecordError(f"invalid JSON: {err}") from None
        if not isinstance(record, dict):
            raise RecordError(f"JSON message is not an object: {type(record).__name__}")
        return record
    if fmt == "csv":
        if not columns:
            raise ValueError("CSV records need the column list (the file's header)")
        # most lines have no quotes: a plain split reads them as the csv module would
        fields = raw.split(",") if '"' not in raw else next(csv.reader([raw]))
        if len(fields) != len(columns):
            raise RecordError(f"wrong field count: expected {len(columns)}, got {len(fields)}")
        return dict(zip(columns, fields, strict=True))
    raise ValueError(f"unknown record format {fmt!r}: choose one of {', '.join(FORMATS)}")


def dead_letter(raw: Any, reason: str) -> dict:
    """The dead-letter row: the record exactly as it came, and why it was rejected."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raw = json.dumps(raw, sort_keys=True, default=str)
    return {"record": raw, "reason": reason}


def check_csv_lines(
    lines: Sequence[str], columns: Sequence[str], contract: RecordContract
) -> list[dict | None]:
    """``contract.check`` of many CSV lines at once, for the common case: the model input of
    each plain line (no quotes, every field present and valid, a key), or None for a line that
    needs the one-record path (which gives the exact reason, or handles quotes and hashing).

    A batch pipeline spends most of its own time checking records one by one; here plain
    numbers are converted and range-checked as NumPy columns, and the few distinct values of
    the other fields (and of the derived values' inputs) are checked once each, through the
    contract's own remembered checks. The records are the same as ``contract.check`` gives.
    """
    names = list(columns or ())
    needed = {f.name for f in contract.fields} | ({contract.key} if contract.key else set())
    out: list[dict | None] = [None] * len(lines)
    if not needed <= set(names) or not lines:
        return out
    width = len(names)
    rows = [None if '"' in line else line.split(",") for line in lines]
    plain = [i for i, r in enumerate(rows) if r is not None and len(r) == width]
    if not plain:
        return out
    every = len(plain) == len(rows)
    column = dict(
        zip(names, zip(*(rows if every else (rows[i] for i in plain)), strict=True), strict=True)
    )
    ok = np.ones(len(plain), dtype=bool)
    values = {f.name: _field_column(contract, f, column[f.name], ok) for f in contract.fields}
    for d in contract.derived:
        values[d.name] = _derived_column(contract, d, values, ok)
    names_out = [*([contract.key] if contract.key else []), *contract.features]
    if contract.event_time and contract.event_time not in names_out:
        names_out.append(contract.event_time)
    if contract.key:
        keys = column[contract.key]
        if not all(map(str.strip, keys)):  # a blank key: the one-record path hashes the line
            ok &= np.array([bool(k.strip()) for k in keys])
        values[contract.key] = keys
    label = contract.label if contract.label in column else None
    if label:
        labels = _numbers(column[label])
        ok &= ~np.isnan(labels)  # a missing label: the one-record path leaves it out
        values[label], names_out = labels.tolist(), [*names_out, label]
    # one dict per row, built in C (map/zip) rather than a Python loop: the columns have one
    # value per plain line each
    rows_out = zip(*(values[n] for n in names_out))  # noqa: B905
    records = list(map(dict, map(zip, itertools.repeat(names_out), rows_out)))
    if every and ok.all():  # the common case: every line passed
        return records
    for i in np.flatnonzero(ok).tolist():
        out[plain[i]] = records[i]
    return out


def _field_column(contract: RecordContract, f, texts: Sequence[str], ok: np.ndarray) -> list:
    """One field's checked values for a column of texts; ``ok`` loses the rows that fail."""
    if f.vectorised:
        numbers = _numbers(texts)
        if f.range is not None:
            ok &= (numbers >= f.range[0]) & (numbers <= f.range[1])  # NaN fails too
        else:
            ok &= ~np.isnan(numbers)
        if f.kind == "integer":
            ok &= np.floor(numbers) == numbers
            return [int(v) if math.isfinite(v) else 0 for v in numbers.tolist()]
        return numbers.tolist()
    checked = {text: _or_none(contract.check_field, f, text) for text in set(texts)}
    found = [checked[text] for text in texts]
    if None in checked.values():
        ok &= np.array([v is not None for v in found])
    return found


def _derived_column(contract: RecordContract, d, values: dict, ok: np.ndarray) -> list:
    """A derived value for every row, each distinct combination of inputs computed once."""
    combos = list(zip(*(values[i] for i in d.inputs), strict=True))
    done = {c: _or_none(contract.derive, d, c) for c in set(combos) if None not in c}
    found = [done.get(c) for c in combos]
    ok &= np.array([v is not None for v in found])
    return found


def _numbers(texts: Sequence[str]) -> np.ndarray:
    try:
        return np.asarray(texts, dtype=np.float64)
    except ValueError:  # some field is not a number (or empty): each row on its own
        return np.array([_float_or_nan(v) for v in texts])


def _or_none(function: Callable, *args) -> Any:
    try:
        return function(*args)
    except ValueError:
        return None


def _float_or_nan(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


_CHUNK = 512  # CSV lines checked together


class _ParseAndCheck(beam.DoFn):
    """Parse and check each record. ``bulk`` (the default check on CSV lines in one global
    window, i.e. a batch run): a bundle's lines are checked together at the end of the bundle
    (:func:`check_csv_lines`), a several times cheaper path than one line at a time.
    ``batch_size`` (batch runs): records leave in lists of up to that many, a bundle's in order.
    A contract with an event time stamps each record with it.
    """

    def __init__(
        self,
        contract: RecordContract,
        fmt: str,
        columns: Sequence[str] | None,
        check_fn: Callable | None,
        bulk: bool,
        count_as: str | None = None,
        batch_size: int | None = None,
    ):
        self.contract, self.fmt = contract, fmt
        self.columns = list(columns) if columns else None
        self.check_fn = check_fn
        self.bulk = bulk and fmt == "csv" and check_fn is None
        self.count_as, self.batch_size = count_as, batch_size
        self.stamp = contract.event_time if check_fn is None else None

    def start_bundle(self):
        self.pending, self.batch = [], []
        self.counter = BundleCounter(self.count_as)

    def process(self, raw):
        # a plain function, not a generator: most lines only join the chunk (None: no output)
        self.counter.n += 1
        if not (self.bulk and isinstance(raw, str)):
            return self._batched(self._stamped(self._one(raw)))
        self.pending.append(raw)
        if len(self.pending) >= _CHUNK:  # emitted now, in the (global) window of this line
            return self._batched(self._stamped(self._flush()))
        return

    def finish_bundle(self):
        for output in self._batched(self._flush()):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, _in_global(output.value))
            else:
                yield _in_global(output, self.stamp)
        if self.batch:
            yield _in_global(self.batch)
            self.batch = []
        yield from self.counter.emit()

    def _stamped(self, outputs):
        if not self.stamp:
            return outputs
        return (
            o
            if isinstance(o, beam.pvalue.TaggedOutput)
            else beam.window.TimestampedValue(o, o[self.stamp])
            for o in outputs
        )

    def _batched(self, outputs):
        if not self.batch_size:
            return outputs
        return self._into_batches(outputs)

    def _into_batches(self, outputs):
        for output in outputs:
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield output
                continue
            self.batch.append(output)
            if len(self.batch) >= self.batch_size:
                batch, self.batch = self.batch, []
                yield batch

    def _flush(self):
        pending, self.pending = self.pending, []
        checked = check_csv_lines(pending, self.columns, self.contract)
        for raw, record in zip(pending, checked, strict=True):
            if record is None:
                yield from self._one(raw)
            else:
                yield record

    def _one(self, raw):
        try:
            record = parse(raw, self.fmt, self.columns)
            if self.check_fn is None:
                yield self.contract.check(record, raw)
                return
            out = self.check_fn(record)
            if not isinstance(out, Mapping):
                raise RecordError(
                    f"the check function returned {type(out).__name__}, not a dict of features"
                )
            key = self.contract.key
            yield {key: record_key(record, key, raw), **out} if key else dict(out)
        except ValueError as err:  # RecordError, or a check function's own ValueError
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(raw, str(err)))


def _in_global(value, stamp: str | None = None):
    """``value`` in the global window (at its event time when ``stamp`` names it), as
    ``finish_bundle`` must emit it."""
    if stamp is None or isinstance(value, list):
        return beam.window.GlobalWindows.windowed_value(value)
    return WindowedValue(value, value[stamp], (beam.window.GlobalWindow(),))


class ParseRecords(beam.PTransform):
    """Raw records -> ``(records, dead_letters)``: model inputs, and rejected records with their
    reason. ``contract`` is the record contract (``prodml.contracts.RecordContract``) each
    record is checked against; ``fmt`` is ``"csv"`` (give ``columns``), ``"json"`` or ``"dict"``.

    ``check``: a function from a parsed record (a dict) to the model's input (a dict of
    features), raising ``ValueError`` (e.g. :class:`RecordError`) with the reason for a record
    it cannot use; default ``contract.check`` (in a batch run, CSV lines go through it many at
    a time, with the same results). The record's key (or a hash of the raw record) is kept on
    its output when the contract has one. A contract with an ``event_time`` stamps each
    record with it. The pipeline counts both outputs from the data
    (:func:`prodml.pipelines.count_elements`).

    ``count_as``: also count the raw records under this name, per bundle, and return a third
    PCollection of ``(count_as, n)`` pairs (:mod:`~prodml.pipelines.counting`); batch input only.
    ``batch_size``: the records output carries lists of up to that many records instead of
    single records, ready for ``RunInference(handler.with_no_batching())`` (Beam's way to hand
    it batches made upstream); batch input only.
    """

    def __init__(
        self,
        contract: RecordContract,
        fmt: str = "dict",
        columns: Sequence[str] | None = None,
        check: Callable[[dict], Mapping] | None = None,
        count_as: str | None = None,
        batch_size: int | None = None,
    ):
        super().__init__()
        if not isinstance(contract, RecordContract):
            raise TypeError(
                "ParseRecords needs a record contract (prodml.contracts.RecordContract, e.g. "
                f"prodml.babyweight.CONTRACT) first, got {type(contract).__name__}"
            )
        if fmt not in FORMATS:
            raise ValueError(f"unknown record format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if fmt == "csv" and not columns:
            raise ValueError("ParseRecords(fmt='csv') needs columns= (the CSV header)")
        if check is not None and not callable(check):
            raise TypeError(f"check must be a function, got {type(check).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive number of records, got {batch_size!r}")
        if batch_size and contract.event_time:
            raise ValueError("batch_size= makes lists of records, which carry no event time")
        self.contract, self.fmt, self.columns = contract, fmt, columns
        self.check, self.count_as, self.batch_size = check, count_as, batch_size

    def expand(self, raw):
        # bulk checking re-emits each record at the end of its bundle, in the global window:
        # only for a bounded input in the global window (a batch run)
        bulk = in_one_global_window(raw)
        if (self.count_as or self.batch_size) and not bulk:
            raise ValueError(
                "ParseRecords(count_as=..., batch_size=...) work per bundle, which needs a batch "
                "input (bounded, in the global window); count a stream with count_elements"
            )
        parse_and_check = _ParseAndCheck(
            self.contract, self.fmt, self.columns, self.check, bulk, self.count_as, self.batch_size
        )
        outputs = raw | "ParseAndCheck" >> beam.ParDo(parse_and_check).with_outputs(
            DEAD_LETTERS, COUNTS, main="records"
        )
        if self.count_as:
            return outputs.records, outputs[DEAD_LETTERS], outputs[COUNTS]
        return outputs.records, outputs[DEAD_LETTERS]
