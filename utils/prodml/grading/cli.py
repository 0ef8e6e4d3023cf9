"""``prodml grade NOTEBOOK`` (one notebook) and ``prodml grade --lab LAB SUBMISSION...`` (a
class): the command line of :mod:`prodml.grading`. Exit status 0 only at full marks (a class:
when the batch finished); 2 when grading cannot start."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prodml.grading import grade
from prodml.grading.execute import CELL_TIMEOUT, MAX_OUTPUT, MEMORY_GIB, TOTAL_TIMEOUT
from prodml.grading.gradebook import grade_class, lab_solution
from prodml.grading.report import GradeError, junit, table

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``prodml grade`` options."""
    add = parser.add_argument
    add("paths", nargs="+", type=Path, metavar="NOTEBOOK | SUBMISSION",
        help="the lab notebook to grade; with --lab, the students' folders")  # fmt: skip
    add("--lab", help="grade a class: the lab (name, or labs/ or solutions/ folder)")
    add("--solution", type=Path, help="solution notebook (default: from the path)")
    add("--json", type=Path, help="write the report as JSON here")
    add("--junit", type=Path, help="write the report as JUnit XML here")
    add("--jobs", type=int, default=1, help="--lab: submissions at a time (1)")
    add("--reports", type=Path, default=Path("grades"), help="--lab: report folder (grades)")
    add("--gradebook", type=Path, help="--lab: the gradebook CSV (default: REPORTS/gradebook.csv)")
    add("--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds per cell (300)")
    add("--timeout", type=float, default=TOTAL_TIMEOUT, help="seconds in all (1200)")
    add("--memory", type=float, default=MEMORY_GIB, help="memory limit in GiB (4)")
    add("--max-output", type=int, default=MAX_OUTPUT,
        help=f"characters of output a cell may print ({MAX_OUTPUT:,})")  # fmt: skip
    add("--smoke", action=argparse.BooleanOptionalAction, default=True,
        help="run with SMOKE=True (default; --no-smoke runs the notebook's own sizes)")  # fmt: skip
    add("--run-dir", type=Path, help="keep the run folder and graded notebook under this folder")


def _options(args: argparse.Namespace) -> dict:
    if args.memory <= 0 or args.max_output <= 0 or args.jobs < 1:
        raise GradeError("--memory, --max-output and --jobs must be positive")
    return {
        "cell_timeout": args.cell_timeout,
        "timeout": args.timeout,
        "memory": args.memory,
        "max_output": args.max_output,
        "smoke": args.smoke,
    }


def _one(args: argparse.Namespace, options: dict) -> int:
    if len(args.paths) != 1:
        raise GradeError("grade one notebook at a time, or a class with --lab LAB")
    notebook = args.paths[0]
    if not notebook.is_file():
        print(f"prodml grade: no such notebook: {notebook}")
        return 2
    report = grade(
        notebook,
        args.solution,
        smoke=options["smoke"],
        cell_timeout=options["cell_timeout"],
        total_timeout=options["timeout"],
        run_dir=args.run_dir,
        memory_gib=options["memory"],
        max_output=options["max_output"],
    )
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.junit:
        args.junit.write_text(junit(report))
    return 0 if report.full_marks else 1


def main(args: argparse.Namespace) -> int:
    """Run ``prodml grade``; the exit status."""
    try:
        options = _options(args)
        if not args.lab:
            return _one(args, options)
        solution = lab_solution(args.lab)
        gradebook = args.gradebook or args.reports / "gradebook.csv"
        results = grade_class(
            solution, args.paths, args.reports, gradebook, jobs=args.jobs, **options
        )
        print(f"graded {len(results)} submission(s): {gradebook}")
        return 0
    except (GradeError, FileNotFoundError) as error:
        print(f"prodml grade: {error}")
        return 2
