"""prodml grade on the tiny fixture lab: full marks, zero, hangs, crashes, weakened checks."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from argparse import Namespace

import pytest
from fixtures.tinylab import NOTEBOOK, edit_cell, make_lab
from prodml.workbook import grade, notebooks

TODO1 = "NotImplementedError: TODO 1: return the sum of a and b"
TODO2 = "NotImplementedError: TODO 2: return a list with every value multiplied by factor"


def _args(notebook, tmp_path, **extra):
    values = dict(
        notebook=notebook,
        solution=None,
        json=tmp_path / "report.json",
        junit=tmp_path / "report.xml",
        cell_timeout=60,
        timeout=120,
        smoke=True,
        run_dir=None,
    )
    values.update(extra)
    return Namespace(**values)


def _student(tmp_path, *, pristine=False):
    """A student's copy of the notebook: the solution's (or the pristine lab's) in labs/."""
    solution, lab = make_lab(tmp_path)
    if not pristine:
        shutil.copy(solution / NOTEBOOK, lab / NOTEBOOK)
        shutil.copy(solution / "helper.py", lab / "helper.py")
        shutil.copy(solution / "index.html", lab / "index.html")
    return lab / NOTEBOOK


def _checks(report):
    return {c.id: (c.points, c.points_possible, c.status, c.reason) for c in report.checks}


def test_solution_scores_full_marks_with_json_and_junit(tmp_path, capsys):
    solution, _ = make_lab(tmp_path)
    args = _args(solution / NOTEBOOK, tmp_path)
    assert grade.main(args) == 0
    out = capsys.readouterr().out
    assert "total: 3/3 points" in out
    report = json.loads(args.json.read_text())
    assert (report["points"], report["points_possible"], report["full_marks"]) == (3, 3, True)
    assert [(c["id"], c["points"], c["status"]) for c in report["checks"]] == [
        ("check-add", 2, "passed"),
        ("check-scale", 1, "passed"),
    ]
    assert report["errors"] == [] and report["stopped"] is None
    suite = ET.parse(args.junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"points": "3", "points_possible": "3"}
    assert [case.get("name") for case in suite.iter("testcase")] == ["check-add", "check-scale"]


def test_pristine_lab_scores_zero_and_names_the_todos(tmp_path, capsys):
    notebook = _student(tmp_path, pristine=True)
    args = _args(notebook, tmp_path)
    assert grade.main(args) == 1
    report = json.loads(args.json.read_text())
    assert report["solution"] == str(tmp_path / "solutions" / "tinylab" / NOTEBOOK)
    assert (report["points"], report["points_possible"]) == (0, 3)
    assert [(c["id"], c["status"], c["reason"]) for c in report["checks"]] == [
        ("check-add", "failed", TODO1),
        ("check-scale", "failed", TODO2),
    ]
    assert report["errors"] == [f"cell 12: {TODO2}"]  # the closing cell calls scale() too
    suite = ET.parse(args.junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "2", "0")
    assert [f.get("message") for f in suite.iter("failure")] == [TODO1, TODO2]
    assert "total: 0/3 points" in capsys.readouterr().out


def test_the_hidden_checks_grade_the_html_page(tmp_path):
    notebook = _student(tmp_path)
    page = notebook.parent / "index.html"
    page.write_text(page.read_text().replace('<p id="answer">42</p>', ""))
    report = grade.grade(notebook)
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-scale": (
            0,
            1,
            "failed",
            "AssertionError: TODO 3: index.html has no answer paragraph",
        ),
    }


def test_an_infinite_loop_is_stopped_at_the_cell_limit(tmp_path):
    notebook = _student(tmp_path)
    # The loop also ignores interrupts: grading kills the kernel rather than interrupting it.
    edit_cell(
        notebook,
        "scale",
        "import signal\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    )
    report = grade.grade(notebook, cell_timeout=3, total_timeout=120)
    reason = "not reached: a cell exceeded the 3 s cell time limit"
    assert report.stopped == "a cell exceeded the 3 s cell time limit"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-scale": (0, 1, "not run", reason),
    }
    assert not report.full_marks


def test_a_check_that_hangs_fails_with_the_time_limit(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "def scale(values, factor):\n    while True:\n        pass")
    report = grade.grade(notebook, cell_timeout=3, total_timeout=120)
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-scale": (0, 1, "failed", "a cell exceeded the 3 s cell time limit"),
    }
    assert report.errors == []  # the closing cell was never reached, so it did not fail


def test_the_total_time_limit_stops_grading(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "check-add", "import time\n\ntime.sleep(600)")  # replaced by the original
    edit_cell(notebook, "scale", "import time\n\ntime.sleep(600)")
    report = grade.grade(notebook, cell_timeout=300, total_timeout=8)
    assert report.stopped == "the total time limit of 8 s was reached"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-scale": (0, 1, "not run", "not reached: the total time limit of 8 s was reached"),
    }


def test_edited_and_deleted_checks_are_graded_with_the_originals(tmp_path):
    notebook = _student(tmp_path, pristine=True)
    edit_cell(notebook, "check-scale", "assert True")
    edit_cell(notebook, "check-add", None)
    run_dir = tmp_path / "grading"
    report = grade.grade(notebook, run_dir=run_dir)
    assert _checks(report) == {
        "check-add": (0, 2, "failed", TODO1),
        "check-scale": (0, 1, "failed", TODO2),
    }
    (graded,) = run_dir.glob(f"grade-01_tinylab-*/graded_{NOTEBOOK}")
    ids = [cell.get("id") for cell in notebooks.read(graded).cells]
    assert ids[ids.index("add-intro") + 1] == "check-add"  # re-inserted where the solution has it


def test_merge_puts_back_test_cells_by_id():
    solution = notebooks.read(grade.solution_for(_fixture()))
    student = notebooks.read(_fixture())
    del student.cells[6]  # check-add
    student.cells[9].source = "assert True"  # check-scale
    del student.cells[4:6]  # setup and add-intro: check-add goes after the parameters cell
    merged = grade.merge_tests(student, solution)
    ids = [c.id for c in merged.cells]
    assert ids[ids.index("parameters") + 1] == "check-add"
    assert merged.cells[ids.index("check-scale")].source.startswith("assert scale([1, 2], 3)")
    assert len(merged.cells) == len(solution.cells) - 2


def test_a_syntax_error_fails_its_cell_and_the_checks_that_need_it(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "def scale(values, factor)\n    return values")
    report = grade.grade(notebook)
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-scale": (0, 1, "failed", "NameError: name 'scale' is not defined"),
    }
    assert report.errors[0].startswith("cell 9: SyntaxError: ")
    assert report.errors[1] == "cell 12: NameError: name 'scale' is not defined"


@pytest.mark.parametrize("crash", ["os._exit(1)", "os.kill(os.getpid(), 9)"])
def test_a_dead_kernel_scores_zero_for_checks_not_reached(tmp_path, crash):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", f"import os\n\n{crash}")
    report = grade.grade(notebook)
    assert report.stopped == "the kernel died"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-scale": (0, 1, "not run", "not reached: the kernel died"),
    }


def test_bare_assert_reports_the_failing_line(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "def scale(values, factor):\n    return [0]")
    report = grade.grade(notebook, smoke=False)
    assert _checks(report)["check-scale"] == (
        0,
        1,
        "failed",
        "AssertionError at: assert scale([1, 2], 3) == [3, 6]",
    )


def test_unreadable_notebook_and_missing_solution(tmp_path, capsys):
    notebook = _student(tmp_path)
    notebook.write_text("{not json")
    report = grade.grade(notebook)
    assert report.points == 0 and report.points_possible == 3
    assert all(c.reason.startswith("the notebook cannot be read") for c in report.checks)
    stray = tmp_path / "elsewhere" / NOTEBOOK
    stray.parent.mkdir()
    shutil.copy(_fixture(), stray)
    assert grade.main(_args(stray, tmp_path)) == 2
    assert "not under labs/ or solutions/: pass --solution" in capsys.readouterr().out


def _fixture():
    from fixtures.tinylab import SOLUTIONS

    return SOLUTIONS / "tinylab" / NOTEBOOK
