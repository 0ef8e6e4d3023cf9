"""The one dependency list resolves for every Python the workbook supports, and on Colab leaves
Colab's runtime alone.

Resolution only (``uv pip compile`` against the package index), so Python 3.12 and 3.13 are
checked on a machine that runs 3.11. Colab's side is checked against its published package set
(``tests/colab/pip-freeze.txt``, see :mod:`colab_support`): each notebook's install set is
resolved as pip installs on Colab, keeping every installed version that satisfies it. The
resolutions are cached in ``build/colab-resolve/`` on their inputs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import colab_support as colab
import pytest

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
PYPROJECT = colab.project()
sys.path.insert(0, str(REPO / "tests" / "colab"))
import refresh_freeze  # noqa: E402  (tests/colab/refresh_freeze.py, the freeze's own script)

#: Packages of Colab's runtime that a notebook's install may replace, each with why it must.
MAY_REPLACE = {
    "pillow": "Apache Beam 2.77 requires pillow >= 12.1.1 (Colab: 11.3)",
    "sqlglot": "the warehouse's transpiler needs sqlglot >= 28 (ApproxQuantiles; Colab: 25.20)",
}
#: Protected packages the separate environment may hold its own of (for its commands only).
SEPARATE_MAY_SHADOW = {
    "protobuf": "kfp 2.17 requires protobuf >= 6.31.1; Colab's TensorFlow 2.20 runs with it "
    "there (test_colab_standin.py runs a component that loads a SavedModel)",
}
INSTALL_SETS = colab.install_sets()
KERNEL_SETS = sorted({kernel for kernel, _ in INSTALL_SETS})
SEPARATE_SETS = sorted({key for key in INSTALL_SETS if key[1]})


def _label(extras: tuple[str, ...]) -> str:
    return ",".join(extras) or "core"


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
            pins[colab.canonical(match.group(1))] = match.group(2)
    return pins


def test_python_versions_declared():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.14"


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_local_setup_resolves(python, tmp_path):
    """What `make` installs (the dev extra: the local extra's TensorFlow CPU wheel and Jupyter
    kernel, and every notebook's extra)."""
    pins = compile_requirements(f"prodml[dev] @ file://{REPO}\n", python, tmp_path)
    assert pins["tensorflow-cpu"].startswith("2.21.")
    assert pins["apache-beam"].startswith("2.77.")
    assert "tensorflow" not in pins, "the CPU wheel only, not a second TensorFlow"
    major, minor = map(int, pins["ipykernel"].split(".")[:2])
    assert (major, minor) >= (6, 29), "papermill's local kernels need ipykernel >= 6.29"


def test_colab_freeze_is_recorded():
    freeze = colab.read_freeze()
    assert freeze.python.startswith("3.13."), "Colab's runtime is Python 3.13 since 2026-08"
    assert freeze.source.startswith("https://github.com/googlecolab/backend-info/blob/")
    sha = freeze.source.split("/blob/")[1].split("/")[0]
    assert re.search(rf"^# commit: {sha} \(\d{{4}}-\d\d-\d\d, ", freeze.text, re.M)
    missing = [n for n in colab.PROTECTED if n not in freeze.pins]
    assert not missing, f"the freeze lists no {missing}: is it Colab's?"
    assert "tensorflow-cpu" not in freeze.pins and len(freeze.pins) > 500


def test_refresh_script_writes_what_the_tests_read(tmp_path):
    """The refresh script's output (here without the network) is what read_freeze parses."""
    os_info = (
        "# generated\nUbuntu 22.04.5 LTS\nPython 3.13.15\nR version 4.5.1\njulia version 1.11\n"
    )
    runtime = refresh_freeze.runtime_of(os_info)
    assert runtime == "Ubuntu 22.04.5 LTS, Python 3.13.15"
    commit = {"sha": "f" * 40, "date": "2026-08-19", "subject": "Upgrade"}
    path = tmp_path / "pip-freeze.txt"
    path.write_text(
        refresh_freeze.render(commit, runtime, "# pip freeze\nnumpy==2.1.3\nA_b.c==1\n")
    )
    freeze = colab.read_freeze(path)
    assert freeze.pins == {"numpy": "2.1.3", "a-b-c": "1"}
    assert freeze.python == "3.13.15" and freeze.source.endswith(f"/{'f' * 40}/pip-freeze.txt")
    with pytest.raises(ValueError, match="names no Python"):
        refresh_freeze.runtime_of("Ubuntu 22.04\n")


@pytest.mark.parametrize("kernel", KERNEL_SETS, ids=_label)
def test_colab_runtime_is_kept(kernel, capsys):
    """A notebook's setup cell replaces none of Colab's protected packages (nor anything they
    pin), and no other package of Colab's runtime beyond MAY_REPLACE."""
    freeze = colab.read_freeze()
    resolved = colab.resolve(kernel, freeze=freeze)
    if not resolved.ok:
        loose = colab.resolve(kernel, protected=False, freeze=freeze)
        pytest.fail(
            f"prodml[{_label(kernel)}] cannot keep Colab's protected packages; pip would "
            f"replace {loose.changes(freeze.pins)}.\nuv: {resolved.error[-3000:]}"
        )
    baseline = colab.resolve(None, freeze=freeze)  # Colab's own gaps (ipython needs jedi)
    assert baseline.ok, baseline.error[-3000:]
    changes = resolved.changes(freeze.pins)
    added = [n for n in resolved.added(freeze.pins) if n not in baseline.pins]
    gaps = [n for n in resolved.added(freeze.pins) if n in baseline.pins]
    with capsys.disabled():
        print("\n" + colab.summary(f"Colab + prodml[{_label(kernel)}]", changes, added, gaps=gaps))
    assert not {n: c for n, c in changes.items() if n in colab.PROTECTED}
    assert not {"tensorflow-cpu", "tensorflow-gpu"} & set(resolved.pins), "a second TensorFlow"
    unexpected = {n: c for n, c in changes.items() if n not in MAY_REPLACE}
    assert not unexpected, (
        f"prodml[{_label(kernel)}] would also replace {unexpected} in Colab's runtime: lower a "
        "floor, move the extra to [tool.prodml] colab-separate, or add it to MAY_REPLACE with why"
    )


@pytest.mark.parametrize("key", SEPARATE_SETS, ids=lambda k: f"{_label(k[0])}+{_label(k[1])}")
def test_colab_separate_environment(key, capsys):
    """What the separate environment holds of its own: pip there sees the kernel's packages
    (Colab's, plus the workbook's install) as installed and keeps those that satisfy it."""
    kernel, apart = key
    freeze = colab.read_freeze()
    kernel_env = {**freeze.pins, **colab.resolve(kernel, freeze=freeze).pins}
    both = tuple(sorted(kernel + apart))
    resolved = colab.resolve(both, protected=False, freeze=freeze, preferences=kernel_env)
    assert resolved.ok, resolved.error[-3000:]
    shadows = resolved.changes(kernel_env)
    added = resolved.added(kernel_env)
    with capsys.disabled():
        label = f"separate environment for {_label(apart)}"
        print("\n" + colab.summary(label, shadows, added, verb="holds its own"))
    provides = {
        "airflow": "apache-airflow",
        "composer": "apache-airflow-providers-google",
        "profile": "tensorboard-plugin-profile",
    }
    assert {provides.get(extra, extra) for extra in apart} <= set(added)
    protected = {n for n in shadows if n in colab.PROTECTED}
    assert protected <= set(SEPARATE_MAY_SHADOW), f"it would shadow {protected} too"
