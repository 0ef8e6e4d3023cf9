"""Module 01's notebooks keep the workbook's cell rules (CONTRIBUTING.md, issue 22): code cells of
at most 40 lines with a median of at most 15, each followed by its output or by a sentence on it,
no program inside a string, and every plot's axes labelled."""

from __future__ import annotations

import ast
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


def _is_import(node: ast.stmt) -> bool:
    """An import, or setting an environment default before one (``os.environ.setdefault``)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return True
    call = node.value if isinstance(node, ast.Expr) else None
    return isinstance(call, ast.Call) and ast.unparse(call.func) == "os.environ.setdefault"


@pytest.mark.parametrize("rel", MODULE_01)
def test_code_cells_are_short_and_hold_no_program_in_a_string(rel):
    """The workbook's own cell rules (``prodml release --check``), with no waiver for module 01."""
    from prodml.workbook import cells

    assert rel not in cells.NOT_YET_SHORT
    assert cells.problems(nbformat.read(REPO / rel, as_version=4), rel) == []


@pytest.mark.parametrize("rel", MODULE_01)
def test_every_code_cell_shows_something_or_is_explained(rel):
    silent = []
    for index, source, following in code_cells(rel):
        tree = _parse(source)
        if all(_is_import(node) for node in tree.body):
            continue  # the imports (CONTRIBUTING.md: after the parameters): nothing to show
        ends_with_value = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
        if any(call in source for call in SHOWS) or ends_with_value:
            continue
        if following is not None and following.cell_type == "markdown":
            continue
        silent.append(index)
    assert not silent, f"{rel}: code cells with no output and no sentence after them: {silent}"


@pytest.mark.parametrize("rel", MODULE_01)
def test_every_plot_labels_its_axes(rel):
    for index, source, _ in code_cells(rel):
        if "plt.subplots(" not in source:
            continue
        axes = source.count("set_xlabel(") + source.count("set_ylabel(")
        assert axes >= 2, f"{rel}: cell {index} draws a plot without labelled axes"
