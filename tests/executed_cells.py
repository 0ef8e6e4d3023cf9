"""Code cells as nbclient leaves them, for the grading tests (no kernel)."""

from __future__ import annotations

import nbformat


def ran(source, error=None, cell_id=None, test=False):
    """A code cell as nbclient leaves it: executed, with an error output when it raised."""
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id or f"c{abs(hash(source)) % 10**8}"
    cell.execution_count = 1
    if error:
        name, value = error.split(": ", 1)
        cell.outputs = [nbformat.v4.new_output("error", ename=name, evalue=value, traceback=[])]
    if test:
        cell.metadata["tags"] = ["test"]
    return cell
