"""``prodml todo PATH``: list the numbered TODOs of a lab, where each is and whether it is done.

It reads ``# TODO n: ...`` blocks and ``raise NotImplementedError("TODO n: ...")`` stubs in
``.py`` files and notebook code cells, and ``<!-- TODO n: ... -->`` comments in ``.html``
files (:mod:`~prodml.workbook.markers`). Each TODO is named with its file, the notebook cell's
index as Jupyter and papermill count it (0-based, into ``nb.cells``), the line, and the
section it belongs to (the notebook's ``##`` heading above its cell, or above its hints cell
for a TODO in a file beside the notebook).

A TODO is done when its body is, not when its comment is deleted. With the freshly released
lab to compare with (the matching file in ``solutions/``, found from ``labs/<lab>/...``): done
when code was written where the TODO is (around its comment, in place of its stub), whatever
happened to the comment; open while the stub is there or nothing was written. Without one:
open while its stub is there (Python), or while its comment is (HTML). In a solution the TODO
is followed by its ``BEGIN SOLUTION`` region: listed, marked done.
"""

from __future__ import annotations

import argparse
import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from prodml.workbook import markers, notebooks, release

SUFFIXES = (".py", ".ipynb", ".html", ".htm")


@dataclass(frozen=True)
class Todo:
    """One TODO: where it is (``cell``: the 0-based index into ``nb.cells``), its goal,
    whether it is done, and the section it belongs to."""

    file: Path
    line: int  # 1-based, within the cell for notebooks
    number: int
    text: str
    done: bool
    cell: int | None = None
    section: str = ""

    @property
    def where(self) -> str:
        shown = _shown(self.file)
        if self.cell is not None:
            return f"{shown} cell {self.cell} line {self.line}"
        return f"{shown}:{self.line}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- one text: which TODOs it holds and whether each is done --------------------------------


@dataclass
class _Found:
    line: int
    number: int
    text: str
    done: bool


def _comments(lines: list[str], html: bool) -> dict[int, tuple[int, str, int]]:
    """TODO number -> (index of its comment line, goal, index after its comment block)."""
    found = {}
    for index, line in enumerate(lines):
        match = (markers.HTML_TODO if html else markers.PY_TODO).match(line)
        if match and int(match.group(1)) not in found:
            text, end = (
                (match.group(2), index + 1) if html else markers.todo_continuation(lines, index)
            )
            found[int(match.group(1))] = (index, markers.goal(text), end)
    return found


def _stubs(lines: list[str]) -> dict[int, int]:
    """TODO number -> the index of its stub line."""
    found = {}
    for index, line in enumerate(lines):
        match = markers.STUB.match(line)
        if match:
            found.setdefault(int(match.group(1)), index)
    return found


def _is_code(line: str, html: bool) -> bool:
    text = line.strip()
    if not text or markers.STUB.match(text):
        return False
    if html:
        return not (text.startswith("<!--") and text.endswith("-->"))
    return not text.startswith("#") and text not in ("pass", "...")


def _written(pristine: list[str], current: list[str], span: tuple[int, int], html: bool) -> bool:
    """True when ``current`` holds code the pristine lines lack, where the pristine text's
    ``span`` (the TODO's comment through its stub) was: the TODO's body."""
    low, high = span
    strip = [line.strip() for line in pristine], [line.strip() for line in current]
    matcher = difflib.SequenceMatcher(None, *strip, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        inside = low <= i1 <= high if tag == "insert" else i1 <= high and i2 > low
        if tag in ("insert", "replace") and inside:
            if any(_is_code(line, html) for line in current[j1:j2]):
                return True
    return False


def _scan(source: str, pristine: str | None, html: bool) -> list[_Found]:
    """The TODOs of one text (a file or a cell), compared with its pristine copy when given."""
    lines = source.splitlines()
    comments, stubs = _comments(lines, html), ({} if html else _stubs(lines))
    if any(markers.marker(line, html=html) for line in lines):  # a solution
        return [_Found(i + 1, n, g, True) for n, (i, g, _) in sorted(comments.items())]
    if pristine is None:
        numbers = sorted(set(comments) | set(stubs))
        return [_without_pristine(n, lines, comments, stubs, html) for n in numbers]
    plines = pristine.splitlines()
    found = []
    for number, (start, text, end) in sorted(_comments(plines, html).items()):
        stub = _stubs(plines).get(number, end - 1)
        done = number not in stubs and _written(plines, lines, (start, stub + 1), html)
        here = comments.get(number, (stubs.get(number, _mapped(plines, lines, start)),))[0]
        found.append(_Found(here + 1, number, text, done))
    return found


def _mapped(pristine: list[str], current: list[str], index: int) -> int:
    """Where line ``index`` of the pristine text is (or was) in the current text."""
    matcher = difflib.SequenceMatcher(None, pristine, current, autojunk=False)
    for _, i1, i2, j1, j2 in matcher.get_opcodes():
        if i1 <= index < i2 or (i1 == i2 == index):
            return min(j1 + (index - i1), max(j2 - 1, j1))
    return max(len(current) - 1, 0)


def _without_pristine(number, lines, comments, stubs, html) -> _Found:
    if number in comments:
        index, text, _ = comments[number]
    else:
        index = stubs[number]
        text = markers.goal(lines[index].split(":", 1)[1].strip().strip("\"')"))
    done = number not in stubs and not html  # HTML without a copy to compare: open
    return _Found(index + 1, number, text, done)


# --- files, notebooks and sections ---------------------------------------------------------


def _pristine_of(path: Path) -> Path | None:
    """``labs/<lab>/...`` -> the matching file in ``solutions/`` (None when there is none)."""
    parts = path.resolve().parts
    if "labs" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("labs")
    candidate = Path(*parts[:index], "solutions", *parts[index + 1 :])
    return candidate if candidate.is_file() else None


def _released(solution: Path) -> str:
    text = solution.read_text(encoding="utf-8")
    if solution.suffix == ".py":
        return release.release_python(text, str(solution))
    return release.release_html(text, str(solution))


def _hint_sections(folder: Path) -> dict[int, str]:
    """TODO number -> the section of its hints cell, in the notebooks of a lab folder."""
    from prodml.workbook import conventions

    found: dict[int, str] = {}
    for path in sorted(folder.glob("*.ipynb")):
        nb = notebooks.read(path)
        for cell, section in zip(nb.cells, notebooks.sections(nb), strict=True):
            if cell.cell_type == "markdown":
                for number in conventions.hint_numbers(cell.source):
                    found.setdefault(number, section)
    return found


def _notebook_todos(path: Path) -> list[Todo]:
    nb = notebooks.read(path)
    solution = _pristine_of(path)
    pristine = {}
    if solution is not None:
        released = release.release_notebook(solution.read_text(encoding="utf-8"), str(solution))
        pristine = {c.get("id"): c.source for c in nbformat.reads(released, as_version=4).cells}
    todos = []
    for index, (cell, section) in enumerate(zip(nb.cells, notebooks.sections(nb), strict=True)):
        if cell.cell_type == "code":
            for f in _scan(cell.source, pristine.get(cell.get("id")), html=False):
                todos.append(Todo(path, f.line, f.number, f.text, f.done, index, section))
    return todos


def _file_todos(path: Path, lab_sections: dict[int, str]) -> list[Todo]:
    solution = _pristine_of(path)
    pristine = _released(solution) if solution is not None else None
    html = path.suffix in (".html", ".htm")
    found = _scan(path.read_text(encoding="utf-8"), pristine, html=html)
    return [
        Todo(path, f.line, f.number, f.text, f.done, None, lab_sections.get(f.number, ""))
        for f in found
    ]


def _lab_folder(path: Path) -> Path:
    """The lab folder holding ``path``: the folder right under ``labs/`` or ``solutions/``."""
    parts = path.resolve().parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in ("labs", "solutions"):
            return Path(*parts[: index + 2])
    return path.resolve().parent


def find_todos(path: Path) -> list[Todo]:
    """Every numbered TODO under ``path`` (a file or a folder), by TODO number."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix in SUFFIXES and p.is_file() and not notebooks.skipped(p.relative_to(path))
        )
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")
    todos: list[Todo] = []
    lab_sections: dict[Path, dict[int, str]] = {}
    for file in files:
        if file.suffix == ".ipynb":
            todos += _notebook_todos(file)
            continue
        if file.suffix in SUFFIXES:
            lab = _lab_folder(file)
            if lab not in lab_sections:
                lab_sections[lab] = _hint_sections(lab)
            todos += _file_todos(file, lab_sections[lab])
    return sorted(todos, key=lambda t: (t.number, str(t.file), t.cell or 0, t.line))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``prodml todo`` options."""
    parser.add_argument("path", type=Path, help="a lab folder or one of its files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(args: argparse.Namespace) -> int:
    """Run ``prodml todo``; the exit status."""
    try:
        todos = find_todos(args.path)
    except (FileNotFoundError, ValueError) as error:
        print(f"prodml todo: {error}")
        return 2
    if args.json:
        rows = [
            {
                "file": _shown(t.file),
                "cell": t.cell,
                "line": t.line,
                "todo": t.number,
                "section": t.section,
                "text": t.text,
                "status": "done" if t.done else "open",
            }
            for t in todos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not todos:
        print(f"no numbered TODOs in {args.path}")
        return 0
    width = max(len(t.where) for t in todos)
    for t in todos:
        status = "done" if t.done else "open"
        section = f" (in {t.section})" if t.section else ""
        print(f"{t.where:<{width}}  {status}  TODO {t.number}{section}: {t.text}")
    left = sum(not t.done for t in todos)
    print(f"{left} of {len(todos)} TODOs left to do")
    return 0
