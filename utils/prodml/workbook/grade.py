"""``prodml grade``: execute a lab notebook headlessly and score it against its solution.

The solution's test cells (code cells tagged ``test``; points in ``metadata.prodml.points``,
default 1) replace the student's cells of the same id, or are re-inserted after the cell that
precedes them in the solution, so a student cannot weaken or delete a check. The notebook then
runs in a fresh kernel (``python3``, cwd its folder, a fresh ``PRODML_RUN_DIR``, ``SMOKE=True``
unless ``--no-smoke``). Failing cells do not stop the run, so later checks still score.

Limits: a cell time limit, a total time limit, a memory limit and an output limit per cell. The
memory limit is the kernel's ``RLIMIT_DATA`` (its heap and private writable mappings: a larger
allocation raises ``MemoryError``; ``RLIMIT_AS`` would count the gigabytes of address space
TensorFlow reserves without using them), plus, on Linux, a watchdog summing the resident
memory of the kernel and every process it started (``/proc``), which catches children and a
submission that raises its own limit. Output beyond the per-cell limit is dropped and stops the
run, like nbgrader's ``LimitOutput`` keeps notebooks small. When a limit is hit the kernel is
killed (never merely interrupted, so grading cannot hang); the cell that hit it fails with the
limit as its reason and every check not reached scores 0 with that reason.

Feedback: every check is ``passed``, ``failed`` (its assertion failed, or the TODO it grades is
not done), ``error`` (it raised something else) or ``blocked`` (it failed only because an
earlier cell failed), and the report lists each root cause once with its first real error. A
cell's failure is traced back through the names cells define and read: a failed cell marks the
names it defines with its root cause, and a later failure in a cell reading one of them shares
that cause. An error naming ``TODO n`` (a stub's ``NotImplementedError``, a server's "TODO n not
done") is caused by TODO n.

``--lab LAB SUBMISSION...`` grades a class: each submission is a folder (named for the student)
holding a copy of the lab folder; each is graded in its own process, kernel and working copy,
``--jobs`` at a time, and the batch always finishes with one JSON and one JUnit report per
student and one gradebook CSV. Exit status 0 only at full marks (a batch: when it finished).
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prodml.workbook import conventions, notebooks

CELL_TIMEOUT = 300
TOTAL_TIMEOUT = 1200
MEMORY_GIB = 4.0
MAX_OUTPUT = 1_000_000  # characters a cell may output (streams, displays, tracebacks)
MAX_LINES = 1000  # lines kept per stream output in a stored graded notebook (LimitOutput's)
STATUSES = ("passed", "failed", "error", "blocked", "not run")
_TODO = re.compile(r"\bTODO (\d+)\b")
_NAME_ERROR = re.compile(r"^NameError: name '(\w+)' is not defined")


class GradeError(ValueError):
    """Grading cannot start (no solution, no checks, an unreadable notebook)."""


@dataclass
class Check:
    id: str
    points_possible: float
    points: float = 0.0
    status: str = "not run"  # passed | failed | error | blocked | not run
    reason: str = ""


@dataclass
class Report:
    notebook: str
    solution: str
    checks: list[Check]
    root_causes: list[str] = field(default_factory=list)  # each once, with its first error
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
            "root_causes": self.root_causes,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        checks = [Check(**c) for c in data["checks"]]
        return cls(
            data["notebook"],
            data["solution"],
            checks,
            data.get("root_causes", []),
            data.get("stopped") or "",
            data.get("seconds", 0.0),
        )


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


def _kernel_pid(client) -> int | None:
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    process = getattr(provisioner, "process", None)
    return process.pid if process is not None and process.poll() is None else None


def _resident_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux ``/proc``; 0 elsewhere)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def _limit_memory(limit: int):
    """``preexec_fn`` for the kernel: cap its data segment (see the module's docs)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


def _make_client(nb, folder: Path, cell_timeout: float, max_output: int):
    """An nbclient ``NotebookClient`` that counts each cell's output and stops at ``max_output``
    characters (killing the kernel), keeping at most :data:`MAX_LINES` lines per stream."""
    from nbclient import NotebookClient

    class LimitedClient(NotebookClient):
        limit_hit = ""
        _cell_chars = 0
        _cell_index = -1

        def output(self, outs, msg, display_id, cell_index):
            if cell_index != self._cell_index:
                self._cell_index, self._cell_chars = cell_index, 0
            content = msg.get("content", {})
            size = len(content.get("text", "")) + sum(
                len(str(v)) for v in content.get("data", {}).values()
            )
            size += sum(len(line) for line in content.get("traceback", []))
            self._cell_chars += size
            if self._cell_chars > max_output:
                if not self.limit_hit:
                    self.limit_hit = (
                        f"a cell's output exceeded the output limit of {max_output:,} characters"
                    )
                    _kill(self)
                return None
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None and out.get("output_type") == "stream":
                lines = out.text.splitlines(keepends=True)
                if len(lines) > MAX_LINES:
                    out.text = "".join(lines[:MAX_LINES]) + "... (output truncated)\n"
            return out

    return LimitedClient(
        nb,
        kernel_name="python3",
        timeout=cell_timeout,
        allow_errors=True,
        startup_timeout=120,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(folder)}},
    )


def execute(
    nb,
    folder: Path,
    run_dir: Path,
    name: str,
    cell_timeout: float,
    total_timeout: float,
    memory_gib: float = MEMORY_GIB,
    max_output: int = MAX_OUTPUT,
):
    """Run every cell (errors allowed) within the limits.

    Returns the executed notebook, why execution stopped early (or "") and the index of the
    cell it stopped in (or None).
    """
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client = _make_client(nb, folder, cell_timeout, max_output)
    env = dict(os.environ, PRODML_RUN_DIR=str(run_dir), PRODML_NOTEBOOK=name)
    limit = int(memory_gib * 2**30)
    memory_note = f"the memory limit of {memory_gib:g} GiB was exceeded"
    deadline = time.monotonic() + total_timeout
    over_memory = threading.Event()
    done = threading.Event()

    def watch() -> None:
        # Last resort for time: whatever nbclient waits on, the kernel dies at the deadline
        # (+ grace); and every 0.2 s, the memory of the kernel's process tree.
        while not done.wait(0.2):
            pid = _kernel_pid(client)
            if pid and Path("/proc").is_dir() and _resident_bytes(pid) > limit:
                over_memory.set()
                _kill(client)
            if time.monotonic() > deadline + 30:
                _kill(client)

    watchdog = threading.Thread(target=watch, daemon=True)
    stopped, stopped_at = "", None
    try:
        watchdog.start()
        with client.setup_kernel(env=env, preexec_fn=_limit_memory(limit)):
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
                if client.limit_hit or any(
                    o.get("ename") == "MemoryError" for o in cell.get("outputs", [])
                ):
                    stopped_at = index
                    break
    except DeadKernelError:  # died while starting or shutting down
        stopped = stopped or "the kernel died"
    except RuntimeError as error:  # kernel failed to start
        stopped = stopped or f"the kernel did not start: {notebooks.first_line(str(error))}"
    finally:
        done.set()
        _kill(client)
    if client.limit_hit:
        stopped = client.limit_hit
    elif over_memory.is_set() or (
        stopped_at is not None
        and any(o.get("ename") == "MemoryError" for o in nb.cells[stopped_at].get("outputs", []))
    ):
        stopped = memory_note
    return nb, stopped, stopped_at


def _names(source: str) -> tuple[set[str], set[str]]:
    """The names a cell binds at top level and the names it reads anywhere."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:  # it never ran: what it meant to define, as well as a regex can tell
        binds = re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", source, flags=re.M)
        return {a or b for a, b in binds}, set()
    binds: set[str] = set()
    reads: set[str] = set()

    def top(statements) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                binds.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                binds.update((a.asname or a.name).split(".")[0] for a in node.names)
            else:
                for child in ast.walk(node):
                    if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                        binds.add(child.id)
                for name in ("body", "orelse", "finalbody", "handlers"):
                    top(getattr(node, name, []) or [])

    top(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            reads.add(node.id)
    return binds, reads


@dataclass
class _Cause:
    label: str  # "TODO 3" or "cell 12"
    first: str  # where it first showed, and the error

    def __str__(self) -> str:
        return (
            f"{self.label} not done ({self.first})" if self.label.startswith("TODO") else self.first
        )


def _graded_by(solution: Path) -> dict[int, set[str]]:
    """TODO number -> the checks that grade it (from the solution lab's TODO blocks)."""
    try:
        todos = conventions.lab_todos(solution.parent)
    except Exception:  # a lab the conventions cannot read still grades, without this help
        return {}
    return {todo.number: set(todo.graded_by) for todo in todos}


def analyse(
    executed,
    report: Report,
    checks: dict[str, Check],
    student_cells,
    stopped_at,
    graded_by: dict[int, set[str]],
    solution_binds: dict[str, set[str]] | None = None,
) -> None:
    """Give every check its status and reason, and list the root causes (module docs)."""
    poisoned: dict[str, _Cause] = {}
    causes: dict[str, _Cause] = {}
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
        binds, reads = _names(cell.source)
        # what the cell defines once done: a stub's cell lacks the solution's names
        binds |= (solution_binds or {}).get(cell.get("id"), set())
        if not error:
            for name in binds:
                poisoned.pop(name, None)
            if check:
                check.status, check.points, check.reason = "passed", check.points_possible, ""
            continue
        where = student_cells.get(cell.get("id"))
        label = f"cell {where}" if where else f"cell {cell.get('id')}"
        todo = None if stop else _TODO.search(error)
        missing = _NAME_ERROR.match(error)
        inherited = [poisoned[n] for n in sorted(reads) if n in poisoned]
        if missing and missing.group(1) in poisoned:
            inherited.insert(0, poisoned[missing.group(1)])
        if todo:
            key = f"TODO {todo.group(1)}"
            cause = causes.setdefault(key, _Cause(key, f"{label}: {error}"))
        elif inherited and not stop:
            cause = inherited[0]
        else:
            cause = causes.setdefault(label, _Cause(label, f"{label}: {error}"))
        for name in binds:
            poisoned[name] = cause
        if not check:
            continue
        check.points = 0.0
        if cause.label == label:  # the check itself is the root cause
            check.status = "failed" if error.startswith("AssertionError") else "error"
            check.reason = error
        elif cause.label.startswith("TODO") and check.id in graded_by.get(
            int(cause.label.split()[1]), set()
        ):
            check.status, check.reason = "failed", str(cause)
        else:
            check.status, check.reason = "blocked", f"blocked by {cause.label} ({cause.first})"
    report.root_causes = [str(c) for c in causes.values()]
    for check in report.checks:
        if check.status == "not run" and not check.reason:
            check.reason = f"not reached: {report.stopped}" if report.stopped else "not run"


def grade(
    notebook: Path,
    solution: Path | None = None,
    *,
    smoke: bool = True,
    cell_timeout: float = CELL_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
    run_dir: Path | None = None,
    memory_gib: float = MEMORY_GIB,
    max_output: int = MAX_OUTPUT,
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

    base = Path(run_dir).resolve() if run_dir else None  # the kernel runs elsewhere
    if base:
        base.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f"grade-{notebook.stem}-", dir=base))
    try:
        executed, report.stopped, stopped_at = execute(
            merged,
            notebook.parent,
            fresh,
            notebook.stem,
            cell_timeout,
            total_timeout,
            memory_gib=memory_gib,
            max_output=max_output,
        )
        if base:
            notebooks.write(executed, fresh / f"graded_{notebook.name}")
    finally:
        if not base:
            shutil.rmtree(fresh, ignore_errors=True)
    solution_binds = {
        cell.get("id"): _names(cell.source)[0]
        for cell in solution_nb.cells
        if cell.cell_type == "code"
    }
    analyse(
        executed, report, checks, student_cells, stopped_at, _graded_by(solution), solution_binds
    )
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
    lines.extend(f"root cause: {cause}" for cause in report.root_causes)
    return "\n".join(lines)


def junit(report: Report) -> str:
    failures = sum(c.status == "failed" for c in report.checks)
    errors = len(report.checks) - failures - sum(c.status == "passed" for c in report.checks)
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
        elif c.status != "passed":
            ET.SubElement(case, "error", message=f"{c.status}: {c.reason}").text = c.reason
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def classroom(report: Report) -> dict:
    """The report in GitHub Classroom's runner-results shape (what its grading reporter reads,
    base64-encoded, from ``<RUNNER>_RESULTS``): overall status, max score, one test per check."""
    status = "pass" if report.full_marks else "fail"
    return {
        "version": 1,
        "status": status,
        "max_score": report.points_possible,
        "tests": [
            {
                "name": c.id,
                "status": "pass"
                if c.status == "passed"
                else ("fail" if c.status == "failed" else "error"),
                "score": c.points,
                "message": c.reason or None,
                "test_code": f"check {c.id} of {Path(report.solution).name}",
                "filename": Path(report.notebook).name,
                "line_no": 0,
                "execution_time": "",
            }
            for c in report.checks
        ],
    }


# ----------------------------------------------------------------------------- a whole class


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


def _not_graded(student_nb: str, solution: Path, reason: str, seconds: float) -> Report:
    nb = notebooks.read(solution)
    checks = [
        Check(c.id, _points(c), reason=reason)
        for c in nb.cells
        if c.cell_type == "code" and "test" in notebooks.tags(c)
    ]
    return Report(student_nb, str(solution), checks, [], reason, seconds)


def grade_submission(submission: Path, solution: Path, work: Path, options: dict) -> Report:
    """Grade one student's folder in a working copy, in its own process (a crash, a hang or a
    memory hog there cannot stop the batch)."""
    started = time.monotonic()
    found = _submission_notebook(submission, solution)
    if found is None:
        reason = f"no {solution.name} in {submission} (nor in {solution.parent.name}/ there)"
        return _not_graded(str(submission), solution, reason, 0.0)
    copy_dir = work / submission.name / found.parent.name
    shutil.copytree(
        found.parent,
        copy_dir,
        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"),
        symlinks=True,
    )
    out = work / submission.name / "report.json"
    command = [
        sys.executable, "-m", "prodml.cli", "grade", str(copy_dir / found.name),
        "--solution", str(solution), "--json", str(out),
        "--cell-timeout", str(options["cell_timeout"]), "--timeout", str(options["timeout"]),
        "--memory", str(options["memory"]), "--max-output", str(options["max_output"]),
        "--smoke" if options["smoke"] else "--no-smoke",
    ]  # fmt: skip
    grace = options["timeout"] + 180  # kernel start, imports, shutdown
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=grace, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        reason = f"the grader did not finish within {grace:g} s"
        return _not_graded(str(found), solution, reason, time.monotonic() - started)
    if not out.is_file():
        lines = (finished.stdout + finished.stderr).strip().splitlines() or [""]
        tail = notebooks.first_line(lines[-1])
        reason = f"the grader failed (exit status {finished.returncode}): {tail}"
        return _not_graded(str(found), solution, reason, time.monotonic() - started)
    report = Report.from_dict(json.loads(out.read_text()))
    report.notebook = str(found)  # the student's, not the working copy's
    return report


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
    results: dict[str, Report] = {}
    with tempfile.TemporaryDirectory(prefix="prodml-grade-") as tmp:

        def one(submission: Path) -> tuple[str, Report]:
            try:
                report = grade_submission(submission.resolve(), solution, Path(tmp), options)
            except Exception as error:  # the batch finishes whatever one submission does
                reason = f"the submission could not be graded: {type(error).__name__}: {error}"
                report = _not_graded(str(submission), solution, reason, 0.0)
            name = submission.resolve().name
            (reports / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
            (reports / f"{name}.xml").write_text(junit(report))
            (reports / f"{name}.classroom.json").write_text(json.dumps(classroom(report)) + "\n")
            print(f"{name}: {report.points:g}/{report.points_possible:g}"
                  + (f" (stopped: {report.stopped})" if report.stopped else ""), flush=True)  # fmt: skip
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="NOTEBOOK | SUBMISSION",
        help="the lab notebook to grade; with --lab, the students' folders",
    )
    parser.add_argument(
        "--lab", help="grade a class: the lab (name, or labs/ or solutions/ folder)"
    )
    parser.add_argument("--solution", type=Path, help="solution notebook (default: from the path)")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--junit", type=Path, help="write the report as JUnit XML here")
    parser.add_argument("--jobs", type=int, default=1, help="--lab: submissions at a time (1)")
    parser.add_argument(
        "--reports", type=Path, default=Path("grades"), help="--lab: report folder (grades)"
    )
    parser.add_argument(
        "--gradebook", type=Path, help="--lab: the gradebook CSV (default: REPORTS/gradebook.csv)"
    )
    parser.add_argument(
        "--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds per cell (300)"
    )
    parser.add_argument(
        "--timeout", type=float, default=TOTAL_TIMEOUT, help="seconds in all (1200)"
    )
    parser.add_argument("--memory", type=float, default=MEMORY_GIB, help="memory limit in GiB (4)")
    parser.add_argument(
        "--max-output",
        type=int,
        default=MAX_OUTPUT,
        help=f"characters of output a cell may print ({MAX_OUTPUT:,})",
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


def main(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        if args.lab:
            solution = lab_solution(args.lab)
            gradebook = args.gradebook or args.reports / "gradebook.csv"
            results = grade_class(
                solution, args.paths, args.reports, gradebook, jobs=args.jobs, **options
            )
            print(f"graded {len(results)} submission(s): {gradebook}")
            return 0
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
    except (GradeError, FileNotFoundError) as error:
        print(f"prodml grade: {error}")
        return 2
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.junit:
        args.junit.write_text(junit(report))
    return 0 if report.full_marks else 1
