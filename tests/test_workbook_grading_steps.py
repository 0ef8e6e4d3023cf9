"""The grading package's steps, each on its own: merge (no kernel), the engine's limits (a small
notebook, no lab), blame (synthetic executed cells), the report's forms and the gradebook (a
synthetic report), and `prodml run` and `prodml grade` sharing one engine."""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET

import nbformat
import pytest
from executed_cells import ran as _ran
from fixtures.tinylab import NOTEBOOK, SOLUTIONS
from prodml import grading
from prodml.grading import blame, execute, gradebook, merge
from prodml.grading.report import Check, Report, classroom, junit, table
from prodml.workbook import engine, notebooks


def _notebook(*sources, tags=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "papermill": {},
    }
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for index, cell in enumerate(nb.cells):
        cell.id = f"c{index}"
        cell.metadata["tags"] = list((tags or {}).get(index, []))
    return nb


# --- merge ---------------------------------------------------------------------------------


def test_merge_lists_the_checks_and_refuses_a_solution_without_any():
    solution = notebooks.read(SOLUTIONS / "tinylab" / NOTEBOOK)
    assert [(c.id, c.points_possible) for c in merge.checks_of(solution)] == [
        ("check-add", 2.0),
        ("check-doubled", 1.0),
        ("check-scale", 1.0),
    ]
    with pytest.raises(grading.GradeError, match="no code cells tagged 'test'"):
        merge.checks_of(_notebook("x = 1"))
    bad = _notebook("assert True", tags={0: ["test"]})
    bad.cells[0].metadata["prodml"] = {"points": -1}
    with pytest.raises(grading.GradeError, match="points must be >= 0"):
        merge.checks_of(bad)


# --- execute: the one engine, with limits ---------------------------------------------------


def _run(nb, tmp_path, **limits):
    env = dict(os.environ, PRODML_RUN_DIR=str(tmp_path / "run"))
    return engine.execute(nb, tmp_path, env, engine.Limits(**limits))


def test_the_engine_keeps_going_past_errors_and_records_each_cell(tmp_path):
    nb = _notebook("x = 1", "raise ValueError('boom')", "y = x + 1\nprint(y)")
    done = _run(nb, tmp_path, cell_timeout=60)
    assert (done.stopped, done.stopped_at, done.limit) == ("", None, False)
    statuses = [c.metadata.papermill["status"] for c in done.nb.cells]
    assert statuses == ["completed", "failed", "completed"]
    assert done.nb.cells[2].outputs[0]["text"] == "2\n"
    assert blame.cell_error(done.nb.cells[1]) == "ValueError: boom"


def test_the_engine_stops_at_a_limit_and_says_which(tmp_path):
    looping = _notebook("x = 1", "while True:\n    pass", "y = 2")
    done = _run(looping, tmp_path, cell_timeout=2)
    assert (done.stopped, done.stopped_at, done.limit) == (
        "a cell exceeded the 2 s cell time limit",
        1,
        True,
    )
    assert done.nb.cells[2].execution_count is None  # never ran
    chatty = _notebook("for i in range(10**5):\n    print('x' * 100)", "y = 2")
    done = _run(chatty, tmp_path, cell_timeout=60, max_output=10_000)
    assert done.stopped == "a cell's output exceeded the output limit of 10,000 characters"
    assert done.stopped_at == 0


def test_the_engine_stops_on_request_without_a_limit(tmp_path):
    nb = _notebook("raise NotImplementedError('TODO 4: the body')", "x = 1")
    done = _run(nb, tmp_path, cell_timeout=60, stop_on=execute.FIRST_TODO)
    assert (done.stopped_at, done.limit) == (0, False)
    assert done.nb.cells[1].execution_count is None


def test_prepare_injects_smoke_after_the_parameters_cell():
    nb = _notebook("SMOKE = False", "print(SMOKE)", tags={0: ["parameters"]})
    prepared = execute.prepare(nb, nb, smoke=True)
    assert [c.source for c in prepared.cells][1].endswith("SMOKE = True\n")
    assert "injected-parameters" in prepared.cells[1].metadata["tags"]


# --- blame -----------------------------------------------------------------------------------


def test_blame_follows_names_from_a_failed_cell_to_the_checks_reading_them():
    executed = nbformat.v4.new_notebook()
    executed.cells = [
        _ran("a = load()", "OSError: no file", "load"),
        _ran("b = a + 1", "NameError: name 'a' is not defined", "use"),
        _ran("assert b == 2", "NameError: name 'b' is not defined", "check-b", test=True),
        _ran("assert 1 == 2", "AssertionError: 1 != 2", "check-own", test=True),
        _ran("assert True", None, "check-ok", test=True),
    ]
    report = Report(
        "s.ipynb", "t.ipynb", [Check(i, 1) for i in ("check-b", "check-own", "check-ok")]
    )
    blame.analyse(executed, report, {c.id: n for n, c in enumerate(executed.cells)}, None, {})
    assert [(c.id, c.status, c.reason) for c in report.checks] == [
        ("check-b", "blocked", "blocked by cell 0 (cell 0: OSError: no file)"),
        ("check-own", "failed", "AssertionError: 1 != 2"),
        ("check-ok", "passed", ""),
    ]
    assert report.root_causes == ["cell 0: OSError: no file", "cell 3: AssertionError: 1 != 2"]
    assert blame.names("import os\nx, y = 1, 2\ndef f():\n    return z") == (
        {"os", "x", "y", "f"},
        {"z"},
    )


# --- the report and the gradebook ---------------------------------------------------------


def _report():
    checks = [Check("a", 2, 2, "passed"), Check("b", 1, 0, "failed", "TODO 1 not done (cell 3: x)")]
    return Report("labs/l/n.ipynb", "solutions/l/n.ipynb", checks, ["TODO 1 not done (cell 3: x)"])


def test_the_report_as_a_table_junit_classroom_and_json():
    report = _report()
    assert (report.points, report.points_possible, report.full_marks) == (2, 3, False)
    text = table(report)
    assert "total: 2/3 points" in text and "root cause: TODO 1 not done (cell 3: x)" in text
    suite = ET.fromstring(junit(report).split("\n", 1)[1])
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    assert [t["status"] for t in classroom(report)["tests"]] == ["pass", "fail"]
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == report.to_dict()


def test_the_gradebook_has_one_row_per_student(tmp_path):
    solution = SOLUTIONS / "tinylab" / NOTEBOOK
    missing = gradebook.not_graded("bob/n.ipynb", solution, "no notebook", 0.0)
    assert {c.status for c in missing.checks} == {"not run"} and missing.points == 0
    path = tmp_path / "book.csv"
    gradebook.write_gradebook({"alice": _report(), "bob": missing}, "tinylab", path)
    rows = list(csv.DictReader(path.open()))
    assert [(r["student"], r["points"], r["max"], r["a"]) for r in rows] == [
        ("alice", "2", "3", "passed"),
        ("bob", "0", "4", "not run"),
    ]
    assert rows[1]["stopped"] == "no notebook"


def test_run_and_grade_share_the_one_engine(tmp_path, monkeypatch):
    """`prodml run` (papermill, by the engine's name) and grading (directly) both execute
    through the workbook's engine: each call below goes through it once."""
    import papermill.engines
    from prodml.workbook import run

    assert papermill.engines.papermill_engines.get_engine(engine.ENGINE) is engine.LimitedEngine
    calls = []
    original = engine.LimitedEngine.execute_managed_notebook.__func__

    def counted(cls, nb_man, kernel_name, **kwargs):
        calls.append(kwargs.get("limits"))
        return original(cls, nb_man, kernel_name, **kwargs)

    monkeypatch.setattr(engine.LimitedEngine, "execute_managed_notebook", classmethod(counted))
    path = tmp_path / "00_tiny.ipynb"
    notebooks.write(_notebook("print(1)"), path)
    monkeypatch.setenv("PRODML_RUN_DIR", str(tmp_path / "run"))
    result = run.execute_one(path, tmp_path / "out" / path.name, {}, tmp_path / "run", 60)
    assert result["status"] == "ok", result
    done = execute.run(_notebook("print(2)"), path, engine.Limits(cell_timeout=60))
    assert done.nb.cells[0].outputs[0]["text"] == "2\n"
    assert [limits.cell_timeout for limits in calls] == [60, 60]
