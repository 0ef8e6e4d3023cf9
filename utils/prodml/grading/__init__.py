"""``prodml grade``: score a lab notebook against its solution, as a few steps of one job each
(nbgrader's preprocessors are the model):

1. :mod:`~prodml.grading.merge`: the solution's test cells (code cells tagged ``test``; points
   in ``metadata.prodml.points``, default 1) put back by cell id, so a student cannot weaken
   or delete a check;
2. :mod:`~prodml.grading.execute`: run it headlessly (``SMOKE=True`` unless told otherwise,
   cwd its folder, a fresh ``PRODML_RUN_DIR``) with the workbook's one notebook engine
   (:mod:`prodml.workbook.engine`, also ``prodml run``'s) under time, memory and output
   limits; failing cells do not stop the run;
3. :mod:`~prodml.grading.blame`: each check ``passed``, ``failed``, ``error`` or ``blocked``,
   each root cause listed once;
4. :mod:`~prodml.grading.report`: the report as a table, JSON, JUnit XML, Classroom results;
5. :mod:`~prodml.grading.gradebook`: a whole class, each submission in its own process, and
   the gradebook CSV.

:func:`grade` composes steps 1-4; the command line is :mod:`~prodml.grading.cli`.
"""

from __future__ import annotations

import time
from pathlib import Path

from prodml.grading import blame, execute, merge
from prodml.grading.gradebook import grade_class, lab_solution, write_gradebook
from prodml.grading.report import Check, GradeError, Report, classroom, junit, table
from prodml.workbook import notebooks
from prodml.workbook.engine import Limits

__all__ = [
    "Check",
    "GradeError",
    "Limits",
    "Report",
    "classroom",
    "grade",
    "grade_class",
    "junit",
    "lab_solution",
    "table",
    "write_gradebook",
]


def grade(
    notebook: Path,
    solution: Path | None = None,
    *,
    smoke: bool = True,
    cell_timeout: float = execute.CELL_TIMEOUT,
    total_timeout: float = execute.TOTAL_TIMEOUT,
    run_dir: Path | None = None,
    memory_gib: float = execute.MEMORY_GIB,
    max_output: int = execute.MAX_OUTPUT,
    first_todo: bool = False,
) -> Report:
    """Grade ``notebook`` against ``solution`` (found from the lab path when not given):
    merge, execute under limits, blame. ``run_dir`` keeps the run folder and graded copy.
    ``first_todo``: stop at the first cell failing on a TODO left undone (every check after it
    scores 0, not reached): a pristine lab's zero, without running the rest of it."""
    started = time.monotonic()
    notebook = Path(notebook).resolve()
    solution = Path(solution).resolve() if solution else merge.solution_for(notebook)
    solution_nb = notebooks.read(solution)
    report = Report(str(notebook), str(solution), merge.checks_of(solution_nb))
    try:
        student = notebooks.read(notebook)
    except Exception as error:  # not JSON, not a notebook: every check scores 0
        report.stopped = f"the notebook cannot be read: {notebooks.first_line(str(error))}"
        report.not_reached(report.stopped)
        return report
    merged = execute.prepare(merge.merge_tests(student, solution_nb), solution_nb, smoke)
    stop_on = execute.FIRST_TODO if first_todo else None
    limits = Limits(cell_timeout, total_timeout, memory_gib, max_output, stop_on)
    done = execute.run(merged, notebook, limits, run_dir)
    report.stopped = (
        "the first TODO left undone" if done.stopped and not done.limit else done.stopped
    )
    numbers = {cell.get("id"): n for n, cell in enumerate(student.cells)}  # nbformat's index
    binds = {
        c.get("id"): blame.names(c.source)[0] for c in solution_nb.cells if c.cell_type == "code"
    }
    stopped_at = done.stopped_at if done.limit else None
    blame.analyse(done.nb, report, numbers, stopped_at, blame.graded_by(solution), binds)
    report.seconds = time.monotonic() - started
    return report
