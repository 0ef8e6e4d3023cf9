"""Grading step: a whole class. Each submission is a folder (named for the student) holding a
copy of the lab folder; each is graded in its own process, kernel and working copy, ``jobs`` at
a time, and the batch always finishes with one JSON, JUnit and Classroom report per student and
one gradebook CSV, whatever a submission does (crash, hang, memory hog)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prodml.grading.merge import checks_of
from prodml.grading.report import GradeError, Report, classroom, junit
from prodml.workbook import notebooks

__all__ = ["grade_class", "grade_submission", "lab_solution", "not_graded", "write_gradebook"]


def lab_solution(lab: str | Path) -> Path:
    """``--lab``: a lab name (``solutions/<name>``), or a ``labs/`` or ``solutions/`` folder,
    -> the solution notebook."""
    path = Path(lab)
    if not path.is_dir():
        path = notebooks.find_repo() / "solutions" / str(lab)
    elif path.resolve().parent.name == "labs":
        path = path.resolve().parent.parent / "solutions" / path.name
    found = sorted(path.glob("*.ipynb")) if path.is_dir() else []
    if len(found) != 1:
        raise GradeError(
            f"--lab {lab}: expected one solution notebook in {path}, found {len(found)}"
        )
    return found[0].resolve()


def _submission_notebook(submission: Path, solution: Path) -> Path | None:
    """The student's notebook: ``SUBMISSION/<lab>/<name>.ipynb``, else ``SUBMISSION/<name>``."""
    for folder in (submission / solution.parent.name, submission):
        if (folder / solution.name).is_file():
            return folder / solution.name
    return None


def not_graded(student_nb: str, solution: Path, reason: str, seconds: float) -> Report:
    """A report scoring every check 0 for ``reason`` (the submission could not be graded)."""
    checks = checks_of(notebooks.read(solution))
    for check in checks:
        check.reason = reason
    return Report(student_nb, str(solution), checks, [], reason, seconds)


def _command(notebook: Path, solution: Path, out: Path, options: dict) -> list[str]:
    return [
        sys.executable, "-m", "prodml.cli", "grade", str(notebook),
        "--solution", str(solution), "--json", str(out),
        "--cell-timeout", str(options["cell_timeout"]), "--timeout", str(options["timeout"]),
        "--memory", str(options["memory"]), "--max-output", str(options["max_output"]),
        "--smoke" if options["smoke"] else "--no-smoke",
    ]  # fmt: skip


def grade_submission(submission: Path, solution: Path, work: Path, options: dict) -> Report:
    """Grade one student's folder in a working copy, in its own process (a crash, a hang or a
    memory hog there cannot stop the batch)."""
    started = time.monotonic()
    found = _submission_notebook(submission, solution)
    if found is None:
        reason = f"no {solution.name} in {submission} (nor in {solution.parent.name}/ there)"
        return not_graded(str(submission), solution, reason, 0.0)
    copy_dir = work / submission.name / found.parent.name
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    shutil.copytree(found.parent, copy_dir, ignore=ignore, symlinks=True)
    out = work / submission.name / "report.json"
    grace = options["timeout"] + 180  # kernel start, imports, shutdown
    try:
        finished = subprocess.run(
            _command(copy_dir / found.name, solution, out, options),
            capture_output=True,
            text=True,
            timeout=grace,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        reason = f"the grader did not finish within {grace:g} s"
        return not_graded(str(found), solution, reason, time.monotonic() - started)
    if not out.is_file():
        lines = (finished.stdout + finished.stderr).strip().splitlines() or [""]
        tail = notebooks.first_line(lines[-1])
        reason = f"the grader failed (exit status {finished.returncode}): {tail}"
        return not_graded(str(found), solution, reason, time.monotonic() - started)
    report = Report.from_dict(json.loads(out.read_text()))
    report.notebook = str(found)  # the student's, not the working copy's
    return report


def _write_reports(reports: Path, name: str, report: Report) -> None:
    (reports / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (reports / f"{name}.xml").write_text(junit(report))
    (reports / f"{name}.classroom.json").write_text(json.dumps(classroom(report)) + "\n")
    stopped = f" (stopped: {report.stopped})" if report.stopped else ""
    print(f"{name}: {report.points:g}/{report.points_possible:g}{stopped}", flush=True)


def grade_class(
    solution: Path,
    submissions: list[Path],
    reports: Path,
    gradebook: Path,
    *,
    jobs: int = 1,
    **options,
) -> dict[str, Report]:
    """Grade every submission, ``jobs`` at a time; write ``reports/<student>.json`` and
    ``.xml`` (and ``.classroom.json``) and the gradebook CSV. Returns student -> report."""
    names = [s.resolve().name for s in submissions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GradeError(f"two submissions are named {', '.join(duplicates)}: rename one")
    missing = [str(s) for s in submissions if not s.is_dir()]
    if missing:
        raise GradeError(f"not a folder: {', '.join(missing)}")
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prodml-grade-") as tmp:

        def one(submission: Path) -> tuple[str, Report]:
            try:
                report = grade_submission(submission.resolve(), solution, Path(tmp), options)
            except Exception as error:  # the batch finishes whatever one submission does
                reason = f"the submission could not be graded: {type(error).__name__}: {error}"
                report = not_graded(str(submission), solution, reason, 0.0)
            name = submission.resolve().name
            _write_reports(reports, name, report)
            return name, report

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = dict(pool.map(one, submissions))
    write_gradebook(results, solution.parent.name, gradebook)
    return results


def write_gradebook(results: dict[str, Report], lab: str, path: Path) -> None:
    """One row per student: student, lab, points, max, each check's status, seconds, stopped."""
    check_ids = [c.id for c in next(iter(results.values())).checks] if results else []
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lab", "points", "max", *check_ids, "seconds", "stopped"])
        for student in sorted(results):
            report = results[student]
            status = {c.id: c.status for c in report.checks}
            writer.writerow(
                [
                    student,
                    lab,
                    f"{report.points:g}",
                    f"{report.points_possible:g}",
                    *(status.get(i, "not run") for i in check_ids),
                    f"{report.seconds:.1f}",
                    report.stopped,
                ]
            )
