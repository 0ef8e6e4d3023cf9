"""What a run read and which code it ran: dataset inputs with a content digest, code version.

A training run records the rows it read as an MLflow dataset input: where they came from (the
warehouse query, or a file URI), how many, and a digest of their content. The digest is
computed from every row and does not depend on row order, so the same query over the same
table gives the same digest in every run; ``mlflow.search_runs(filter_string="dataset.digest
= '...'")`` then finds every run that trained on those rows (lineage forward from a dataset).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import warnings
from typing import Any

import numpy as np
import pandas as pd

from prodml import config

#: run tags holding the code version (the first is MLflow's own name for it)
GIT_COMMIT_TAG = "mlflow.source.git.commit"
PACKAGE_VERSION_TAG = "prodml.version"
GIT_DIRTY_TAG = "prodml.git.dirty"


def content_digest(frame: pd.DataFrame) -> str:
    """A digest of a DataFrame's columns and every row's values, independent of row order
    (32 hex characters: the first half of a SHA-256)."""
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(np.sort(rows).tobytes())
    return digest.hexdigest()[:32]


def _source_class():
    from mlflow.data.dataset_source import DatasetSource

    class WarehouseQuery(DatasetSource):
        """Rows read by a BigQuery Standard SQL query (BigQuery, or the local stand-in)."""

        def __init__(self, query: str, backend: str, project: str):
            self.query, self.backend, self.project = query, backend, project

        @staticmethod
        def _get_source_type() -> str:
            return "bigquery"

        def load(self, client=None):
            """Run the query again with ``client`` (``prodml.warehouse.client()``)."""
            if client is None:
                raise ValueError("WarehouseQuery.load needs the warehouse client to run on")
            return client.query(self.query).to_dataframe()

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any):
            raise NotImplementedError("a WarehouseQuery is made from a query, not resolved")

        def to_dict(self) -> dict[str, Any]:
            return {"query": self.query, "backend": self.backend, "project": self.project}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]):
            return cls(source_dict["query"], source_dict["backend"], source_dict["project"])

    return WarehouseQuery


def query_source(query: str):
    """An MLflow dataset source for rows a warehouse query returned (source type
    ``bigquery``; ``backend`` says whether the local stand-in or BigQuery answered)."""
    settings = config.settings()
    return _source_class()(query, settings.warehouse, settings.project)


def log_dataframe(
    frame: pd.DataFrame,
    name: str,
    context: str,
    query: str | None = None,
    uri: str | None = None,
    targets: str | None = None,
) -> str:
    """Log ``frame`` as an input of the active run and return its :func:`content_digest`.

    ``query`` (the SQL that read it) or ``uri`` (the file it came from) is its source;
    ``context`` says what the run used it for (``training``, ``validation``, ``test``). The
    row count is in the dataset's profile and in the ``rows`` tag.
    """
    import mlflow

    if (query is None) == (uri is None):
        raise ValueError("log_dataframe needs exactly one source: query=... or uri=...")
    if frame.empty:
        raise ValueError(f"dataset {name!r} has no rows: nothing was read")
    source = query_source(query) if query is not None else uri
    digest = content_digest(frame)
    with warnings.catch_warnings():  # MLflow's hint that integer columns cannot hold NaN
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=name, digest=digest, targets=targets
        )
        mlflow.log_input(dataset, context=context, tags={"rows": str(len(frame))})
    return digest


def code_version() -> dict[str, str]:
    """Tags naming the code a run ran: the workbook's git commit (when it is a git checkout,
    and whether it had uncommitted changes to tracked files) and the installed ``prodml``
    version."""
    tags = {PACKAGE_VERSION_TAG: importlib.metadata.version("prodml")}
    root = config.repo_root()
    if root is not None and (root / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return tags
        if commit.returncode == 0:
            tags[GIT_COMMIT_TAG] = commit.stdout.strip()
            tags[GIT_DIRTY_TAG] = "true" if dirty.stdout.strip() else "false"
    return tags


__all__ = [
    "GIT_COMMIT_TAG",
    "GIT_DIRTY_TAG",
    "PACKAGE_VERSION_TAG",
    "code_version",
    "content_digest",
    "log_dataframe",
    "query_source",
]
