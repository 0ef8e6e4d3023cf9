"""Parse and check incoming records; bad ones go to a dead-letter output with their reason.

A record arrives as a CSV line (with a known column list), a JSON message (str or bytes), or a
dict (a warehouse row). :func:`check` turns it into the model's input with the ONE feature
mapping the model was trained with (:func:`prodml.babyweight.features`), or raises
:class:`RecordError` naming what is wrong. :class:`ParseRecords` does that in Beam.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam

from prodml import babyweight
from prodml.babyweight.contract import RANGES, REQUIRED, UNKNOWN_GESTATION

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
    missing = [name for name in REQUIRED if _missing(record.get(name))]
    if missing:
        raise RecordError(f"missing field(s): {', '.join(missing)}")
    typed = {
        "is_male": _is_male(record.get("is_male")),
        "mother_age": _number("mother_age", record["mother_age"]),
        "plurality": _plurality(record["plurality"]),
        "gestation_weeks": _number("gestation_weeks", record["gestation_weeks"]),
    }
    try:
        out = {"key": _key(record, record if raw is None else raw), **babyweight.features(typed)}
    except ValueError as err:  # the shared mapping's own checks
        raise RecordError(str(err)) from None
    label = record.get(babyweight.LABEL)
    if not _missing(label):
        try:
            out[babyweight.LABEL] = float(label)
        except (TypeError, ValueError):
            raise RecordError(f"{babyweight.LABEL} is not a number: {label!r}") from None
    return out


def dead_letter(raw: Any, reason: str) -> dict:
    """The dead-letter row: the record exactly as it came, and why it was rejected."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raw = json.dumps(raw, sort_keys=True, default=str)
    return {"record": raw, "reason": reason}


class _ParseAndCheck(beam.DoFn):
    def __init__(self, fmt: str, columns: Sequence[str] | None, check_fn: Callable | None):
        self.fmt, self.columns = fmt, list(columns) if columns else None
        self.check_fn = check_fn

    def process(self, raw):
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
    it cannot use; default :func:`check`, the training feature mapping. The record's ``key``
    (or a hash of the raw record) is kept on its output. The pipeline counts both outputs from
    the data (:func:`prodml.pipelines.count_elements`).
    """

    def __init__(
        self,
        fmt: str = "dict",
        columns: Sequence[str] | None = None,
        check: Callable[[dict], Mapping] | None = None,
    ):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"unknown record format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if fmt == "csv" and not columns:
            raise ValueError("ParseRecords(fmt='csv') needs columns= (the CSV header)")
        if check is not None and not callable(check):
            raise TypeError(f"check must be a function, got {type(check).__name__}")
        self.fmt, self.columns, self.check = fmt, columns, check

    def expand(self, raw):
        outputs = raw | "ParseAndCheck" >> beam.ParDo(
            _ParseAndCheck(self.fmt, self.columns, self.check)
        ).with_outputs(DEAD_LETTERS, main="records")
        return outputs.records, outputs[DEAD_LETTERS]
