"""The protocol-neutral predict core: decode -> infer -> encode.

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
from prodml.serving.model import Signature, Version


@dataclass
class Prediction:
    version: Version
    outputs: dict[str, np.ndarray]  # output name -> array, first dimension: instances
    n: int
    keys: list | None  # the instances' pass-through 'key's, when they carry one


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
        cols, keys = sig.columns_from_instances(instances)
        n = len(instances)
    else:
        cols, n = sig.columns_from_inputs(inputs)
        if n == 0:
            raise InvalidInput("'inputs' is empty: send at least one instance")
        if n > max_instances:
            raise InvalidInput(
                f"too many instances: {n} > the limit of {max_instances} per request"
            )
    outputs = await _infer(sig, sig.to_arrays(cols))
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
