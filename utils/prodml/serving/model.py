"""Loaded SavedModels: versions, their signatures (their tensors, and calling them), version
names and the traffic split. Requests are decoded against a signature in :mod:`.predict`.

Each signature is loaded once (``tf.saved_model.load(path).signatures``) and called on batches
of instances; nothing here knows about babyweight: dtypes and shapes come from the signature.
"""

from __future__ import annotations

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


class Signature:
    """One signature of one loaded version: its tensors, the call, a batcher."""

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
