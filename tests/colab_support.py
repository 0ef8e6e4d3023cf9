"""Colab's published runtime (``tests/colab/pip-freeze.txt``) and what installing the workbook
would do to it.

:func:`resolve` resolves an install set the way pip installs on Colab: every package of Colab's
runtime is a preference (pip keeps an installed version that satisfies the requirements), for
Colab's Python and platform, with ``uv pip compile`` (the freeze pre-fills its output file, which
uv reads as preferred versions). With ``protected=True`` the protected packages are also
*required* at Colab's versions, so that the resolution fails, with uv's explanation, when the
install set needs another version of one of them or of anything they pin in turn. Results are
cached in ``build/colab-resolve/`` under a hash of every input (the project's dependency lists,
the freeze, the install set, uv's version), so a repeat costs nothing until a dependency changes.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
FREEZE = REPO / "tests" / "colab" / "pip-freeze.txt"
CACHE = REPO / "build" / "colab-resolve"
UV = Path(sys.executable).with_name("uv")
#: Colab's kernel and ML stack: an install set must leave these as Colab ships them.
PROTECTED = (
    "ipykernel",
    "ipython",
    "notebook",
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "protobuf",
    "jax",
)
#: Colab runs Ubuntu 22.04: glibc 2.35.
PLATFORM = "x86_64-manylinux_2_35"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Freeze:
    """Colab's runtime: exact versions (``name==version`` lines), its Python and its source."""

    pins: dict[str, str]
    python: str
    source: str
    text: str = field(repr=False)


def read_freeze(path: Path = FREEZE) -> Freeze:
    text = path.read_text()
    pins = {canonical(m[1]): m[2] for m in map(_PIN.match, text.splitlines()) if m}
    python = re.search(r"^# runtime: .*\bPython (\d+\.\d+\.\d+)", text, re.M)
    source = re.search(r"^# source: (\S+)", text, re.M)
    if not (pins and python and source):
        raise ValueError(f"{path}: no pins, or no '# runtime: ... Python X.Y.Z' / '# source:' line")
    return Freeze(pins=pins, python=python[1], source=source[1], text=text)


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def separate_extras() -> set[str]:
    return set(project()["tool"]["prodml"].get("colab-separate", []))


def notebook_paths() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", "notebooks/*.ipynb", "solutions/*.ipynb", "labs/*.ipynb"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(p for p in listed.stdout.split() if ".ipynb_checkpoints" not in p)


def install_sets() -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]]:
    """Every notebook's Colab install: (kernel extras, separate extras) -> the notebooks."""
    apart = separate_extras()
    sets: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for rel in notebook_paths():
        nb = nbformat.read(REPO / rel, as_version=4)
        extras = set(nb.metadata.get("prodml", {}).get("extras", []))
        key = (tuple(sorted(extras - apart)), tuple(sorted(extras & apart)))
        sets.setdefault(key, []).append(rel)
    return sets


@dataclass(frozen=True)
class Resolution:
    """A resolved install: name -> version, or the resolver's reason it has none."""

    pins: dict[str, str]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def changes(self, before: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Packages of ``before`` this resolution installs at another version: name -> (old, new)."""
        return {
            n: (before[n], v)
            for n, v in sorted(self.pins.items())
            if n in before and before[n] != v
        }

    def added(self, before: dict[str, str]) -> list[str]:
        return sorted(set(self.pins) - set(before))


def _uv_version() -> str:
    return subprocess.run([str(UV), "--version"], capture_output=True, text=True).stdout.strip()


def _requirements(extras: tuple[str, ...] | None, protected: bool, freeze: Freeze) -> list[str]:
    lines = []
    if extras is not None:
        spec = f"[{','.join(extras)}]" if extras else ""
        lines.append(f"prodml{spec} @ {REPO.as_uri()}")
    if protected:
        lines += [f"{n}=={freeze.pins[n]}" for n in PROTECTED if n in freeze.pins]
    return lines


def resolve(
    extras: tuple[str, ...] | None,
    *,
    protected: bool = True,
    freeze: Freeze | None = None,
    preferences: dict[str, str] | None = None,
) -> Resolution:
    """Resolve the workbook with ``extras`` (None: nothing but the protected packages) against
    Colab's runtime; ``preferences`` (default: the freeze) are the versions pip finds installed."""
    freeze = freeze or read_freeze()
    preferences = preferences or freeze.pins
    requirements = _requirements(extras, protected, freeze)
    spec = project()["project"]
    inputs = {
        "requirements": requirements,
        "dependencies": spec["dependencies"],
        "optional": spec.get("optional-dependencies", {}),
        "requires-python": spec.get("requires-python"),
        "preferences": sorted(preferences.items()),
        "python": freeze.python,
        "platform": PLATFORM,
        "uv": _uv_version(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]
    cached = CACHE / f"{key}.json"
    if cached.is_file():
        return Resolution(**json.loads(cached.read_text()))
    result = _compile(requirements, preferences, freeze.python)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"pins": result.pins, "error": result.error}, indent=1))
    partial.replace(cached)
    return result


def _compile(requirements: list[str], preferences: dict[str, str], python: str) -> Resolution:
    with tempfile.TemporaryDirectory(prefix="colab-resolve-") as tmp:
        source, output = Path(tmp, "requirements.in"), Path(tmp, "requirements.txt")
        source.write_text("\n".join(requirements) + "\n")
        output.write_text("".join(f"{n}=={v}\n" for n, v in sorted(preferences.items())))
        done = subprocess.run(
            [str(UV), "pip", "compile", "-q", "--no-header", "--no-annotate", str(source)]
            + ["-o", str(output), "--python-version", python, "--python-platform", PLATFORM],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            return Resolution(pins={}, error=done.stderr.strip() or done.stdout.strip())
        pins = {
            canonical(m[1]): m[2] for m in map(_PIN.match, output.read_text().splitlines()) if m
        }
        return Resolution(pins=pins)


def summary(
    label: str,
    changes: dict[str, tuple[str, str]],
    added: list[str],
    verb: str = "replaces",
    gaps: list[str] = (),
) -> str:
    """One line: what an install replaces and adds (and what Colab itself lacks, ``gaps``)."""
    replaced = ", ".join(f"{n} {old} -> {new}" for n, (old, new) in changes.items()) or "nothing"
    shown = ", ".join(added[:12]) + (f", ... ({len(added)} in all)" if len(added) > 12 else "")
    line = f"{label}: {verb} {replaced}; adds {len(added)} packages ({shown or 'none'})"
    return line + (f" + {', '.join(gaps)} (missing from Colab's own set)" if gaps else "")


# --- a stand-in for Colab's runtime, for the setup cell run with real pip --------------------


def standin_python() -> str:
    """Colab's Python minor version where this machine has it (``PRODML_COLAB_PYTHON``, then
    ``python3.X`` on PATH, then pyenv's), else this interpreter."""
    minor = ".".join(read_freeze().python.split(".")[:2])
    candidates = [os.environ.get("PRODML_COLAB_PYTHON"), shutil.which(f"python{minor}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python")))
    wanted = tuple(int(x) for x in minor.split("."))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and tuple(map(int, probe.stdout.split())) == wanted:
            return candidate
    return sys.executable


def standin_pins(kernel: tuple[str, ...], apart: tuple[str, ...]) -> dict[str, str]:
    """Colab's versions of every package the install touches (the protected packages, what they
    need, and what the workbook and its separate environment need that Colab has), with the
    pip, setuptools and wheel Colab ships."""
    freeze = read_freeze()
    touched = set(resolve(kernel, freeze=freeze).pins)
    if apart:
        kernel_env = {**freeze.pins, **resolve(kernel, freeze=freeze).pins}
        both = tuple(sorted(kernel + apart))
        touched |= set(resolve(both, protected=False, freeze=freeze, preferences=kernel_env).pins)
    touched |= {"pip", "setuptools", "wheel"}
    return {n: freeze.pins[n] for n in sorted(touched) if n in freeze.pins}


def clone_source(folder: Path) -> types.SimpleNamespace:
    """This working tree as the repository the setup cells clone: a snapshot in ``folder``,
    reached through git's ``insteadOf`` for the GitHub address (``env``), and a Colab
    ``/content`` folder (``content``)."""
    from prodml.workbook import colab

    url, ref = colab.repository(REPO)
    snapshot = snapshot_repository(folder / "origin", ref)
    content = folder / "content"
    content.mkdir()
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{snapshot.as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": url,
    }
    return types.SimpleNamespace(url=url, ref=ref, env=env, content=content)


def snapshot_repository(folder: Path, ref: str) -> Path:
    """A git repository at ``folder`` whose branch ``ref`` holds this checkout's working tree
    (tracked and new files, as they are now): what the setup cell clones in a test."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for rel in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / rel
        if source.is_file():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / rel)
    git = ["git", "-C", str(folder), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    for step in (["init", "-q", "-b", ref], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + step, check=True, capture_output=True)
    return folder


_SIZE = re.compile(r"(?:Downloading|Using cached) (\S+) \(([\d.]+) (bytes|kB|MB|GB)\)")


def pip_downloads(log: str) -> list[dict[str, float]]:
    """What each ``pip install`` in a ``--log`` file fetched (or took from its cache), in order:
    file name -> bytes (the build back-end's own install counts with the install it serves)."""
    scale = {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    installs = re.split(r"\n(?=\S+ Successfully installed (?!setuptools-))", log)
    found = [
        {Path(m[1]).name: float(m[2]) * scale[m[3]] for m in _SIZE.finditer(i)} for i in installs
    ]
    return [f for f in found if f]


def build_wheel(folder: Path, name: str, version: str, *, script: bool = False) -> Path:
    """A minimal pure-Python wheel, written directly (no build backend, so no network)."""
    dist = f"{name}-{version}"
    body = f'__version__ = "{version}"\n\n\ndef main():\n    print(__version__)\n'
    files = {
        f"{name}/__init__.py": body,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    if script:
        files[f"{dist}.dist-info/entry_points.txt"] = f"[console_scripts]\n{name} = {name}:main\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}.dist-info/RECORD"] = "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel
