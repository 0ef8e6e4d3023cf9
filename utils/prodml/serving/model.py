"""SavedModels in memory: versions, their signatures, request decoding and batching.

Each signature is loaded once (``tf.saved_model.load(path).signatures``) and called on batches
of instances; nothing here knows about babyweight: dtypes and shapes come from the signature.
"""

from __future__ import annotations

import base64
import itertools
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


class ClientError(Exception):
    """A caller's mistake: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


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
    return Tensor(name, spec.dtype, shape)


def _check_value(feature: str, dtype: tf.DType, value, index: int):
    """Raise a ClientError naming the feature and expected dtype when value does not fit."""
    if isinstance(value, list):
        for v in value:
            _check_value(feature, dtype, v, index)
        return
    ok = True
    if dtype == tf.string:
        ok = isinstance(value, str) or (isinstance(value, dict) and set(value) == {"b64"})
    elif dtype == tf.bool:
        ok = isinstance(value, bool)
    elif dtype.is_integer:
        ok = type(value) is int or (type(value) is float and value.is_integer())
    elif dtype.is_floating:
        ok = type(value) in (int, float)
    if not ok:
        raise ClientError(
            f"instance {index}: feature {feature!r} expects {dtype.name} "
            f"({DT_NAMES.get(dtype, dtype.name)}), got {type(value).__name__} {value!r}"[:300]
        )


def _to_bytes(value):
    if isinstance(value, list):
        return [_to_bytes(v) for v in value]
    if isinstance(value, dict):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise ClientError(f"invalid base64 in {{'b64': ...}}: {exc}") from None
    return value.encode()


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
                    raise ClientError(
                        f"instance {i} must be an object with the features {names}, "
                        f"got {type(inst).__name__}"
                    )
                cols[single].append(inst)
                continue
            if passthrough and "key" in inst:
                if keys is None:
                    if i:
                        raise ClientError(f"instance {i} has a 'key' but instance 0 has none")
                    keys = []
                keys.append(inst["key"])
            elif keys is not None:
                raise ClientError(f"instance {i} has no 'key' but instance 0 has one")
            given = len(inst) - (1 if passthrough and "key" in inst else 0)
            if given != len(names) or any(n not in inst for n in names):
                missing = [n for n in names if n not in inst]
                extra = sorted(
                    k for k in inst if k not in self.inputs and not (passthrough and k == "key")
                )
                parts = []
                if missing:
                    parts.append(f"missing feature(s) {missing}")
                if extra:
                    parts.append(f"unexpected feature(s) {extra}")
                raise ClientError(
                    f"instance {i}: {' and '.join(parts)}; signature {self.name!r} expects {names}"
                )
            for n in names:
                cols[n].append(inst[n])
        return cols, keys

    def columns_from_inputs(self, inputs) -> tuple[dict[str, list], int]:
        """Columnar form -> one list per input and the batch size."""
        names = list(self.inputs)
        if not isinstance(inputs, dict):
            if len(names) != 1:
                raise ClientError(
                    f"'inputs' must be an object with the features {names}, got {type(inputs).__name__}"
                )
            inputs = {names[0]: inputs}
        missing = [n for n in names if n not in inputs]
        extra = sorted(k for k in inputs if k not in self.inputs)
        if missing or extra:
            parts = [f"missing feature(s) {missing}"] if missing else []
            parts += [f"unexpected feature(s) {extra}"] if extra else []
            raise ClientError(
                f"inputs: {' and '.join(parts)}; signature {self.name!r} expects {names}"
            )
        sizes = set()
        for n in names:
            if not isinstance(inputs[n], list):
                raise ClientError(
                    f"inputs: feature {n!r} must be a list of values (one per instance)"
                )
            sizes.add(len(inputs[n]))
        if len(sizes) != 1:
            raise ClientError(f"inputs: features have different lengths {sorted(sizes)}")
        return {n: inputs[n] for n in names}, sizes.pop()

    def to_arrays(self, cols: dict[str, list]) -> dict[str, np.ndarray]:
        arrays = {}
        for n, values in cols.items():
            t = self.inputs[n]
            for i, v in enumerate(values):
                _check_value(n, t.dtype, v, i)
            if t.dtype == tf.string:
                arr = np.array(_to_bytes(values), dtype=object)
            else:
                arr = np.array(values, dtype=t.dtype.as_numpy_dtype)
            if t.shape is not None:
                ok = arr.ndim == len(t.shape) and all(
                    d is None or d == a for d, a in zip(t.shape[1:], arr.shape[1:], strict=False)
                )
                if not ok:
                    want = [-1 if d is None else d for d in t.shape]
                    raise ClientError(
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
            raise ClientError(
                f"the model rejected the input: {exc.message.splitlines()[0]}"
            ) from None
        return {k: v.numpy() for k, v in out.items()}

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Synchronous call (used where no event loop is involved, and to warm up)."""
        return self._call(arrays)


class Batcher:
    """Gathers the instances of concurrent requests and calls the signature once per batch.

    A request's arrays go on a queue. The batching thread takes the first waiting request,
    then adds others that are already queued (or arrive within ``timeout_s``) until
    ``max_batch_size`` instances; it calls the signature once and hands each request its slice.
    With ``timeout_s == 0`` an idle server answers a lone request at once, and requests that
    arrive while the model is busy form the next batch.
    """

    _STOP = object()

    def __init__(self, fn, max_batch_size: int, timeout_s: float):
        self.fn = fn
        self.max_batch_size = max(1, max_batch_size)
        self.timeout_s = max(0.0, timeout_s)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.closed = False
        self.batches = 0
        self.instances = 0
        self.thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self.thread.start()

    def submit(self, arrays: dict[str, np.ndarray], n: int, done) -> bool:
        """Queue a request; ``done(result_or_exception)`` is called from the batching thread.

        Returns False when the batcher is closed (the caller then calls the signature itself).
        """
        with self.lock:
            if self.closed:
                return False
            self.queue.put((arrays, n, done))
        return True

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.queue.put(self._STOP)

    def _loop(self) -> None:
        held = None
        while True:
            item = held if held is not None else self.queue.get()
            held = None
            if item is self._STOP:
                return
            batch = [item]
            total = item[1]
            deadline = time.monotonic() + self.timeout_s
            stop = False
            while total < self.max_batch_size:
                try:
                    remaining = deadline - time.monotonic()
                    nxt = (
                        self.queue.get(timeout=remaining)
                        if remaining > 0
                        else self.queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is self._STOP:
                    stop = True
                    break
                if total + nxt[1] > self.max_batch_size:
                    held = nxt
                    break
                batch.append(nxt)
                total += nxt[1]
            self._run(batch)
            if stop:
                return

    def _run(self, batch) -> None:
        try:
            if len(batch) == 1:
                results = [self.fn(batch[0][0])]
            else:
                names = batch[0][0].keys()
                joined = {n: np.concatenate([b[0][n] for b in batch]) for n in names}
                out = self.fn(joined)
                results, start = [], 0
                for _, n, _ in batch:
                    results.append({k: v[start : start + n] for k, v in out.items()})
                    start += n
        except Exception as exc:  # handed to every waiting request
            for _, _, done in batch:
                done(exc)
            return
        self.batches += 1
        self.instances += sum(b[1] for b in batch)
        for (_, _, done), result in zip(batch, results, strict=True):
            done(result)


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
            raise ClientError(
                f"signature_name {name!r} not found in version {self.number}; "
                f"available: {sorted(self.signatures)}"
            )
        return self.signatures[name]

    def close(self) -> None:
        for sig in self.signatures.values():
            if sig.batcher:
                sig.batcher.close()


def find_versions(export_dir: str | Path) -> dict[int, Path]:
    """A SavedModel dir (one version) or a base dir of integer version subdirs (all of them)."""
    export_dir = Path(export_dir).expanduser()
    if not export_dir.is_dir():
        raise FileNotFoundError(f"export directory {export_dir} does not exist")
    if (export_dir / "saved_model.pb").is_file():
        number = int(export_dir.name) if export_dir.name.isdigit() else 1
        return {number: export_dir}
    versions = {
        int(p.name): p
        for p in export_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()
    }
    if not versions:
        raise FileNotFoundError(
            f"{export_dir} is neither a SavedModel (no saved_model.pb) nor a base directory "
            "of integer version subdirectories holding SavedModels"
        )
    return dict(sorted(versions.items()))


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


@dataclass
class Model:
    """A served model: its versions, version labels and traffic split."""

    name: str
    versions: dict[int, Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    routing: Routing | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def version(self, number: int | str | None = None, label: str | None = None) -> Version:
        if label is not None:
            if label not in self.labels:
                raise ClientError(
                    f"model {self.name!r} has no version label {label!r}; labels: {sorted(self.labels)}",
                    404,
                )
            number = self.labels[label]
        if number is None:
            number = self.routing.choose()
        versions = self.versions  # one read: a concurrent swap replaces the dict, never edits it
        try:
            return versions[int(number)]
        except (KeyError, ValueError):
            raise ClientError(
                f"model {self.name!r} has no version {number!r}; versions: {sorted(versions)}", 404
            ) from None

    @property
    def traffic(self) -> dict[str, int]:
        return {str(v): w for v, w in self.routing.split.items()}

    def add(self, version: Version) -> Version | None:
        """Add (or replace) a loaded version atomically; returns the replaced one, if any."""
        with self.lock:
            old = self.versions.get(version.number)
            versions = dict(self.versions)
            versions[version.number] = version
            self.versions = versions
            if self.routing is None:
                self.routing = Routing({version.number: 100})
        return old

    def set_traffic(self, split: dict) -> None:
        parsed = parse_split(split, self.versions)
        with self.lock:
            self.routing = Routing(parsed)

    def set_labels(self, labels: dict) -> None:
        if not isinstance(labels, dict):
            raise ClientError("'versionLabels' must be an object of label -> version")
        parsed = {}
        for label, v in labels.items():
            number = _version_number(v, "versionLabels")
            if number not in self.versions:
                raise ClientError(
                    f"versionLabels: label {label!r} names version {v!r}, which is not loaded; versions: {sorted(self.versions)}"
                )
            parsed[str(label)] = number
        self.labels = parsed

    def remove(self, number: int) -> Version:
        with self.lock:
            if number not in self.versions:
                raise ClientError(f"model {self.name!r} has no version {number}", 404)
            if self.routing.split.get(number):
                raise ClientError(
                    f"version {number} still receives {self.routing.split[number]}% of the traffic; "
                    "move its traffic elsewhere first (trafficSplit)"
                )
            if number in self.labels.values():
                raise ClientError(f"version {number} still carries a version label; relabel first")
            versions = dict(self.versions)
            old = versions.pop(number)
            self.versions = versions
        return old


def _version_number(value, where: str) -> int:
    text = str(value)
    m = re.fullmatch(r"v?(\d+)", text)
    if not m:
        raise ClientError(f"{where}: {value!r} is not a version number (e.g. 2 or 'v2')")
    return int(m.group(1))


def parse_split(split, versions: dict[int, Version]) -> dict[int, int]:
    """Vertex's trafficSplit: version id -> percentage, integers summing to 100."""
    if not isinstance(split, dict) or not split:
        raise ClientError("'trafficSplit' must be a non-empty object of version -> percentage")
    parsed = {}
    for k, w in split.items():
        v = _version_number(k, "trafficSplit")
        if v not in versions:
            raise ClientError(
                f"trafficSplit names version {k!r}, which is not loaded; versions: {sorted(versions)}"
            )
        if type(w) is not int or w < 0:
            raise ClientError(
                f"trafficSplit[{k!r}] must be a non-negative integer percentage, got {w!r}"
            )
        parsed[v] = w
    if sum(parsed.values()) != 100:
        raise ClientError(f"trafficSplit percentages must sum to 100, got {sum(parsed.values())}")
    return parsed


_op_counter = itertools.count(1)


def next_operation_id() -> int:
    return next(_op_counter)
