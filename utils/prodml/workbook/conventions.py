"""The authoring conventions of a lab that a tool can check (CONTRIBUTING.md, "Authoring
conventions for TODOs"); ``prodml release`` refuses a lab that breaks one.

Checked, per lab folder (its notebooks, ``.py`` and ``.html`` files together), each rule by
name:

1. ``unique``: TODO numbers are unique within the lab;
2. ``graded-by``: every TODO block names the check(s) that grade it, ``Graded by: <test cell
   id>, ...``, and each is a code cell tagged ``test`` in the lab's notebook;
3. ``solution-code``: no TODO block contains the solution's code: a line of its solution
   region, or a call from it with its arguments (compared with spaces removed, quotes unified);
4. ``hints-cell``: every TODO has a hints markdown cell whose first line reads ``**Hints for
   TODO n**`` (or ``**Hints for TODOs 2 and 3**``), also when it opens a ``<details>`` block,
   placed before or after the TODO's code cell;
5. ``solution-api``: neither the TODO block nor its hints cell names a call (``Name(``) or an
   attribute chain (``beam.WindowInto``) that the solution's code for that TODO uses;
6. ``collapsed-hints``: a hints cell's hints are collapsed: after its first line, everything is
   inside ``<details><summary>Hint 1: ...</summary> ... </details>`` blocks, one per hint;
7. ``points``: every check worth points is named by some TODO's ``Graded by:`` (checks on
   given code carry no points), so a pristine lab scores 0.

:data:`UNCONVERTED_LABS` waives named rules for labs whose text predates them: their problems
are reported (``prodml release`` prints them) but do not stop a release.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from prodml.workbook import markers, notebooks

__all__ = ["HINTS", "RULES", "UNCONVERTED_LABS", "Todo", "check_lab", "hint_numbers", "lab_todos"]

RULES = (
    "unique",
    "graded-by",
    "solution-code",
    "hints-cell",
    "solution-api",
    "collapsed-hints",
    "points",
)
#: KNOWN EXCEPTIONS, emptied by the labs engineer as each lab is rewritten (issue 27): lab ->
#: the rules its current text breaks, reported by ``prodml release`` but not refused.
UNCONVERTED_LABS: dict[str, frozenset[str]] = {}

HINTS = re.compile(r"^\s*\*\*Hints? for TODOs?\s+([0-9][0-9 ,&and]*)\*\*", re.IGNORECASE)
_OPENING = re.compile(r"^\s*(?:<details>\s*|<summary>\s*)+", re.IGNORECASE)
_DETAILS = re.compile(r"<details>\s*<summary>.*?</summary>.*?</details>", re.IGNORECASE | re.DOTALL)
_MIN_CODE = 8  # shorter solution lines ("return x", ")") may well appear in plain words
_BUILTINS = set(dir(builtins))


@dataclass
class Todo:
    """A TODO announcing a solution region, as the conventions see it."""

    number: int
    text: str  # the whole TODO block, comment markers removed
    where: str  # file (and cell) and line
    solution: list[str] = field(default_factory=list)  # the solution region's lines
    cell: int | None = None  # index of the notebook cell holding it

    @property
    def graded_by(self) -> list[str]:
        return markers.graded_by(self.text)


def _blocks(source: str, where: str, *, html: bool, cell: int | None = None) -> list[Todo]:
    """The TODOs announcing solution regions in one text, with their regions' lines."""
    return [
        Todo(b.number, b.text, f"{where}:{b.line}", b.solution, cell)
        for b in markers.blocks(source, html=html)
    ]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).replace('"', "'")


def _solution_tree(todo: Todo) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent("\n".join(todo.solution)))
    except SyntaxError:  # an HTML region, or a fragment
        return None


def _code_in_comment(todo: Todo) -> str | None:
    """The first piece of the solution's code that the TODO's comment spells out, if any."""
    comment = _squash(todo.text)
    for line in todo.solution:
        code = _squash(line.split("  #", 1)[0])
        if re.fullmatch(r"[\w.]+,?", code):  # a bare name (an argument on its own line): words
            continue
        if len(code) >= _MIN_CODE and not code.startswith("#") and code in comment:
            return line.strip()
    tree = _solution_tree(todo)
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Call) and (node.args or node.keywords):
            code = ast.unparse(node)
            if len(_squash(code)) >= _MIN_CODE and _squash(code) in comment:
                return code
    return None


def _chain(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain rooted at a name (not ``self``), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not parts or node.id == "self":
        return None
    return ".".join([node.id, *reversed(parts)])


def solution_api(todo: Todo, defined: set[str] = frozenset()) -> list[tuple[str, re.Pattern]]:
    """What the solution's code for ``todo`` calls and reaches from a library: ``(shown,
    pattern)`` for each attribute chain (``beam.WindowInto``) and each call
    (``AfterWatermark(``, a method also by its own name: ``execute(``). Builtins and what the
    lab itself ``defined`` (its functions, classes and variables: the TODO's inputs) aside."""
    tree = _solution_tree(todo)
    found: dict[str, re.Pattern] = {}
    for node in ast.walk(tree) if tree else ():
        chain = _chain(node)
        if chain and chain.split(".")[0] not in defined:
            found.setdefault(chain, re.compile(rf"(?<![\w.]){re.escape(chain)}(?!\w)"))
        if isinstance(node, ast.Call):
            name = _chain(node.func) or getattr(node.func, "id", None)
            last = getattr(node.func, "attr", None)
            for callee in {name, last} - {None} - _BUILTINS:
                if callee.split(".")[0] in defined and callee != last:
                    continue
                if callee in defined:
                    continue
                shown = f"{callee}(...)"
                found.setdefault(shown, re.compile(rf"(?<![\w.]){re.escape(callee)}\s*\("))
    return sorted(found.items())


def _defined(source: str, *, cell: bool = False) -> set[str]:
    """The functions, classes and variables a text of Python code defines."""
    if cell:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def hint_numbers(text: str) -> set[int]:
    """The TODO numbers a hints cell is for (its first line, also inside ``<details>``)."""
    head = _OPENING.sub("", text.strip())
    match = HINTS.match(head.splitlines()[0] if head.strip() else "")
    return {int(n) for n in re.findall(r"\d+", match.group(1))} if match else set()


def _collapsed(text: str) -> bool:
    """True when everything after the hints cell's first line is in ``<details>`` blocks."""
    head = _OPENING.sub("", text.strip())  # the header line, also inside <details><summary>
    body = head.split("\n", 1)[1] if "\n" in head else ""
    if not _DETAILS.search(body):
        return False
    return not re.sub(r"</?details>|</?summary>", "", _DETAILS.sub("", body)).strip()


@dataclass
class _Lab:
    todos: list[Todo] = field(default_factory=list)
    tests: dict[str, float] = field(default_factory=dict)  # test cell id -> points
    hints: dict[int, list[str]] = field(default_factory=dict)  # TODO -> its hints cells' text
    defined: set[str] = field(default_factory=set)  # names the lab's own code defines
    notebook_seen: bool = False


def _scan(folder: Path, files: list[Path] | None) -> _Lab:
    files = files if files is not None else sorted(p for p in folder.rglob("*") if p.is_file())
    lab = _Lab()
    for path in files:
        if notebooks.skipped(path.relative_to(folder)):
            continue
        where = str(path.relative_to(folder.parent))
        if path.suffix == ".py":
            lab.todos += _blocks(path.read_text(encoding="utf-8"), where, html=False)
            lab.defined |= _defined(path.read_text(encoding="utf-8"))
        elif path.suffix in (".html", ".htm"):
            lab.todos += _blocks(path.read_text(encoding="utf-8"), where, html=True)
        elif path.suffix == ".ipynb":
            lab.notebook_seen = True
            _scan_notebook(notebooks.read(path), where, lab)
    return lab


def _scan_notebook(nb, where: str, lab: _Lab) -> None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for number in hint_numbers(cell.source):
                lab.hints.setdefault(number, []).append(cell.source)
        elif cell.cell_type == "code":
            here = f"{where} cell {index} line"
            lab.todos += _blocks(cell.source, here, html=False, cell=index)
            lab.defined |= _defined(cell.source, cell=True)
            if "test" in notebooks.tags(cell):
                lab.tests[cell.get("id")] = cell.metadata.get("prodml", {}).get("points", 1)


def lab_todos(folder: Path) -> list[Todo]:
    """Every TODO of the lab in ``folder`` that announces a solution region."""
    return _scan(folder, None).todos


def _todo_problems(todo: Todo, lab: _Lab):
    """(rule, problem) for one TODO."""
    n, where = todo.number, todo.where
    if not todo.graded_by:
        yield (
            "graded-by",
            f"{where}: TODO {n} does not name its check ('Graded by: <test cell id>')",
        )
    for check in todo.graded_by:
        if check not in lab.tests and lab.notebook_seen:
            yield (
                "graded-by",
                (
                    f"{where}: TODO {n} is 'Graded by: {check}', which is not a test cell of the "
                    "lab's notebook"
                ),
            )
    code = _code_in_comment(todo)
    if code:
        yield (
            "solution-code",
            (
                f"{where}: TODO {n}'s comment contains the solution's code ({code!r}): state the "
                "goal, inputs and output, not the code"
            ),
        )
    hints = lab.hints.get(n, [])
    if lab.notebook_seen and not hints:
        yield (
            "hints-cell",
            (
                f"{where}: TODO {n} has no hints cell (a markdown cell starting '**Hints for TODO {n}**')"
            ),
        )
    for text, place in [(todo.text, "comment"), *((h, "hints cell") for h in hints)]:
        for shown, pattern in solution_api(todo, lab.defined):
            if pattern.search(text):
                yield (
                    "solution-api",
                    (
                        f"{where}: TODO {n}'s {place} names {shown!r}, which the solution's code "
                        "for it uses: pose the problem, name the idea or the module, not the call"
                    ),
                )
    if any(not _collapsed(h) for h in hints):
        yield (
            "collapsed-hints",
            (
                f"{where}: TODO {n}'s hints are not collapsed: after the first line, put each hint "
                "in <details><summary>Hint 1: ...</summary> ... </details>"
            ),
        )


def problems(folder: Path, files: list[Path] | None = None) -> list[tuple[str, str]]:
    """Every convention the lab in ``folder`` breaks: ``(rule, problem)`` pairs."""
    lab = _scan(folder, files)
    found: list[tuple[str, str]] = []
    seen: dict[int, str] = {}
    for todo in lab.todos:
        if todo.number in seen:
            found.append(("unique", f"{todo.where}: TODO {todo.number} is also at "
                          f"{seen[todo.number]} (one number, one exercise)"))  # fmt: skip
        seen.setdefault(todo.number, todo.where)
        found.extend(_todo_problems(todo, lab))
    graded = {check for todo in lab.todos for check in todo.graded_by}
    for check, points in lab.tests.items():
        if points and check not in graded:
            found.append(("points", (
                f"{folder.name}: test cell {check!r} is worth {points:g} point(s) but grades no "
                "TODO: name it in a TODO's 'Graded by:' or set metadata.prodml.points to 0"
            )))  # fmt: skip
    return found


def check_lab(folder: Path, files: list[Path] | None = None) -> list[str]:
    """Every convention the lab in ``folder`` breaks, one line each (empty: none), less those
    :data:`UNCONVERTED_LABS` waives for it (:func:`waived` lists them)."""
    waive = UNCONVERTED_LABS.get(folder.name, frozenset())
    return [text for rule, text in problems(folder, files) if rule not in waive]


def waived(folder: Path, files: list[Path] | None = None) -> list[str]:
    """The problems :data:`UNCONVERTED_LABS` waives for the lab in ``folder``."""
    waive = UNCONVERTED_LABS.get(folder.name, frozenset())
    return [f"[{rule}] {text}" for rule, text in problems(folder, files) if rule in waive]
