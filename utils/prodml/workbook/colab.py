"""The Colab badge and setup cell of every notebook, generated from one place.

The repository a notebook's badge opens and its setup cell clones is the checkout's own GitHub
repository, ``git remote get-url origin``, when that is one; otherwise (a copy without a GitHub
remote) it is the one ``pyproject.toml`` names::

    [tool.prodml]
    repository = "https://github.com/<owner>/<name>"
    ref = "main"

``prodml release`` writes the badge and setup cell into every notebook (``notebooks/``,
``solutions/`` and the generated ``labs/``); ``prodml release --check`` fails when one is
stale, e.g. names another repository than the checkout's remote.

The setup cell is the same in every notebook apart from two values: the notebook's own folder
and the pip extras it needs (``metadata.prodml.extras``, e.g. ``["airflow"]``). On Colab it
clones the workbook at the ref (so a lab's files sit beside its notebook), puts the clone's
package folder on ``sys.path`` (importable in this session, no restart), installs the package
with those extras (:func:`prodml.environments.install_on_colab`: Colab's own packages stay;
extras that would replace them go into a separate environment) and changes into the notebook's
folder; anywhere else it does nothing. It never installs TensorFlow: Colab ships its own (with
GPU support), and the package's TensorFlow requirement lives in the ``cpu`` extra, which only
local set-ups use.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

_BADGE_LINK = re.compile(r"\(https://colab\.research\.google\.com/github/[^)\s]*\)")
_EXTRA = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_GITHUB = re.compile(
    r"^(?:https://(?:[^@/]+@)?github\.com/|(?:ssh://)?git@github\.com[:/])"
    r"(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?$"
)
#: Extras that are not a notebook's to ask for: TensorFlow and the local-only set-up.
_LOCAL_ONLY = {
    "cpu": "installs TensorFlow, which Colab already has",
    "local": "is for local set-ups",
}


class ColabError(ValueError):
    """A notebook or project setting the badge and setup cell cannot be generated from."""


def _git(folder: Path, *args: str) -> str | None:
    """A git command's output in ``folder``; None when it fails or git is missing."""
    try:  # Popen, not run: tests replace subprocess.run to catch the setup cell's commands
        with subprocess.Popen(
            ["git", "-C", str(folder), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            out = process.communicate()[0]
    except FileNotFoundError:
        return None
    return out.strip() if process.returncode == 0 else None


def github_remote(folder: Path) -> str | None:
    """``https://github.com/OWNER/NAME`` of the git checkout whose top folder is ``folder``, from
    ``git remote get-url origin``; None when it is no checkout or its origin is not on GitHub.

    Any user name or token in the remote's address is dropped, never returned.
    """
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != folder.resolve():
        return None
    match = _GITHUB.match(_git(folder, "remote", "get-url", "origin") or "")
    return f"https://github.com/{match['owner']}/{match['name']}" if match else None


def repository(start: Path) -> tuple[str, str]:
    """``(url, ref)`` of the workbook holding ``start``: its checkout's GitHub origin, else
    ``[tool.prodml] repository`` of the first ``pyproject.toml`` at or above ``start``."""
    here = start.resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("prodml", {})
            if "repository" in table:
                url = github_remote(folder) or str(table["repository"]).rstrip("/")
                if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
                    raise ColabError(
                        f"{pyproject}: [tool.prodml] repository must be https://github.com/OWNER/"
                        f"NAME (Colab opens GitHub notebooks), not {url!r}"
                    )
                return url, str(table.get("ref", "main"))
    from prodml import config

    root = config.repo_root()  # a folder outside the checkout (a test's copy): the package's own
    if root is not None and root not in (here, *here.parents):
        return repository(root)
    raise ColabError(f"no pyproject.toml with [tool.prodml] repository at or above {here}")


def badge_url(url: str, ref: str, rel: str) -> str:
    """The "Open in Colab" address of the notebook at repository path ``rel``."""
    return f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{ref}/{rel}"


def extras(nb: nbformat.NotebookNode, where: str = "notebook") -> list[str]:
    """The pip extras a notebook declares in ``metadata.prodml.extras`` (default none)."""
    declared = nb.metadata.get("prodml", {}).get("extras", [])
    if not isinstance(declared, list) or not all(
        isinstance(e, str) and _EXTRA.match(e) for e in declared
    ):
        raise ColabError(f"{where}: metadata.prodml.extras must be a list of extra names")
    local = sorted(_LOCAL_ONLY.keys() & set(declared))
    if local:
        raise ColabError(f"{where}: the {local[0]!r} extra {_LOCAL_ONLY[local[0]]}, not for Colab")
    return sorted(set(declared))


def setup_source(url: str, ref: str, rel: str, extras: list[str]) -> str:
    """The setup cell for the notebook at repository path ``rel``."""
    folder = PurePosixPath(rel).parent.as_posix()
    name = url.rsplit("/", 1)[1]
    return f'''\
# Colab only: fetch the workbook, install its helper package with this notebook's extras, and
# work in this notebook's folder. Elsewhere this cell does nothing. Colab's own packages stay
# (TensorFlow, NumPy, pandas, protobuf, the kernel); the cell names any other it must replace.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPOSITORY, REF = "{url}", "{ref}"
    FOLDER, EXTRAS = "{folder}", {json.dumps(extras)}
    home = os.environ.setdefault("PRODML_COLAB_HOME", os.getcwd())  # /content, also on a re-run
    checkout = os.path.join(home, "{name}")
    if not os.path.isdir(checkout):
        subprocess.run(
            ["git", "clone", "-q", "--depth", "1", "--branch", REF, REPOSITORY, checkout],
            check=True,
        )
    if os.path.join(checkout, "utils") not in sys.path:  # importable now, without a restart
        sys.path.insert(0, os.path.join(checkout, "utils"))
    from prodml import environments

    environments.install_on_colab(checkout, EXTRAS)
    os.chdir(os.path.join(checkout, FOLDER))'''


def stamp(nb: nbformat.NotebookNode, rel: str, url: str, ref: str, where: str = "") -> bool:
    """Write the badge (first cell) and setup cell (third cell) for ``rel``; True if changed."""
    where = where or rel
    if len(nb.cells) < 3 or nb.cells[0].cell_type != "markdown" or nb.cells[2].cell_type != "code":
        raise ColabError(
            f"{where}: expected a markdown title cell first and the code setup cell third"
        )
    title = nb.cells[0]
    if not _BADGE_LINK.search(title.source):
        raise ColabError(f"{where}: the title cell has no Colab badge link to update")
    new_title = _BADGE_LINK.sub(f"({badge_url(url, ref, rel)})", title.source)
    new_setup = setup_source(url, ref, rel, extras(nb, where))
    changed = new_title != title.source or new_setup != nb.cells[2].source
    title.source, nb.cells[2].source = new_title, new_setup
    return changed
