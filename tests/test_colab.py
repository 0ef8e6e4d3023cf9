"""Colab: the badge and setup cell of every notebook, the repository they name, the install's
same-session import and restart notice, and the setup cell run with real pip in a stand-in for
Colab's runtime.

The stand-in (the last test) is a throwaway virtual environment with Colab's Python version
where this machine has it (else this one) and Colab's versions of every package the install
touches, its protected packages among them (TensorFlow 2.20, NumPy 2.1.3, protobuf 5.29.6,
ipykernel 6.17.1, ...). A real ipykernel of it runs the notebook's setup cell (pip and all),
imports ``prodml`` in the same kernel and runs the notebook's parameters and imports cells.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
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
    assert "stale:   solutions/tinylab/01_tinylab.ipynb (Colab badge or setup cell)" in out
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
    """This working tree as the repository the setup cells clone (git's insteadOf points the
    GitHub address there), and the module's Colab /content folder."""
    url, ref = colab.repository(REPO)
    snapshot = colab_support.snapshot_repository(tmp_path_factory.mktemp("origin"), ref)
    content = tmp_path_factory.mktemp("content")
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{snapshot.as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": url,
    }
    return types.SimpleNamespace(url=url, ref=ref, env=env, content=content)


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
    reinstall = ["-m", "pip", "install", "-q", "--no-index", "--find-links"]
    for mode in ("fresh", "imported"):
        subprocess.run(
            [kernel_venv.python, *reinstall, str(kernel_venv.wheels), "colabprobe==1.0"],
            check=True,
            env=kernel_venv.env,
        )
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


# --- the setup cell with real pip, in a stand-in for Colab's runtime ---------------------------


def _pip_list(python: str) -> dict[str, str]:
    done = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return {colab_support.canonical(p["name"]): p["version"] for p in json.loads(done.stdout)}


def _stand_in(folder: Path, kernel: tuple, apart: tuple) -> tuple[str, float]:
    """The stand-in environment (uv, from its cache after the first time); its Python."""
    started = time.perf_counter()
    python = colab_support.standin_python()
    subprocess.run([str(UV), "venv", "-q", "-p", python, str(folder)], check=True)
    pins = folder / "colab-pins.txt"
    pins.write_text(
        "".join(f"{n}=={v}\n" for n, v in colab_support.standin_pins(kernel, apart).items())
    )
    venv_python = str(folder / "bin" / "python")
    install = [str(UV), "pip", "install", "-q", "--no-deps", "-p", venv_python, "-r", str(pins)]
    subprocess.run(install, check=True)
    return venv_python, time.perf_counter() - started


def _run_cells(sources: list[str], kernelspecs: Path, cwd: Path, env: dict) -> list[tuple]:
    """Run code cells in one stand-in kernel; (seconds, text output) per cell."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = NotebookClient(
        nb, kernel_name="colab", timeout=1800, resources={"metadata": {"path": str(cwd)}}
    )
    results = []
    log = open(cwd.parent / "kernel.log", "a")  # the kernel's own stderr (ipykernel's exit noise)
    with log, client.setup_kernel(env=env, cwd=str(cwd), stderr=log):
        for index, cell in enumerate(nb.cells):
            started = time.perf_counter()
            client.execute_cell(cell, index)
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            results.append((time.perf_counter() - started, text))
    return results


@pytest.mark.slow
def test_setup_cell_with_real_pip_in_a_colab_stand_in(tmp_path, origin, capsys, monkeypatch):
    """Cost: ~1 GB of Colab's wheels (TensorFlow 2.20, jax) into uv's cache the first time,
    then ~5-15 s to lay 173 packages out from it; the setup cell's real pip fetches ~62 MB (from
    pip's cache after the first time) and takes ~65 s, most of it pip installing and compiling
    Beam and LiteRT; two kernels import TensorFlow; a KFP component runs in the separate
    environment. 3-5 minutes in all here (2 shared cores)."""
    freeze = colab_support.read_freeze()
    nb = nbformat.read(REPO / STANDIN, as_version=4)
    extras = colab.extras(nb, STANDIN)
    apart = tuple(e for e in extras if e in colab_support.separate_extras())
    kernel = tuple(e for e in extras if e not in apart)
    python, build_seconds = _stand_in(tmp_path / "colab", kernel, apart)
    before = _pip_list(python)
    assert {n: before[n] for n in colab_support.PROTECTED} == {
        n: freeze.pins[n] for n in colab_support.PROTECTED
    }
    kernelspecs = tmp_path / "jupyter"
    (kernelspecs / "kernels" / "colab").mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Colab stand-in", "language": "python"}
    (kernelspecs / "kernels" / "colab" / "kernel.json").write_text(json.dumps(spec))
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PRODML_COLAB_HOME")}
    env.update(origin.env, JUPYTER_PATH=str(kernelspecs), PIP_LOG=str(tmp_path / "pip.log"))
    env.update(PRODML_RUN_DIR=str(tmp_path / "run"), PATH=env["PATH"].replace(bin_dir, ""))
    env.update(PIP_CONFIG_FILE=os.devnull)  # PyPI only, as on Colab: no local indexes or links
    env.pop("PIP_FIND_LINKS", None)
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspecs))  # nbclient's kernel spec lookup
    content = tmp_path / "content"
    content.mkdir()
    checkout = content / origin.url.rsplit("/", 1)[1]
    colab_module = (
        "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"
    )
    cells = _run_cells(
        [
            colab_module,
            nb.cells[2].source,  # the setup cell: real pip
            "import prodml\nprint(prodml.__file__)",  # the same kernel, no restart
            nb.cells[3].source + "\nSMOKE = True",
            nb.cells[4].source,  # the notebook's imports (TensorFlow, LiteRT, prodml, ...)
            "print(environments.python_for('kfp'), environments.command('kfp'))",
            "%load_ext prodml.warehouse",
            '%%bigquery answer --params {"n": 2}\nSELECT @n + 40 AS answer',
            "print(int(answer['answer'][0]))",
        ],
        kernelspecs,
        content,
        env,
    )
    after = _pip_list(python)
    # The lab in a new kernel of the same runtime: nothing left to replace, so no restart
    # even with PIL and sqlglot imported; the lab's own module imports beside it.
    lab = nbformat.read(REPO / LAB, as_version=4)
    lab_cells = _run_cells(
        [colab_module + "\nimport PIL, sqlglot", lab.cells[2].source]
        + [lab.cells[3].source + "\nSMOKE = True", lab.cells[4].source]
        + ["print(traffic_features.__file__)"],
        kernelspecs,
        content,
        env,
    )
    setup_seconds, setup_out = cells[1]
    assert "pip replaced, for the workbook's requirements: " in setup_out
    assert cells[2][1].strip() == str(checkout / "utils" / "prodml" / "__init__.py")
    assert cells[-1][1].strip() == "42", "Colab's bigquery-magics answers from the warehouse"
    kfp_python, kfp = cells[5][1].split()
    assert kfp_python == str(checkout / environments.SEPARATE / "bin" / "python")
    assert kfp == str(checkout / environments.SEPARATE / "bin" / "kfp")

    changed = {n: (v, after[n]) for n, v in before.items() if after.get(n, v) != v}
    assert not {n: changed[n] for n in colab_support.PROTECTED if n in changed}
    predicted = colab_support.resolve(kernel, freeze=freeze).changes(freeze.pins)
    assert set(changed) == set(predicted), "real pip and the freeze resolution agree"
    for name, (old, new) in changed.items():
        assert f"{name} {old} -> {new}" in setup_out, "the cell names what it replaced"
    assert "restart" not in setup_out.lower(), "nothing replaced had been imported"
    assert "pip replaced" not in lab_cells[1][1] and "restart" not in lab_cells[1][1].lower()
    assert lab_cells[-1][1].strip() == str(
        checkout / "labs" / "traffic_prediction" / "traffic_features.py"
    )

    report = _kfp_in_the_separate_environment(kfp_python, kfp, checkout, tmp_path, env)
    assert report["python"] == kfp_python
    assert report["tensorflow"] == freeze.pins["tensorflow"], "the kernel's TensorFlow"
    assert int(report["protobuf"].split(".")[0]) >= 6, "kfp's protobuf, there only"
    assert report["prodml"] == str(checkout / "utils" / "prodml" / "__init__.py")
    assert report["predictions"] == [2.0, 5.0]
    assert _pip_list(python)["protobuf"] == freeze.pins["protobuf"]
    kernel_env = {**freeze.pins, **colab_support.resolve(kernel, freeze=freeze).pins}
    both = tuple(sorted(kernel + apart))
    separate = colab_support.resolve(both, protected=False, freeze=freeze, preferences=kernel_env)
    side = checkout / environments.SEPARATE
    own = dict(
        p.name.removesuffix(".dist-info").rsplit("-", 1)
        for p in side.glob("lib/python*/site-packages/*.dist-info")
    )
    own = {colab_support.canonical(n): v for n, v in own.items()}
    shadows = {n: v for n, v in own.items() if n in after}
    assert shadows == {n: new for n, (_, new) in separate.changes(kernel_env).items()}, (
        "the separate environment holds what the freeze resolution predicts"
    )

    kernel_mb, separate_mb, *_ = (
        sum(d.values()) / 1e6
        for d in colab_support.pip_downloads((tmp_path / "pip.log").read_text())
    )
    with capsys.disabled():
        print(
            f"\nColab stand-in ({python}, {len(before)} of Colab's packages laid out in "
            f"{build_seconds:.0f} s): {STANDIN}'s setup cell took {setup_seconds:.0f} s with real "
            f"pip, fetching {kernel_mb:.0f} MB for the kernel and {separate_mb:.0f} MB for the "
            f"separate environment (or taking them from pip's cache); it replaced {changed}. "
            f"A re-run (the lab's setup cell, all installed): {lab_cells[1][0]:.0f} s"
        )


def _kfp_in_the_separate_environment(python, kfp, checkout, tmp_path, env) -> dict:
    """Compile and run tests/colab/kfp_example.py as notebook 05 runs its pipeline."""
    example = checkout / "tests" / "colab" / "kfp_example.py"
    compiled = subprocess.run(
        [kfp, "dsl", "compile", "--py", str(example), "--output", str(tmp_path / "example.yaml")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert "tensorflow-step" in (tmp_path / "example.yaml").read_text()
    report = tmp_path / "kfp-report.json"
    ran = subprocess.run(
        [python, str(example), str(tmp_path / "kfp-root"), str(report)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ran.returncode == 0 and report.is_file(), (ran.stdout + ran.stderr)[-3000:]
    return json.loads(report.read_text())
