"""prodml run (papermill in course order, summary, metrics, --prepare-only) and record()."""

from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace

import nbformat
import numpy as np
import pytest
from fixtures.tinylab import NOTEBOOK, make_lab
from prodml.workbook import metrics_path, notebooks, record, run


def _args(paths, out, **extra):
    values = dict(
        paths=paths, smoke=False, full=False, parameter=None, out=out, prepare_only=False,
        cell_timeout=60,
    )  # fmt: skip
    values.update(extra)
    return Namespace(**values)


def _broken(folder):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
    ]
    path = folder / "notebooks" / "00_broken.ipynb"
    notebooks.write(nb, path)
    return path


def test_run_executes_in_course_order_and_writes_the_summary(tmp_path, run_dir, capsys):
    solution, _ = make_lab(tmp_path)
    _broken(tmp_path)
    out = tmp_path / "out"
    args = _args([tmp_path / "solutions", tmp_path / "notebooks"], out, smoke=True)
    assert run.main(args) == 1  # one notebook failed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == {"SMOKE": True}
    rows = [(r["notebook"], r["status"], r["metrics"], r["error"]) for r in summary["notebooks"]]
    assert rows == [
        ("notebooks/00_broken.ipynb", "failed", {}, "ValueError: boom"),
        (f"solutions/tinylab/{NOTEBOOK}", "ok", {"n": 3, "scaled": 6}, None),
    ]
    assert all(r["seconds"] > 0 for r in summary["notebooks"])
    executed = notebooks.read(out / "solutions" / "tinylab" / NOTEBOOK)
    record_cell = next(c for c in executed.cells if c.get("id") == "record")
    assert "scaled" in record_cell.outputs[0]["text"]
    assert json.loads((out / "metrics" / "01_tinylab.json").read_text()) == {"n": 3, "scaled": 6}
    markdown = (out / "summary.md").read_text()
    assert f"| solutions/tinylab/{NOTEBOOK} | ok |" in markdown
    assert "| n=3, scaled=6 |" in markdown and "1 ok, 1 failed" in markdown
    assert "| notebooks/00_broken.ipynb | failed |" in capsys.readouterr().out


def test_parameters_reach_the_notebook(tmp_path, run_dir):
    make_lab(tmp_path)
    out = tmp_path / "out"
    args = _args([tmp_path / "solutions"], out, parameter=[["N", "5"]])
    assert run.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"] == {"N": 5}
    # N is set in the cell after the parameters cell, so SMOKE=False's N=10 wins.
    assert summary["notebooks"][0]["metrics"] == {"n": 10, "scaled": 90}


def test_prepare_only_injects_parameters_and_copies_sibling_files(tmp_path):
    solution, _ = make_lab(tmp_path)
    out = tmp_path / "prepared"
    args = _args(
        [tmp_path / "solutions"], out, smoke=True, prepare_only=True, parameter=[["SEED", "7"]]
    )
    assert run.main(args) == 0
    copy = out / "solutions" / "tinylab"
    assert sorted(p.name for p in copy.iterdir()) == [NOTEBOOK, "helper.py", "index.html"]
    assert (copy / "helper.py").read_text() == (solution / "helper.py").read_text()
    nb = notebooks.read(copy / NOTEBOOK)
    injected = [c for c in nb.cells if "injected-parameters" in notebooks.tags(c)]
    assert len(injected) == 1 and "SMOKE = True\nSEED = 7" in injected[0].source
    ids = [c.get("id") for c in nb.cells]
    assert ids.index(injected[0].get("id")) == ids.index("parameters") + 1
    assert all(c.get("outputs", []) == [] for c in nb.cells)
    assert not (out / "summary.json").exists()


def test_course_order_and_discovery(tmp_path):
    for rel in [
        "notebooks/10_late.ipynb",
        "solutions/lab/02_lab.ipynb",
        "notebooks/02_b.ipynb",
        "notebooks/01_z.ipynb",
        "notebooks/.ipynb_checkpoints/01_z-checkpoint.ipynb",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = notebooks.discover([tmp_path / "solutions", tmp_path / "notebooks"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "notebooks/01_z.ipynb",
        "notebooks/02_b.ipynb",
        "solutions/lab/02_lab.ipynb",
        "notebooks/10_late.ipynb",
    ]
    with pytest.raises(FileNotFoundError, match="no such notebook or folder"):
        notebooks.discover([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("-2.5", -2.5), ("True", True), ("False", False), ("None", None), ("bq", "bq")],
)
def test_parameter_values_parse_like_papermill(text, value):
    assert notebooks.parse_value(text) == value and type(notebooks.parse_value(text)) is type(value)


def test_record_writes_metrics_for_the_notebook(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("PRODML_NOTEBOOK", "03_demo")
    stored = record(rmse=np.float32(1.5), rows=np.int64(12), model="wide_deep", ok=True)
    assert stored == {"rmse": 1.5, "rows": 12, "model": "wide_deep", "ok": True}
    assert metrics_path() == run_dir / "metrics" / "03_demo.json"
    assert json.loads(metrics_path().read_text()) == stored
    assert "rmse   1.5" in capsys.readouterr().out
    with pytest.raises(
        TypeError, match=r"record\(values=...\): metrics must be numbers or strings"
    ):
        record(values=[1, 2])
    monkeypatch.delenv("PRODML_NOTEBOOK")
    record(x=1)
    assert (run_dir / "metrics" / "interactive.json").is_file()


def test_importing_record_does_not_import_papermill():
    code = (
        "import sys\nfrom prodml.workbook import record\n"
        "print(sorted(m for m in ('papermill', 'nbclient', 'nbformat') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_run_stops_the_services_its_notebooks_left(tmp_path, run_dir, capsys):
    """A notebook starts the run folder's warehouse service (it outlives the kernel on purpose);
    ``prodml run`` stops it when the run is done, through the entry point the warehouse
    registers (the tooling imports no warehouse)."""
    import os

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import json, os, pathlib\n"
            "from prodml import warehouse\n"
            "assert warehouse.client().query('SELECT 1 AS x').result().total_rows == 1\n"
            "run = pathlib.Path(os.environ['PRODML_RUN_DIR'])\n"
            "pid = json.loads((run / 'warehouse.json').read_text())['pid']\n"
            "(run / 'service.pid').write_text(str(pid))"
        )
    ]
    notebooks.write(nb, tmp_path / "notebooks" / "00_warehouse.ipynb")
    out = tmp_path / "out"
    assert run.main(_args([tmp_path / "notebooks"], out)) == 0
    assert "stopped the run folder's warehouse service" in capsys.readouterr().out
    assert not (out / "warehouse.json").exists()
    pid = int((out / "service.pid").read_text())
    with pytest.raises(ProcessLookupError):  # gone, not left to stop itself when idle
        os.kill(pid, 0)
    assert "prodml warehouse: stopped" in (out / "logs" / "warehouse.log").read_text()


def test_a_service_that_cannot_be_stopped_is_named_and_the_others_still_stop(
    tmp_path, monkeypatch, capsys
):
    from importlib import metadata

    from prodml.workbook import services

    called = []
    entries = [
        metadata.EntryPoint("broken", "math:sqrt", services.GROUP),  # sqrt(Path): TypeError
        metadata.EntryPoint("fine", "operator:truth", services.GROUP),
        metadata.EntryPoint("idle", "operator:not_", services.GROUP),  # nothing was running
    ]
    monkeypatch.setattr(
        services.metadata, "entry_points", lambda group: called.append(group) or entries
    )
    assert services.stop_services(tmp_path) == ["fine"]
    assert called == [services.GROUP]
    assert "could not stop the broken service" in capsys.readouterr().err
