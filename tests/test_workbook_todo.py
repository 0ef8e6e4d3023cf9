"""prodml todo: the lab's numbered TODOs with file/line and open/done."""

from __future__ import annotations

from argparse import Namespace

from fixtures.tinylab import NOTEBOOK, edit_cell, make_lab
from prodml.workbook import todo

TEXTS = [
    (1, "return the sum of a and b"),
    (2, "return a list with every value multiplied by factor"),
    (3, 'add a paragraph with id "answer" holding 42'),
]


def _rows(todos):
    return [(t.file.name, t.cell, t.line, t.number, t.text, t.done) for t in todos]


def test_pristine_lab_lists_every_todo_open(tmp_path):
    _, lab = make_lab(tmp_path)
    assert _rows(todo.find_todos(lab)) == [
        ("helper.py", None, 6, *TEXTS[0], False),
        (NOTEBOOK, 11, 3, *TEXTS[1], False),
        ("index.html", None, 6, *TEXTS[2], False),
    ]


def test_solution_lists_every_todo_done(tmp_path):
    solution, _ = make_lab(tmp_path)
    assert [(t.number, t.text, t.done) for t in todo.find_todos(solution)] == [
        (*text, True) for text in TEXTS
    ]


def test_todos_close_as_the_student_works(tmp_path, monkeypatch, capsys):
    _, lab = make_lab(tmp_path)
    helper = lab / "helper.py"
    helper.write_text(helper.read_text().replace(todo_stub(1), "    return a + b\n"))
    page = lab / "index.html"
    page.write_text(page.read_text().replace("  </body>", '    <p id="answer">42</p>\n  </body>'))
    assert [t.done for t in todo.find_todos(lab)] == [True, False, True]
    edit_cell(lab / NOTEBOOK, "scale", "def scale(values, factor):\n    return []")
    assert todo.find_todos(lab / NOTEBOOK) == []

    monkeypatch.chdir(tmp_path)
    assert todo.main(Namespace(path=lab.relative_to(tmp_path), json=False)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"labs/tinylab/helper.py:6   done  TODO 1: {TEXTS[0][1]}",
        f"labs/tinylab/index.html:6  done  TODO 3: {TEXTS[2][1]}",
        "0 of 2 TODOs left to do",
    ]


def test_missing_path_is_an_error(tmp_path, capsys):
    assert todo.main(Namespace(path=tmp_path / "nope", json=False)) == 2
    assert "no such file or folder" in capsys.readouterr().out


def todo_stub(number):
    return f'    raise NotImplementedError("TODO {number}: {TEXTS[number - 1][1]}")\n'
