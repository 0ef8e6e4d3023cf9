"""prodml release: solutions/ -> labs/ (stubs, hidden tests removed, outputs cleared, --check)."""

from __future__ import annotations

import ast
import json
from argparse import Namespace

import nbformat
import pytest
from fixtures.tinylab import NOTEBOOK, make_lab
from prodml.workbook import conventions, notebooks, release

STUB1 = '    raise NotImplementedError("TODO 1: return the sum of a and b")\n'


def test_release_writes_stubs_and_removes_hidden_tests(tmp_path):
    solution, lab = make_lab(tmp_path)
    assert sorted(p.name for p in lab.iterdir()) == [NOTEBOOK, "helper.py", "index.html"]
    assert "generated" in (lab.parent / "README.md").read_text()

    helper = (lab / "helper.py").read_text()
    todo = "    # TODO 1: return the sum of a and b\n    # Graded by: check-add\n"
    assert helper.endswith(todo + STUB1)  # the stub quotes the goal, not the whole block
    assert "return a + b" not in helper and "SOLUTION" not in helper
    ast.parse(helper)

    html = (lab / "index.html").read_text()
    todo3 = '<!-- TODO 3: add a paragraph with id "answer" holding 42. Graded by: check-scale -->'
    assert f"{todo3}\n  </body>" in html
    assert 'id="answer"' not in html.replace('with id "answer"', "")
    assert "SOLUTION" not in html

    nb = notebooks.read(lab / NOTEBOOK)
    cells = {cell.id: cell for cell in nb.cells}
    assert [c.id for c in nb.cells] == [c.id for c in notebooks.read(solution / NOTEBOOK).cells]
    assert cells["scale"].source == (
        "def scale(values, factor):\n"
        '    """Multiply every value by factor."""\n'
        "    # TODO 2: return a list with every value multiplied by factor\n"
        "    # Graded by: check-scale, check-doubled\n"
        '    raise NotImplementedError("TODO 2: return a list with every value multiplied by factor")'
    )
    assert cells["check-scale"].source == "assert scale([1, 2], 3) == [3, 6]"
    assert cells["check-add"].metadata["prodml"] == {"points": 2}
    assert "blob/main/labs/tinylab/01_tinylab.ipynb" in cells["title"].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            ast.parse(cell.source)
    nbformat.validate(nb)


def test_release_clears_outputs_and_is_deterministic(tmp_path):
    solution, lab = make_lab(tmp_path)
    nb = notebooks.read(solution / NOTEBOOK)
    cell = next(c for c in nb.cells if c.id == "setup")
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    cell.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00"}
    notebooks.write(nb, solution / NOTEBOOK)

    first = release.generate(solution.parent)
    second = release.generate(solution.parent)
    assert first == second
    released = nbformat.reads(first[f"tinylab/{NOTEBOOK}"].decode(), as_version=4)
    setup = next(c for c in released.cells if c.id == "setup")
    assert setup.outputs == [] and setup.execution_count is None
    assert "execution" not in setup.metadata
    text = first[f"tinylab/{NOTEBOOK}"].decode()
    assert text == nbformat.writes(released) + "\n"
    assert json.loads(text)["nbformat_minor"] >= 5


def test_check_detects_stale_missing_and_extra_files(tmp_path, capsys):
    solution, lab = make_lab(tmp_path)
    args = Namespace(check=True, solutions=solution.parent, labs=lab.parent)
    assert release.main(args) == 0
    assert "is up to date (4 files)" in capsys.readouterr().out

    (lab / "helper.py").write_text((lab / "helper.py").read_text() + "# student edit\n")
    (lab / "index.html").unlink()
    (lab / "notes.txt").write_text("extra\n")
    (solution / "data.csv").write_text("a,b\n1,2\n")
    assert release.main(args) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "missing: tinylab/data.csv",
        "stale:   tinylab/helper.py",
        "missing: tinylab/index.html",
        "extra:   tinylab/notes.txt",
    ]

    assert release.main(Namespace(check=False, solutions=solution.parent, labs=lab.parent)) == 0
    assert release.main(args) == 0
    assert not (lab / "notes.txt").exists()
    assert (lab / "data.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("x = 1\n# TODO 1: a\n# BEGIN SOLUTION\ny = 2\n", 3, "never closed"),
        ("# TODO 1: a\n# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", 3, "cannot nest"),
        ("# TODO 1: a\n# BEGIN SOLUTION\n# BEGIN HIDDEN TESTS\n", 3, "cannot nest"),
        ("x = 1\n# END SOLUTION\n", 2, "END SOLUTION without BEGIN SOLUTION"),
        ("# BEGIN HIDDEN TESTS\n# END SOLUTION\n", 2, "without BEGIN SOLUTION"),
        ("x = 1\n# BEGIN SOLUTION\nx = 2\n# END SOLUTION\n", 2, "must follow a '# TODO n: ...'"),
        (
            "def f():\n    # TODO 1: a\n# BEGIN SOLUTION\n    return 1\n# END SOLUTION\n",
            3,
            "does not parse",
        ),
    ],
)
def test_bad_markers_name_file_and_line(source, line, message):
    with pytest.raises(release.ReleaseError, match=message) as error:
        release.release_python(source, "lab/app.py")
    assert str(error.value).startswith(f"lab/app.py:{line}: ")


def test_bad_markers_in_notebooks_html_and_other_files(tmp_path):
    solution, lab = make_lab(tmp_path)
    nb = notebooks.read(solution / NOTEBOOK)
    nb.cells[10].source = nb.cells[10].source.replace("    # END SOLUTION", "")
    notebooks.write(nb, solution / NOTEBOOK)
    with pytest.raises(release.ReleaseError, match=r"01_tinylab.ipynb cell 11 line:5: BEGIN"):
        release.generate(solution.parent)

    with pytest.raises(release.ReleaseError, match=r"page.html:2: BEGIN SOLUTION must follow"):
        release.release_html("<p>\n<!-- BEGIN SOLUTION -->\n<!-- END SOLUTION -->\n", "page.html")
    with pytest.raises(release.ReleaseError, match=r"page.html:1: hidden tests belong"):
        release.release_html("# BEGIN HIDDEN TESTS\n", "page.html")

    (solution / "01_tinylab.ipynb").unlink()
    (solution / "notes.txt").write_text("# TODO 1: x\n# BEGIN SOLUTION\n# END SOLUTION\n")
    with pytest.raises(release.ReleaseError, match=r"notes.txt: solution markers in a .txt"):
        release.generate(solution.parent)


def test_refuses_to_write_into_a_folder_it_did_not_generate(tmp_path):
    solution, _ = make_lab(tmp_path)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work\n")
    with pytest.raises(release.ReleaseError, match="refusing to write"):
        release.write(release.generate(solution.parent), other)
    assert (other / "thesis.tex").read_text() == "years of work\n"


def test_a_todo_may_go_on_over_comment_lines():
    source = (
        "def f(x):\n"
        "    # TODO 4: double x,\n"
        "    # then add one\n"
        "    # BEGIN SOLUTION\n"
        "    return 2 * x + 1\n"
        "    # END SOLUTION\n"
    )
    assert release.release_python(source, "a.py") == (
        "def f(x):\n"
        "    # TODO 4: double x,\n"
        "    # then add one\n"
        '    raise NotImplementedError("TODO 4: double x, then add one")\n'
    )
    with pytest.raises(release.ReleaseError, match="a.py:4: BEGIN SOLUTION must follow"):
        release.release_python(source.replace("    # then add one\n", "    y = 1\n"), "a.py")


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("file", "old", "new", "problem"),
    [
        (
            "helper.py",
            "# TODO 1: return the sum of a and b",
            "# TODO 1: return the sum of a and b: return a + b",
            "helper.py:8: TODO 1's comment contains the solution's code ('return a + b')",
        ),
        (
            NOTEBOOK,
            "return a list with every value multiplied by factor",
            "return [v * factor for v in values]",
            "TODO 2's comment contains the solution's code ('return [v * factor for v in values]')",
        ),
        (
            "helper.py",
            "    # Graded by: check-add\n",
            "",
            "helper.py:7: TODO 1 does not name its check ('Graded by: <test cell id>')",
        ),
        (
            "helper.py",
            "Graded by: check-add",
            "Graded by: check-sum",
            "TODO 1 is 'Graded by: check-sum', which is not a test cell of the lab's notebook",
        ),
        (
            "index.html",
            "TODO 3:",
            "TODO 1:",
            "TODO 1 is also at tinylab/helper.py:8 (one number, one exercise)",
        ),
        (
            NOTEBOOK,
            "**Hints for TODO 1**",
            "**Hints**",
            "helper.py:8: TODO 1 has no hints cell (a markdown cell starting '**Hints for TODO 1**')",
        ),
        (
            "helper.py",
            "Graded by: check-add",
            "Graded by: check-scale",
            "test cell 'check-add' is worth 2 point(s) but grades no TODO",
        ),
    ],
)
def test_release_refuses_a_lab_that_breaks_the_conventions(tmp_path, file, old, new, problem):
    solution, _ = make_lab(tmp_path)
    assert conventions.check_lab(solution) == []
    _edit(solution / file, old, new)
    with pytest.raises(release.ReleaseError, match="breaks the authoring conventions") as error:
        release.generate(solution.parent)
    assert problem in str(error.value)


def test_checks_on_given_code_may_carry_zero_points(tmp_path):
    solution, _ = make_lab(tmp_path)
    _edit(solution / "helper.py", "Graded by: check-add", "Graded by: check-scale")
    nb = notebooks.read(solution / NOTEBOOK)
    next(c for c in nb.cells if c.id == "check-add").metadata["prodml"]["points"] = 0
    notebooks.write(nb, solution / NOTEBOOK)
    assert conventions.check_lab(solution) == []


def _hints(solution, cell_id, text):
    nb = notebooks.read(solution / NOTEBOOK)
    next(c for c in nb.cells if c.id == cell_id).source = text
    notebooks.write(nb, solution / NOTEBOOK)


def test_hints_may_open_details_and_follow_their_todo(tmp_path):
    solution, _ = make_lab(tmp_path)
    # the header inside the <details> block, and the hints cell after the TODO's code cell
    _hints(solution, "hints-2", "<details><summary>Scale a list</summary>\n\nthe idea\n</details>")
    assert any("TODO 2 has no hints cell" in p for p in conventions.check_lab(solution))
    _hints(
        solution,
        "hints-2",
        "<details>\n<summary>**Hints for TODOs 2 and 3**</summary>\n\n"
        "<details><summary>Hint 1: the idea</summary>\nA comprehension.\n</details>\n</details>",
    )
    nb = notebooks.read(solution / NOTEBOOK)
    ids = [c.id for c in nb.cells]
    hints = nb.cells.pop(ids.index("hints-2"))
    nb.cells.insert(ids.index("scale"), hints)  # now right after the TODO's code cell
    notebooks.write(nb, solution / NOTEBOOK)
    assert conventions.check_lab(solution) == []


def test_hints_must_be_collapsed(tmp_path):
    solution, _ = make_lab(tmp_path)
    _hints(solution, "hints-1", "**Hints for TODO 1**\n\nPython has an operator for adding.")
    problems = conventions.check_lab(solution)
    assert problems == [
        "tinylab/helper.py:8: TODO 1's hints are not collapsed: after the first line, put each "
        "hint in <details><summary>Hint 1: ...</summary> ... </details>"
    ]
    with pytest.raises(release.ReleaseError, match="TODO 1's hints are not collapsed"):
        release.generate(solution.parent)


@pytest.mark.parametrize(
    ("hint", "named"),
    [
        ("<details><summary>Hint 1</summary>Try `math.fsum`.</details>", "'math.fsum'"),
        ("<details><summary>Hint 1</summary>Call fsum(...) on them.</details>", "'fsum(...)'"),
    ],
)
def test_hints_and_todo_text_must_not_name_the_solutions_calls(tmp_path, hint, named):
    """A hint naming a call or an attribute chain of the solution's code is refused, naming the
    TODO and the text; the plain idea ("an operator", "the math module") is not."""
    solution, _ = make_lab(tmp_path)
    _edit(solution / "helper.py", "    return a + b\n", "    return math.fsum((a, b))\n")
    _edit(solution / "helper.py", '"""\n\n\ndef add', '"""\n\nimport math\n\n\ndef add')
    assert conventions.check_lab(solution) == []  # the fixture's hints name no call
    _hints(solution, "hints-1", f"**Hints for TODO 1**\n\n{hint}")
    (problem,) = conventions.check_lab(solution)
    assert problem.startswith("tinylab/helper.py:10: TODO 1's hints cell names " + named)
    _hints(solution, "hints-1", "**Hints for TODO 1**\n\n" + hint.replace("fsum", "sum up"))
    assert conventions.check_lab(solution) == []
    _edit(solution / "helper.py", "# TODO 1: return the sum of a and b", "# TODO 1: use math.fsum")
    (problem,) = conventions.check_lab(solution)
    assert "TODO 1's comment names 'math.fsum'" in problem


def test_an_unconverted_lab_is_reported_not_refused(tmp_path, monkeypatch, capsys):
    solution, lab = make_lab(tmp_path)
    _hints(solution, "hints-1", "**Hints for TODO 1**\n\nnot collapsed")
    assert conventions.check_lab(solution) != []
    waive = {"tinylab": frozenset({"collapsed-hints"})}
    monkeypatch.setattr(conventions, "UNCONVERTED_LABS", waive)
    assert conventions.check_lab(solution) == []
    assert [w.split(":")[0] for w in conventions.waived(solution)] == [
        "[collapsed-hints] tinylab/helper.py"
    ]
    args = Namespace(check=False, solutions=solution.parent, labs=lab.parent)
    assert release.main(args) == 0
    assert release.main(Namespace(**{**vars(args), "check": True})) == 0
    assert "known:   tinylab: 1 problem(s) waived by conventions.UNCONVERTED_LABS" in (
        capsys.readouterr().out
    )


def test_the_opening_cell_lists_the_todos_with_their_sections(tmp_path, capsys):
    from prodml.workbook import opening

    solution, lab = make_lab(tmp_path)
    title = notebooks.read(solution / NOTEBOOK).cells[0].source
    assert title.endswith(
        "| TODO | section | file | goal |\n|---:|---|---|---|\n"
        "| 1 | 1. Add numbers | `helper.py` | return the sum of a and b |\n"
        "| 2 | 2. Scale a list | `01_tinylab.ipynb` | return a list with every value "
        "multiplied by factor |\n"
        '| 3 | 2. Scale a list | `index.html` | add a paragraph with id "answer" holding 42 |\n'
        + opening.END
    )
    student = notebooks.read(lab / NOTEBOOK).cells[0].source  # the student's copy lists them too
    assert student.split("<!--", 1)[1] == title.split("<!--", 1)[1]
    # a renamed section makes the list stale: --check fails, release rewrites it
    nb = notebooks.read(solution / NOTEBOOK)
    next(c for c in nb.cells if c.id == "add-intro").source = "## 1. Sum two numbers"
    notebooks.write(nb, solution / NOTEBOOK)
    args = Namespace(check=True, solutions=solution.parent, labs=lab.parent)
    assert release.main(args) == 1
    assert "stale:   solutions/tinylab/01_tinylab.ipynb (Colab badge, setup cell or TODO list)" in (
        capsys.readouterr().out
    )
    assert release.main(Namespace(**{**vars(args), "check": False})) == 0
    assert "| 1 | 1. Sum two numbers | `helper.py` |" in (
        notebooks.read(lab / NOTEBOOK).cells[0].source
    )
    assert release.main(args) == 0
