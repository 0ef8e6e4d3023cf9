"""The served models by name, and the server's options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prodml import savedmodel
from prodml.serving.errors import NotFound
from prodml.serving.model import Model, Version


@dataclass(frozen=True)
class Options:
    max_batch_size: int = 256
    batch_timeout_ms: float = 0.0
    max_instances: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024
    # After a 413, read and discard at most this much of the rest of the body (for at most
    # drain_seconds) so a client that sends its whole body before reading still reads the 413.
    max_drain_bytes: int = 64 * 1024 * 1024
    drain_seconds: float = 10.0


def find_versions(export_dir: str | Path) -> dict[int, Path]:
    """A SavedModel folder (one version: its name when numeric, else 1) or an export base
    folder of integer version subfolders (every version, as ``savedmodel.versions`` finds them)."""
    export_dir = Path(export_dir).expanduser()
    if not export_dir.is_dir():
        raise FileNotFoundError(f"export directory {export_dir} does not exist")
    if savedmodel.is_savedmodel(export_dir):
        return {int(export_dir.name) if export_dir.name.isdigit() else 1: export_dir}
    versions = savedmodel.versions(export_dir)
    if not versions:
        raise FileNotFoundError(
            f"{export_dir} is neither a SavedModel (no saved_model.pb) nor a base directory "
            "of integer version subdirectories holding SavedModels"
        )
    return versions


class Registry:
    """The served models by name."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.models: dict[str, Model] = {}

    def load_version(self, number: int, path: str | Path) -> Version:
        o = self.options
        return Version(number, Path(path), o.max_batch_size, o.batch_timeout_ms / 1000)

    def add_model(
        self,
        name: str,
        export_dir: str | Path,
        names: dict[str, int] | None = None,
        version: int | None = None,
    ) -> Model:
        """Load every version under ``export_dir``; ``names`` maps version names to numbers.
        With ``version``, ``export_dir`` is one SavedModel served as that version number (a
        registered model version, see ``prodml.tracking.resolve``)."""
        model = self.models.get(name) or Model(name)
        if version is None:
            found = find_versions(export_dir)
        elif savedmodel.is_savedmodel(export_dir):
            found = {int(version): Path(export_dir)}
        else:
            raise FileNotFoundError(f"{export_dir} is not a SavedModel (no saved_model.pb)")
        for number, path in found.items():
            model.add(self.load_version(number, path))
        model.routing = None
        model.set_traffic({max(model.versions): 100})  # TF Serving's default: the latest
        if names:
            missing = {k: v for k, v in names.items() if v not in model.versions}
            if missing:
                raise ValueError(
                    f"version names {missing} name versions model {name!r} does not have; "
                    f"versions: {sorted(model.versions)}"
                )
            model.set_labels({**model.labels, **names})
        self.models[name] = model
        return model

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(f"model {name!r} not found; serving: {sorted(self.models)}") from None

    def close(self) -> None:
        for model in self.models.values():
            for version in model.versions.values():
                version.close()
