"""`prodml run` output carries the run's progress and results, not Jupyter's transport noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat


def test_prodml_run_prints_no_kernel_transport_warning(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "00_quiet.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("prodml")),
            "run",
            "--out",
            str(tmp_path / "run"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "ok in" in done.stdout and "1 ok, 0 failed" in done.stdout
    executed = nbformat.read(tmp_path / "run" / "00_quiet.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "42\n"
    assert "without encryption" not in output
    assert "[IPKernelApp]" not in output, output[-3000:]
