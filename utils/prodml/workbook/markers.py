"""The lab markers' grammar, parsed in one place for ``release``, ``conventions`` and ``todo``.

In ``.py`` files and notebook code cells a TODO is a comment block whose first line reads
``# TODO n: goal`` (the plain comment lines right after it continue it), announcing a region
``# BEGIN SOLUTION`` ... ``# END SOLUTION``; ``# BEGIN HIDDEN TESTS`` ... ``# END HIDDEN
TESTS`` marks checks the student does not see. In HTML the TODO is ``<!-- TODO n: ... -->``
and the region ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->``. In a released lab
a Python region is the stub ``raise NotImplementedError("TODO n: goal")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "FIELD_LABEL",
    "GRADED_BY",
    "HTML_MARKERS",
    "HTML_TODO",
    "PY_MARKERS",
    "PY_TODO",
    "STUB",
    "Block",
    "blocks",
    "goal",
    "graded_by",
    "marker",
    "todo_before",
    "todo_continuation",
]

PY_TODO = re.compile(r"^\s*#\s*TODO\s+(\d+)\s*:\s*(.*?)\s*$")
HTML_TODO = re.compile(r"^\s*<!--\s*TODO\s+(\d+)\s*:\s*(.*?)\s*-->\s*$")
PY_MARKERS = {
    "BEGIN SOLUTION": re.compile(r"^(\s*)#\s*BEGIN SOLUTION\s*$"),
    "END SOLUTION": re.compile(r"^\s*#\s*END SOLUTION\s*$"),
    "BEGIN HIDDEN TESTS": re.compile(r"^\s*#\s*BEGIN HIDDEN TESTS\s*$"),
    "END HIDDEN TESTS": re.compile(r"^\s*#\s*END HIDDEN TESTS\s*$"),
}
HTML_MARKERS = {
    "BEGIN SOLUTION": re.compile(r"^(\s*)<!--\s*BEGIN SOLUTION\s*-->\s*$"),
    "END SOLUTION": re.compile(r"^\s*<!--\s*END SOLUTION\s*-->\s*$"),
}
#: the stub ``release`` leaves for a Python region, with the TODO's number
STUB = re.compile(r"""^\s*raise NotImplementedError\(\s*["']TODO (\d+)\s*:""")
GRADED_BY = re.compile(r"Graded by:\s*(.*)$", re.IGNORECASE)
#: labels that end a TODO's goal: the stub quotes the goal only
FIELD_LABEL = re.compile(r"\b(Inputs?|Outputs?|Graded by|Returns?)\s*:", re.IGNORECASE)


def goal(text: str) -> str:
    """A TODO's goal: its text up to the first field label (``Inputs:``, ``Graded by:`` ...)."""
    match = FIELD_LABEL.search(text)
    return text[: match.start()].strip().rstrip(".").strip() if match else text.strip()


def graded_by(text: str) -> list[str]:
    """The check ids a TODO's text names after ``Graded by:``."""
    match = GRADED_BY.search(text)
    if not match:
        return []
    return [w for w in re.split(r"[\s,;]+", match.group(1)) if w and w.lower() != "and"]


def marker(line: str, *, html: bool = False) -> tuple[str, re.Match] | None:
    """``(name, match)`` when ``line`` is a region marker (``BEGIN SOLUTION`` ...), else None."""
    for name, pattern in (HTML_MARKERS if html else PY_MARKERS).items():
        found = pattern.match(line)
        if found:
            return name, found
    return None


def todo_continuation(lines: list[str], start: int) -> tuple[str, int]:
    """A ``# TODO n: ...`` line's text with the plain comment lines that continue it.

    Returns the text and the index of the first line after the TODO's comment block.
    """
    parts = [PY_TODO.match(lines[start]).group(2)]
    index = start + 1
    while index < len(lines):
        line = lines[index].strip()
        if not line.startswith("#") or PY_TODO.match(line) or marker(line):
            break
        parts.append(line.lstrip("#").strip())
        index += 1
    return " ".join(p for p in parts if p), index


def todo_before(lines: list[str], *, html: bool = False) -> tuple[str, str] | None:
    """The TODO (number, text) whose comment block ends just before the end of ``lines``
    (where a BEGIN SOLUTION line follows), or None."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if html:
        match = HTML_TODO.match(lines[filled[-1]]) if filled else None
        return (match.group(1), match.group(2)) if match else None
    for i in reversed(filled):
        if PY_TODO.match(lines[i]):
            text, end = todo_continuation(lines, i)
            return (PY_TODO.match(lines[i]).group(1), text) if end > filled[-1] else None
        if not lines[i].strip().startswith("#"):
            return None
    return None


@dataclass
class Block:
    """A TODO announcing a solution region: its number, whole text, 1-based line of the
    BEGIN SOLUTION marker and the region's lines."""

    number: int
    text: str
    line: int
    solution: list[str] = field(default_factory=list)

    @property
    def goal(self) -> str:
        return goal(self.text)


def blocks(source: str, *, html: bool = False) -> list[Block]:
    """The TODOs announcing solution regions in one text (a file or a cell), with the regions'
    lines. A BEGIN SOLUTION without a TODO before it is skipped (``release`` reports it)."""
    lines = source.splitlines()
    found: list[Block] = []
    current: Block | None = None
    for index, line in enumerate(lines):
        hit = marker(line, html=html)
        name = hit[0] if hit else ""
        if name == "BEGIN SOLUTION":
            todo = todo_before(lines[:index], html=html)
            if todo is None:
                continue
            text = todo[1]
            if not html:  # the whole comment block, every line
                start = max(i for i in range(index) if PY_TODO.match(lines[i]))
                text = todo_continuation(lines, start)[0]
            current = Block(int(todo[0]), text, index + 1)
            found.append(current)
        elif name == "END SOLUTION":
            current = None
        elif current is not None:
            current.solution.append(line)
    return found
