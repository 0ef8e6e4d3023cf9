"""Every lab: its solution scores full marks with `prodml grade`, its pristine labs/ copy exactly 0
(with one root cause per missing TODO, never an error of the given code); and the skew lab's
pipeline runs the learner's window transform. Grading a real lab takes minutes: each is graded
once per state it is tested in."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from prodml.workbook import conventions, grade, notebooks, release

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

    graded = grade.grade(solution, run_dir=tmp_path / "solution")
    assert graded.checks, "the lab has no checks (code cells tagged 'test')"
    assert graded.full_marks, grade.table(graded)
    assert graded.points == graded.points_possible > 0
    assert graded.root_causes == [], grade.table(graded)

    pristine = grade.grade(copy, run_dir=tmp_path / "lab")
    assert [c.id for c in pristine.checks] == [c.id for c in graded.checks]
    assert pristine.points == 0, grade.table(pristine)
    worth = [c for c in pristine.checks if c.points_possible > 0]
    assert all(c.status in ("failed", "blocked") for c in worth), grade.table(pristine)
    # one root cause per TODO left undone, and nothing else: the given code never fails on its own
    todos = {f"TODO {t.number}" for t in conventions.lab_todos(lab)}
    causes = [re.match(r"TODO \d+", cause) for cause in pristine.root_causes]
    assert all(causes), grade.table(pristine)
    named = [m.group(0) for m in causes]
    assert len(named) == len(set(named)) and set(named) <= todos, grade.table(pristine)


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
    report = grade.grade(notebook, SOLUTIONS / "training_serving_skew" / notebook.name)
    status = {c.id: c.status for c in report.checks}
    assert status["test-pipeline"] == "failed", grade.table(report)
    assert status["test-windowing"] == "failed", grade.table(report)
    assert status["test-fixed"] == status["test-skew-check"] == "passed", grade.table(report)
