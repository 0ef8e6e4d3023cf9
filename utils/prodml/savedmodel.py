"""SavedModels on disk: find an export's versions, load a signature, call it on rows.

The one place that knows TF Serving's layout (``<base>/<integer version>/saved_model.pb``, the
highest number served) and how to feed a signature Python rows. The trainer, the pipelines'
model handler, the Airflow DAG and the server all go through it.

::

    from prodml import savedmodel

    savedmodel.versions(base)            # {1700000000: Path(base/1700000000), ...}, ascending
    path = savedmodel.latest(base)       # the newest version's folder
    serve = savedmodel.load_signature(path)
    savedmodel.predict_rows(serve, [{"is_male": "True", "mother_age": 26.0, ...}])
    # -> [{"weight": [7.1]}]

Folders are local paths (returned as :class:`~pathlib.Path`) or object-store URLs such as
``gs://bucket/models/babyweight`` (returned as ``str``, read through fsspec). Importing this
module does not import TensorFlow; loading a signature does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SAVED_MODEL = "saved_model.pb"
DEFAULT_SIGNATURE = "serving_default"

PathLike = str | os.PathLike


def _is_url(path: PathLike) -> bool:
    return isinstance(path, str) and re.match(r"^[a-z][a-z0-9+.-]*://", path) is not None


def _fs(url: str):
    from prodml import storage

    return storage.filesystem(url)


def _join(base: PathLike, name: str) -> Path | str:
    return f"{str(base).rstrip('/')}/{name}" if _is_url(base) else Path(base) / name


def _is_dir(path: PathLike) -> bool:
    return _fs(path).isdir(path) if _is_url(path) else Path(path).is_dir()


def _is_file(path: PathLike) -> bool:
    return _fs(path).isfile(path) if _is_url(path) else Path(path).is_file()


def is_savedmodel(path: PathLike) -> bool:
    """True when ``path`` is a SavedModel folder (it holds ``saved_model.pb``)."""
    return _is_file(_join(path, SAVED_MODEL))


def versions(export_dir: PathLike) -> dict[int, Path | str]:
    """The versions under an export base folder: ``{number: folder}`` for every subfolder named
    by an integer that holds a SavedModel, in ascending order. ``{}`` when there is none (or
    the folder does not exist yet)."""
    if not _is_dir(export_dir):
        return {}
    if _is_url(export_dir):
        names = [
            p.rstrip("/").rsplit("/", 1)[-1] for p in _fs(export_dir).ls(export_dir, detail=False)
        ]
    else:
        names = [p.name for p in Path(export_dir).iterdir()]
    found = {int(n): _join(export_dir, n) for n in names if n.isdigit()}
    return {n: found[n] for n in sorted(found) if is_savedmodel(found[n])}


def latest(export_dir: PathLike) -> Path | str:
    """The newest version's folder under ``export_dir``, as TF Serving picks it. Raises
    :class:`FileNotFoundError` naming the folder when it holds no version."""
    found = versions(export_dir)
    if not found:
        why = (
            "does not exist"
            if not _is_dir(export_dir)
            else "holds no numbered version folder with a saved_model.pb"
        )
        raise FileNotFoundError(
            f"no SavedModel version under {str(export_dir)!r}: the folder {why}"
        )
    return found[max(found)]


def next_version(export_dir: PathLike, at_least: int = 1) -> int:
    """The number for a new version: one more than the newest under ``export_dir``, and at least
    ``at_least`` (the trainer passes the unix time), so versions only ever increase."""
    found = versions(export_dir)
    return max(at_least, max(found, default=0) + 1)


def resolve(path: PathLike) -> Path | str:
    """``path`` itself when it is a SavedModel folder, else its newest version (:func:`latest`)."""
    if is_savedmodel(path):
        return Path(path) if not _is_url(path) else str(path).rstrip("/")
    return latest(path)


class Signature:
    """A loaded signature, the object that owns its variables (kept alive with it), and its
    input specs. Call it with tensors as the signature takes them: ``signature(**tensors)``."""

    def __init__(self, path: Path | str, name: str, loaded: Any):
        if name not in loaded.signatures:
            raise KeyError(
                f"SavedModel {str(path)!r} has no signature {name!r}; it has "
                f"{sorted(loaded.signatures)}"
            )
        self.path, self.name, self.loaded = path, name, loaded
        self.fn = loaded.signatures[name]
        #: input name -> tf.TensorSpec
        self.inputs: dict = dict(self.fn.structured_input_signature[1])
        #: output name -> tf.TensorSpec
        self.outputs: dict = dict(self.fn.structured_outputs)

    def __call__(self, **tensors):
        return self.fn(**tensors)

    def __repr__(self) -> str:
        return f"Signature({str(self.path)!r}, {self.name!r}, inputs={sorted(self.inputs)})"


def load_signature(path: PathLike, name: str = DEFAULT_SIGNATURE) -> Signature:
    """Load signature ``name`` of the SavedModel at ``path`` (a SavedModel folder, or an export
    base folder: its newest version)."""
    import tensorflow as tf

    folder = resolve(path)
    return Signature(folder, name, tf.saved_model.load(str(folder)))


def to_tensors(signature: Signature, rows: Sequence[Mapping]) -> dict:
    """Rows (dicts of Python values) -> one tensor per signature input, in the input's dtype.
    String inputs take ``str(value)`` (``True`` -> ``"True"``). Raises :class:`KeyError` naming
    the first row that lacks an input."""
    import tensorflow as tf

    tensors = {}
    for name, spec in signature.inputs.items():
        try:
            values = [row[name] for row in rows]
        except KeyError:
            index = next(i for i, row in enumerate(rows) if name not in row)
            raise KeyError(
                f"row {index} has no {name!r}; the signature {signature.name!r} takes "
                f"{sorted(signature.inputs)}"
            ) from None
        if spec.dtype == tf.string:
            values = [v if isinstance(v, bytes) else str(v) for v in values]
        tensors[name] = tf.constant(values, dtype=spec.dtype)
    return tensors


def predict_columns(signature: Signature, rows: Sequence[Mapping]) -> dict:
    """Call ``signature`` on ``rows`` in one batch; returns each output as a NumPy array whose
    first axis is the row (the fast path for callers that want arrays, e.g. a Beam handler)."""
    if not rows:
        return {name: [] for name in signature.outputs}
    return {name: t.numpy() for name, t in signature(**to_tensors(signature, rows)).items()}


def predict_rows(signature: Signature, rows: Sequence[Mapping]) -> list[dict]:
    """Call ``signature`` on ``rows`` in one batch; one dict per row of its outputs as Python
    values, the JSON TF Serving answers (``{"weight": [7.1]}`` for an output of shape
    ``[None, 1]``; strings decoded from UTF-8)."""
    columns = {name: _python(array) for name, array in predict_columns(signature, rows).items()}
    return [{name: values[i] for name, values in columns.items()} for i in range(len(rows))]


def _python(array) -> list:
    values = array.tolist() if hasattr(array, "tolist") else list(array)
    return (
        _decode(values)
        if getattr(array, "dtype", None) is not None and array.dtype.kind == "O"
        else values
    )


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


__all__ = [
    "DEFAULT_SIGNATURE",
    "SAVED_MODEL",
    "Signature",
    "is_savedmodel",
    "latest",
    "load_signature",
    "next_version",
    "predict_columns",
    "predict_rows",
    "resolve",
    "to_tensors",
    "versions",
]
