"""prodml grade on the tiny fixture lab: full marks, zero, root causes, hangs, crashes, limits,
weakened checks, and a whole class graded in one batch."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import xml.etree.ElementTree as ET

import nbformat
from executed_cells import ran as _ran
from fixtures.tinylab import NOTEBOOK, edit_cell, make_lab
from prodml import grading
from prodml.grading import blame, cli, merge
from prodml.workbook import notebooks

TODO1 = "NotImplementedError: TODO 1: return the sum of a and b"
TODO2 = "NotImplementedError: TODO 2: return a list with every value multiplied by factor"
NOT_DONE1 = f"TODO 1 not done (cell 7: {TODO1})"
NOT_DONE2 = f"TODO 2 not done (cell 14: {TODO2})"


def _args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def _single(notebook, tmp_path):
    return _args(
        notebook, "--json", tmp_path / "report.json", "--junit", tmp_path / "report.xml",
        "--cell-timeout", 60, "--timeout", 120,
    )  # fmt: skip


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
    args = _single(solution / NOTEBOOK, tmp_path)
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "total: 4/4 points" in out
    report = json.loads(args.json.read_text())
    assert (report["points"], report["points_possible"], report["full_marks"]) == (4, 4, True)
    assert [(c["id"], c["points"], c["status"]) for c in report["checks"]] == [
        ("check-add", 2, "passed"),
        ("check-doubled", 1, "passed"),
        ("check-scale", 1, "passed"),
    ]
    assert report["root_causes"] == [] and report["stopped"] is None
    suite = ET.parse(args.junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"points": "4", "points_possible": "4"}
    assert [case.get("name") for case in suite.iter("testcase")] == [
        "check-add",
        "check-doubled",
        "check-scale",
    ]


def test_pristine_lab_scores_zero_and_names_the_todos(tmp_path, capsys):
    notebook = _student(tmp_path, pristine=True)
    args = _single(notebook, tmp_path)
    assert cli.main(args) == 1
    report = json.loads(args.json.read_text())
    assert report["solution"] == str(tmp_path / "solutions" / "tinylab" / NOTEBOOK)
    assert (report["points"], report["points_possible"]) == (0, 4)
    assert [(c["id"], c["status"], c["reason"]) for c in report["checks"]] == [
        ("check-add", "failed", NOT_DONE1),
        ("check-doubled", "blocked", f"blocked by TODO 1 (cell 7: {TODO1})"),
        ("check-scale", "failed", NOT_DONE2),
    ]
    # one message per missing TODO, however many cells it breaks (the closing cell too)
    assert report["root_causes"] == [NOT_DONE1, NOT_DONE2]
    suite = ET.parse(args.junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "1")
    assert [f.get("message") for f in suite.iter("failure")] == [NOT_DONE1, NOT_DONE2]
    assert "total: 0/4 points" in capsys.readouterr().out


def test_one_missing_todo_is_one_root_cause_and_blocks_its_dependants(tmp_path):
    solution, lab = make_lab(tmp_path)  # the lab's helper.py: TODO 1 left undone
    shutil.copy(solution / NOTEBOOK, lab / NOTEBOOK)
    shutil.copy(solution / "index.html", lab / "index.html")
    report = grading.grade(lab / NOTEBOOK)
    assert _checks(report) == {
        "check-add": (0, 2, "failed", NOT_DONE1),
        "check-doubled": (0, 1, "blocked", f"blocked by TODO 1 (cell 7: {TODO1})"),
        "check-scale": (1, 1, "passed", ""),
    }
    assert report.root_causes == [NOT_DONE1]


def test_a_check_failing_on_its_own_is_failed_and_an_exception_is_an_error(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "sums", "sums = [0] * N")  # given code broken: the check's own failure
    edit_cell(notebook, "scale", "def scale(values, factor):\n    return values.missing")
    report = grading.grade(notebook)
    checks = _checks(report)
    assert checks["check-add"] == (2, 2, "passed", "")
    assert checks["check-doubled"][:3] == (0, 1, "error")
    assert checks["check-doubled"][3] == "AttributeError: 'list' object has no attribute 'missing'"
    assert checks["check-scale"][:3] == (0, 1, "error")
    assert report.root_causes == [
        "cell 12: AttributeError: 'list' object has no attribute 'missing'",
        "cell 14: AttributeError: 'list' object has no attribute 'missing'",
        "cell 15: AttributeError: 'range' object has no attribute 'missing'",
    ]


def test_the_hidden_checks_grade_the_html_page(tmp_path):
    notebook = _student(tmp_path)
    page = notebook.parent / "index.html"
    page.write_text(page.read_text().replace('<p id="answer">42</p>', ""))
    report = grading.grade(notebook)
    message = "AssertionError: TODO 3: index.html has no answer paragraph"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-doubled": (1, 1, "passed", ""),
        "check-scale": (0, 1, "failed", f"TODO 3 not done (cell 14: {message})"),
    }


def test_an_infinite_loop_is_stopped_at_the_cell_limit(tmp_path):
    notebook = _student(tmp_path)
    # The loop also ignores interrupts: grading kills the kernel rather than interrupting it.
    edit_cell(
        notebook,
        "scale",
        "import signal\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    )
    report = grading.grade(notebook, cell_timeout=3, total_timeout=120)
    reason = "not reached: a cell exceeded the 3 s cell time limit"
    assert report.stopped == "a cell exceeded the 3 s cell time limit"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-doubled": (0, 1, "not run", reason),
        "check-scale": (0, 1, "not run", reason),
    }
    assert not report.full_marks


def test_a_check_that_hangs_errors_with_the_time_limit(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "def scale(values, factor):\n    while True:\n        pass")
    report = grading.grade(notebook, cell_timeout=3, total_timeout=120)
    limit = "a cell exceeded the 3 s cell time limit"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-doubled": (0, 1, "error", limit),
        "check-scale": (0, 1, "not run", f"not reached: {limit}"),
    }
    assert report.root_causes == [f"cell 12: {limit}"]


def test_the_total_time_limit_stops_grading(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "check-add", "import time\n\ntime.sleep(600)")  # replaced by the original
    edit_cell(notebook, "scale", "import time\n\ntime.sleep(600)")
    report = grading.grade(notebook, cell_timeout=300, total_timeout=8)
    assert report.stopped == "the total time limit of 8 s was reached"
    reason = "not reached: the total time limit of 8 s was reached"
    assert _checks(report) == {
        "check-add": (2, 2, "passed", ""),
        "check-doubled": (0, 1, "not run", reason),
        "check-scale": (0, 1, "not run", reason),
    }


def test_edited_and_deleted_checks_are_graded_with_the_originals(tmp_path):
    notebook = _student(tmp_path, pristine=True)
    edit_cell(notebook, "check-scale", "assert True")
    edit_cell(notebook, "check-add", None)
    run_dir = tmp_path / "grading"
    report = grading.grade(notebook, run_dir=run_dir)
    checks = _checks(report)
    assert checks["check-add"] == (0, 2, "failed", f"TODO 1 not done (cell check-add: {TODO1})")
    assert checks["check-scale"] == (0, 1, "failed", f"TODO 2 not done (cell 13: {TODO2})")
    (graded,) = run_dir.glob(f"grade-01_tinylab-*/graded_{NOTEBOOK}")
    ids = [cell.get("id") for cell in notebooks.read(graded).cells]
    assert ids[ids.index("hints-1") + 1] == "check-add"  # re-inserted where the solution has it


def test_merge_puts_back_test_cells_by_id():
    solution = notebooks.read(merge.solution_for(_fixture()))
    student = notebooks.read(_fixture())
    ids = [c.id for c in student.cells]
    student.cells[ids.index("check-scale")].source = "assert True"
    del student.cells[ids.index("check-add")]
    del student.cells[ids.index("setup") : ids.index("hints-1") + 1]  # check-add's predecessors
    merged = merge.merge_tests(student, solution)
    ids = [c.id for c in merged.cells]
    assert ids[ids.index("parameters") + 1] == "check-add"  # after the nearest kept cell
    assert merged.cells[ids.index("check-scale")].source.startswith("assert scale([1, 2], 3)")
    assert len(merged.cells) == len(solution.cells) - 3


def test_a_syntax_error_is_one_root_cause_for_the_checks_that_need_it(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "def scale(values, factor)\n    return values")
    report = grading.grade(notebook)
    checks = _checks(report)
    assert checks["check-add"] == (2, 2, "passed", "")
    assert [checks[c][2] for c in ("check-doubled", "check-scale")] == ["blocked", "blocked"]
    assert checks["check-scale"][3].startswith("blocked by cell 10 (cell 10: SyntaxError: ")
    assert len(report.root_causes) == 1
    assert report.root_causes[0].startswith("cell 10: SyntaxError: ")


def test_a_dead_kernel_scores_zero_for_checks_not_reached(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "import os\n\nos.kill(os.getpid(), 9)")
    report = grading.grade(notebook)
    assert report.stopped == "the kernel died"
    assert _checks(report)["check-add"] == (2, 2, "passed", "")
    assert _checks(report)["check-scale"] == (0, 1, "not run", "not reached: the kernel died")


def test_bare_assert_reports_the_failing_line(tmp_path):
    notebook = _student(tmp_path)
    edit_cell(notebook, "scale", "def scale(values, factor):\n    return [0]")
    report = grading.grade(notebook, smoke=False)
    assert _checks(report)["check-scale"] == (
        0,
        1,
        "failed",
        "AssertionError at: assert scale([1, 2], 3) == [3, 6]",
    )


def test_unreadable_notebook_and_missing_solution(tmp_path, capsys):
    notebook = _student(tmp_path)
    notebook.write_text("{not json")
    report = grading.grade(notebook)
    assert report.points == 0 and report.points_possible == 4
    assert all(c.reason.startswith("the notebook cannot be read") for c in report.checks)
    stray = tmp_path / "elsewhere" / NOTEBOOK
    stray.parent.mkdir()
    shutil.copy(_fixture(), stray)
    assert cli.main(_single(stray, tmp_path)) == 2
    assert "not under labs/ or solutions/: pass --solution" in capsys.readouterr().out


HOSTILE = {  # what a submission puts in the cell after check-add, and why grading stops
    "carol": ("import os\n\nos._exit(1)", "the kernel died"),
    "dave": ("while True:\n    pass", "a cell exceeded the 5 s cell time limit"),
    "erin": (
        "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))",
        "the memory limit of 1 GiB was exceeded",
    ),
    "frank": (
        'while True:\n    print("x" * 1000)',
        "a cell's output exceeded the output limit of 100,000 characters",
    ),
}


def test_a_class_is_graded_in_one_batch_whatever_each_submission_does(tmp_path, capsys):
    solution, lab = make_lab(tmp_path)
    submissions = tmp_path / "submissions"
    # alice hands in the lab's files at the top of her folder, the others the lab folder itself
    shutil.copytree(solution, submissions / "alice")
    shutil.copytree(lab, submissions / "bob" / "tinylab")
    for student, (source, _) in HOSTILE.items():
        shutil.copytree(solution, submissions / student / "tinylab")
        edit_cell(submissions / student / "tinylab" / NOTEBOOK, "scale", source)
    students = ["alice", "bob", *HOSTILE]
    reports, gradebook = tmp_path / "grades", tmp_path / "gradebook.csv"
    args = _args(
        "--lab", solution, *(submissions / s for s in students), "--jobs", 2,
        "--reports", reports, "--gradebook", gradebook,
        "--cell-timeout", 5, "--timeout", 90, "--memory", 1, "--max-output", 100_000,
    )  # fmt: skip
    assert cli.main(args) == 0
    assert f"graded 6 submission(s): {gradebook}" in capsys.readouterr().out

    rows = {row["student"]: row for row in csv.DictReader(gradebook.open())}
    assert sorted(rows) == sorted(students)
    columns = ["student", "lab", "points", "max", "check-add", "check-doubled", "check-scale"]
    assert list(rows["alice"])[:7] == columns
    assert list(rows["alice"])[7:] == ["seconds", "stopped"]

    def row(student):
        r = rows[student]
        return (r["points"], r["max"], r["check-add"], r["check-doubled"], r["check-scale"])

    assert row("alice") == ("4", "4", "passed", "passed", "passed")
    assert rows["alice"]["stopped"] == ""
    assert row("bob") == ("0", "4", "failed", "blocked", "failed")
    for student, (_, stopped) in HOSTILE.items():
        assert row(student) == ("2", "4", "passed", "not run", "not run"), student
        assert rows[student]["stopped"] == stopped, student
    assert float(rows["dave"]["seconds"]) >= 5  # the loop ran until the limit, no longer held
    assert all(r["lab"] == "tinylab" for r in rows.values())

    bob = json.loads((reports / "bob.json").read_text())
    assert bob["root_causes"] == [NOT_DONE1, NOT_DONE2]
    assert bob["notebook"] == str(submissions / "bob" / "tinylab" / NOTEBOOK)
    suite = ET.parse(reports / "frank.xml").getroot()
    assert [e.get("message") for e in suite.iter("error")] == [
        f"not run: not reached: {HOSTILE['frank'][1]}"
    ] * 2
    classroom = json.loads((reports / "alice.classroom.json").read_text())
    assert (classroom["status"], classroom["max_score"]) == ("pass", 4)
    assert [(t["name"], t["score"]) for t in classroom["tests"]] == [
        ("check-add", 2),
        ("check-doubled", 1),
        ("check-scale", 1),
    ]


def test_a_class_needs_the_lab_and_distinct_folders(tmp_path, capsys):
    solution, _ = make_lab(tmp_path)
    (tmp_path / "a" / "same").mkdir(parents=True)
    (tmp_path / "b" / "same").mkdir(parents=True)
    args = _args("--lab", solution, tmp_path / "a" / "same", tmp_path / "b" / "same")
    assert cli.main(args) == 2
    assert "two submissions are named same" in capsys.readouterr().out
    assert cli.main(_args("--lab", tmp_path / "nowhere", tmp_path / "a")) == 2
    assert "expected one solution notebook" in capsys.readouterr().out


def _fixture():
    from fixtures.tinylab import SOLUTIONS

    return SOLUTIONS / "tinylab" / NOTEBOOK


def test_the_workflow_templates_are_valid_and_call_real_commands():
    import shlex

    import yaml
    from fixtures.tinylab import SOLUTIONS

    repo = SOLUTIONS.parents[2]
    ci = yaml.safe_load((repo / ".github/workflows/ci.yml").read_text())
    steps = ci["jobs"]["test"]["steps"]
    assert any(s.get("run", "").startswith("make test") for s in steps), steps
    assert {"push", "pull_request"} <= set(ci[True])  # YAML 1.1 reads the key `on` as True

    classroom = yaml.safe_load((repo / ".github/classroom/autograding.yml").read_text())
    assert classroom["name"] == "Autograding Tests"  # the check run Classroom reads points from
    steps = {s.get("name"): s for s in classroom["jobs"]["run-autograding-tests"]["steps"]}
    command = steps["Grade"]["run"].split("\n")[0].rstrip("\\") + steps["Grade"]["run"].split("\n")[
        1
    ].rstrip("\\")
    argv = shlex.split(command)
    assert argv[:2] == ["prodml", "grade"]
    args = _args(*argv[2:])  # the flags the workflow passes are the grader's
    assert args.lab and args.jobs == 1 and args.memory == 4
    reporter = steps["Publish the points to GitHub Classroom"]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    assert reporter["with"]["runners"] == "prodml" and "PRODML_RESULTS" in reporter["env"]


def test_a_stub_is_blamed_for_the_names_its_solution_defines():
    """A stub cell never defines what its solution would (`client`): a later NameError for that
    name is blocked by the stub's TODO, not by whatever else the failing cell happens to read."""
    stub = "NotImplementedError: TODO 2: build the client"
    executed = nbformat.v4.new_notebook()
    executed.cells = [
        _ran("body = make_body()", "NotImplementedError: TODO 1: the body", "body"),
        _ran('raise NotImplementedError("TODO 2: build the client")', stub, "client"),
        _ran("answer = client.ask(body)", "NameError: name 'client' is not defined", "ask"),
        _ran("assert answer", "NameError: name 'answer' is not defined", "check-ask", test=True),
        _ran("assert body", "NameError: name 'body' is not defined", "check-body", test=True),
    ]
    checks = {i: grading.Check(i, 1) for i in ("check-ask", "check-body")}
    report = grading.Report("student.ipynb", "solution.ipynb", list(checks.values()))
    cells = {c.id: n for n, c in enumerate(executed.cells, start=1)}
    solution = {"client": {"client"}, "body": {"body"}}
    blame.analyse(executed, report, cells, None, {2: {"check-ask"}}, solution)
    assert _checks(report) == {
        "check-ask": (0, 1, "failed", f"TODO 2 not done (cell 2: {stub})"),
        "check-body": (
            0,
            1,
            "blocked",
            "blocked by TODO 1 (cell 1: NotImplementedError: TODO 1: the body)",
        ),
    }
    assert report.root_causes == [
        "TODO 1 not done (cell 1: NotImplementedError: TODO 1: the body)",
        f"TODO 2 not done (cell 2: {stub})",
    ]
