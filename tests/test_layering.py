"""The layering of docs/ARCHITECTURE.md, as import-linter contracts ([tool.importlinter] in
pyproject.toml): every contract is kept, except those KNOWN_BROKEN names, and those are broken
by exactly the imports it lists and nothing else (a new cycle or upward import fails here)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

#: Contracts knowingly broken while a rewrite is under way: contract id -> the imports that break
#: it. Empty: every contract is kept. An entry must be exact (the test fails when it is stale).
KNOWN_BROKEN: dict[str, set[str]] = {}


def contracts() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [c["id"] for c in config["contracts"]]


def _lint(contract: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--contract", contract, "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def _broken_by(output: str) -> set[str]:
    """The offending imports an import-linter report lists (``- a -> b (l.12)`` lines)."""
    return {m.group(1) for m in re.finditer(r"^-\s+(\S+ -> \S+)", output, flags=re.M)}


def test_the_contracts_cover_the_layers_the_docs_draw():
    assert {"layers", "tooling-apart", "generic-plumbing", "no-cycles"} <= set(contracts())
    assert set(KNOWN_BROKEN) <= set(contracts()), "KNOWN_BROKEN names a contract that is gone"


@pytest.mark.parametrize("contract", contracts())
def test_the_import_contract_holds(contract):
    done = _lint(contract)
    report = done.stdout + done.stderr
    if contract not in KNOWN_BROKEN:
        assert done.returncode == 0, report
        return
    if done.returncode == 0:
        pytest.fail(f"{contract} is kept now: remove it from KNOWN_BROKEN\n{report}")
    assert _broken_by(report) == KNOWN_BROKEN[contract], report


def test_a_new_upward_import_breaks_the_layers(tmp_path):
    """The check bites: a copy of the package where the serving layer imports pipelines fails."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(REPO / "utils", copy / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    app = copy / "utils" / "prodml" / "serving" / "errors.py"
    app.write_text(app.read_text() + "\nfrom prodml import pipelines  # noqa\n")
    done = subprocess.run(
        [str(LINT_IMPORTS), "--contract", "library-siblings", "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(copy / "utils"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "prodml.serving.errors -> prodml.pipelines" in done.stdout
