"""Reading, editing and running a lab notebook's cells in a test, without a kernel.

A test of a lab's checks takes a code cell's source from ``solutions/`` (what the lab gives and
what the solution answers) or ``labs/`` (the learner's copy: a check without its hidden part),
writes an answer in place of a TODO's solution region, and runs cells in one namespace, in
order, as the kernel would (``outcome``: the first exception, or None).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from prodml.workbook import notebooks

REPO = Path(__file__).resolve().parents[1]


def code_cells(kind: str, lab: tuple[str, str]) -> list[tuple[str, str]]:
    """``(cell id, source)`` of every code cell of ``kind``'s (``solutions`` or ``labs``) copy of
    the lab ``(folder, notebook)``, in order, IPython magics dropped."""
    nb = notebooks.read(REPO / kind / lab[0] / lab[1])
    return [
        (c.get("id"), "\n".join(line for line in c.source.splitlines() if not line.startswith("%")))
        for c in nb.cells
        if c.cell_type == "code"
    ]


def cell(kind: str, lab: tuple[str, str], cell_id: str) -> str:
    """One code cell's source (see :func:`code_cells`)."""
    found = dict(code_cells(kind, lab))
    if cell_id not in found:
        raise KeyError(f"{kind}/{lab[0]}/{lab[1]} has no code cell {cell_id!r}")
    return found[cell_id]


def check(lab: tuple[str, str], cell_id: str) -> str:
    """The visible check: the test cell as the learner's copy has it (no hidden part)."""
    source = cell("labs", lab, cell_id)
    assert "HIDDEN" not in source, source
    return source


def answer(text: str, todo: int, code: str) -> str:
    """``text`` (a cell or a file) with TODO ``todo``'s solution region replaced by ``code``."""
    lines = text.splitlines()
    start = next(
        i for i, line in enumerate(lines) if re.match(rf"\s*(#|<!--)\s*TODO {todo}:", line)
    )
    begin = next(i for i in range(start, len(lines)) if "BEGIN SOLUTION" in lines[i])
    end = next(i for i in range(begin, len(lines)) if "END SOLUTION" in lines[i])
    indent = re.match(r"\s*", lines[begin]).group(0)
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), indent).splitlines()
    return "\n".join([*lines[:begin], *body, *lines[end + 1 :]]) + "\n"


def run(source: str, namespace: dict, name: str = "cell") -> None:
    """Execute one cell's source in ``namespace`` (its globals, as a kernel's)."""
    exec(compile(source, name, "exec"), namespace)


def outcome(sources: list[tuple[str, str]], namespace: dict) -> BaseException | None:
    """Run ``(name, source)`` pairs in order; the first exception, or None when all pass."""
    try:
        for name, source in sources:
            run(source, namespace, name)
    except Exception as error:  # noqa: BLE001 - the outcome is what the test inspects
        return error
    return None
