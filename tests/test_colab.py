"""Colab: the badge and setup cell of every notebook, the repository they name, and the
install's same-session import, separate environment and restart notice (real pip on local
wheels, offline). ``test_colab_standin.py`` runs a setup cell with real pip in a stand-in for
Colab's runtime.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import types
from argparse import Namespace
from pathlib import Path

import colab_support
import nbformat
import pytest
from prodml import environments
from prodml.workbook import colab, notebooks, release

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "tests" / "colab"
UV = Path(sys.executable).with_name("uv")
NOTEBOOKS = colab_support.notebook_paths()
#: Imports a notebook may make that only an extra installs: module -> extra.
NEEDS = {
    "airflow": "airflow",
    "keras_tuner": "tuner",
    "flask": "frontend",
    "kfp": "kfp",
    "ai_edge_litert": "litert",
    "mlflow": "tracking",
}
#: The notebook whose setup cell the stand-in runs: a kernel extra and a separate environment.
STANDIN = "notebooks/05_hybrid_ml_systems.ipynb"
LAB = "labs/traffic_prediction/01_traffic_prediction.ipynb"  # imports its own module


def _git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _imports(nb: nbformat.NotebookNode) -> set[str]:
    from IPython.core.inputtransformer2 import TransformerManager

    found = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source))):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    found.add(node.module.split(".")[0])
    return found


def test_there_are_notebooks_to_check():
    assert STANDIN in NOTEBOOKS and LAB in NOTEBOOKS
    assert any(p.startswith("solutions/") for p in NOTEBOOKS)


def test_the_repository_is_written_once():
    url, ref = colab.repository(REPO)
    for rel in NOTEBOOKS:
        nb = nbformat.read(REPO / rel, as_version=4)
        assert f'"{url}", "{ref}"' in nb.cells[2].source, f"{rel}: the setup cell clones it"
        assert colab.badge_url(url, ref, rel) in nb.cells[0].source, f"{rel}: the badge opens it"


def _project(folder: Path, url: str = "https://github.com/upstream/workbook") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f'[tool.prodml]\nrepository = "{url}"\nref = "main"\n')
    _git("init", "-q", cwd=folder)
    return folder


@pytest.mark.parametrize(
    "origin, expected",
    [
        ("https://github.com/fork/workbook.git", "https://github.com/fork/workbook"),
        ("https://github.com/fork/workbook", "https://github.com/fork/workbook"),
        ("git@github.com:fork/work.book.git", "https://github.com/fork/work.book"),
        ("ssh://git@github.com/fork/workbook.git", "https://github.com/fork/workbook"),
        (
            "https://x-access-token:s3cret@github.com/fork/workbook.git",
            "https://github.com/fork/workbook",
        ),
        ("https://gitlab.com/fork/workbook.git", "https://github.com/upstream/workbook"),
        ("/srv/mirror/workbook.git", "https://github.com/upstream/workbook"),
        (None, "https://github.com/upstream/workbook"),
    ],
)
def test_repository_follows_a_github_origin(tmp_path, origin, expected):
    folder = _project(tmp_path / "checkout")
    if origin:
        _git("remote", "add", "origin", origin, cwd=folder)
    assert colab.repository(folder / "sub" / "dir") == (expected, "main")
    assert "s3cret" not in colab.repository(folder)[0]


def test_a_folder_inside_another_checkout_keeps_its_own_pyproject(tmp_path):
    outer = _project(tmp_path / "outer", "https://github.com/outer/one")
    _git("remote", "add", "origin", "https://github.com/outer/one", cwd=outer)
    inner = outer / "copy"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[tool.prodml]\nrepository = "https://github.com/a/b"\n')
    assert colab.repository(inner) == ("https://github.com/a/b", "main")


def test_release_refuses_a_stale_repository(tmp_path, capsys):
    """A checkout whose origin moved: --check names every notebook, release rewrites them."""
    from fixtures.tinylab import SOLUTIONS

    project = _project(tmp_path / "workbook")
    _git("remote", "add", "origin", "https://github.com/fork/workbook", cwd=project)
    (project / "utils" / "prodml").mkdir(parents=True)
    solutions, labs = project / "solutions", project / "labs"
    import shutil

    shutil.copytree(SOLUTIONS, solutions, ignore=shutil.ignore_patterns("__pycache__"))
    args = Namespace(check=False, solutions=solutions, labs=labs)
    check = Namespace(check=True, solutions=solutions, labs=labs)
    assert release.main(args) == 0 and release.main(check) == 0
    nb = notebooks.read(solutions / "tinylab" / "01_tinylab.ipynb")
    assert '"https://github.com/fork/workbook", "main"' in nb.cells[2].source
    capsys.readouterr()

    _git("remote", "set-url", "origin", "git@github.com:elsewhere/workbook.git", cwd=project)
    assert release.main(check) == 1
    out = capsys.readouterr().out
    assert (
        "stale:   solutions/tinylab/01_tinylab.ipynb (Colab badge, setup cell or TODO list)" in out
    )
    assert "stale:   tinylab/01_tinylab.ipynb" in out  # the lab copy too
    assert release.main(args) == 0 and release.main(check) == 0
    nb = notebooks.read(labs / "tinylab" / "01_tinylab.ipynb")
    assert "github/elsewhere/workbook/blob/main/labs/tinylab/01_tinylab.ipynb" in nb.cells[0].source


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_extras_cover_what_the_notebook_imports(rel):
    nb = nbformat.read(REPO / rel, as_version=4)
    extras = colab.extras(nb, rel)
    imports = _imports(nb)
    for module, extra in NEEDS.items():
        if module in imports:
            assert extra in extras, f"{rel} imports {module}: its extras need {extra!r}"
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    uses_airflow = "airflow" in imports or re.search(r"\borchestration\b", source)
    assert ("airflow" in extras) == bool(uses_airflow), "Airflow only where it runs"


@pytest.mark.parametrize("extra", ["cpu", "local"])
def test_local_extras_are_refused_on_colab(extra):
    nb = nbformat.v4.new_notebook(metadata={"prodml": {"extras": ["airflow", extra]}})
    with pytest.raises(colab.ColabError, match=f"the '{extra}' extra"):
        colab.extras(nb, "nb.ipynb")


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    return colab_support.clone_source(tmp_path_factory.mktemp("origin"))


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_setup_cell_clones_installs_and_moves_in(rel, origin, monkeypatch):
    """The cell as Colab runs it (twice: a re-run finds its clone), its install recorded."""
    nb = nbformat.read(REPO / rel, as_version=4)
    assert nb.cells[2].source == colab.setup_source(
        origin.url, origin.ref, rel, colab.extras(nb, rel)
    ), "stale: run `prodml release`"
    calls = []
    monkeypatch.setattr(environments, "install_on_colab", lambda *a: calls.append(a))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for key, value in origin.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PRODML_COLAB_HOME", raising=False)
    monkeypatch.chdir(origin.content)
    for _ in range(2):
        exec(compile(nb.cells[2].source, f"{rel}:setup", "exec"), {"__name__": "__main__"})

    checkout = origin.content / origin.url.rsplit("/", 1)[1]
    assert [p.name for p in origin.content.iterdir()] == [checkout.name], "one clone, reused"
    assert calls == [(str(checkout), colab.extras(nb, rel))] * 2
    assert sys.path[0] == str(checkout / "utils") and sys.path.count(sys.path[0]) == 1
    assert Path.cwd() == (checkout / rel).parent, "the notebook's folder is the cwd"
    for sibling in _git("ls-files", "--", Path(rel).parent.as_posix()).split():
        assert (checkout / sibling).is_file(), f"{sibling} missing beside {rel} after the cell"


def test_environments_imports_only_the_standard_library():
    """The setup cell imports prodml.environments before pip has installed anything."""
    probe = (
        "import sys; before = set(sys.modules); from prodml import environments; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] "
        "not in sys.stdlib_module_names and m.split('.')[0] != 'prodml'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "utils")},
    )
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def kernel_venv(tmp_path_factory):
    """A throwaway virtual environment with pip, colabprobe 1.0 and colabother 1.0 installed
    from wheels written locally (no network)."""
    folder = tmp_path_factory.mktemp("kernel")
    wheels = folder / "wheels"
    wheels.mkdir()
    for name, version in (("colabprobe", "1.0"), ("colabprobe", "2.0"), ("colabother", "1.0")):
        colab_support.build_wheel(wheels, name, version, script=True)
    venv = folder / "venv"
    subprocess.run([str(UV), "venv", "-q", "--seed", "-p", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "utils"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    pin = ["--no-index", "--find-links", str(wheels), "colabprobe==1.0", "colabother==1.0"]
    subprocess.run([python, "-m", "pip", "install", "-q", *pin], check=True, env=env)
    return types.SimpleNamespace(python=python, wheels=wheels, env=env, folder=folder)


def _probe(kernel_venv, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [kernel_venv.python, str(EXAMPLES / "kernel_probe.py"), str(kernel_venv.wheels), *args],
        capture_output=True,
        text=True,
        env=kernel_venv.env,
    )


def _kernel_has_colabprobe_1(kernel_venv) -> None:
    """Put colabprobe 1.0 back in the kernel's environment: the tests sharing the module's
    venv replace it by 2.0, in whatever order they run."""
    subprocess.run(
        [kernel_venv.python, "-m", "pip", "install", "-q", "--no-index", "--find-links"]
        + [str(kernel_venv.wheels), "colabprobe==1.0"],
        check=True,
        env=kernel_venv.env,
    )


def _version(python: str, module: str, env: dict) -> str:
    done = subprocess.run(
        [python, "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout.strip()


def test_separate_environment_sees_the_kernels_packages_behind_its_own(kernel_venv):
    _kernel_has_colabprobe_1(kernel_venv)
    checkout = kernel_venv.folder / "checkout"
    checkout.mkdir()
    done = _probe(kernel_venv, "separate", str(checkout))
    assert done.returncode == 0, done.stderr
    found = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("{")))
    side = checkout / environments.SEPARATE / "bin"
    assert found["shadows"] == {"colabprobe": ["1.0", "2.0"]}
    assert found["python"] == found["python_for"] == str(side / "python")
    assert found["command"] == str(side / "colabprobe")
    env = kernel_venv.env
    assert _version(found["python"], "colabprobe", env) == "2.0", "its own version first"
    assert _version(found["python"], "colabother", env) == "1.0", "the kernel's behind it"
    assert _version(kernel_venv.python, "colabprobe", env) == "1.0", "the kernel's stays"
    ran = subprocess.run([found["command"]], capture_output=True, text=True, env=env)
    assert ran.stdout.strip() == "2.0"


def test_restart_only_when_an_imported_package_was_replaced(kernel_venv):
    """pip replaces colabprobe 1.0 by 2.0: the new one imports in the same process, unless the
    process had imported the old one; then (and only then) the install asks for a restart."""
    for mode in ("fresh", "imported"):
        _kernel_has_colabprobe_1(kernel_venv)
        done = _probe(kernel_venv, mode)
        result = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("{")))
        assert result["replaced"] == {"colabprobe": ["1.0", "2.0"]}
        assert "pip replaced, for the workbook's requirements: colabprobe 1.0 -> 2.0" in done.stdout
        if mode == "fresh":
            assert done.returncode == 0, done.stderr
            assert result["version"] == "2.0", "importable in the same process"
            assert "restart" not in done.stdout + done.stderr
        else:
            assert done.returncode == 1 and result["version"] == "1.0"
            assert "had imported colabprobe before pip replaced it: restart the session" in (
                done.stderr
            )
