"""Short cells, checked code: the notebooks' code cells measured against the conventions.

A code cell holds at most :data:`MAX_LINES` lines, a notebook's median code cell at most
:data:`MAX_MEDIAN`, and no cell keeps a Python program inside a string (write it to a file
beside the notebook, or with ``%%writefile``, which the linters see). ``prodml release
--check`` runs :func:`check` over ``notebooks/`` and ``solutions/`` and fails on a problem,
except in the notebooks :data:`NOT_YET_SHORT` still lists.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

from prodml.workbook import notebooks

__all__ = ["MAX_LINES", "MAX_MEDIAN", "NOT_YET_SHORT", "check", "problems", "programs_in_strings"]

MAX_LINES = 40
MAX_MEDIAN = 15
_PROGRAM_LINES = 5  # a string this long that parses as Python with a def, a class or an import

#: KNOWN EXCEPTIONS (issue 22, item 6): the notebooks whose cells are not yet short, reported by
#: ``prodml release --check`` but not refused. Repository paths. Empty: every notebook passes.
NOT_YET_SHORT: frozenset[str] = frozenset()


def programs_in_strings(source: str) -> list[int]:
    """The lines (1-based, in the cell) where a string literal holding a Python program starts:
    :data:`_PROGRAM_LINES` or more lines that parse as Python with a def, a class or an import."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if not isinstance(text, str) or text.count("\n") + 1 < _PROGRAM_LINES:
            continue
        try:
            inner = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
        if any(isinstance(n, kinds) for n in ast.walk(inner)):
            found.append(node.lineno)
    return found


def problems(nb, rel: str) -> list[str]:
    """Every way the notebook at repository path ``rel`` breaks the cell rules, one line each."""
    found = []
    lengths = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = len(cell.source.splitlines())
        lengths.append(lines)
        if lines > MAX_LINES:
            found.append(f"{rel} cell {index}: {lines} lines (at most {MAX_LINES})")
        if cell.source.lstrip().startswith("%%writefile"):
            continue  # the cell is the file: the recommended way, not a program in a string
        for line in programs_in_strings(cell.source):
            found.append(
                f"{rel} cell {index} line {line}: a Python program inside a string: write it "
                "to a file beside the notebook (or with %%writefile), where the linters see it"
            )
    median = statistics.median(lengths) if lengths else 0
    if median > MAX_MEDIAN:
        found.append(f"{rel}: the median code cell has {median:g} lines (at most {MAX_MEDIAN})")
    return found


def check(repo: Path) -> tuple[list[str], list[str]]:
    """``(refused, waived)``: the problems of every notebook under ``notebooks/`` and
    ``solutions/``, those of :data:`NOT_YET_SHORT` apart."""
    refused, waived = [], []
    folders = [repo / name for name in ("notebooks", "solutions") if (repo / name).is_dir()]
    for path in notebooks.discover(folders):
        rel = path.relative_to(repo.resolve()).as_posix()
        (waived if rel in NOT_YET_SHORT else refused).extend(problems(notebooks.read(path), rel))
    return refused, waived
