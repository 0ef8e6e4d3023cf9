"""prodml todo: the lab's numbered TODOs with file, cell index (nbformat's), line, section and
open/done, where done means the body is written, not the comment deleted."""

from __future__ import annotations

import json
from argparse import Namespace

from fixtures.tinylab import NOTEBOOK, edit_cell, make_lab
from prodml.workbook import notebooks, todo

TEXTS = [
    (1, "return the sum of a and b"),
    (2, "return a list with every value multiplied by factor"),
    (3, 'add a paragraph with id "answer" holding 42'),
]
SECTIONS = ["1. Add numbers", "2. Scale a list", "2. Scale a list"]


def _rows(todos):
    return [(t.file.name, t.cell, t.line, t.number, t.text, t.done, t.section) for t in todos]


def test_pristine_lab_lists_every_todo_open_with_its_cell_index_and_section(tmp_path):
    _, lab = make_lab(tmp_path)
    assert _rows(todo.find_todos(lab)) == [
        ("helper.py", None, 6, *TEXTS[0], False, SECTIONS[0]),
        (NOTEBOOK, 10, 3, *TEXTS[1], False, SECTIONS[1]),
        ("index.html", None, 6, *TEXTS[2], False, SECTIONS[2]),
    ]
    # the index is the one nbformat, Jupyter and papermill use: nb.cells[10] holds TODO 2
    nb = notebooks.read(lab / NOTEBOOK)
    assert "TODO 2:" in nb.cells[10].source and "TODO 2:" not in nb.cells[11].source


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
    assert [(t.number, t.done) for t in todo.find_todos(lab / NOTEBOOK)] == [(2, True)]

    monkeypatch.chdir(tmp_path)
    assert todo.main(Namespace(path=lab.relative_to(tmp_path), json=False)) == 0
    out = capsys.readouterr().out.splitlines()
    where = [
        "labs/tinylab/helper.py:6",
        f"labs/tinylab/{NOTEBOOK} cell 10 line 2",
        "labs/tinylab/index.html:6",
    ]
    width = max(map(len, where))
    assert out == [
        *(
            f"{w:<{width}}  done  TODO {n} (in {section}): {text}"
            for w, (n, text), section in zip(where, TEXTS, SECTIONS, strict=True)
        ),
        "0 of 3 TODOs left to do",
    ]
    assert todo.main(Namespace(path=lab.relative_to(tmp_path), json=True)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["todo"], r["cell"], r["section"], r["status"]) for r in rows] == [
        (1, None, SECTIONS[0], "done"),
        (2, 10, SECTIONS[1], "done"),
        (3, None, SECTIONS[2], "done"),
    ]


def test_done_means_the_body_is_written_wherever_the_comment_went(tmp_path):
    _, lab = make_lab(tmp_path)
    page, helper = lab / "index.html", lab / "helper.py"
    pristine_page, pristine_helper = page.read_text(), helper.read_text()
    comment = (
        '    <!-- TODO 3: add a paragraph with id "answer" holding 42. Graded by: check-scale -->\n'
    )

    def status():
        return {t.number: t.done for t in todo.find_todos(lab) if t.number in (1, 3)}

    # HTML: the paragraph written just before the comment (the comment kept) is done
    page.write_text(pristine_page.replace(comment, '    <p id="answer">42</p>\n' + comment))
    assert status()[3] is True
    # ... and so is one written in place of the comment
    page.write_text(pristine_page.replace(comment, '    <p id="answer">42</p>\n'))
    assert status()[3] is True
    # deleting the comment alone does not do the TODO; an edit elsewhere does not either
    page.write_text(pristine_page.replace(comment, ""))
    assert status()[3] is False
    page.write_text(pristine_page.replace("<h1>Tiny lab</h1>", "<h1>My lab</h1>"))
    assert status()[3] is False
    # Python: the comment deleted, the stub still there: open, listed at the stub
    helper.write_text(pristine_helper.replace("    # TODO 1: return the sum of a and b\n", ""))
    (found,) = [t for t in todo.find_todos(lab) if t.number == 1]
    assert (found.done, found.line, found.text) == (False, 7, TEXTS[0][1])
    # the stub deleted with nothing in its place: open; code in its place: done
    helper.write_text(pristine_helper.replace(todo_stub(1), ""))
    assert status()[1] is False
    helper.write_text(pristine_helper.replace(todo_stub(1), "    return b + a\n"))
    assert status()[1] is True
    # both the comment and the stub replaced by code: still found, and done
    block = "    # TODO 1: return the sum of a and b\n    # Graded by: check-add\n" + todo_stub(1)
    assert block in pristine_helper
    helper.write_text(pristine_helper.replace(block, "    return a + b\n"))
    assert status()[1] is True


def test_without_a_solution_to_compare_with_the_stub_decides(tmp_path):
    _, lab = make_lab(tmp_path)
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    helper = alone / "helper.py"
    helper.write_text((lab / "helper.py").read_text())
    assert [(t.number, t.done) for t in todo.find_todos(helper)] == [(1, False)]
    helper.write_text(helper.read_text().replace(todo_stub(1), "    return a + b\n"))
    assert [(t.number, t.done) for t in todo.find_todos(helper)] == [(1, True)]


def test_missing_path_is_an_error(tmp_path, capsys):
    assert todo.main(Namespace(path=tmp_path / "nope", json=False)) == 2
    assert "no such file or folder" in capsys.readouterr().out


def todo_stub(number):
    return f'    raise NotImplementedError("TODO {number}: {TEXTS[number - 1][1]}")\n'
