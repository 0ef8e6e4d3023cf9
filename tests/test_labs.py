"""Every lab: its solution scores full marks with `prodml grade`, its pristine labs/ copy does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodml.workbook import grade, release

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


def lab_notebooks() -> list:
    """One test per lab notebook; a lab folder without one, or no lab at all, is a failure."""
    params = []
    for lab in release.lab_folders(SOLUTIONS) if SOLUTIONS.is_dir() else []:
        found = sorted(lab.glob("*.ipynb"))
        for nb in found or [None]:
            name = lab.name if len(found) <= 1 else f"{lab.name}/{nb.name}"
            params.append(pytest.param(lab, nb, id=name))
    return params or [pytest.param(None, None, id="no-labs")]


@pytest.mark.slow
@pytest.mark.parametrize(("lab", "solution"), lab_notebooks())
def test_solution_scores_full_marks_and_pristine_lab_does_not(lab, solution, tmp_path):
    assert lab is not None, "solutions/ has no lab folder: the workbook's labs are missing"
    assert solution is not None, f"{lab} has no notebook"
    copy = REPO / "labs" / solution.relative_to(SOLUTIONS)
    assert copy.is_file(), f"{copy} is missing: run `prodml release`"

    graded = grade.grade(solution, run_dir=tmp_path / "solution")
    assert graded.checks, "the lab has no checks (code cells tagged 'test')"
    assert graded.full_marks, grade.table(graded)
    assert graded.points == graded.points_possible > 0

    pristine = grade.grade(copy, run_dir=tmp_path / "lab")
    assert [c.id for c in pristine.checks] == [c.id for c in graded.checks]
    assert not pristine.full_marks, grade.table(pristine)
    assert pristine.points < pristine.points_possible
