"""Grading step: merge. The solution's test cells put back into the student's notebook by cell
id (as nbgrader's ``OverwriteCells``), so a student cannot weaken or delete a check."""

from __future__ import annotations

import copy
from pathlib import Path

from prodml.grading.report import Check, GradeError
from prodml.workbook import notebooks

__all__ = ["checks_of", "merge_tests", "points", "solution_for", "test_cells"]


def solution_for(notebook: Path) -> Path:
    """``labs/<lab>/X.ipynb`` -> ``solutions/<lab>/X.ipynb`` (a solution grades against itself)."""
    parts = Path(notebook).resolve().parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "solutions":
            return Path(notebook).resolve()
        if parts[index] == "labs":
            candidate = Path(*parts[:index], "solutions", *parts[index + 1 :])
            if not candidate.is_file():
                raise GradeError(f"no solution for {notebook} at {candidate}: pass --solution")
            return candidate
    raise GradeError(f"{notebook} is not under labs/ or solutions/: pass --solution")


def points(cell) -> float:
    """A test cell's points: ``metadata.prodml.points`` (default 1), a number >= 0."""
    value = cell.metadata.get("prodml", {}).get("points", 1)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise GradeError(f"test cell {cell.get('id')!r}: metadata.prodml.points must be >= 0")
    return float(value)


def test_cells(solution) -> list[tuple[int, object]]:
    """(index, cell) of every code cell tagged ``test`` in the solution notebook."""
    tests = [
        (index, cell)
        for index, cell in enumerate(solution.cells)
        if cell.cell_type == "code" and "test" in notebooks.tags(cell)
    ]
    if not tests:
        raise GradeError("the solution has no code cells tagged 'test': nothing to grade")
    if not all(cell.get("id") for _, cell in tests):
        raise GradeError("the solution's test cells need cell ids (nbformat 4.5)")
    return tests


def checks_of(solution) -> list[Check]:
    """One ungraded :class:`Check` per test cell of the solution, in order."""
    return [Check(cell.id, points(cell)) for _, cell in test_cells(solution)]


def merge_tests(student, solution):
    """The student's notebook with the solution's test cells put back by cell id; a deleted
    one is re-inserted after the nearest preceding solution cell the student kept."""
    merged = copy.deepcopy(student)
    for index, test in test_cells(solution):
        cell = copy.deepcopy(test)
        cell.outputs, cell.execution_count = [], None
        ids = [c.get("id") for c in merged.cells]
        if test.id in ids:
            merged.cells[ids.index(test.id)] = cell
            continue
        position = 0
        for previous in reversed(solution.cells[:index]):
            if previous.get("id") in ids:
                position = ids.index(previous.id) + 1
                break
        merged.cells.insert(position, cell)
    return merged
