"""Which backend answers, and where a run writes its files.

Every setting comes from, in order: a call to :func:`configure` (a notebook's ``parameters``
cell), an environment variable, or the embedded default that runs offline on a laptop.

========================  ==========================  =====================================
setting                   environment variable        embedded default
========================  ==========================  =====================================
``warehouse``             ``PRODML_WAREHOUSE``        ``duckdb`` (or ``bigquery``)
``storage``               ``PRODML_STORAGE``          ``<run folder>/storage`` (or ``gs://bucket``)
``project``               ``GOOGLE_CLOUD_PROJECT``    ``local-project``
``location``              ``GOOGLE_CLOUD_REGION``     ``us-central1``
``run_dir``               ``PRODML_RUN_DIR``          ``<repo>/runs/interactive``
========================  ==========================  =====================================

The run folder holds every file a run writes: the DuckDB warehouse, the local object store,
trained models, logs. Notebooks never write next to themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

WAREHOUSES = ("duckdb", "bigquery")

_ENV = {
    "warehouse": "PRODML_WAREHOUSE",
    "storage": "PRODML_STORAGE",
    "project": "GOOGLE_CLOUD_PROJECT",
    "location": "GOOGLE_CLOUD_REGION",
    "run_dir": "PRODML_RUN_DIR",
}

_overrides: dict[str, str] = {}
#: the environment variables' values before configure() first set them (None: unset), so that
#: reset() gives back what the user had rather than deleting it
_environ_before: dict[str, str | None] = {}


@dataclass(frozen=True)
class Settings:
    warehouse: str
    storage: str
    project: str
    location: str
    run_dir: Path

    @property
    def local(self) -> bool:
        """True when every backend is the embedded one (nothing reaches Google Cloud)."""
        return self.warehouse == "duckdb" and not self.storage.startswith("gs://")

    @property
    def duckdb_path(self) -> Path:
        return self.run_dir / "warehouse.duckdb"


def repo_root() -> Path | None:
    """The workbook checkout this package was installed from (editable install), if any."""
    here = Path(__file__).resolve().parent
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "utils" / "prodml").is_dir():
            return parent
    return None


def _default_run_dir() -> Path:
    root = repo_root()
    return (root / "runs" / "interactive") if root else Path.home() / "prodml-runs" / "interactive"


def _value(name: str) -> str | None:
    if name in _overrides:
        return _overrides[name]
    value = os.environ.get(_ENV[name], "").strip()
    return value or None


def settings() -> Settings:
    """The settings in force now."""
    warehouse = (_value("warehouse") or "duckdb").lower()
    if warehouse not in WAREHOUSES:
        raise ValueError(
            f"unknown warehouse {warehouse!r} (from {_ENV['warehouse']} or configure()): "
            f"choose one of {', '.join(WAREHOUSES)}"
        )
    run_dir = Path(_value("run_dir") or _default_run_dir()).expanduser().resolve()
    storage = _value("storage") or str(run_dir / "storage")
    if "://" in storage and not storage.startswith(("gs://", "file://", "memory://")):
        raise ValueError(f"storage must be a local folder or gs://bucket, got {storage!r}")
    project = _value("project") or "local-project"
    if warehouse == "bigquery" and project == "local-project":
        raise ValueError(
            "warehouse='bigquery' needs a Google Cloud project: set GOOGLE_CLOUD_PROJECT "
            "or configure(project=...)"
        )
    return Settings(
        warehouse=warehouse,
        storage=storage.rstrip("/"),
        project=project,
        location=_value("location") or "us-central1",
        run_dir=run_dir,
    )


def configure(**values: object) -> Settings:
    """Override settings for this process and the processes it starts (notebook parameters).

    ``configure(warehouse="bigquery", project="my-project", storage="gs://my-bucket")`` moves
    the same notebook cells to Google Cloud. A value of ``None`` is ignored, so a parameters cell
    can pass every knob unconditionally.
    """
    unknown = sorted(set(values) - set(_ENV))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; known: {sorted(_ENV)}")
    for name, value in values.items():
        if value is None:
            continue
        _environ_before.setdefault(name, os.environ.get(_ENV[name]))
        _overrides[name] = str(value)
        os.environ[_ENV[name]] = str(value)  # subprocesses (trainer, server, Airflow) inherit
    current = settings()
    current.run_dir.mkdir(parents=True, exist_ok=True)
    return current


def reset() -> None:
    """Forget :func:`configure` overrides (tests): each environment variable it set is given
    back the value it had before (or removed when it had none)."""
    for name, before in _environ_before.items():
        if before is None:
            os.environ.pop(_ENV[name], None)
        else:
            os.environ[_ENV[name]] = before
    _environ_before.clear()
    _overrides.clear()


def run_path(*parts: str, mkdir: bool = True) -> Path:
    """A path under the run folder; with ``mkdir`` its parent folder exists."""
    path = settings().run_dir.joinpath(*parts)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["Settings", "settings", "configure", "reset", "run_path", "repo_root", "replace"]
