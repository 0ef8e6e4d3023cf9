"""Every notebook's setup cell, run as Colab runs it.

A stand-in ``google.colab`` module makes the cell take its Colab branch; ``git clone`` really
runs, from this checkout's ``file://`` URL into a temporary folder; ``pip install`` is captured,
not run, and what it would install is read from ``pyproject.toml``. The test asserts the cell
installs no TensorFlow (Colab ships its own), Airflow only where the notebook uses it, every
extra the notebook's imports need, and that the notebook's folder, with its files, is the
working directory afterwards.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import nbformat
import pytest
from prodml.workbook import colab

REPO = Path(__file__).resolve().parents[1]
RUN = subprocess.run  # the real one: the test patches subprocess.run for the setup cell
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: Imports a notebook may make that only an extra installs: module -> extra.
NEEDS = {
    "airflow": "airflow",
    "keras_tuner": "tuner",
    "flask": "frontend",
    "kfp": "kfp",
    "ai_edge_litert": "litert",
    "mlflow": "tracking",
}


def _git(*args: str) -> str:
    return RUN(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


NOTEBOOKS = sorted(
    p
    for p in _git(
        "ls-files", "--", "notebooks/*.ipynb", "solutions/*.ipynb", "labs/*.ipynb"
    ).split()
    if ".ipynb_checkpoints" not in p
)


def _name(requirement: str) -> tuple[str, list[str]]:
    """A requirement's normalised project name and the extras it asks for."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]


def direct_requirements(extras: list[str]) -> set[str]:
    """Project names ``pip install prodml[extras]`` asks for directly (self-references expanded)."""
    project = PYPROJECT["project"]
    wanted, seen, names = list(extras), set(), set()
    for requirement in project["dependencies"]:
        names.add(_name(requirement)[0])
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        assert extra in project["optional-dependencies"], f"no extra {extra!r} in pyproject.toml"
        for requirement in project["optional-dependencies"][extra]:
            name, sub = _name(requirement)
            if name == "prodml":
                wanted.extend(sub)
            else:
                names.add(name)
    return names


def _imports(nb: nbformat.NotebookNode) -> set[str]:
    from IPython.core.inputtransformer2 import TransformerManager

    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.fixture(scope="module")
def colab_content(tmp_path_factory):
    """Colab's /content: one folder that every notebook's setup cell clones into (once)."""
    return tmp_path_factory.mktemp("content")


def test_there_are_notebooks_to_check():
    assert any(p.startswith("notebooks/") for p in NOTEBOOKS)
    assert any(p.startswith("labs/") for p in NOTEBOOKS)


def test_the_repository_is_written_once():
    url, ref = colab.repository(REPO)
    assert url == PYPROJECT["tool"]["prodml"]["repository"]
    for rel in NOTEBOOKS:
        nb = nbformat.read(REPO / rel, as_version=4)
        assert f'"{url}", "{ref}"' in nb.cells[2].source, f"{rel}: the setup cell clones it"
        assert colab.badge_url(url, ref, rel) in nb.cells[0].source, f"{rel}: the badge opens it"


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_setup_cell_runs_as_on_colab(rel, colab_content, monkeypatch):
    nb = nbformat.read(REPO / rel, as_version=4)
    url, ref = colab.repository(REPO)
    extras = colab.extras(nb, rel)
    setup = nb.cells[2].source
    assert setup == colab.setup_source(url, ref, rel, extras), "stale: run `prodml release`"

    commands: list[list[str]] = []
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")

    def colab_run(cmd, check=False, **kwargs):
        commands.append(list(cmd))
        if cmd[:2] == ["git", "clone"]:
            local = [f"file://{REPO}" if c == url else c for c in cmd]
            if ref in local and branch != ref:  # a local branch of another name: clone HEAD
                i = local.index("--branch")
                local[i : i + 2] = ["--branch", branch] if branch != "HEAD" else []
            return RUN(local, check=check, capture_output=True, text=True)
        return subprocess.CompletedProcess(cmd, 0)  # pip: captured, not run

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", colab_run)
    monkeypatch.chdir(colab_content)
    exec(compile(setup, f"{rel}:setup", "exec"), {"__name__": "__main__"})

    checkout = colab_content / url.rsplit("/", 1)[1]
    pips = [c for c in commands if c[1:4] == ["-m", "pip", "install"]]
    assert len(pips) == 1, f"one pip install expected, got {commands}"
    assert pips[0][0] == sys.executable
    target = pips[0][-1]
    assert target.startswith(str(checkout)), "installs the cloned workbook itself"
    asked = re.fullmatch(r".*?(?:\[([a-z0-9,-]*)\])?", target).group(1)
    asked = sorted(asked.split(",")) if asked else []
    assert asked == extras

    installs = direct_requirements(asked)
    assert not {"tensorflow", "tensorflow-cpu", "tensorflow-gpu"} & installs, (
        "Colab ships TensorFlow: the setup cell must not install a second one"
    )
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    needs_airflow = "airflow" in _imports(nb) or re.search(r"\borchestration\b", source)
    assert ("apache-airflow" in installs) == bool(needs_airflow), "Airflow only where it runs"
    for module, extra in NEEDS.items():
        if module in _imports(nb):
            assert extra in asked, f"{rel} imports {module}: its extras need {extra!r}"

    folder = (checkout / rel).parent
    assert Path.cwd() == folder, "the cell must leave the notebook's folder as the cwd"
    tracked = _git("ls-files", "--", Path(rel).parent.as_posix()).split()
    assert tracked, rel
    for sibling in tracked:
        assert (checkout / sibling).is_file(), f"{sibling} missing beside {rel} after the cell"
