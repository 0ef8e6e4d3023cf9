"""A notebook's setup cell with real pip, in a stand-in for Colab's runtime.

The stand-in is a throwaway virtual environment with Colab's Python version where this machine
has it (else this one) and Colab's versions of every package the install touches, its
protected packages among them (TensorFlow 2.20, NumPy 2.1.3, protobuf 5.29.6, ipykernel
6.17.1, ...): ``colab_support.standin_pins``. A real ipykernel of it runs notebook 05's setup
cell (git clone, pip and all; PyPI only, as on Colab), imports ``prodml`` in the same kernel,
runs the notebook's parameters and imports cells and a ``%%bigquery`` cell; a second kernel
runs a lab's setup and imports cells (its own module beside it); a KFP component then runs in
the separate environment the cell made.

Cost: ~1 GB of Colab's wheels (TensorFlow 2.20, jax) into uv's cache the first time, then
5-15 s to lay 173 packages out from it; the setup cell's real pip fetches ~70 MB (from pip's
cache after the first run) and takes 1-2 minutes, mostly installing and compiling Beam; two
kernels import TensorFlow. 3-5 minutes in all on 2 shared cores: one module-scoped run that
the tests below read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import colab_support
import nbformat
import pytest
from prodml import environments
from prodml.workbook import colab

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
NOTEBOOK = "notebooks/05_hybrid_ml_systems.ipynb"  # a kernel extra and a separate environment
LAB = "labs/traffic_prediction/01_traffic_prediction.ipynb"  # imports its own module
COLAB_MODULE = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"


def _pip_list(python: str) -> dict[str, str]:
    done = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return {colab_support.canonical(p["name"]): p["version"] for p in json.loads(done.stdout)}


def _build(folder: Path, kernel: tuple, apart: tuple) -> tuple[str, float]:
    """The stand-in environment (uv, from its cache after the first time); its Python."""
    started = time.perf_counter()
    subprocess.run(
        [str(UV), "venv", "-q", "-p", colab_support.standin_python(), str(folder)], check=True
    )
    pins = folder / "colab-pins.txt"
    pinned = colab_support.standin_pins(kernel, apart)
    pins.write_text("".join(f"{n}=={v}\n" for n, v in pinned.items()))
    python = str(folder / "bin" / "python")
    install = [str(UV), "pip", "install", "-q", "--no-deps", "-p", python, "-r", str(pins)]
    subprocess.run(install, check=True)
    return python, time.perf_counter() - started


def _kernel_env(tmp_path: Path, python: str, clone_env: dict) -> dict:
    """The stand-in kernel's spec (JUPYTER_PATH) and environment: PyPI only, as on Colab."""
    spec = tmp_path / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Colab stand-in", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    bin_dir = str(Path(sys.executable).parent)
    drop = ("VIRTUAL_ENV", "PRODML_COLAB_HOME", "PIP_FIND_LINKS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(clone_env, JUPYTER_PATH=str(tmp_path / "jupyter"), PIP_CONFIG_FILE=os.devnull)
    env.update(PIP_LOG=str(tmp_path / "pip.log"), PRODML_RUN_DIR=str(tmp_path / "run"))
    env["PATH"] = env["PATH"].replace(bin_dir, "")
    return env


def _run_cells(sources: list[str], cwd: Path, env: dict) -> list[tuple[float, str]]:
    """Run code cells in one stand-in kernel: (seconds, printed text) per cell."""
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


@pytest.fixture(scope="module")
def standin(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("standin")
    origin = colab_support.clone_source(tmp)
    freeze = colab_support.read_freeze()
    nb = nbformat.read(REPO / NOTEBOOK, as_version=4)
    extras = colab.extras(nb, NOTEBOOK)
    apart = tuple(e for e in extras if e in colab_support.separate_extras())
    kernel = tuple(e for e in extras if e not in apart)
    python, build_seconds = _build(tmp / "colab", kernel, apart)
    before = _pip_list(python)
    env = _kernel_env(tmp, python, origin.env)
    monkeypatch_module.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])  # nbclient's spec lookup
    cells = _run_cells(
        [
            COLAB_MODULE,
            nb.cells[2].source,  # the setup cell: real pip
            "import prodml\nprint(prodml.__file__)",  # the same kernel, no restart
            nb.cells[3].source + "\nSMOKE = True",
            nb.cells[4].source,  # the notebook's imports (TensorFlow, LiteRT, prodml, ...)
            "print(environments.python_for('kfp'), environments.command('kfp'))",
            "%load_ext prodml.warehouse",
            '%%bigquery answer --params {"n": 2}\nSELECT @n + 40 AS answer',
            "print(int(answer['answer'][0]))",
        ],
        origin.content,
        env,
    )
    after = _pip_list(python)
    # A lab in a new kernel of the same runtime, PIL and sqlglot imported first (as Colab's
    # start-up might): nothing is left to replace, so no restart; its own module imports.
    lab = nbformat.read(REPO / LAB, as_version=4)
    lab_cells = _run_cells(
        [COLAB_MODULE + "\nimport PIL, sqlglot", lab.cells[2].source]
        + [lab.cells[3].source + "\nSMOKE = True", lab.cells[4].source]
        + ["print(traffic_features.__file__)"],
        origin.content,
        env,
    )
    return types.SimpleNamespace(
        tmp=tmp,
        freeze=freeze,
        kernel=kernel,
        apart=apart,
        python=python,
        build_seconds=build_seconds,
        env=env,
        before=before,
        after=after,
        cells=cells,
        lab_cells=lab_cells,
        checkout=origin.content / origin.url.rsplit("/", 1)[1],
    )


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_stand_in_is_colabs_runtime(standin):
    protected = colab_support.PROTECTED
    assert {n: standin.before[n] for n in protected} == {
        n: standin.freeze.pins[n] for n in protected
    }
    assert standin.before["pip"] == standin.freeze.pins["pip"], "Colab's own pip runs the cell"


def test_prodml_imports_in_the_same_kernel_after_the_setup_cell(standin):
    assert standin.cells[2][1].strip() == str(standin.checkout / "utils" / "prodml" / "__init__.py")
    side = standin.checkout / environments.SEPARATE / "bin"
    assert standin.cells[5][1].split() == [str(side / "python"), str(side / "kfp")]


def test_colabs_packages_stay_and_pip_does_what_the_freeze_resolution_said(standin):
    changed = {
        n: (v, standin.after[n]) for n, v in standin.before.items() if standin.after.get(n, v) != v
    }
    assert not {n: changed[n] for n in colab_support.PROTECTED if n in changed}
    predicted = colab_support.resolve(standin.kernel, freeze=standin.freeze).changes(
        standin.freeze.pins
    )
    assert changed == predicted, "real pip and the freeze resolution agree"
    setup_out = standin.cells[1][1]
    for name, (old, new) in changed.items():
        assert f"{name} {old} -> {new}" in setup_out, "the cell names what it replaced"
    assert "restart" not in setup_out.lower(), "nothing it replaced had been imported"


def test_colabs_bigquery_magics_answers_from_the_warehouse(standin):
    assert standin.after["bigquery-magics"] == standin.freeze.pins["bigquery-magics"]
    assert standin.cells[-1][1].strip() == "42"


def test_a_rerun_replaces_nothing_and_the_labs_module_imports(standin):
    setup_out = standin.lab_cells[1][1]
    assert "pip replaced" not in setup_out and "restart" not in setup_out.lower()
    module = standin.checkout / "labs" / "traffic_prediction" / "traffic_features.py"
    assert standin.lab_cells[-1][1].strip() == str(module)


def test_kfp_runs_in_the_separate_environment(standin):
    """As notebook 05 runs its pipeline: compiled by the environment's kfp command, run by its
    Python; the component loads Colab's TensorFlow under kfp's protobuf, there only."""
    kfp_python, kfp = standin.cells[5][1].split()
    example = standin.checkout / "tests" / "colab" / "kfp_example.py"
    spec = standin.tmp / "example.yaml"
    compiled = subprocess.run(
        [kfp, "dsl", "compile", "--py", str(example), "--output", str(spec)],
        capture_output=True,
        text=True,
        env=standin.env,
    )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert "tensorflow-step" in spec.read_text()
    report = standin.tmp / "kfp-report.json"
    ran = subprocess.run(
        [kfp_python, str(example), str(standin.tmp / "kfp-root"), str(report)],
        capture_output=True,
        text=True,
        env=standin.env,
    )
    assert ran.returncode == 0 and report.is_file(), (ran.stdout + ran.stderr)[-3000:]
    found = json.loads(report.read_text())
    assert found["python"] == kfp_python
    assert found["tensorflow"] == standin.freeze.pins["tensorflow"], "the kernel's TensorFlow"
    assert int(found["protobuf"].split(".")[0]) >= 6, "kfp's protobuf"
    assert found["prodml"] == str(standin.checkout / "utils" / "prodml" / "__init__.py")
    assert found["predictions"] == [2.0, 5.0]
    assert _pip_list(standin.python)["protobuf"] == standin.freeze.pins["protobuf"], (
        "not the kernel's"
    )


def test_the_separate_environment_holds_what_the_freeze_resolution_said(standin):
    kernel_env = {
        **standin.freeze.pins,
        **colab_support.resolve(standin.kernel, freeze=standin.freeze).pins,
    }
    both = tuple(sorted(standin.kernel + standin.apart))
    predicted = colab_support.resolve(
        both, protected=False, freeze=standin.freeze, preferences=kernel_env
    )
    site = standin.checkout / environments.SEPARATE
    own = dict(
        p.name.removesuffix(".dist-info").rsplit("-", 1)
        for p in site.glob("lib/python*/site-packages/*.dist-info")
    )
    own = {colab_support.canonical(n): v for n, v in own.items()}
    shadows = {n: v for n, v in own.items() if n in standin.after}
    assert shadows == {n: new for n, (_, new) in predicted.changes(kernel_env).items()}
    assert {"kfp", "kfp-pipeline-spec"} <= set(own)


def test_install_time_and_download_size(standin, capsys):
    """Reported, not judged on time: what the setup cell fetched, per install."""
    kernel_mb, separate_mb, *_ = (
        sum(d.values()) / 1e6
        for d in colab_support.pip_downloads((standin.tmp / "pip.log").read_text())
    )
    assert 20 < kernel_mb < 200 and 1 < separate_mb < 100, (kernel_mb, separate_mb)
    with capsys.disabled():
        print(
            f"\nColab stand-in ({standin.python}, {len(standin.before)} of Colab's packages laid out in "
            f"{standin.build_seconds:.0f} s): {NOTEBOOK}'s setup cell took {standin.cells[1][0]:.0f} s "
            f"with real pip, fetching {kernel_mb:.0f} MB for the kernel and {separate_mb:.0f} MB "
            "for the separate environment (or taking them from pip's cache). A re-run (the "
            f"lab's setup cell, all installed): {standin.lab_cells[1][0]:.0f} s"
        )
