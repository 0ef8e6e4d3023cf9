"""docs/COVERAGE.md maps the course notes to notebook and lab sections: every file and every
heading it names exists."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COVERAGE = ROOT / "docs" / "COVERAGE.md"
# `path` §N. Title, optionally › Subsection; entries separated by <br>
ENTRY = re.compile(r"`(?P<path>[^`]+\.ipynb)` §(?P<section>\d+\. [^›]+?)(?: › (?P<sub>.+))?$")


def rows() -> list[tuple[str, str]]:
    """(concept, where) for every table row of COVERAGE.md but the header rows."""
    found = []
    for line in COVERAGE.read_text().splitlines():
        cells = (
            [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        )
        if len(cells) == 2 and cells[0] != "course notes" and not set(cells[0]) <= {"-"}:
            found.append((cells[0], cells[1]))
    return found


def entries() -> list[tuple[str, str, str, str | None]]:
    """(concept, path, section, subsection) for every location the table names."""
    out = []
    for concept, where in rows():
        if where.startswith("not yet"):
            continue
        for part in where.split("<br>"):
            match = ENTRY.match(part.strip())
            assert match, f"row {concept!r}: {part!r} is not `path` §N. Title [› Subsection]"
            out.append((concept, match["path"], match["section"].strip(), match["sub"]))
    return out


@cache
def headings(path: str) -> dict[str, list[str]]:
    """{'N. Title': [### subsections in it]} from a notebook's markdown cells."""
    notebook = json.loads((ROOT / path).read_text())
    sections: dict[str, list[str]] = {}
    current = None
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if m := re.match(r"^## (\d+\. .+?)\s*$", line):
                current = m[1]
                sections[current] = []
            elif (m := re.match(r"^### (.+?)\s*$", line)) and current:
                sections[current].append(m[1])
    return sections


def test_the_table_covers_the_course_notes_outline():
    concepts = " ".join(concept for concept, _ in rows())
    for heading in (
        "Architecting Production ML Systems",
        "Ingesting Data",
        "Designing Adaptable ML systems",
        "Designing High Performance ML Systems",
        "Hybrid ML Systems",
        "Machine Resource Management",
        "expected number of values",
        "likelihood of the distribution",
        "Debug TF in real time",
        "Release, develop and test cycle",
        "Peakedness",
    ):
        assert heading in concepts, f"docs/COVERAGE.md has no row for {heading!r}"
    assert len(entries()) > 60


@pytest.mark.parametrize("path", sorted({e[1] for e in entries()}))
def test_every_named_file_exists(path):
    assert (ROOT / path).is_file(), f"docs/COVERAGE.md names {path}, which does not exist"


def test_every_named_section_exists_in_its_notebook():
    missing = []
    for concept, path, section, sub in entries():
        if not (ROOT / path).is_file():
            continue  # reported by test_every_named_file_exists
        found = headings(path)
        if section not in found:
            missing.append(f"{path}: no '## {section}' (row {concept!r})")
        elif sub and sub not in found[section]:
            missing.append(f"{path}: no '### {sub}' under '## {section}' (row {concept!r})")
    assert not missing, "\n".join(missing)


def test_the_readme_links_the_table():
    assert "docs/COVERAGE.md" in (ROOT / "README.md").read_text()
