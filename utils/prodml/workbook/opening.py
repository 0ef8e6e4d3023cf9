"""A lab's opening cell lists its TODOs with their sections, written by ``prodml release``.

The list sits at the end of the notebook's first (title) cell, between two HTML comments that
Jupyter and Colab do not show; ``prodml release`` rewrites it from the lab's TODO blocks (in the
order a learner meets them: by number), each with the section that teaches and uses it (the
``##`` heading above its code cell, or above its hints cell for a TODO in a file beside the
notebook), and ``prodml release --check`` fails when it is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from prodml.workbook import conventions, markers, notebooks

__all__ = ["BEGIN", "END", "stamp", "todo_list"]

BEGIN = "<!-- the lab's TODOs: written by `prodml release`, do not edit -->"
END = "<!-- end of the lab's TODOs -->"
_BLOCK = re.compile(rf"\n*{re.escape(BEGIN)}.*?{re.escape(END)}\n*", re.S)


def _sections(folder: Path) -> tuple[dict[int, str], dict[int, str]]:
    """(TODO number -> section of its hints cell, notebook cell index -> section)."""
    hints: dict[int, str] = {}
    cells: dict[int, str] = {}
    for path in sorted(folder.glob("*.ipynb")):
        nb = notebooks.read(path)
        for index, (cell, section) in enumerate(zip(nb.cells, notebooks.sections(nb), strict=True)):
            cells[index] = section
            if cell.cell_type == "markdown":
                for number in conventions.hint_numbers(cell.source):
                    hints.setdefault(number, section)
    return hints, cells


def todo_list(folder: Path) -> str:
    """The markdown block listing the lab's TODOs ("" for a lab without any)."""
    todos = sorted(conventions.lab_todos(folder), key=lambda t: t.number)
    if not todos:
        return ""
    hints, cells = _sections(folder)
    rows = []
    for todo in todos:
        file = todo.where.split(" cell ")[0].split(":")[0].split("/", 1)[-1]
        section = cells.get(todo.cell, "") if todo.cell is not None else hints.get(todo.number, "")
        goal = markers.goal(todo.text).replace("|", "\\|")
        rows.append(f"| {todo.number} | {section.replace('|', '/')} | `{file}` | {goal} |")
    return "\n".join(
        [
            BEGIN,
            "**Your TODOs**, in the order you meet them (`prodml todo` shows which are left):",
            "",
            "| TODO | section | file | goal |",
            "|---:|---|---|---|",
            *rows,
            END,
        ]
    )


def stamp(nb, folder: Path) -> bool:
    """Write the TODO list of the lab in ``folder`` at the end of ``nb``'s first cell (or
    remove a stale one); True if the cell changed."""
    title = nb.cells[0]
    listing = todo_list(folder)
    text = _BLOCK.sub("", title.source).rstrip("\n")
    new = f"{text}\n\n{listing}" if listing else text
    changed = new != title.source
    title.source = new
    return changed
