"""Parse and check incoming records; bad ones go to a dead-letter output with their reason.

A record arrives as a CSV line (with a known column list), a JSON message (str or bytes), or a
dict (a warehouse row). :func:`check` turns it into the model's input with the ONE feature
mapping the model was trained with (:func:`prodml.babyweight.features`), or raises
:class:`RecordError` naming what is wrong. :class:`ParseRecords` does that in Beam.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from prodml import babyweight
from prodml.babyweight.contract import RANGES, REQUIRED, UNKNOWN_GESTATION
from prodml.pipelines.counting import COUNTS, BundleCounter, in_one_global_window

DEAD_LETTERS = "dead_letters"
FORMATS = ("csv", "json", "dict")
_TRUE, _FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")


class RecordError(ValueError):
    """A record that cannot be predicted; the message is the dead letter's reason."""


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return isinstance(value, float) and math.isnan(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RecordError(f"{name} is not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"{name} is not a number: {value!r}") from None
    low, high = RANGES[name]
    if not low <= number <= high:  # NaN fails too
        unknown = name == "gestation_weeks" and number == UNKNOWN_GESTATION
        hint = f" ({UNKNOWN_GESTATION} means unknown in natality)" if unknown else ""
        raise RecordError(f"{name} {value!r} is out of range [{low:g}, {high:g}]{hint}")
    return number


def _plurality(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text in babyweight.PLURALITIES:
            return text
        try:
            number = float(text)
        except ValueError:
            raise RecordError(f"unknown plurality: {value!r}") from None
        value = number
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    low, high = RANGES["plurality"]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecordError(f"unknown plurality: {value!r} (expected {low}..{high})")
    return value


def _is_male(value: Any) -> Any:
    if _missing(value):
        return None  # unknown, as without an ultrasound
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text in babyweight.GENDERS:
        return text
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise RecordError(f"is_male must be true, false or Unknown, got {value!r}")


def _key(record: Mapping, raw: Any) -> str:
    key = record.get("key")
    if not _missing(key):
        return str(key)
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


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


def check(record: Mapping, raw: Any = None) -> dict:
    """A parsed record -> the model's input: ``key`` and the four features as the model takes
    them (``weight_pounds`` kept when present). Raises :class:`RecordError` with the reason."""
    get = record.get
    missing = [name for name in REQUIRED if _missing(get(name))]
    if missing:
        raise RecordError(f"missing field(s): {', '.join(missing)}")
    # the checks in order (the first problem is the reason); text goes through the memoised
    # forms of the same functions, as a file repeats a handful of is_male/plurality values
    is_male, plurality = get("is_male"), record["plurality"]
    gender = _gender_of(is_male) if isinstance(is_male, str) else _gender(is_male)
    mother_age = _number("mother_age", record["mother_age"])
    count = _plurality_of(plurality) if isinstance(plurality, str) else _plurality(plurality)
    gestation_weeks = _number("gestation_weeks", record["gestation_weeks"])
    try:
        # babyweight's own mapping (a count above 1 is 'Multiple(2+)' when the gender is unknown)
        plurality = _model_plurality(count, gender)
    except ValueError as err:  # the shared mapping's own checks
        raise RecordError(str(err)) from None
    out = {
        "key": _key(record, record if raw is None else raw),
        "is_male": gender,
        "mother_age": mother_age,
        "plurality": plurality,
        "gestation_weeks": gestation_weeks,
    }
    label = get(babyweight.LABEL)
    if not _missing(label):
        try:
            out[babyweight.LABEL] = float(label)
        except (TypeError, ValueError):
            raise RecordError(f"{babyweight.LABEL} is not a number: {label!r}") from None
    return out


def _gender(value: Any) -> str:
    """is_male as the model takes it ('True', 'False', 'Unknown'), via :func:`babyweight.gender`."""
    try:
        return babyweight.gender(_is_male(value))
    except RecordError:
        raise
    except ValueError as err:
        raise RecordError(str(err)) from None


# A pipeline checks every record, and a file holds a handful of distinct is_male and plurality
# texts: memoise the mapping of those texts (errors are not cached: they are raised each time).
_gender_of = functools.lru_cache(maxsize=256)(_gender)
_plurality_of = functools.lru_cache(maxsize=256)(_plurality)
_model_plurality = functools.lru_cache(maxsize=256)(babyweight.plurality)


def dead_letter(raw: Any, reason: str) -> dict:
    """The dead-letter row: the record exactly as it came, and why it was rejected."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raw = json.dumps(raw, sort_keys=True, default=str)
    return {"record": raw, "reason": reason}


def _check_csv_lines(lines: Sequence[str], columns: Sequence[str]) -> list[dict | None]:
    """:func:`check` of many CSV lines at once, for the common case: the model input of each
    plain line (no quotes, every field present and in range, a key), or None for a line that
    needs the one-record path (which gives the exact reason, or handles quotes and hashing).

    A batch pipeline spends most of its own time checking records one by one; here the
    numbers are converted and range-checked as NumPy columns and the few distinct is_male and
    plurality texts mapped once (through the same memoised functions :func:`check` uses).
    """
    names = list(columns or ())
    if not set(REQUIRED) | {"key", "is_male"} <= set(names) or not lines:
        return [None] * len(lines)
    width = len(names)
    rows = [None if '"' in line else line.split(",") for line in lines]
    plain = [i for i, r in enumerate(rows) if r is not None and len(r) == width]
    out: list[dict | None] = [None] * len(lines)
    if not plain:
        return out
    every = len(plain) == len(rows)
    fields = list(zip(*(rows if every else (rows[i] for i in plain)), strict=True))
    column = dict(zip(names, fields, strict=True))
    ok = np.ones(len(plain), dtype=bool)
    numbers = {}
    for name in (
        "mother_age",
        "gestation_weeks",
        *([babyweight.LABEL] * (babyweight.LABEL in column)),
    ):
        try:
            values = np.asarray(column[name], dtype=np.float64)
        except ValueError:  # some field is not a number (or empty): each row on its own
            values = np.array([_float_or_nan(v) for v in column[name]])
        if name in RANGES:
            low, high = RANGES[name]
            ok &= (values >= low) & (values <= high)  # NaN fails too
        else:
            ok &= ~np.isnan(values)  # a missing label: the one-record path leaves it out
        numbers[name] = values.tolist()
    keys, texts = column["key"], column["is_male"]
    if not all(map(str.strip, keys)):  # a blank key: the one-record path hashes the line
        ok &= np.array([bool(k.strip()) for k in keys])
    # each distinct text mapped once; None where the one-record path must name the problem
    gender_of = {text: _or_none(_gender_of, text) for text in set(texts)}
    genders = [gender_of[text] for text in texts]
    pairs = list(zip(column["plurality"], genders, strict=True))
    plurality_of = {pair: _or_none(_plurality_pair, *pair) for pair in set(pairs)}
    pluralities = [plurality_of[pair] for pair in pairs]
    ok &= np.array([p is not None for p in pluralities])  # (None gender -> None plurality)
    records = [
        {"key": k, "is_male": g, "mother_age": a, "plurality": p, "gestation_weeks": w}
        for k, g, a, p, w in zip(
            keys,
            genders,
            numbers["mother_age"],
            pluralities,
            numbers["gestation_weeks"],
            strict=True,
        )
    ]
    labels = numbers.get(babyweight.LABEL)
    if labels is not None:
        for record, label in zip(records, labels, strict=True):
            record[babyweight.LABEL] = label
    if every and ok.all():  # the common case: every line passed
        return records
    for i in np.flatnonzero(ok).tolist():
        out[plain[i]] = records[i]
    return out


def _or_none(function: Callable, *args) -> Any:
    try:
        return function(*args)
    except ValueError:
        return None


def _plurality_pair(text: str, gender: str | None) -> str | None:
    if gender is None:
        return None
    return _model_plurality(_plurality_of(text), gender)


def _float_or_nan(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


_CHUNK = 512  # CSV lines checked together


class _ParseAndCheck(beam.DoFn):
    """Parse and check each record. ``bulk`` (the default check on CSV lines in one global
    window, i.e. a batch run): a bundle's lines are checked together at the end of the bundle
    (:func:`_check_csv_lines`), a several times cheaper path than one line at a time.
    ``batch_size`` (batch runs): records leave in lists of up to that many, a bundle's in order.
    """

    def __init__(
        self,
        fmt: str,
        columns: Sequence[str] | None,
        check_fn: Callable | None,
        bulk: bool,
        count_as: str | None = None,
        batch_size: int | None = None,
    ):
        self.fmt, self.columns = fmt, list(columns) if columns else None
        self.check_fn = check_fn
        self.bulk = bulk and fmt == "csv" and check_fn is None
        self.count_as, self.batch_size = count_as, batch_size

    def start_bundle(self):
        self.pending, self.batch = [], []
        self.counter = BundleCounter(self.count_as)

    def process(self, raw):
        # a plain function, not a generator: most lines only join the chunk (None: no output)
        self.counter.n += 1
        if not (self.bulk and isinstance(raw, str)):
            return self._batched(self._one(raw))
        self.pending.append(raw)
        if len(self.pending) >= _CHUNK:  # emitted now, in the (global) window of this line
            return self._batched(self._flush())
        return

    def finish_bundle(self):
        in_window = beam.window.GlobalWindows.windowed_value
        for output in self._batched(self._flush()):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, in_window(output.value))
            else:
                yield in_window(output)
        if self.batch:
            yield in_window(self.batch)
            self.batch = []
        yield from self.counter.emit()

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
        for raw, record in zip(pending, _check_csv_lines(pending, self.columns), strict=True):
            if record is None:
                yield from self._one(raw)
            else:
                yield record

    def _one(self, raw):
        try:
            record = parse(raw, self.fmt, self.columns)
            if self.check_fn is None:
                yield check(record, raw)
                return
            out = self.check_fn(record)
            if not isinstance(out, Mapping):
                raise RecordError(
                    f"the check function returned {type(out).__name__}, not a dict of features"
                )
            yield {"key": _key(record, raw), **out}
        except ValueError as err:  # RecordError, or a check function's own ValueError
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(raw, str(err)))


class ParseRecords(beam.PTransform):
    """Raw records -> ``(records, dead_letters)``: model inputs, and rejected records with their
    reason. ``fmt`` is ``"csv"`` (give ``columns``), ``"json"`` or ``"dict"``.

    ``check``: a function from a parsed record (a dict) to the model's input (a dict of
    features), raising ``ValueError`` (e.g. :class:`RecordError`) with the reason for a record
    it cannot use; default :func:`check`, the training feature mapping (in a batch run, CSV
    lines go through it many at a time, with the same results). The record's ``key``
    (or a hash of the raw record) is kept on its output. The pipeline counts both outputs from
    the data (:func:`prodml.pipelines.count_elements`).

    ``count_as``: also count the raw records under this name, per bundle, and return a third
    PCollection of ``(count_as, n)`` pairs (:mod:`~prodml.pipelines.counting`); batch input only.
    ``batch_size``: the records output carries lists of up to that many records instead of
    single records, ready for ``RunInference(handler.with_no_batching())`` (Beam's way to hand
    it batches made upstream); batch input only.
    """

    def __init__(
        self,
        fmt: str = "dict",
        columns: Sequence[str] | None = None,
        check: Callable[[dict], Mapping] | None = None,
        count_as: str | None = None,
        batch_size: int | None = None,
    ):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"unknown record format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if fmt == "csv" and not columns:
            raise ValueError("ParseRecords(fmt='csv') needs columns= (the CSV header)")
        if check is not None and not callable(check):
            raise TypeError(f"check must be a function, got {type(check).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive number of records, got {batch_size!r}")
        self.fmt, self.columns, self.check, self.count_as = fmt, columns, check, count_as
        self.batch_size = batch_size

    def expand(self, raw):
        # bulk checking re-emits each record at the end of its bundle, in the global window:
        # only for a bounded input in the global window (a batch run), whose timestamps
        # nothing downstream reads
        bulk = in_one_global_window(raw)
        if (self.count_as or self.batch_size) and not bulk:
            raise ValueError(
                "ParseRecords(count_as=..., batch_size=...) work per bundle, which needs a batch "
                "input (bounded, in the global window); count a stream with count_elements"
            )
        outputs = raw | "ParseAndCheck" >> beam.ParDo(
            _ParseAndCheck(self.fmt, self.columns, self.check, bulk, self.count_as, self.batch_size)
        ).with_outputs(DEAD_LETTERS, COUNTS, main="records")
        if self.count_as:
            return outputs.records, outputs[DEAD_LETTERS], outputs[COUNTS]
        return outputs.records, outputs[DEAD_LETTERS]
