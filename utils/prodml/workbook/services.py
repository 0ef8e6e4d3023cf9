"""The background services a run leaves in its run folder, stopped when the run ends.

A notebook's kernel starts some services that outlive it on purpose (the local BigQuery service
serves every process of a run folder, and a crashed kernel's successor reuses it). When
``prodml run`` or ``prodml grade`` is done with a run folder, :func:`stop_services` stops them
rather than leaving them to stop themselves when idle. The workbook's tooling knows no course
library (the tooling-apart contract of docs/ARCHITECTURE.md), so a component that leaves a
service in a run folder registers, under the entry point group :data:`GROUP`, a function that
takes the run folder and stops its service (True if one was running); the warehouse registers
``prodml.warehouse:stop``.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

__all__ = ["GROUP", "stop_services"]

GROUP = "prodml.run_folder_services"


def stop_services(run_dir: str | Path) -> list[str]:
    """Stop every registered service of ``run_dir``; the names of those that were running. A
    service that cannot be stopped is reported on standard error, not raised: the run's results
    stand."""
    stopped = []
    for entry in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            if entry.load()(Path(run_dir)):
                stopped.append(entry.name)
        except Exception as err:  # each failure is named; the others still stop
            print(
                f"prodml: could not stop the {entry.name} service of {run_dir}: "
                f"{type(err).__name__}: {err}",
                file=sys.stderr,
            )
    return stopped
