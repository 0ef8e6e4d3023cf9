"""docs/COVERAGE.md maps the course notes and the course's current upstream labs to notebook and
lab sections: every file and every heading it names exists, each row says whether its sections run
the concept or explain it, and a "runs" row names sections with code in them."""

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


UPSTREAM_LABS = {  # training-data-analyst, courses/machine_learning/deepdive2/production_ml/solutions
    "bqml-vertexai-model-registry",
    "build_model_experimentation_lineage_with_prebuild_code",
    "census",
    "comparing_local_trained_models",
    "comparing_pipeline_runs",
    "custom_model_training",
    "custom_training_tensorboard_profiler",
    "distributed_training",
    "distributed_training_with_TF",
    "keras",
    "mlmd_tutorial",
    "multi_worker_with_keras",
    "parameter_server_training",
    "post_training_quant",
    "sdk-metric-parameter-tracking-for-locally-trained-models",
    "sdk_metric_parameter_tracking_for_custom_jobs",
    "serving_ml_prediction",
    "simple",
    "tfdv_advanced_taxi",
    "tfdv_basic_spending",
    "tfdv_basic_spending_old",
    "tpu_speed_data_pipelines",
    "training_example",
}
SHOWN = {"runs", "explained"}


def table_rows() -> list[list[str]]:
    """The cells of every table row of COVERAGE.md but the header and rule rows."""
    found = []
    for line in COVERAGE.read_text().splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("course notes", "upstream lab") or set(cells[0]) <= {"-"}:
            continue
        found.append(cells)
    return found


def rows() -> list[tuple[str, str, str]]:
    """(concept, where, shown) for every row: the course notes' tables have three columns, the
    upstream labs' four (the fourth says what differs)."""
    out = []
    for cells in table_rows():
        assert len(cells) in (3, 4), f"COVERAGE.md row with {len(cells)} columns: {cells[0]!r}"
        out.append((cells[0], cells[1], cells[2]))
    return out


def entries() -> list[tuple[str, str, str, str | None]]:
    """(concept, path, section, subsection) for every location the table names."""
    out = []
    for concept, where, _ in rows():
        for part in where.split("<br>"):
            match = ENTRY.match(part.strip())
            assert match, f"row {concept!r}: {part!r} is not `path` §N. Title [› Subsection]"
            out.append((concept, match["path"], match["section"].strip(), match["sub"]))
    return out


@cache
def headings(path: str) -> dict[str, dict[str | None, int]]:
    """{'N. Title': {None: code cells in the section, '### subsection': code cells in it}} from a
    notebook's cells."""
    notebook = json.loads((ROOT / path).read_text())
    sections: dict[str, dict[str | None, int]] = {}
    current = sub = None
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and current:
            sections[current][None] += 1
            if sub:
                sections[current][sub] += 1
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if m := re.match(r"^## (\d+\. .+?)\s*$", line):
                current, sub = m[1], None
                sections[current] = {None: 0}
            elif (m := re.match(r"^### (.+?)\s*$", line)) and current:
                sub = m[1]
                sections[current][sub] = 0
    return sections


def test_the_table_covers_the_course_notes_outline():
    concepts = " ".join(concept for concept, _, _ in rows())
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


def test_every_row_says_how_it_is_shown():
    wrong = [f"{concept!r}: {shown!r}" for concept, _, shown in rows() if shown not in SHOWN]
    assert not wrong, "shown must be 'runs' or 'explained':\n" + "\n".join(wrong)
    assert sum(shown == "explained" for _, _, shown in rows()) >= 1


def test_a_row_that_runs_names_a_section_with_code():
    hollow = []
    by_row: dict[str, list[int]] = {}
    for concept, path, section, sub in entries():
        counts = headings(path).get(section, {})
        by_row.setdefault(concept, []).append(counts.get(sub, 0))
    for concept, _, shown in rows():
        if shown == "runs" and not any(by_row.get(concept, [])):
            hollow.append(concept)
    assert not hollow, "rows marked 'runs' whose sections have no code cells:\n" + "\n".join(hollow)


def test_every_current_upstream_lab_has_one_row():
    named = [re.match(r"`([^`]+)`", cells[0]) for cells in table_rows() if len(cells) == 4]
    labs = [m[1] for m in named if m]
    assert len(labs) == len(set(labs)), f"a lab named twice: {sorted(labs)}"
    assert set(labs) >= UPSTREAM_LABS, f"upstream labs with no row: {UPSTREAM_LABS - set(labs)}"
