"""Grading step: execute. The merged notebook, parameterised (``SMOKE=True`` by default), runs
in a fresh kernel with the workbook's one notebook engine (:mod:`prodml.workbook.engine`,
the same as ``prodml run``) under the grading limits; failing cells do not stop the run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prodml.workbook import engine, notebooks, services

__all__ = [
    "CELL_TIMEOUT",
    "FIRST_TODO",
    "MAX_OUTPUT",
    "MEMORY_GIB",
    "TOTAL_TIMEOUT",
    "prepare",
    "run",
]

CELL_TIMEOUT = 300
TOTAL_TIMEOUT = 1200
MEMORY_GIB = 4.0
MAX_OUTPUT = 1_000_000  # characters a cell may output (streams, displays, tracebacks)
#: an error naming a TODO (a stub's NotImplementedError, a server's "TODO n not done")
FIRST_TODO = r"\bTODO \d+\b"


def prepare(merged, solution, smoke: bool):
    """The merged notebook made ready for papermill: the solution's kernel, the metadata
    papermill expects, and ``SMOKE=True`` injected after the ``parameters`` cell."""
    from papermill.parameterize import parameterize_notebook

    merged.metadata["kernelspec"] = solution.metadata.get("kernelspec", {"name": "python3"})
    merged.metadata.setdefault("language_info", {"name": "python"})
    merged.metadata.setdefault("papermill", {})  # what papermill.iorw.load_notebook_node adds
    for cell in merged.cells:
        cell.metadata.setdefault("tags", [])
    return parameterize_notebook(merged, {"SMOKE": True}) if smoke else merged


def run(nb, notebook: Path, limits: engine.Limits, run_dir: Path | None = None):
    """Execute ``nb`` (the prepared copy of ``notebook``) in ``notebook``'s folder with a fresh
    run folder (``PRODML_RUN_DIR``): under ``run_dir`` and kept, with the graded notebook, when
    given; else a temporary folder removed afterwards. Returns the :class:`engine.Execution`."""
    base = Path(run_dir).resolve() if run_dir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f"grade-{notebook.stem}-", dir=base))
    env = dict(os.environ, PRODML_RUN_DIR=str(fresh), PRODML_NOTEBOOK=notebook.stem)
    try:
        done = engine.execute(nb, notebook.parent, env, limits, keep_going=True)
        if base:
            notebooks.write(done.nb, fresh / f"graded_{notebook.name}")
    finally:
        services.stop_services(fresh)  # the services its kernels left (a local warehouse)
        if not base:
            shutil.rmtree(fresh, ignore_errors=True)
    return done
