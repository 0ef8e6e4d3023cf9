"""The one dependency list resolves for every Python the workbook supports, and on Colab keeps
Colab's TensorFlow.

Resolution only (``uv pip compile`` against the package index), so Python 3.12 and 3.13 are
checked on a machine that runs 3.11; the tests themselves run on this machine's Python.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
NOTEBOOK_EXTRAS = sorted(set(PYPROJECT["project"]["optional-dependencies"]) - {"dev", "cpu", "gcp"})


def compile_requirements(requirements: str, python: str, tmp_path: Path) -> dict[str, str]:
    """``uv pip compile`` the requirements for ``python``: resolved name -> version."""
    source = tmp_path / "requirements.in"
    source.write_text(requirements)
    done = subprocess.run(
        [str(UV), "pip", "compile", "-q", "--no-header", str(source), "--python-version", python],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"no resolution for Python {python}:\n{done.stderr[-3000:]}"
    pins = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_python_versions_declared():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.14"


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_local_setup_resolves(python, tmp_path):
    """What `make` installs (the dev extra: TensorFlow's CPU wheel and every extra)."""
    pins = compile_requirements(f"prodml[dev] @ file://{REPO}\n", python, tmp_path)
    assert pins["tensorflow-cpu"].startswith("2.21.")
    assert pins["apache-beam"].startswith("2.77.")
    assert "tensorflow" not in pins, "the CPU wheel only, not a second TensorFlow"


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_colab_keeps_its_tensorflow(python, tmp_path):
    """Colab's runtime (its own `tensorflow`) plus the workbook with every notebook's extras."""
    extras = ",".join(NOTEBOOK_EXTRAS)
    pins = compile_requirements(
        f"prodml[{extras}] @ file://{REPO}\ntensorflow==2.21.*\n", python, tmp_path
    )
    assert pins["tensorflow"].startswith("2.21.")
    assert "tensorflow-cpu" not in pins, "a second TensorFlow would replace Colab's GPU build"
    assert pins["apache-beam"].startswith("2.77.")
