"""The model registry's plumbing: a SavedModel logged and registered as a version, and
``models:/`` URIs resolved to a SavedModel folder, in one place.

    models:/babyweight@champion    the version the alias points at
    models:/babyweight/3           version 3
    models:/babyweight/latest      the highest version

``prodml serve --model babyweight=models:/babyweight@champion`` and
``prodml.serving.start({"babyweight": "models:/babyweight@champion"})`` go through
:func:`resolve`; so can a pipeline or a canary that deploys the champion and the challenger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from prodml import config, savedmodel
from prodml.tracking.store import local_path

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$")


class ModelNotFound(LookupError):
    """A ``models:/`` URI names a model, alias or version the registry does not have."""


@dataclass(frozen=True)
class ResolvedModel:
    """A registered version found from a ``models:/`` URI: its SavedModel folder on this
    machine, its number, the aliases pointing at it and the run that produced it."""

    uri: str
    name: str
    version: int
    path: Path
    run_id: str | None
    aliases: tuple[str, ...] = field(default=())

    def labels(self) -> dict[str, int]:
        """The version's aliases as serving version names: ``{"champion": 3}``."""
        return {alias: self.version for alias in self.aliases}


def is_model_uri(text: object) -> bool:
    """True for a ``models:/...`` URI."""
    return isinstance(text, str) and text.startswith("models:/")


def parse(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3")."""
    match = _URI.match(uri)
    if not match:
        raise ValueError(
            f"{uri!r} is not a model URI: use models:/NAME@ALIAS, models:/NAME/VERSION "
            "or models:/NAME/latest"
        )
    return match["name"], match["alias"], match["version"]


def _registered(client, name: str):
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        names = sorted(m.name for m in client.search_registered_models())
        raise ModelNotFound(
            f"no registered model {name!r} in the store {mlflow.get_registry_uri()}; "
            f"registered models: {names or 'none'}"
        ) from None


def _version(client, name: str, alias: str | None, version: str | None):
    model = _registered(client, name)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    if alias is not None:
        if alias not in model.aliases:
            known = ", ".join(f"@{a} -> {v}" for a, v in sorted(model.aliases.items()))
            raise ModelNotFound(
                f"model {name!r} has no alias {alias!r}; its aliases: {known or 'none'} "
                f"(versions {versions})"
            )
        return client.get_model_version(name, model.aliases[alias])
    if version == "latest":
        if not versions:
            raise ModelNotFound(f"model {name!r} has no versions yet")
        return client.get_model_version(name, str(versions[-1]))
    if not version.isdigit() or int(version) not in versions:
        aliases = ", ".join(f"@{a}" for a in sorted(model.aliases))
        raise ModelNotFound(
            f"model {name!r} has no version {version!r}; its versions: {versions or 'none'}"
            + (f", aliases: {aliases}" if aliases else "")
        )
    return client.get_model_version(name, version)


def resolve(uri: str) -> ResolvedModel:
    """The registered version a ``models:/`` URI names, with its SavedModel on this machine.

    Local artifacts are used where they are; remote ones (a tracking server's, GCS) are
    downloaded once under ``<run folder>/mlflow/downloads/<name>/<version>``. Raises
    :class:`ModelNotFound` naming the registered models, aliases or versions when the URI
    names one that does not exist.
    """
    from mlflow import MlflowClient

    from prodml.tracking.store import tracking_uri, use

    name, alias, version = parse(uri)
    store = tracking_uri()
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise ModelNotFound(
            f"cannot resolve {uri}: there is no model registry at {store.removeprefix('sqlite:///')}"
            " (nothing has been registered in this run folder yet)"
        )
    use(experiment=None)
    client = MlflowClient()
    found = _version(client, name, alias, version)
    path = local_path(found.source)
    if path is None:
        import mlflow

        target = config.run_path("mlflow", "downloads", name, str(found.version), mkdir=False)
        if not savedmodel.is_savedmodel(target):
            target.mkdir(parents=True, exist_ok=True)
            mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=str(target))
            # download_artifacts keeps the source's last folder name
            inner = target / found.source.rstrip("/").rsplit("/", 1)[-1]
            if savedmodel.is_savedmodel(inner):
                target = inner
        path = target
    if not savedmodel.is_savedmodel(path):
        raise ModelNotFound(
            f"{uri} is version {found.version} of {name!r}, but its source {found.source} "
            "holds no SavedModel (saved_model.pb)"
        )
    model = client.get_registered_model(name)
    aliases = tuple(sorted(a for a, v in model.aliases.items() if str(v) == str(found.version)))
    return ResolvedModel(uri, name, int(found.version), path, found.run_id, aliases)


def log_savedmodel(export_path: str | Path, name: str, artifact_path: str = "model", **tags):
    """Log the SavedModel at ``export_path`` as an artifact of the active run and register it
    as a new version of ``name`` (created when needed). Returns the ModelVersion.

    The version's tags record the export folder it came from and ``tags``. Vertex AI's
    counterpart is ``aiplatform.Model.upload(artifact_uri=..., parent_model=...)``.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_savedmodel needs an active run (mlflow.start_run())")
    if not savedmodel.is_savedmodel(export_path):
        raise FileNotFoundError(f"{export_path} is not a SavedModel folder (no saved_model.pb)")
    mlflow.log_artifacts(str(export_path), artifact_path)
    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
    version_tags = {"export_path": str(export_path), **{k: str(v) for k, v in tags.items()}}
    return client.create_model_version(
        name, source, run_id=run.info.run_id, tags=version_tags, await_creation_for=0
    )


__all__ = [
    "ModelNotFound",
    "ResolvedModel",
    "is_model_uri",
    "log_savedmodel",
    "parse",
    "resolve",
]
