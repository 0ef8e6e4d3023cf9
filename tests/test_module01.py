"""Module 01's notebooks keep the workbook's cell rules (CONTRIBUTING.md, issue 22): code cells of
at most 40 lines with a median of at most 15, each followed by its output or by a sentence on it,
no program inside a string, and every plot's axes labelled."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_01 = [
    "notebooks/01_architecting_production_ml_systems.ipynb",
    "notebooks/01_design_decisions.ipynb",
]
SHOWS = ("print(", "display(", "plt.show(")  # calls that put something under the cell


def code_cells(rel):
    notebook = nbformat.read(REPO / rel, as_version=4)
    cells = notebook.cells
    found = []
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and index > 3:  # after the setup and parameters cells
            following = cells[index + 1] if index + 1 < len(cells) else None
            found.append((index, cell.source, following))
    return found


def _parse(source: str) -> ast.Module:
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


@pytest.mark.parametrize("rel", MODULE_01)
def test_code_cells_are_short(rel):
    lengths = {index: len(source.splitlines()) for index, source, _ in code_cells(rel)}
    too_long = {index: n for index, n in lengths.items() if n > 40}
    assert not too_long, f"{rel}: cells over 40 lines (cell index: lines): {too_long}"
    assert statistics.median(lengths.values()) <= 15, f"{rel}: median {statistics.median(lengths.values())}"  # fmt: skip


@pytest.mark.parametrize("rel", MODULE_01)
def test_every_code_cell_shows_something_or_is_explained(rel):
    silent = []
    for index, source, following in code_cells(rel):
        if index == 4:
            continue  # the imports (CONTRIBUTING.md: the cell after the parameters): nothing to show
        tree = _parse(source)
        ends_with_value = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
        if any(call in source for call in SHOWS) or ends_with_value:
            continue
        if following is not None and following.cell_type == "markdown":
            continue
        silent.append(index)
    assert not silent, f"{rel}: code cells with no output and no sentence after them: {silent}"


@pytest.mark.parametrize("rel", MODULE_01)
def test_no_program_hides_in_a_string(rel):
    for index, source, _ in code_cells(rel):
        for node in ast.walk(_parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count("\n") >= 3:  # fmt: skip
                try:
                    inner = ast.parse(node.value)
                except SyntaxError:
                    continue  # SQL, prose: not Python
                has_code = any(isinstance(n, ast.Import | ast.ImportFrom | ast.FunctionDef) for n in ast.walk(inner))  # fmt: skip
                assert not has_code, f"{rel}: cell {index} holds a Python program in a string"


@pytest.mark.parametrize("rel", MODULE_01)
def test_every_plot_labels_its_axes(rel):
    for index, source, _ in code_cells(rel):
        if "plt.subplots(" not in source:
            continue
        axes = source.count("set_xlabel(") + source.count("set_ylabel(")
        assert axes >= 2, f"{rel}: cell {index} draws a plot without labelled axes"
