"""Loaded SavedModels: versions, their signatures (instances checked against them), version
names and the traffic split.

Each signature is loaded once (``tf.saved_model.load(path).signatures``) and called on batches
of instances; nothing here knows about babyweight: dtypes and shapes come from the signature.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from prodml.serving.batching import Batcher  # noqa: E402
from prodml.serving.errors import InvalidInput, NotFound  # noqa: E402

DT_NAMES = {
    tf.float16: "DT_HALF",
    tf.float32: "DT_FLOAT",
    tf.float64: "DT_DOUBLE",
    tf.int8: "DT_INT8",
    tf.int16: "DT_INT16",
    tf.int32: "DT_INT32",
    tf.int64: "DT_INT64",
    tf.uint8: "DT_UINT8",
    tf.string: "DT_STRING",
    tf.bool: "DT_BOOL",
}


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: tf.DType
    shape: tuple[int | None, ...] | None  # None: unknown rank
    kind: str = "other"  # string, bool, int, float or other: how a JSON value is checked
    np_dtype: object = None

    def describe(self) -> dict:
        """The TensorInfo of TF Serving's metadata JSON."""
        info: dict = {"dtype": DT_NAMES.get(self.dtype, f"DT_{self.dtype.name.upper()}")}
        if self.shape is None:
            info["tensor_shape"] = {"dim": [], "unknown_rank": True}
        else:
            info["tensor_shape"] = {
                "dim": [{"size": str(-1 if d is None else d), "name": ""} for d in self.shape],
                "unknown_rank": False,
            }
        info["name"] = self.name
        return info


def _spec(name: str, spec) -> Tensor:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    dtype = spec.dtype
    if dtype == tf.string:
        kind, np_dtype = "string", object
    elif dtype == tf.bool:
        kind, np_dtype = "bool", np.bool_
    elif dtype.is_integer:
        kind, np_dtype = "int", dtype.as_numpy_dtype
    elif dtype.is_floating:
        kind, np_dtype = "float", dtype.as_numpy_dtype
    else:
        kind, np_dtype = "other", getattr(dtype, "as_numpy_dtype", None)
    return Tensor(name, dtype, shape, kind, np_dtype)


# Which JSON values each kind of tensor takes (decided once per signature, checked per value;
# plain type tests, as this runs for every value of every request).
_FITS = {
    "string": lambda v: type(v) is str or (type(v) is dict and v.keys() == {"b64"}),
    "bool": lambda v: type(v) is bool,
    "int": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
    "float": lambda v: type(v) is int or type(v) is float,
    "other": lambda v: True,
}


# The JSON types every value of a kind may have without a closer look: a request whose values
# all have one of these passes with a single type test each (the common case, per request).
_PLAIN = {
    "string": frozenset({str}),
    "bool": frozenset({bool}),
    "int": frozenset({int}),
    "float": frozenset({int, float}),
}


def _check_values(t: Tensor, values: list) -> None:
    """Raise InvalidInput naming the instance, feature and expected dtype of the first value
    that does not fit ``t``."""
    plain = _PLAIN.get(t.kind)
    if plain is None:  # "other": anything goes
        return
    for value in values:
        if type(value) not in plain:
            break
    else:
        return
    fits = _FITS[t.kind]
    for i, value in enumerate(values):
        if type(value) is list:
            bad = _first_misfit(fits, value)
            if bad is _FITTING:
                continue
            value = bad
        elif fits(value):
            continue
        raise InvalidInput(
            f"instance {i}: feature {t.name!r} expects {t.dtype.name} "
            f"({DT_NAMES.get(t.dtype, t.dtype.name)}), got {type(value).__name__} {value!r}"[:300]
        )


_FITTING = object()


def _first_misfit(fits, values: list):
    for v in values:
        bad = _first_misfit(fits, v) if type(v) is list else (_FITTING if fits(v) else v)
        if bad is not _FITTING:
            return bad
    return _FITTING


def _to_bytes(value):
    if type(value) is str:
        return value.encode()
    if isinstance(value, list):
        return [_to_bytes(v) for v in value]
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid base64 in {{'b64': ...}}: {exc}") from None


class Signature:
    """One signature of one loaded version: its tensors, decoding of requests, a batcher."""

    def __init__(self, name: str, fn, max_batch_size: int, batch_timeout_s: float):
        self.name = name
        self.fn = fn
        inputs = fn.structured_input_signature[1]
        self.inputs = {k: _spec(k, s) for k, s in sorted(inputs.items())}
        self.outputs = {k: _spec(k, s) for k, s in sorted(fn.structured_outputs.items())}
        self.batchable = all(
            t.shape is not None and len(t.shape) >= 1 and t.shape[0] is None
            for t in self.inputs.values()
        )
        self.batcher = (
            Batcher(self._call, max_batch_size, batch_timeout_s) if self.batchable else None
        )

    def describe(self) -> dict:
        return {
            "inputs": {k: t.describe() for k, t in self.inputs.items()},
            "outputs": {k: t.describe() for k, t in self.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }

    # -- decoding ---------------------------------------------------------------------------
    def columns_from_instances(self, instances: list) -> tuple[dict[str, list], list | None]:
        """Row form -> one list per input; also the pass-through keys (None when absent)."""
        names = list(self.inputs)
        passthrough = "key" not in self.inputs
        keys: list | None = None
        cols: dict[str, list] = {n: [] for n in names}
        single = names[0] if len(names) == 1 else None
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict):
                if single is None:
                    raise InvalidInput(
                        f"instance {i} must be an object with the features {names}, "
                        f"got {type(inst).__name__}"
                    )
                cols[single].append(inst)
                continue
            if passthrough and "key" in inst:
                if keys is None:
                    if i:
                        raise InvalidInput(f"instance {i} has a 'key' but instance 0 has none")
                    keys = []
                keys.append(inst["key"])
            elif keys is not None:
                raise InvalidInput(f"instance {i} has no 'key' but instance 0 has one")
            given = len(inst) - (1 if passthrough and "key" in inst else 0)
            if given == len(names):
                try:
                    for n in names:
                        cols[n].append(inst[n])
                    continue
                except KeyError:
                    pass
            missing = [n for n in names if n not in inst]
            extra = sorted(
                k for k in inst if k not in self.inputs and not (passthrough and k == "key")
            )
            parts = []
            if missing:
                parts.append(f"missing feature(s) {missing}")
            if extra:
                parts.append(f"unexpected feature(s) {extra}")
            raise InvalidInput(
                f"instance {i}: {' and '.join(parts)}; signature {self.name!r} expects {names}"
            )
        return cols, keys

    def columns_from_inputs(self, inputs) -> tuple[dict[str, list], int]:
        """Columnar form -> one list per input and the batch size."""
        names = list(self.inputs)
        if not isinstance(inputs, dict):
            if len(names) != 1:
                raise InvalidInput(
                    f"'inputs' must be an object with the features {names}, got {type(inputs).__name__}"
                )
            inputs = {names[0]: inputs}
        missing = [n for n in names if n not in inputs]
        extra = sorted(k for k in inputs if k not in self.inputs)
        if missing or extra:
            parts = [f"missing feature(s) {missing}"] if missing else []
            parts += [f"unexpected feature(s) {extra}"] if extra else []
            raise InvalidInput(
                f"inputs: {' and '.join(parts)}; signature {self.name!r} expects {names}"
            )
        sizes = set()
        for n in names:
            if not isinstance(inputs[n], list):
                raise InvalidInput(
                    f"inputs: feature {n!r} must be a list of values (one per instance)"
                )
            sizes.add(len(inputs[n]))
        if len(sizes) != 1:
            raise InvalidInput(f"inputs: features have different lengths {sorted(sizes)}")
        return {n: inputs[n] for n in names}, sizes.pop()

    def to_arrays(self, cols: dict[str, list]) -> dict[str, np.ndarray]:
        arrays = {}
        for n, values in cols.items():
            t = self.inputs[n]
            _check_values(t, values)
            if t.kind == "string":
                arr = np.array(
                    [v.encode() if type(v) is str else _to_bytes(v) for v in values], dtype=object
                )
            else:
                arr = np.array(values, dtype=t.np_dtype)
            if t.shape is not None and (arr.ndim != len(t.shape) or arr.shape[1:] != t.shape[1:]):
                ok = arr.ndim == len(t.shape) and all(
                    d is None or d == a for d, a in zip(t.shape[1:], arr.shape[1:], strict=False)
                )
                if not ok:
                    want = [-1 if d is None else d for d in t.shape]
                    raise InvalidInput(
                        f"feature {n!r} has shape {list(arr.shape)} for the batch; "
                        f"the signature expects {want} (first dimension: instances)"
                    )
            arrays[n] = arr
        return arrays

    # -- calling ----------------------------------------------------------------------------
    def _call(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {n: tf.constant(a, dtype=self.inputs[n].dtype) for n, a in arrays.items()}
        try:
            out = self.fn(**feed)
        except tf.errors.InvalidArgumentError as exc:
            raise InvalidInput(
                f"the model rejected the input: {exc.message.splitlines()[0]}"
            ) from None
        return {k: v.numpy() for k, v in out.items()}

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Synchronous call (used where no event loop is involved, and to warm up)."""
        return self._call(arrays)


class Version:
    """One loaded SavedModel version."""

    def __init__(self, number: int, path: Path, max_batch_size: int, batch_timeout_s: float):
        self.number = number
        self.path = Path(path)
        self.loaded = tf.saved_model.load(str(path))
        self.signatures = {
            name: Signature(name, fn, max_batch_size, batch_timeout_s)
            for name, fn in self.loaded.signatures.items()
        }
        if not self.signatures:
            raise ValueError(f"{path} has no signatures to serve")
        self._warm_up()

    def _warm_up(self) -> None:
        """First calls trace and allocate; make them here, not in a client's request."""
        for sig in self.signatures.values():
            if not sig.batchable:
                continue
            arrays = {}
            for n, t in sig.inputs.items():
                shape = [1] + [d or 1 for d in t.shape[1:]]
                if t.dtype == tf.string:
                    arrays[n] = np.full(shape, b"", dtype=object)
                else:
                    arrays[n] = np.zeros(shape, dtype=t.dtype.as_numpy_dtype)
            try:
                sig.run(arrays)
            except Exception:  # noqa: BLE001 - a model may reject dummy values; serving will tell
                pass

    def signature(self, name: str | None) -> Signature:
        name = name or "serving_default"
        if name not in self.signatures:
            raise InvalidInput(
                f"signature_name {name!r} not found in version {self.number}; "
                f"available: {sorted(self.signatures)}"
            )
        return self.signatures[name]

    def close(self) -> None:
        for sig in self.signatures.values():
            if sig.batcher:
                sig.batcher.close()


class Routing:
    """An immutable traffic policy: a split between versions, chosen by smooth weighted
    round robin (deterministic: over any 100 consecutive requests a 90/10 split gives
    exactly 90 and 10)."""

    def __init__(self, split: dict[int, int]):
        self.split = {v: w for v, w in sorted(split.items()) if w > 0}
        self._current = dict.fromkeys(self.split, 0)
        self._total = sum(self.split.values())
        self._lock = threading.Lock()

    def choose(self) -> int:
        if len(self.split) == 1:
            return next(iter(self.split))
        with self._lock:
            for v, w in self.split.items():
                self._current[v] += w
            best = max(self._current, key=self._current.__getitem__)
            self._current[best] -= self._total
            return best


_NUMBER = re.compile(r"v?(\d+)")


def version_number(value) -> int | None:
    """2, '2' and 'v2' are version 2; anything else is not a number (maybe a name)."""
    if type(value) is int:
        return value if value >= 0 else None
    m = _NUMBER.fullmatch(str(value))
    return int(m.group(1)) if m else None


@dataclass
class Model:
    """A served model: its versions, their names (TF Serving's version labels, ML Engine's
    version names, Vertex's version aliases: one namespace) and the traffic split."""

    name: str
    versions: dict[int, Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    routing: Routing | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _known(self) -> str:
        return f"versions: {sorted(self.versions)}, names: {sorted(self.labels)}"

    def version(self, number: int | None = None) -> Version:
        """Version ``number``, or the one the traffic split picks for this request."""
        if number is None:
            number = self.routing.choose()
        versions = self.versions  # one read: a concurrent swap replaces the dict, never edits it
        try:
            return versions[number]
        except KeyError:
            raise NotFound(
                f"model {self.name!r} has no version {str(number)!r}; {self._known()}"
            ) from None

    def labelled(self, label: str) -> Version:
        """TF Serving's ``/labels/<label>``: names only."""
        number = self.labels.get(label)
        if number is None:
            raise NotFound(
                f"model {self.name!r} has no version label {label!r}; labels: {sorted(self.labels)}"
            )
        return self.version(number)

    def resolve(self, ref) -> int:
        """A version name or number (2, '2', 'v2') -> the number of a loaded version."""
        if isinstance(ref, str) and ref in self.labels:
            return self.labels[ref]
        number = version_number(ref)
        if number is None:
            raise NotFound(f"model {self.name!r} has no version named {ref!r}; {self._known()}")
        if number not in self.versions:
            raise NotFound(f"model {self.name!r} has no version {str(ref)!r}; {self._known()}")
        return number

    def named(self, ref) -> Version:
        """ML Engine's ``versions/<name>``: a version name, or a number."""
        return self.version(self.resolve(ref))

    @property
    def traffic(self) -> dict[str, int]:
        return {str(v): w for v, w in self.routing.split.items()}

    def add(self, version: Version, names: list[str] = ()) -> Version | None:
        """Add (or replace) a loaded version atomically; returns the replaced one, if any."""
        for name in names:
            check_name(name)
        with self.lock:
            old = self.versions.get(version.number)
            versions = dict(self.versions)
            versions[version.number] = version
            self.versions = versions
            if names:
                self.labels = {**self.labels, **dict.fromkeys(names, version.number)}
            if self.routing is None:
                self.routing = Routing({version.number: 100})
        return old

    def split(self, split: dict[str, int], extra: dict[str, int] | None = None) -> dict[int, int]:
        """A validated trafficSplit (keys: numbers or names) -> {version number: percentage}.
        ``extra`` names versions about to be added (deployModel) as name -> number."""
        parsed: dict[int, int] = {}
        extra = extra or {}
        for key, weight in split.items():
            if key in extra:
                number = extra[key]
            else:
                number = self.labels.get(key, version_number(key))
                if number is None or (number not in self.versions and number not in extra.values()):
                    raise InvalidInput(
                        f"trafficSplit names version {key!r}, which is not loaded; {self._known()}"
                    )
            parsed[number] = parsed.get(number, 0) + weight
        return parsed

    def set_traffic(self, split: dict[int, int]) -> None:
        missing = sorted(set(split) - set(self.versions))
        if missing:
            raise InvalidInput(f"trafficSplit names versions {missing}, which are not loaded")
        with self.lock:
            self.routing = Routing(split)

    def set_labels(self, labels: dict) -> None:
        parsed = {}
        for label, ref in labels.items():
            check_name(label)
            number = version_number(ref)
            if number is None or number not in self.versions:
                raise InvalidInput(
                    f"versionLabels: label {label!r} names version {ref!r}, which is not loaded; "
                    f"versions: {sorted(self.versions)}"
                )
            parsed[label] = number
        self.labels = parsed

    def remove(self, number: int) -> Version:
        with self.lock:
            if number not in self.versions:
                raise NotFound(f"model {self.name!r} has no version {number}")
            if self.routing.split.get(number):
                raise InvalidInput(
                    f"version {number} still receives {self.routing.split[number]}% of the "
                    "traffic; move its traffic elsewhere first (trafficSplit)"
                )
            names = sorted(k for k, v in self.labels.items() if v == number)
            if names:
                raise InvalidInput(
                    f"version {number} still carries the name(s) {names}; relabel first"
                )
            versions = dict(self.versions)
            old = versions.pop(number)
            self.versions = versions
        return old


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def check_name(name: str) -> str:
    """A version name: letters, digits, '_', '.', '-', not starting with a digit, and never a
    version number in disguise ('v2'), so a name and a number cannot mean two versions."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or version_number(name) is not None:
        raise InvalidInput(
            f"{name!r} cannot be a version name: use letters, digits, '_', '.' or '-', starting "
            "with a letter, and not a version number such as 'v2'"
        )
    return name


_op_counter = itertools.count(1)


def next_operation_id() -> int:
    return next(_op_counter)
