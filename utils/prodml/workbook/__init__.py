"""The workbook's own tooling: ``prodml run``, ``release`` and ``todo`` (``prodml grade`` is
:mod:`prodml.grading`), and the one notebook engine both ``run`` and grading use
(:mod:`~prodml.workbook.engine`).

Notebooks import only :func:`record` from here (their closing cell calls it); the subcommands
live in their own modules and import papermill and nbclient only when they run.
"""

from __future__ import annotations

import json
import numbers
import os

from prodml import config

__all__ = ["record", "metrics_path"]


def metrics_path(notebook: str | None = None):
    """``<run folder>/metrics/<notebook>.json``; the notebook defaults to ``PRODML_NOTEBOOK``."""
    name = notebook or os.environ.get("PRODML_NOTEBOOK") or "interactive"
    return config.run_path("metrics", f"{name}.json")


def _plain(key: str, value: object) -> object:
    if value is None or isinstance(value, bool | str):
        return value
    if hasattr(value, "item") and not isinstance(value, numbers.Number | str):
        value = value.item()  # numpy / tensorflow scalars
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(
        f"record({key}=...): metrics must be numbers or strings, got {type(value).__name__}"
    )


def record(**metrics: object) -> dict[str, object]:
    """Store a notebook's key results for ``prodml run`` and print them.

    The closing cell of every notebook calls it, e.g. ``record(rmse=rmse, rows=len(df))``.
    The metrics go to ``<run folder>/metrics/<PRODML_NOTEBOOK or 'interactive'>.json``
    (replacing what an earlier run of the same notebook stored there).
    """
    if not metrics:
        raise TypeError("record() needs at least one metric, e.g. record(rmse=1.2)")
    plain = {key: _plain(key, value) for key, value in metrics.items()}
    path = metrics_path()
    path.write_text(json.dumps(plain, indent=2, sort_keys=True) + "\n")
    width = max(len(key) for key in plain)
    for key, value in plain.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return plain
