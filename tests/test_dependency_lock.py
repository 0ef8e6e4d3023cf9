"""Notebook 03 §3: a dependency upgrade changes a result, and the lock makes the test pass again.

The feature beside the notebook (`notebooks/03_dependencies/features.py`) multiplies numpy
``uint8`` scalars by a Python int: numpy 1.26 promotes the result to int64 (273 days), numpy 2
keeps uint8 and wraps around (17). Its own test fails under the project's numpy and passes with
the feature's lock, which `make setup` installs into `.venv/locked/03_dependencies`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FOLDER = Path(__file__).resolve().parents[1] / "notebooks" / "03_dependencies"
LOCKED = Path(sys.prefix) / "locked" / "03_dependencies"


def run_feature_test(pythonpath: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the venv's plugins import the venv's numpy
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "feature_check.py"]
    return subprocess.run(command, cwd=FOLDER, env=env, capture_output=True, text=True, timeout=120)


def test_the_upgraded_numpy_changes_the_feature():
    assert int(np.__version__.split(".")[0]) >= 2, "the project's environment floats to numpy 2"
    done = run_feature_test(None)
    assert done.returncode == 1, done.stdout
    assert "[17, 24, 252, 196] == [273, 280, 252, 196]" in done.stdout, done.stdout


@pytest.mark.skipif(
    not (LOCKED / "numpy").is_dir(),
    reason=f"the feature's lock is not installed in {LOCKED}: make setup",
)
def test_the_lock_makes_the_test_pass_again():
    lock = (FOLDER / "requirements-lock.txt").read_text().split()
    assert "numpy==1.26.4" in lock
    done = run_feature_test(str(LOCKED))
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
    version = subprocess.run(
        [sys.executable, "-c", "import numpy; print(numpy.__version__)"],
        env={**os.environ, "PYTHONPATH": str(LOCKED)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "1.26.4"
