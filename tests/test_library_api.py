"""The course library (docs/ARCHITECTURE.md, tier 2) is documented: every module lists its public
names in ``__all__``, each public function and class defined there has a docstring, and every
name ``__all__`` lists exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "utils" / "prodml"
LIBRARY = ("contracts.py", "datasets", "babyweight", "pipelines", "validation")
#: not checked here: the DAG files under dags/ hold the objects Airflow's DagBag loads
#: (tests/test_orchestration.py checks them)
SKIPPED: set[str] = set()


def library_modules() -> list[str]:
    found = []
    for entry in LIBRARY:
        path = PACKAGE / entry
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            rel = file.relative_to(PACKAGE).as_posix()
            if rel not in SKIPPED:
                found.append(rel)
    return found


@pytest.mark.parametrize("rel", library_modules())
def test_the_course_library_lists_and_documents_its_public_names(rel):
    tree = ast.parse((PACKAGE / rel).read_text())
    declared = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "__all__" for t in node.targets)
    ]
    assert declared, f"{rel} has no __all__"
    (names,) = declared
    defined = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
    ]
    assert [n.name for n in defined if n.name not in names] == [], f"{rel}: public, not in __all__"
    assert [n.name for n in defined if not ast.get_docstring(n)] == [], f"{rel}: no docstring"
    bound = set()  # every name the module binds at top level (without importing it)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        else:
            bound.update(
                t.id
                for t in ast.walk(node)
                if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)
            )
    assert [n for n in names if n not in bound] == [], f"{rel}: __all__ names what is not there"
