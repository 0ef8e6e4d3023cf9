"""``prodml todo PATH``: list the numbered TODOs of a lab and whether each is still to do.

It reads ``# TODO n: ...`` lines in ``.py`` files and notebook code cells, and
``<!-- TODO n: ... -->`` comments in ``.html`` files. The rule for "open":

* Python: the TODO (its text may go on over the comment lines right after it) is open while
  the next non-blank line after its comment block is still the stub
  ``raise NotImplementedError(...)`` that ``prodml release`` put there; once you replace the
  stub it counts as done.
* HTML: ``release`` removes the region, leaving no stub. The TODO is open while the line after
  its comment is the same as in the freshly released lab (the matching file in ``solutions/``,
  found from ``labs/<lab>/...``); without a solution to compare with, it stays open until you
  delete the comment.
* In a solution the TODO is followed by its ``BEGIN SOLUTION`` region: listed, marked done.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from prodml.workbook import conventions, notebooks, release

SUFFIXES = (".py", ".ipynb", ".html", ".htm")


@dataclass(frozen=True)
class Todo:
    file: Path
    line: int  # 1-based, within the cell for notebooks
    number: int
    text: str
    done: bool
    cell: int | None = None  # 1-based cell number in a notebook

    @property
    def where(self) -> str:
        shown = _shown(self.file)
        return f"{shown} cell {self.cell} line {self.line}" if self.cell else f"{shown}:{self.line}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _next_line(lines: list[str], index: int) -> str:
    return next((line.strip() for line in lines[index + 1 :] if line.strip()), "")


def _python(source: str) -> list[tuple[int, int, str, bool]]:
    found = []
    lines = source.splitlines()
    for index, line in enumerate(lines):
        match = release.PY_TODO.match(line)
        if match:
            text, end = release.todo_continuation(lines, index)
            following = _next_line(lines, end - 1)
            done = not following.startswith("raise NotImplementedError")
            found.append((index + 1, int(match.group(1)), conventions.goal(text), done))
    return found


def _solution_of(path: Path) -> Path | None:
    parts = path.resolve().parts
    if "labs" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("labs")
    candidate = Path(*parts[:index], "solutions", *parts[index + 1 :])
    return candidate if candidate.is_file() else None


def _html(path: Path, source: str) -> list[tuple[int, int, str, bool]]:
    solution = _solution_of(path)
    pristine: dict[int, str] = {}
    if solution is not None:
        released = release.release_html(solution.read_text(encoding="utf-8"), str(solution))
        plines = released.splitlines()
        for index, line in enumerate(plines):
            match = release.HTML_TODO.match(line)
            if match:
                pristine[int(match.group(1))] = _next_line(plines, index)
    found = []
    lines = source.splitlines()
    for index, line in enumerate(lines):
        match = release.HTML_TODO.match(line)
        if not match:
            continue
        number, following = int(match.group(1)), _next_line(lines, index)
        if release.HTML_MARKERS["BEGIN SOLUTION"].match(following):
            done = True
        elif number in pristine:
            done = following != pristine[number]
        else:
            done = False
        found.append((index + 1, number, conventions.goal(match.group(2)), done))
    return found


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
    for file in files:
        if file.suffix == ".py":
            todos += [Todo(file, *t) for t in _python(file.read_text(encoding="utf-8"))]
        elif file.suffix in (".html", ".htm"):
            todos += [Todo(file, *t) for t in _html(file, file.read_text(encoding="utf-8"))]
        elif file.suffix == ".ipynb":
            nb = notebooks.read(file)
            for number, cell in enumerate(nb.cells, start=1):
                if cell.cell_type == "code":
                    todos += [Todo(file, *t, cell=number) for t in _python(cell.source)]
    return sorted(todos, key=lambda t: (t.number, str(t.file), t.cell or 0, t.line))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a lab folder or one of its files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(args: argparse.Namespace) -> int:
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
        print(f"{t.where:<{width}}  {status}  TODO {t.number}: {t.text}")
    left = sum(not t.done for t in todos)
    print(f"{left} of {len(todos)} TODOs left to do")
    return 0
