"""`prodml run` output carries the run's progress and results, not Jupyter's transport noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat


def test_prodml_run_prints_no_kernel_transport_warning_or_kernel_stderr(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)"),
        # what a library's C++ code writes to the process's standard error (TensorFlow's
        # start-up lines): not through sys.stderr, from a thread outside any cell's capture
        nbformat.v4.new_code_cell(
            "import os, threading\n"
            "t = threading.Thread(target=os.write, args=(2, b'C++ start-up noise\\n'))\n"
            "t.start(); t.join()"
        ),
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
    assert executed.cells[1].outputs[0]["text"] == "42\n"
    assert "without encryption" not in output
    # the kernel's own standard error is kept, in the run folder, not shown
    assert "C++ start-up noise" not in output
    log = (tmp_path / "run" / "logs" / "00_quiet.kernel.log").read_text()
    assert "C++ start-up noise" in log
    assert "[IPKernelApp]" not in output, output[-3000:]
