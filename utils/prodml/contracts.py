"""Record contracts: what a pipeline's records hold and how each one is checked, for any model.

A :class:`RecordContract` says what a record must carry before a model (or a feature step)
sees it: its :class:`Field` s with their kinds and plausible ranges, the values
:class:`Derived` from them, which of them the model takes (``features``), the label, the key,
the event time and where the output goes. :meth:`RecordContract.check` turns one parsed record
into the model's input, or raises :class:`RecordError` naming what is wrong (a dead letter's
reason). ``prodml.pipelines`` is written against a contract and names no model: babyweight's is
``prodml.babyweight.CONTRACT``; the traffic lab declares its readings' contract beside it.

Plain Python: importing this module imports neither NumPy, pandas, Beam nor TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "Derived", "Field", "RecordContract", "RecordError", "missing", "record_key"]

#: how a field's raw value is read when no ``parse`` function is given
KINDS = ("number", "integer", "text")
_MEMO_LIMIT = 4096  # distinct values remembered per field or derived value


class RecordError(ValueError):
    """A record that cannot be used; the message is the dead letter's reason."""


def missing(value: Any) -> bool:
    """True for a value that is not there: None, blank text or NaN."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return isinstance(value, float) and math.isnan(value)


@dataclass(frozen=True)
class Field:
    """One field of a raw record and how it is checked.

    ``kind``: ``"number"`` (a float, within ``range`` when one is given), ``"integer"`` (a whole
    number within ``range``) or ``"text"`` (the text, stripped). ``parse``, when given, replaces
    the kind: a function from the raw value to the value the model takes, raising
    ``ValueError`` with the reason for a bad one (it is remembered per distinct value, so keep it
    a pure function). ``required``: a missing value is a dead letter ("missing field(s): ...");
    when False a missing value reaches ``parse`` as None (or is kept as None). ``codes``:
    ``(value, meaning)`` pairs named in the reason when an out-of-range value is a code.
    """

    name: str
    kind: str = "number"
    range: tuple[float, float] | None = None
    parse: Callable[[Any], Any] | None = None
    required: bool = True
    codes: tuple[tuple[float, str], ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.range is not None and not self.range[0] <= self.range[1]:
            raise ValueError(f"field {self.name!r}: range {self.range} is not (low, high)")

    @property
    def vectorised(self) -> bool:
        """True when the check is a plain number and range test (done on whole columns in bulk)."""
        return self.parse is None and self.kind in ("number", "integer")

    def check(self, value: Any) -> Any:
        """The raw ``value`` -> the value the model takes; raises :class:`RecordError`."""
        if self.parse is not None:
            try:
                return self.parse(None if missing(value) else value)
            except RecordError:
                raise
            except ValueError as err:
                raise RecordError(str(err)) from None
        if missing(value):
            if self.required:
                raise RecordError(f"missing field(s): {self.name}")
            return None
        if self.kind == "text":
            return str(value).strip()
        return self._number(value)

    def _number(self, value: Any) -> float | int:
        name = self.name
        if isinstance(value, bool):
            raise RecordError(f"{name} is not a number: {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RecordError(f"{name} is not a number: {value!r}") from None
        if self.range is not None:
            low, high = self.range
            if not low <= number <= high:  # NaN fails too
                hint = next((f" ({c:g} {m})" for c, m in self.codes if number == c), "")
                raise RecordError(f"{name} {value!r} is out of range [{low:g}, {high:g}]{hint}")
        if self.kind == "integer":
            if not number.is_integer():
                raise RecordError(f"{name} is not a whole number: {value!r}")
            return int(number)
        return number


@dataclass(frozen=True)
class Derived:
    """A value computed from checked fields: ``function(*inputs' values)``, raising
    ``ValueError`` with the reason for a combination it refuses. Remembered per distinct
    combination (keep it a pure function). A derived value may replace a field of the same
    name (babyweight's plurality, spelled by the gender)."""

    name: str
    inputs: tuple[str, ...]
    function: Callable[..., Any]


@dataclass(frozen=True)
class RecordContract:
    """What a pipeline's records hold: the fields checked, the values derived, the features the
    model takes, and the pipeline's names for what it writes.

    - ``name``: the model's name (an HTTP handler's default model), e.g. ``"babyweight"``.
    - ``fields``: the raw fields checked, in the order their problems are reported.
    - ``features``: the names the model (or feature step) takes, in order; default every field.
    - ``derived``: values computed from the checked fields (:class:`Derived`).
    - ``label``: the label's field, kept (as a float) when a record carries it.
    - ``key``: the field identifying a record (kept on its prediction); a record without one is
      keyed by a hash of the raw record. None: records have no key.
    - ``event_time``: a field or derived value holding the record's event time (seconds since
      the epoch); the pipeline stamps each record with it (windows use event time).
    - ``output``: the model's output that is the prediction (a signature output name).
    - ``prediction``: the prediction's column in the output rows.
    - ``table``: the warehouse table the rows go to by default (None: files only).
    - ``records``, ``rows``: what a checked record and an output row are called in the counts
      and the output files (``rows`` is the file prefix).
    - ``row_columns``: the output rows' columns; default the prediction rows' (:attr:`columns`).
    """

    name: str
    fields: tuple[Field, ...]
    features: tuple[str, ...] = ()
    derived: tuple[Derived, ...] = ()
    label: str | None = None
    key: str | None = "key"
    event_time: str | None = None
    output: str | None = None
    prediction: str = "prediction"
    table: str | None = None
    records: str = "records"
    rows: str = "predictions"
    row_columns: tuple[str, ...] = ()
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if not self.fields:
            raise ValueError(f"contract {self.name!r} has no fields")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"contract {self.name!r}: a field is listed twice in {names}")
        if not self.features:
            object.__setattr__(self, "features", tuple(names))
        known = set(names) | {d.name for d in self.derived}
        for d in self.derived:
            unknown = [i for i in d.inputs if i not in names and i not in known - {d.name}]
            if unknown:
                raise ValueError(f"contract {self.name!r}: {d.name} derives from unknown {unknown}")
        unknown = [f for f in (*self.features, self.event_time) if f and f not in known]
        if unknown:
            raise ValueError(
                f"contract {self.name!r}: {unknown} are neither fields nor derived values"
            )

    def __getstate__(self):  # the memo stays behind when a pipeline pickles the contract
        return {k: ({} if k == "_memo" else v) for k, v in self.__dict__.items()}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def columns(self) -> tuple[str, ...]:
        """The output rows' columns: ``row_columns``, or for predictions the key, the features,
        the prediction, and the ``window`` and ``pane`` that emitted it."""
        if self.row_columns:
            return self.row_columns
        key = (self.key,) if self.key else ()
        return (*key, *self.features, self.prediction, "window", "pane")

    @property
    def required(self) -> tuple[str, ...]:
        """The fields a record must carry."""
        return tuple(f.name for f in self.fields if f.required)

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"contract {self.name!r} has no field {name!r}")

    def check_field(self, f: Field, value: Any) -> Any:
        """:meth:`Field.check`, remembered per distinct text value (a file repeats a handful)."""
        if f.vectorised or not isinstance(value, str):
            return f.check(value)
        memo = self._memo.setdefault(f.name, {})
        found = memo.get(value)
        if found is None:
            found = f.check(value)  # errors are not remembered: raised each time
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[value] = found
        return found

    def derive(self, d: Derived, values: tuple) -> Any:
        """``d.function(*values)`` as a :class:`RecordError`, remembered per combination."""
        memo = self._memo.setdefault(("derived", d.name), {})
        try:
            found = memo.get(values)
        except TypeError:  # an unhashable input: not remembered
            found = None
        if found is not None:
            return found
        try:
            found = d.function(*values)
        except RecordError:
            raise
        except ValueError as err:
            raise RecordError(str(err)) from None
        try:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[values] = found
        except TypeError:
            pass
        return found

    def check(self, record: Mapping, raw: Any = None) -> dict:
        """A parsed record -> the model's input: the key (when the contract has one), the
        features, the event time and the label (when present). Raises :class:`RecordError`
        with the first problem: missing required fields (all named), then each field in order,
        then the derived values. ``raw`` (the record as it came) is hashed for a missing key."""
        get = record.get
        absent = [name for name in self.required if missing(get(name))]
        if absent:
            raise RecordError(f"missing field(s): {', '.join(absent)}")
        values = {f.name: self.check_field(f, get(f.name)) for f in self.fields}
        for d in self.derived:
            values[d.name] = self.derive(d, tuple(values[i] for i in d.inputs))
        out = {self.key: record_key(record, self.key, raw)} if self.key else {}
        for name in self.features:
            out[name] = values[name]
        if self.event_time and self.event_time not in out:
            out[self.event_time] = values[self.event_time]
        label = get(self.label) if self.label else None
        if not missing(label):
            try:
                out[self.label] = float(label)
            except (TypeError, ValueError):
                raise RecordError(f"{self.label} is not a number: {label!r}") from None
        return out


def record_key(record: Mapping, key: str, raw: Any = None) -> str:
    """The record's ``key`` field, or a hash of the raw record (the record itself when no raw
    form is given) when it has none."""
    value = record.get(key)
    if not missing(value):
        return str(value)
    raw = record if raw is None else raw
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]
