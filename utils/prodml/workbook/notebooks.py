"""Finding, ordering, reading and writing the workbook's notebooks (shared by the subcommands)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from prodml import config

_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".pytest_cache"}
_GROUPS = {"notebooks": 0, "solutions": 1, "labs": 2}


def find_repo(start: Path | None = None) -> Path:
    """The workbook checkout: the cwd or one of its parents, else the installed package's."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "utils" / "prodml").is_dir():
            return folder
    root = config.repo_root()
    if root is None:
        raise FileNotFoundError(
            f"no workbook checkout at or above {here}: run from the repository or pass paths"
        )
    return root


def skipped(path: Path) -> bool:
    """True for editor and cache folders' contents (checkpoints, __pycache__)."""
    return any(part in _SKIP_DIRS for part in path.parts)


def course_key(path: Path) -> tuple:
    """Course order: the file name's leading number, notebooks/ before solutions/, then name."""
    match = re.match(r"(\d+)", path.name)
    number = int(match.group(1)) if match else 10**6
    group = next((_GROUPS[p] for p in reversed(path.parts[:-1]) if p in _GROUPS), len(_GROUPS))
    return (number, group, path.name, str(path))


def discover(paths: list[Path]) -> list[Path]:
    """Every ``*.ipynb`` in ``paths`` (files or folders), in course order.

    A path that does not exist is an error; a folder with no notebooks contributes none.
    """
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            if path.suffix != ".ipynb":
                raise ValueError(f"{path} is not a notebook (.ipynb)")
            found.add(path.resolve())
        elif path.is_dir():
            found.update(
                p.resolve() for p in path.rglob("*.ipynb") if not skipped(p.relative_to(path))
            )
        else:
            raise FileNotFoundError(f"no such notebook or folder: {path}")
    return sorted(found, key=course_key)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def dumps(nb: nbformat.NotebookNode) -> str:
    """The notebook as nbformat writes it (stable key order, one-space indent, final newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(nb), encoding="utf-8")


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def first_line(text: str) -> str:
    """The first non-empty line of an error message (ANSI colour codes removed)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or "")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def parse_value(text: str) -> object:
    """A ``-p NAME VALUE`` value as papermill's command line reads it.

    Integers and floats become numbers, ``True``/``False``/``None`` the Python constants, anything
    else stays a string.
    """
    constants = {"True": True, "False": False, "None": None}
    if text in constants:
        return constants[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.M)


def sections(nb) -> list[str]:
    """Per cell of ``nb``, the last ``##`` section heading at or above it ("" before the
    first): the numbered sections of CONTRIBUTING.md."""
    current, out = "", []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = _HEADING.findall(cell.source)
            current = headings[-1] if headings else current
        out.append(current)
    return out
