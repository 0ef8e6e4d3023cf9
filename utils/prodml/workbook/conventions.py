"""The authoring conventions of a lab that a tool can check (CONTRIBUTING.md, "Authoring
conventions for TODOs"); ``prodml release`` refuses a lab that breaks one.

Checked, per lab folder (its notebooks, ``.py`` and ``.html`` files together):

1. TODO numbers are unique within the lab;
2. every TODO block names the check(s) that grade it, ``Graded by: <test cell id>, ...``, and
   each is a code cell tagged ``test`` in the lab's notebook;
3. no TODO block contains the solution's code: a line of its solution region, or a call from
   it with its arguments (compared with spaces removed and quotes unified);
4. every TODO has a hints markdown cell (first line ``**Hints for TODO n**``), before its code
   cell when the TODO sits in the notebook;
6. every check worth points is named by some TODO's ``Graded by:`` (checks on given code carry
   no points), so a pristine lab scores 0.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from prodml.workbook import notebooks

GRADED_BY = re.compile(r"Graded by:\s*(.*)$", re.IGNORECASE)
HINTS = re.compile(r"^\s*\*\*Hints? for TODOs?\s+([0-9][0-9 ,&and]*)\*\*", re.IGNORECASE)
#: labels that end a TODO's goal: the stub quotes the goal only
FIELD_LABEL = re.compile(r"\b(Inputs?|Outputs?|Graded by|Returns?)\s*:", re.IGNORECASE)
_MIN_CODE = 8  # shorter solution lines ("return x", ")") may well appear in plain words


@dataclass
class Todo:
    number: int
    text: str  # the whole TODO block, comment markers removed
    where: str  # file (and cell) and line
    solution: list[str] = field(default_factory=list)  # the solution region's lines
    cell: int | None = None  # index of the notebook cell holding it

    @property
    def graded_by(self) -> list[str]:
        match = GRADED_BY.search(self.text)
        if not match:
            return []
        return [w for w in re.split(r"[\s,;]+", match.group(1)) if w and w.lower() != "and"]


def goal(text: str) -> str:
    """A TODO's goal: its text up to the first field label (``Inputs:``, ``Graded by:`` ...)."""
    match = FIELD_LABEL.search(text)
    return text[: match.start()].strip().rstrip(".").strip() if match else text.strip()


def _blocks(source: str, where: str, *, html: bool, cell: int | None = None) -> list[Todo]:
    """The TODOs announcing solution regions in one text, with their regions' lines."""
    from prodml.workbook import release  # release imports this module

    markers = release.HTML_MARKERS if html else release.PY_MARKERS
    lines = source.splitlines()
    found: list[Todo] = []
    current: Todo | None = None
    for index, line in enumerate(lines):
        if markers["BEGIN SOLUTION"].match(line):
            todo = release.todo_before(lines[:index], html=html)
            if todo is None:
                continue  # release reports it, with the line
            full = todo[1]
            if not html:  # the whole comment block, every line
                start = max(i for i in range(index) if release.PY_TODO.match(lines[i]))
                full = release.todo_continuation(lines, start)[0]
            current = Todo(int(todo[0]), full, f"{where}:{index + 1}", cell=cell)
            found.append(current)
        elif markers["END SOLUTION"].match(line):
            current = None
        elif current is not None:
            current.solution.append(line)
    return found


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).replace('"', "'")


def _code_in_comment(todo: Todo) -> str | None:
    """The first piece of the solution's code that the TODO's comment spells out, if any."""
    comment = _squash(todo.text)
    for line in todo.solution:
        code = _squash(line.split("  #", 1)[0])
        if re.fullmatch(r"[\w.]+,?", code):  # a bare name (an argument on its own line): words
            continue
        if len(code) >= _MIN_CODE and not code.startswith("#") and code in comment:
            return line.strip()
    try:
        tree = ast.parse(textwrap.dedent("\n".join(todo.solution)))
    except SyntaxError:  # an HTML region, or a fragment: the line comparison above is enough
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (node.args or node.keywords):
            code = ast.unparse(node)
            if len(_squash(code)) >= _MIN_CODE and _squash(code) in comment:
                return code
    return None


def _hint_numbers(text: str) -> set[int]:
    match = HINTS.match(text.splitlines()[0] if text.strip() else "")
    return {int(n) for n in re.findall(r"\d+", match.group(1))} if match else set()


def _scan(folder: Path, files: list[Path] | None):
    files = files if files is not None else sorted(p for p in folder.rglob("*") if p.is_file())
    todos: list[Todo] = []
    tests: dict[str, float] = {}  # test cell id -> points
    hints: dict[int, int] = {}  # TODO number -> index of its hints cell (in the notebook)
    notebook_seen = False
    for path in files:
        if notebooks.skipped(path.relative_to(folder)):
            continue
        where = str(path.relative_to(folder.parent))
        if path.suffix == ".py":
            todos += _blocks(path.read_text(encoding="utf-8"), where, html=False)
        elif path.suffix in (".html", ".htm"):
            todos += _blocks(path.read_text(encoding="utf-8"), where, html=True)
        elif path.suffix == ".ipynb":
            notebook_seen = True
            nb = notebooks.read(path)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "markdown":
                    for number in _hint_numbers(cell.source):
                        hints.setdefault(number, index)
                elif cell.cell_type == "code":
                    here = f"{where} cell {index + 1} line"
                    todos += _blocks(cell.source, here, html=False, cell=index)
                    if "test" in notebooks.tags(cell):
                        points = cell.metadata.get("prodml", {}).get("points", 1)
                        tests[cell.get("id")] = points
    return todos, tests, hints, notebook_seen


def lab_todos(folder: Path) -> list[Todo]:
    """Every TODO of the lab in ``folder`` that announces a solution region."""
    return _scan(folder, None)[0]


def check_lab(folder: Path, files: list[Path] | None = None) -> list[str]:
    """Every convention the lab in ``folder`` breaks, one line each (empty: none)."""
    todos, tests, hints, notebook_seen = _scan(folder, files)
    problems: list[str] = []
    seen: dict[int, str] = {}
    for todo in todos:
        if todo.number in seen:
            problems.append(
                f"{todo.where}: TODO {todo.number} is also at {seen[todo.number]} "
                "(one number, one exercise)"
            )
        seen.setdefault(todo.number, todo.where)
        if not todo.graded_by:
            problems.append(
                f"{todo.where}: TODO {todo.number} does not name its check "
                "('Graded by: <test cell id>')"
            )
        for check in todo.graded_by:
            if check not in tests and notebook_seen:
                problems.append(
                    f"{todo.where}: TODO {todo.number} is 'Graded by: {check}', "
                    "which is not a test cell of the lab's notebook"
                )
        code = _code_in_comment(todo)
        if code:
            problems.append(
                f"{todo.where}: TODO {todo.number}'s comment contains the solution's code "
                f"({code!r}): state the goal, inputs and output, not the code"
            )
        if notebook_seen and todo.number not in hints:
            problems.append(
                f"{todo.where}: TODO {todo.number} has no hints cell "
                f"(a markdown cell starting '**Hints for TODO {todo.number}**')"
            )
        elif todo.cell is not None and hints.get(todo.number, -1) > todo.cell:
            problems.append(
                f"{todo.where}: the hints cell of TODO {todo.number} comes after its code cell"
            )
    graded = {check for todo in todos for check in todo.graded_by}
    for check, points in tests.items():
        if points and check not in graded:
            problems.append(
                f"{folder.name}: test cell {check!r} is worth {points:g} point(s) but grades no "
                "TODO: name it in a TODO's 'Graded by:' or set metadata.prodml.points to 0"
            )
    return problems
