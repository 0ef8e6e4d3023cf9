"""Vertex AI's custom-training container contract, as the babyweight trainer reads it.

A Vertex AI custom training job tells the container where things go through environment
variables: ``AIP_MODEL_DIR`` (the SavedModel, at its root: ``Model.upload`` reads it from
there), ``AIP_CHECKPOINT_DIR``, ``AIP_TENSORBOARD_LOG_DIR``, and for a managed dataset
``AIP_TRAINING_DATA_URI``, ``AIP_VALIDATION_DATA_URI`` and ``AIP_TEST_DATA_URI``, each a
``bq://project.dataset.table`` or a pattern of CSV / JSON-lines files (``AIP_DATA_FORMAT``:
``bigquery``, ``csv`` or ``jsonl``). :func:`environment` reads them and :func:`read_uri` reads
the rows one names; ``prodml.babyweight.task`` does the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from prodml.babyweight import contract

#: Vertex AI's custom-training container variables the trainer honours
AIP_VARIABLES = (
    "AIP_MODEL_DIR",
    "AIP_CHECKPOINT_DIR",
    "AIP_TENSORBOARD_LOG_DIR",
    "AIP_TRAINING_DATA_URI",
    "AIP_VALIDATION_DATA_URI",
    "AIP_TEST_DATA_URI",
    "AIP_DATA_FORMAT",
)


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Vertex AI container variables (:data:`AIP_VARIABLES`) that are set and non-empty."""
    environ = os.environ if environ is None else environ
    return {k: environ[k].strip() for k in AIP_VARIABLES if environ.get(k, "").strip()}


def read_uri(uri: str, data_format: str | None = None, client=None) -> tuple[pd.DataFrame, dict]:
    """Rows from a Vertex AI data URI and how to name their source for tracking:
    ``bq://project.dataset.table`` is read with a query through the warehouse
    (``{"query": sql}``); anything else is CSV or JSON lines (``data_format``, else the file
    suffix), one file or a ``*`` pattern, local or in object storage (``{"uri": uri}``)."""
    data_format = None if data_format in (None, "bigquery") else data_format
    if uri.startswith("bq://"):
        if client is None:
            from prodml import warehouse

            client = warehouse.client()
        sql = f"SELECT * FROM `{uri.removeprefix('bq://')}`"
        frame = client.query(sql).to_dataframe()
        source = {"query": sql}
    else:
        from prodml import storage

        fs = storage.filesystem(uri)
        files = sorted(fs.glob(uri)) if any(c in uri for c in "*?[") else [uri]
        if not files or not all(fs.isfile(f) for f in files):
            raise FileNotFoundError(f"no data file matches {uri}")
        fmt = (data_format or ("jsonl" if uri.endswith((".jsonl", ".json")) else "csv")).lower()
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"AIP_DATA_FORMAT {fmt!r} is not one of csv, jsonl, bigquery")
        frames = []
        for name in files:
            with fs.open(name) as f:
                frames.append(pd.read_csv(f) if fmt == "csv" else pd.read_json(f, lines=True))
        frame = pd.concat(frames, ignore_index=True)
        source = {"uri": uri}
    missing = [c for c in (contract.LABEL, *contract.FEATURES) if c not in frame.columns]
    if missing:
        raise ValueError(f"{uri} lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{uri} holds no rows")
    return frame, source


def check_splits(vertex: Mapping[str, str]) -> bool:
    """True when the variables name training data the trainer can use; a training URI without
    a validation URI is refused (the trainer validates on a split of its own)."""
    if "AIP_TRAINING_DATA_URI" not in vertex:
        return False
    if "AIP_VALIDATION_DATA_URI" not in vertex:
        raise ValueError(
            "AIP_TRAINING_DATA_URI is set but AIP_VALIDATION_DATA_URI is not: the trainer "
            "validates on a split of its own (give the job a validation fraction)"
        )
    return True


__all__ = ["AIP_VARIABLES", "check_splits", "environment", "read_uri"]
