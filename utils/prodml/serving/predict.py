"""The protocol-neutral predict core: decode -> infer -> encode.

Decoding turns a request's instances (row form) or inputs (columnar form) into one array per
input of the signature, each value checked against the input's dtype and shape (a bad one is
an :class:`~prodml.serving.errors.InvalidInput` naming the instance and feature).

The wire modules (:mod:`~prodml.serving.tfserving`, :mod:`~prodml.serving.mlengine`,
:mod:`~prodml.serving.vertex`) parse their request envelope, call :func:`predict`, and shape
its :class:`Prediction` with :func:`rows` or :func:`columns`. Outputs are returned per instance
as the model gives them: a signature output of shape ``[None]`` is a scalar per instance,
``[None, 1]`` a one-element list (as TF Serving and ML Engine answer), nothing is squeezed.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import numpy as np

from prodml.serving.errors import InvalidInput
from prodml.serving.model import DT_NAMES, Signature, Tensor, Version


@dataclass
class Prediction:
    version: Version
    outputs: dict[str, np.ndarray]  # output name -> array, first dimension: instances
    n: int
    keys: list | None  # the instances' pass-through 'key's, when they carry one


# -- decode -----------------------------------------------------------------------------------
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


def columns_from_instances(sig: Signature, instances: list) -> tuple[dict[str, list], list | None]:
    """Row form -> one list per input; also the pass-through keys (None when absent)."""
    names = list(sig.inputs)
    passthrough = "key" not in sig.inputs
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
        extra = sorted(k for k in inst if k not in sig.inputs and not (passthrough and k == "key"))
        parts = []
        if missing:
            parts.append(f"missing feature(s) {missing}")
        if extra:
            parts.append(f"unexpected feature(s) {extra}")
        raise InvalidInput(
            f"instance {i}: {' and '.join(parts)}; signature {sig.name!r} expects {names}"
        )
    return cols, keys


def columns_from_inputs(sig: Signature, inputs) -> tuple[dict[str, list], int]:
    """Columnar form -> one list per input and the batch size."""
    names = list(sig.inputs)
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise InvalidInput(
                f"'inputs' must be an object with the features {names}, got {type(inputs).__name__}"
            )
        inputs = {names[0]: inputs}
    missing = [n for n in names if n not in inputs]
    extra = sorted(k for k in inputs if k not in sig.inputs)
    if missing or extra:
        parts = [f"missing feature(s) {missing}"] if missing else []
        parts += [f"unexpected feature(s) {extra}"] if extra else []
        raise InvalidInput(f"inputs: {' and '.join(parts)}; signature {sig.name!r} expects {names}")
    sizes = set()
    for n in names:
        if not isinstance(inputs[n], list):
            raise InvalidInput(f"inputs: feature {n!r} must be a list of values (one per instance)")
        sizes.add(len(inputs[n]))
    if len(sizes) != 1:
        raise InvalidInput(f"inputs: features have different lengths {sorted(sizes)}")
    return {n: inputs[n] for n in names}, sizes.pop()


def to_arrays(sig: Signature, cols: dict[str, list]) -> dict[str, np.ndarray]:
    """One list per input -> one array per input, each value checked against the signature."""
    arrays = {}
    for n, values in cols.items():
        t = sig.inputs[n]
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


# -- infer ------------------------------------------------------------------------------------


async def predict(
    version: Version,
    signature_name: str,
    *,
    instances: list | None = None,
    inputs=None,
    max_instances: int,
) -> Prediction:
    """Decode row-form ``instances`` or columnar ``inputs``, call the signature, return outputs."""
    sig = version.signature(signature_name)
    keys = None
    if instances is not None:
        cols, keys = columns_from_instances(sig, instances)
        n = len(instances)
    else:
        cols, n = columns_from_inputs(sig, inputs)
        if n == 0:
            raise InvalidInput("'inputs' is empty: send at least one instance")
        if n > max_instances:
            raise InvalidInput(
                f"too many instances: {n} > the limit of {max_instances} per request"
            )
    outputs = await _infer(sig, to_arrays(sig, cols))
    return Prediction(version, outputs, n, keys)


async def _infer(sig: Signature, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if sig.batcher is None:
        return await asyncio.to_thread(sig.run, arrays)
    outputs = await sig.batcher.infer(arrays, len(next(iter(arrays.values()))))
    if outputs is None:  # version unloaded meanwhile
        return await asyncio.to_thread(sig.run, arrays)
    return outputs


# -- encode -----------------------------------------------------------------------------------
def _decode(value):
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    return value


def as_list(arr: np.ndarray) -> list:
    """JSON-ready values; float32 keeps its shortest decimal form (7.21, not 7.210000038...)."""
    if arr.dtype == object:
        flat = [_decode(v) for v in arr.reshape(-1)]
    elif arr.dtype in (np.float32, np.float16):
        flat = [float(str(v)) for v in arr.reshape(-1)]
    else:
        return arr.tolist()
    if arr.ndim == 1:
        return flat
    return np.array(flat, dtype=object).reshape(arr.shape).tolist()


def rows(p: Prediction, objects: bool) -> list:
    """Row form: one prediction per instance. With ``objects`` (ML Engine, Vertex) each is an
    object keyed by output name; otherwise (TF Serving) a one-output signature gives bare values."""
    cols = {k: as_list(v) for k, v in p.outputs.items()}
    if len(cols) == 1 and not objects and p.keys is None:
        return next(iter(cols.values()))
    names = list(cols)
    out = [{k: cols[k][i] for k in names} for i in range(p.n)]
    if p.keys is not None:
        for row, key in zip(out, p.keys, strict=True):
            row["key"] = key
    return out


def columns(p: Prediction):
    """Columnar form (TF Serving 'outputs'): one list per output, bare for a single output."""
    cols = {k: as_list(a) for k, a in p.outputs.items()}
    return next(iter(cols.values())) if len(cols) == 1 else cols
