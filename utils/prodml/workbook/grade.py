"""``prodml grade``: execute a lab notebook headlessly and score it against its solution.

The solution's test cells (code cells tagged ``test``; points in ``metadata.prodml.points``,
default 1) replace the student's cells of the same id, or are re-inserted after the cell that
precedes them in the solution, so a student cannot weaken or delete a check. The notebook then
runs in a fresh kernel (``python3``, cwd its folder, a fresh ``PRODML_RUN_DIR``, ``SMOKE=True``
unless ``--no-smoke``). Failing cells do not stop the run, so later checks still score; a cell
that exceeds the per-cell limit, a dead kernel or the total limit stops it, and every check not
reached scores 0 with that reason. The kernel is killed, never merely interrupted, so grading
cannot hang. Exit status 0 only at full marks.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prodml.workbook import notebooks

CELL_TIMEOUT = 300
TOTAL_TIMEOUT = 1200


class GradeError(ValueError):
    """Grading cannot start (no solution, no checks, an unreadable notebook)."""


@dataclass
class Check:
    id: str
    points_possible: float
    points: float = 0.0
    status: str = "not run"  # passed | failed | not run
    reason: str = ""


@dataclass
class Report:
    notebook: str
    solution: str
    checks: list[Check]
    errors: list[str] = field(default_factory=list)  # cells outside the checks that failed
    stopped: str = ""  # why execution stopped early, if it did
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def points_possible(self) -> float:
        return sum(c.points_possible for c in self.checks)

    @property
    def full_marks(self) -> bool:
        return all(c.status == "passed" for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook,
            "solution": self.solution,
            "points": self.points,
            "points_possible": self.points_possible,
            "full_marks": self.full_marks,
            "stopped": self.stopped or None,
            "seconds": round(self.seconds, 2),
            "checks": [asdict(c) for c in self.checks],
            "errors": self.errors,
        }


def solution_for(notebook: Path) -> Path:
    """``labs/<lab>/X.ipynb`` -> ``solutions/<lab>/X.ipynb`` (a solution grades against itself)."""
    parts = notebook.resolve().parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "solutions":
            return notebook.resolve()
        if parts[index] == "labs":
            candidate = Path(*parts[:index], "solutions", *parts[index + 1 :])
            if not candidate.is_file():
                raise GradeError(f"no solution for {notebook} at {candidate}: pass --solution")
            return candidate
    raise GradeError(f"{notebook} is not under labs/ or solutions/: pass --solution")


def _points(cell) -> float:
    points = cell.metadata.get("prodml", {}).get("points", 1)
    if not isinstance(points, int | float) or isinstance(points, bool) or points < 0:
        raise GradeError(f"test cell {cell.get('id')!r}: metadata.prodml.points must be >= 0")
    return float(points)


def merge_tests(student, solution):
    """The student's notebook with the solution's test cells put back by cell id."""
    merged = copy.deepcopy(student)
    tests = [
        (index, cell)
        for index, cell in enumerate(solution.cells)
        if cell.cell_type == "code" and "test" in notebooks.tags(cell)
    ]
    if not tests:
        raise GradeError("the solution has no code cells tagged 'test': nothing to grade")
    for index, test in tests:
        if not test.get("id"):
            raise GradeError("the solution's test cells need cell ids (nbformat 4.5)")
        cell = copy.deepcopy(test)
        cell.outputs, cell.execution_count = [], None
        ids = [c.get("id") for c in merged.cells]
        if test.id in ids:
            merged.cells[ids.index(test.id)] = cell
            continue
        position = 0  # re-insert after the nearest preceding solution cell the student kept
        for previous in reversed(solution.cells[:index]):
            if previous.get("id") in ids:
                position = ids.index(previous.id) + 1
                break
        merged.cells.insert(position, cell)
    return merged


def _error_reason(output) -> str:
    name, value = output.get("ename", "Error"), notebooks.first_line(output.get("evalue", ""))
    if value:
        return f"{name}: {value}"
    # A bare `assert` has no message: show the line that failed instead.
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", t) for t in output.get("traceback", [])]
    arrows = [
        m.group(1).strip()
        for text in lines
        for m in re.finditer(r"^-*>\s*\d+\s(.*)$", text, flags=re.M)
    ]
    return f"{name} at: {arrows[-1]}" if arrows else name


def _cell_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return _error_reason(output)
    return ""


def _kill(client) -> None:
    """Kill the kernel and everything it started (its own process group), without asking."""
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(getattr(provisioner, "pgid", None) or process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        process.kill()


def execute(nb, folder: Path, run_dir: Path, name: str, cell_timeout: float, total_timeout: float):
    """Run every cell (errors allowed).

    Returns the executed notebook, why execution stopped early (or "") and the index of the
    cell it stopped in (or None).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=cell_timeout,
        allow_errors=True,
        startup_timeout=120,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(folder)}},
    )
    env = dict(os.environ, PRODML_RUN_DIR=str(run_dir), PRODML_NOTEBOOK=name)
    deadline = time.monotonic() + total_timeout
    # Last resort: whatever nbclient is waiting on, the kernel dies at the deadline (+ grace).
    watchdog = threading.Timer(total_timeout + 30, _kill, args=(client,))
    watchdog.daemon = True
    stopped, stopped_at = "", None
    try:
        watchdog.start()
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stopped = f"the total time limit of {total_timeout:g} s was reached"
                    break
                client.timeout = max(1, int(min(cell_timeout, remaining) + 0.999))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    if remaining < cell_timeout:
                        stopped = f"the total time limit of {total_timeout:g} s was reached"
                    else:
                        stopped = f"a cell exceeded the {cell_timeout:g} s cell time limit"
                    stopped_at = index
                    _kill(client)
                    break
                except DeadKernelError:
                    stopped = "the kernel died"
                    stopped_at = index
                    break
    except DeadKernelError:  # died while starting or shutting down
        stopped = stopped or "the kernel died"
    except RuntimeError as error:  # kernel failed to start
        stopped = stopped or f"the kernel did not start: {notebooks.first_line(str(error))}"
    finally:
        watchdog.cancel()
        _kill(client)
    return nb, stopped, stopped_at


def grade(
    notebook: Path,
    solution: Path | None = None,
    *,
    smoke: bool = True,
    cell_timeout: float = CELL_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
    run_dir: Path | None = None,
) -> Report:
    """Grade ``notebook`` against ``solution`` (found from the lab path when not given)."""
    from papermill.parameterize import parameterize_notebook

    notebook = Path(notebook).resolve()
    solution = Path(solution).resolve() if solution else solution_for(notebook)
    started = time.monotonic()
    solution_nb = notebooks.read(solution)
    checks: dict[str, Check] = {}
    for cell in merge_tests(solution_nb, solution_nb).cells:
        if cell.cell_type == "code" and "test" in notebooks.tags(cell):
            checks[cell.id] = Check(id=cell.id, points_possible=_points(cell))
    report = Report(str(notebook), str(solution), list(checks.values()))
    try:
        student = notebooks.read(notebook)
    except Exception as error:  # not JSON, not a notebook: every check scores 0
        report.stopped = f"the notebook cannot be read: {notebooks.first_line(str(error))}"
        for check in report.checks:
            check.reason = report.stopped
        return report
    merged = merge_tests(student, solution_nb)
    merged.metadata["kernelspec"] = solution_nb.metadata.get("kernelspec", {"name": "python3"})
    merged.metadata.setdefault("language_info", {"name": "python"})
    merged.metadata.setdefault("papermill", {})  # what papermill.iorw.load_notebook_node adds
    for cell in merged.cells:
        cell.metadata.setdefault("tags", [])
    if smoke:
        merged = parameterize_notebook(merged, {"SMOKE": True})
    student_cells = {cell.get("id"): n for n, cell in enumerate(student.cells, start=1)}

    base = Path(run_dir) if run_dir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f"grade-{notebook.stem}-", dir=base))
    try:
        executed, report.stopped, stopped_at = execute(
            merged, notebook.parent, fresh, notebook.stem, cell_timeout, total_timeout
        )
        if base:
            notebooks.write(executed, fresh / f"graded_{notebook.name}")
    finally:
        if not base:
            shutil.rmtree(fresh, ignore_errors=True)

    reached = True
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        stop = report.stopped if index == stopped_at else ""
        ran = cell.get("execution_count") is not None or cell.get("outputs") or stop
        check = checks.get(cell.get("id")) if "test" in notebooks.tags(cell) else None
        if not reached or not ran:
            if check and check.status == "not run":
                check.reason = f"not reached: {report.stopped}" if report.stopped else "not run"
            continue
        error = _cell_error(cell)
        if stop:
            reached = False
            error = stop + (f" ({error})" if error else "")
        if check:
            check.status = "failed" if error else "passed"
            check.points = 0.0 if error else check.points_possible
            check.reason = error
        elif error:
            where = student_cells.get(cell.get("id"))
            label = f"cell {where}" if where else f"cell {cell.get('id')}"
            report.errors.append(f"{label}: {error}")
    for check in report.checks:
        if check.status == "not run" and not check.reason:
            check.reason = f"not reached: {report.stopped}" if report.stopped else "not run"
    report.seconds = time.monotonic() - started
    return report


def table(report: Report) -> str:
    rows = [("check", "points", "status", "reason")]
    for c in report.checks:
        rows.append((c.id, f"{c.points:g}/{c.points_possible:g}", c.status, c.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    lines.append(f"total: {report.points:g}/{report.points_possible:g} points")
    if report.stopped:
        lines.append(f"stopped early: {report.stopped}")
    lines.extend(f"error in {e}" for e in report.errors)
    return "\n".join(lines)


def junit(report: Report) -> str:
    failures = sum(c.status == "failed" for c in report.checks)
    errors = sum(c.status == "not run" for c in report.checks)
    suite = ET.Element(
        "testsuite",
        name=Path(report.notebook).stem,
        tests=str(len(report.checks)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{report.seconds:.2f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="points", value=f"{report.points:g}")
    ET.SubElement(props, "property", name="points_possible", value=f"{report.points_possible:g}")
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=Path(report.notebook).stem, name=c.id)
        ET.SubElement(case, "properties").append(
            ET.Element("property", name="points", value=f"{c.points:g}/{c.points_possible:g}")
        )
        if c.status == "failed":
            ET.SubElement(case, "failure", message=c.reason).text = c.reason
        elif c.status == "not run":
            ET.SubElement(case, "error", message=c.reason).text = c.reason
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", type=Path, help="the lab notebook to grade")
    parser.add_argument("--solution", type=Path, help="solution notebook (default: from the path)")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--junit", type=Path, help="write the report as JUnit XML here")
    parser.add_argument(
        "--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds per cell (300)"
    )
    parser.add_argument(
        "--timeout", type=float, default=TOTAL_TIMEOUT, help="seconds in all (1200)"
    )
    parser.add_argument(
        "--smoke",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run with SMOKE=True (default; --no-smoke runs the notebook's own sizes)",
    )
    parser.add_argument(
        "--run-dir", type=Path, help="keep the run folder and graded notebook under this folder"
    )


def main(args: argparse.Namespace) -> int:
    if not args.notebook.is_file():
        print(f"prodml grade: no such notebook: {args.notebook}")
        return 2
    try:
        report = grade(
            args.notebook,
            args.solution,
            smoke=args.smoke,
            cell_timeout=args.cell_timeout,
            total_timeout=args.timeout,
            run_dir=args.run_dir,
        )
    except (GradeError, FileNotFoundError) as error:
        print(f"prodml grade: {error}")
        return 2
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.junit:
        args.junit.write_text(junit(report))
    return 0 if report.full_marks else 1
