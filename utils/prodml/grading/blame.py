"""Grading step: blame. Every check gets its status and reason, and each root cause is listed
once with its first real error.

A cell's failure is traced back through the names cells define and read: a failed cell marks
the names it defines (and, for a stub, the names its solution defines) with its root cause, and
a later failure in a cell reading one of them shares that cause. An error naming ``TODO n`` (a
stub's ``NotImplementedError``, a server's "TODO n not done") is caused by TODO n; a check that
grades that TODO (``Graded by:``) then *failed*, any other check is *blocked* by it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from prodml.grading.report import Check, Report
from prodml.workbook import conventions, notebooks

__all__ = ["Cause", "analyse", "cell_error", "graded_by", "names"]

_TODO = re.compile(r"\bTODO (\d+)\b")
_NAME_ERROR = re.compile(r"^NameError: name '(\w+)' is not defined")


def names(source: str) -> tuple[set[str], set[str]]:
    """The names a cell binds at top level and the names it reads anywhere."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:  # it never ran: what it meant to define, as well as a regex can tell
        binds = re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", source, flags=re.M)
        return {a or b for a, b in binds}, set()
    binds: set[str] = set()

    def top(statements) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                binds.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                binds.update((a.asname or a.name).split(".")[0] for a in node.names)
            else:
                binds.update(
                    n.id
                    for n in ast.walk(node)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
                )
                for name in ("body", "orelse", "finalbody", "handlers"):
                    top(getattr(node, name, []) or [])

    top(tree.body)
    reads = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return binds, reads


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


def cell_error(cell) -> str:
    """The first error a cell's outputs hold, as ``Name: message`` (or the failing line)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return _error_reason(output)
    return ""


@dataclass
class Cause:
    """A root cause: ``label`` ("TODO 3" or "cell 12") and where it first showed, with the
    error."""

    label: str
    first: str

    def __str__(self) -> str:
        return f"{self.label} not done ({self.first})" if self.is_todo else self.first

    @property
    def is_todo(self) -> bool:
        return self.label.startswith("TODO")


def graded_by(solution: Path) -> dict[int, set[str]]:
    """TODO number -> the checks that grade it (from the solution lab's TODO blocks)."""
    try:
        todos = conventions.lab_todos(Path(solution).parent)
    except Exception:  # a lab the conventions cannot read still grades, without this help
        return {}
    return {todo.number: set(todo.graded_by) for todo in todos}


class _Tracer:
    """The walk over the executed cells: which names are poisoned by which cause."""

    def __init__(self, report: Report, student_cells: dict, graded: dict, solution_binds: dict):
        self.report, self.student_cells = report, student_cells
        self.graded, self.solution_binds = graded, solution_binds
        self.poisoned: dict[str, Cause] = {}
        self.causes: dict[str, Cause] = {}

    def cause_of(self, cell, error: str, stop: str, reads: set[str]) -> tuple[Cause, str]:
        """The root cause of a cell's failure, and the label of the cell itself."""
        where = self.student_cells.get(cell.get("id"))
        label = f"cell {where}" if where is not None else f"cell {cell.get('id')}"
        todo = None if stop else _TODO.search(error)
        if todo:
            key = f"TODO {todo.group(1)}"
            return self.causes.setdefault(key, Cause(key, f"{label}: {error}")), label
        missing = _NAME_ERROR.match(error)
        inherited = [self.poisoned[n] for n in sorted(reads) if n in self.poisoned]
        if missing and missing.group(1) in self.poisoned:
            inherited.insert(0, self.poisoned[missing.group(1)])
        if inherited and not stop:
            return inherited[0], label
        return self.causes.setdefault(label, Cause(label, f"{label}: {error}")), label

    def judge(self, check: Check, cause: Cause, label: str, error: str) -> None:
        check.points = 0.0
        if cause.label == label:  # the check itself is the root cause
            check.status = "failed" if error.startswith("AssertionError") else "error"
            check.reason = error
        elif cause.is_todo and check.id in self.graded.get(int(cause.label.split()[1]), set()):
            check.status, check.reason = "failed", str(cause)
        else:
            check.status, check.reason = "blocked", f"blocked by {cause.label} ({cause.first})"

    def visit(self, cell, check: Check | None, stop: str) -> None:
        error = cell_error(cell)
        if stop:
            error = stop + (f" ({error})" if error else "")
        binds, reads = names(cell.source)
        # what the cell defines once done: a stub's cell lacks the solution's names
        binds |= self.solution_binds.get(cell.get("id"), set())
        if not error:
            for name in binds:
                self.poisoned.pop(name, None)
            if check:
                check.passed()
            return
        cause, label = self.cause_of(cell, error, stop, reads)
        for name in binds:
            self.poisoned[name] = cause
        if check:
            self.judge(check, cause, label, error)


def analyse(
    executed,
    report: Report,
    student_cells: dict,
    stopped_at: int | None,
    graded: dict[int, set[str]],
    solution_binds: dict[str, set[str]] | None = None,
) -> None:
    """Give every check of ``report`` its status and reason, and list the root causes.

    ``student_cells``: cell id -> its 1-based number in the student's notebook (for messages);
    ``stopped_at``: the index of the cell execution stopped in (``report.stopped`` says why);
    ``graded``: TODO number -> the checks grading it; ``solution_binds``: cell id -> the names
    the solution's cell defines."""
    checks = {c.id: c for c in report.checks}
    tracer = _Tracer(report, student_cells, graded, solution_binds or {})
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        stop = report.stopped if index == stopped_at else ""
        ran = cell.get("execution_count") is not None or cell.get("outputs") or stop
        check = checks.get(cell.get("id")) if "test" in notebooks.tags(cell) else None
        if not ran:
            continue
        tracer.visit(cell, check, stop)
        if stop:
            break
    report.root_causes = [str(c) for c in tracer.causes.values()]
    report.not_reached("")
