"""Every notebook in notebooks/, solutions/ and labs/ follows CONTRIBUTING.md; lint is clean;
labs/ is up to date with solutions/."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import nbformat
import pytest
from prodml.workbook import colab, notebooks, release

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "solutions", "labs")
TOUR = "notebooks/00_workbook_tour.ipynb"
BIN = Path(sys.executable).parent


def tracked_notebooks() -> list[str]:
    """Notebooks git tracks under notebooks/, solutions/ and labs/ (all on disk without git)."""
    if (REPO / ".git").exists() and shutil.which("git"):
        done = subprocess.run(
            ["git", "ls-files", "--", *(f"{f}/*.ipynb" for f in FOLDERS)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        found = done.stdout.split()
    else:
        found = [
            p.relative_to(REPO).as_posix() for f in FOLDERS for p in (REPO / f).rglob("*.ipynb")
        ]
    return sorted(p for p in found if not notebooks.skipped(Path(p)))


NOTEBOOKS = tracked_notebooks()


def test_the_workbook_has_notebooks():
    assert TOUR in NOTEBOOKS, f"{TOUR} must exist and be tracked by git"


def _sections(nb) -> list[tuple[int, int, str]]:
    """(cell index, section number, title) of every `## N. ...` heading."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for match in re.finditer(r"^## (\d+)\. (.+)$", cell.source, flags=re.M):
                found.append((index, int(match.group(1)), match.group(2)))
    return found


def _calls(tree: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
        for node in ast.walk(tree)
    )


def _parse(source: str) -> ast.Module:
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_follows_the_conventions(rel, monkeypatch):
    check_notebook(REPO / rel, rel, monkeypatch)


def check_notebook(path: Path, rel: str, monkeypatch) -> None:
    """Assert CONTRIBUTING.md's conventions for the notebook at ``path`` (repo path ``rel``)."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5), "nbformat 4.5 (cell ids) needed"
    assert all(cell.get("id") for cell in nb.cells), "every cell needs an id"
    assert nb.metadata.get("kernelspec") == {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    assert nb.metadata.get("language_info", {}).get("name") == "python"
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} has stored outputs"
            assert cell.execution_count is None, f"cell {index} has an execution count"
    parameters = [i for i, c in enumerate(nb.cells) if "parameters" in notebooks.tags(c)]
    assert len(parameters) == 1, f"exactly one cell tagged 'parameters', found {len(parameters)}"

    title, objectives, setup, params = nb.cells[:4]
    assert title.cell_type == "markdown" and re.match(r"# \S", title.source)
    url, ref = colab.repository(REPO)
    assert f"]({colab.badge_url(url, ref, rel)})" in title.source, "the Colab badge must point here"
    assert objectives.cell_type == "markdown"
    assert objectives.source.startswith("## Learning objectives")
    assert re.search(r"^- \S", objectives.source, flags=re.M), "objectives as a bulleted list"
    # The setup cell `prodml release` writes (prodml.workbook.colab), for this path and extras.
    assert setup.cell_type == "code"
    assert setup.source == colab.setup_source(url, ref, rel, colab.extras(nb, rel)), (
        "stale Colab setup cell: run `prodml release`"
    )
    assert parameters == [3], "the parameters cell comes right after the Colab setup cell"
    assert "SMOKE" in params.source

    # The setup cell does nothing outside Colab: no install, only `sys` defined.
    assert "google.colab" not in sys.modules
    monkeypatch.setattr(subprocess, "run", _no_install)
    namespace: dict = {}
    exec(compile(setup.source, f"{rel}:setup", "exec"), namespace)
    assert set(namespace) - {"__builtins__"} == {"sys"}

    sections = _sections(nb)
    assert [n for _, n, _ in sections] == list(range(1, len(sections) + 1)), "sections 1, 2, ..."
    assert sections, "numbered sections `## 1. ...` are needed"
    last = sections[-1][0]
    closing = [_parse(c.source) for c in nb.cells[last + 1 :] if c.cell_type == "code"]
    assert any(isinstance(n, ast.Assert) for t in closing for n in ast.walk(t)), (
        f"the last section ({sections[-1][2]!r}) must assert the key results"
    )
    assert any(_calls(t, "record") for t in closing), "the last section must call record(...)"


def _no_install(*args, **kwargs):
    raise AssertionError(f"the Colab setup cell ran a command outside Colab: {args}")


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def test_ruff_passes_on_the_code():
    folders = [f for f in ("utils", "tests", "benchmarks") if (REPO / f).is_dir()]
    done = _run(str(BIN / "ruff"), "check", *folders)
    assert done.returncode == 0, done.stdout + done.stderr


def test_nbqa_ruff_passes_on_the_notebooks():
    folders = [f for f in ("notebooks", "solutions") if any((REPO / f).rglob("*.ipynb"))]
    assert folders == ["notebooks", "solutions"], "notebooks/ and solutions/ must hold notebooks"
    done = _run(str(BIN / "nbqa"), "ruff", *folders)
    assert done.returncode == 0, done.stdout + done.stderr


def test_labs_are_up_to_date_with_solutions(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    code = release.main(Namespace(check=True, solutions=None, labs=None))
    assert code == 0, capsys.readouterr().out


def test_the_checks_catch_broken_notebooks(tmp_path, monkeypatch):
    from fixtures.tinylab import SOLUTIONS, edit_cell

    fixture, rel = SOLUTIONS / "tinylab" / "01_tinylab.ipynb", "solutions/tinylab/01_tinylab.ipynb"
    check_notebook(fixture, rel, monkeypatch)
    broken = tmp_path / "01_tinylab.ipynb"

    def fails(message, change):
        shutil.copy(fixture, broken)
        nb = notebooks.read(broken)
        change(nb)
        notebooks.write(nb, broken)
        with pytest.raises(AssertionError, match=message):
            check_notebook(broken, rel, monkeypatch)

    def output(nb):
        nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi")]

    fails("cell 5 has stored outputs", output)
    fails(
        "exactly one cell tagged 'parameters'",
        lambda nb: nb.cells[4].metadata.update(tags=["parameters"]),
    )
    fails("the Colab badge must point here", lambda nb: nb.cells[0].update(source="# Tiny"))
    fails("sections 1, 2", lambda nb: nb.cells[8].update(source="## 4. Scale a list"))
    fails("must call record", lambda nb: nb.cells[15].update(source="assert True"))
    fails("must assert", lambda nb: nb.cells.__delitem__(slice(14, 16)))
    setup = "import subprocess\nsubprocess.run(['pip'])"
    shutil.copy(fixture, broken)
    edit_cell(broken, "colab-setup", setup)
    with pytest.raises(AssertionError):
        check_notebook(broken, rel, monkeypatch)


def test_cells_are_short_and_hold_no_program_in_a_string(tmp_path, monkeypatch):
    """The cell rules (prodml.workbook.cells) catch a long cell, a long median and a program in a
    string; the workbook passes them except where NOT_YET_SHORT waives, and every notebook that
    allowlist names exists and still needs it (so the list only shrinks)."""
    from prodml.workbook import cells

    nb = nbformat.v4.new_notebook()
    short = "x = 1\ny = 2"
    program = 'SOURCE = """\nimport json\n\n\ndef main():\n    print(json.dumps({}))\n"""'
    sql = 'QUERY = """\nSELECT a,\n  b\nFROM t\nWHERE a > 1\n"""'  # not Python: fine
    nb.cells = [
        nbformat.v4.new_code_cell(c) for c in (short, "\n".join(["z = 3"] * 41), program, sql)
    ]
    assert cells.problems(nb, "nb.ipynb") == [
        "nb.ipynb cell 1: 41 lines (at most 40)",
        "nb.ipynb cell 2 line 1: a Python program inside a string: write it to a file beside "
        "the notebook (or with %%writefile), where the linters see it",
    ]
    nb.cells = [nbformat.v4.new_code_cell("\n".join(["z = 3"] * 16))] * 3
    assert cells.problems(nb, "nb.ipynb") == [
        "nb.ipynb: the median code cell has 16 lines (at most 15)"
    ]
    refused, waived = cells.check(REPO)
    assert refused == [], "\n".join(refused)
    waived_notebooks = {line.split(" cell ")[0].split(":")[0] for line in waived}
    assert waived_notebooks == set(cells.NOT_YET_SHORT), (
        "NOT_YET_SHORT lists notebooks that pass the cell rules (or do not exist): remove them"
    )
