"""Every lab: its solution scores full marks with `prodml grade` (the one run of each solution in
`make test`: `make notebooks` leaves solutions/ to this test), and its pristine labs/ copy exactly
0, run only up to the cell that fails on its first TODO (the root cause, never an error of the
given code); and the skew lab's pipeline runs the learner's window transform."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from prodml import grading
from prodml.workbook import conventions, notebooks, release

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
def test_solution_scores_full_marks_and_pristine_lab_exactly_zero(lab, solution, tmp_path):
    assert lab is not None, "solutions/ has no lab folder: the workbook's labs are missing"
    assert solution is not None, f"{lab} has no notebook"
    copy = REPO / "labs" / solution.relative_to(SOLUTIONS)
    assert copy.is_file(), f"{copy} is missing: run `prodml release`"
    assert conventions.check_lab(lab) == []

    graded = grading.grade(solution, run_dir=tmp_path / "solution")
    assert graded.checks, "the lab has no checks (code cells tagged 'test')"
    assert graded.full_marks, grading.table(graded)
    assert graded.points == graded.points_possible > 0
    assert graded.root_causes == [], grading.table(graded)

    pristine = grading.grade(copy, run_dir=tmp_path / "lab", first_todo=True)
    table = grading.table(pristine)
    assert [c.id for c in pristine.checks] == [c.id for c in graded.checks]
    assert pristine.points == 0, table
    assert pristine.stopped == "the first TODO left undone", table
    worth = [c for c in pristine.checks if c.points_possible > 0]
    assert all(c.status in ("failed", "blocked", "not run") for c in worth), table
    # the run stopped on a TODO, and nothing else failed before it: the given code is sound
    todos = {f"TODO {t.number}" for t in conventions.lab_todos(lab)}
    (cause,) = pristine.root_causes
    assert re.match(r"TODO \d+", cause) and cause.split(" not done")[0] in todos, table


@pytest.mark.slow
def test_the_skew_pipeline_runs_the_learners_window_transform(tmp_path):
    """A window transform that is wrong (60 s windows) fails the pipeline check: the pipeline
    windows with the learner's transform, not a copy of its own."""
    lab = tmp_path / "training_serving_skew"
    shutil.copytree(SOLUTIONS / "training_serving_skew", lab)
    notebook = lab / "03_training_serving_skew.ipynb"
    nb = notebooks.read(notebook)
    windowing = next(c for c in nb.cells if c.get("id") == "windowing")
    assert "window.FixedWindows(WINDOW_SECONDS)" in windowing.source
    windowing.source = windowing.source.replace(
        "window.FixedWindows(WINDOW_SECONDS)", "window.FixedWindows(3 * WINDOW_SECONDS)"
    )
    notebooks.write(nb, notebook)
    report = grading.grade(notebook, SOLUTIONS / "training_serving_skew" / notebook.name)
    status = {c.id: c.status for c in report.checks}
    assert status["test-pipeline"] == "failed", grading.table(report)
    assert status["test-windowing"] == "failed", grading.table(report)
    assert status["test-fixed"] == status["test-skew-check"] == "passed", grading.table(report)
