"""Vertex AI's ``aiplatform v1`` endpoints: predict, get, patch (traffic split, version names),
deployModel and undeployModel. An endpoint is named after the model it serves; a deployed
model's id is its version number. Version names work wherever a deployed model id does
(``trafficSplit`` keys, ``deployedModelId``), and ``deployModel`` can name the new version
(``deployedModel.versionAliases``, as Vertex's model registry names versions)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request

from prodml import savedmodel
from prodml.serving import predict as core
from prodml.serving.errors import InvalidInput, NotFound
from prodml.serving.model import Model, check_name, next_operation_id, version_number
from prodml.serving.schemas import (
    DeployModelRequest,
    Endpoint,
    EndpointPatch,
    Operation,
    UndeployModelRequest,
    VertexPredictResponse,
    predict_requests,
)
from prodml.serving.wire import JSON, parse, registry, route


def _names(request: Request) -> tuple[str, str, str]:
    p = request.path_params
    return p["project"], p["location"], p["endpoint"]


async def predict(request: Request) -> JSON:
    project, location, name = _names(request)
    reg = registry(request)
    model = reg.model(name)
    body = await parse(request, predict_requests(reg.options.max_instances)[1], reg.options)
    version = model.version()
    p = await core.predict(version, "serving_default", instances=body.instances,
                           max_instances=reg.options.max_instances)  # fmt: skip
    v = str(version.number)
    return JSON(
        {
            "predictions": core.rows(p, objects=True),
            "deployedModelId": v,
            "model": f"projects/{project}/locations/{location}/models/{name}",
            "modelDisplayName": name,
            "modelVersionId": v,
        },
        headers={"x-model-version": v},
    )


def _endpoint(request: Request, model: Model) -> dict:
    project, location, name = _names(request)
    aliases: dict[int, list[str]] = {}
    for label, number in sorted(model.labels.items()):
        aliases.setdefault(number, []).append(label)
    return {
        "name": f"projects/{project}/locations/{location}/endpoints/{name}",
        "displayName": name,
        "deployedModels": [
            {"id": str(v.number), "model": str(v.path), "displayName": f"{name} v{v.number}",
             "modelVersionId": str(v.number), "versionAliases": aliases.get(v.number, [])}
            for v in sorted(model.versions.values(), key=lambda v: v.number)
        ],
        "trafficSplit": model.traffic,
        "versionLabels": {k: str(v) for k, v in sorted(model.labels.items())},
    }  # fmt: skip


async def get(request: Request) -> JSON:
    return JSON(_endpoint(request, registry(request).model(_names(request)[2])))


async def patch(request: Request) -> JSON:
    reg = registry(request)
    model = reg.model(_names(request)[2])
    body = await parse(request, EndpointPatch, reg.options)
    if body.versionLabels is not None:
        model.set_labels(body.versionLabels)
    if body.trafficSplit is not None:
        model.set_traffic(model.split(body.trafficSplit))
    return JSON(_endpoint(request, model))


def _operation(request: Request, response: dict) -> JSON:
    project, location, name = _names(request)
    return JSON({
        "name": f"projects/{project}/locations/{location}/endpoints/{name}/operations/"
                f"{next_operation_id()}",
        "done": True,
        "response": response,
    })  # fmt: skip


async def deploy(request: Request) -> JSON:
    reg = registry(request)
    model = reg.model(_names(request)[2])
    body = await parse(request, DeployModelRequest, reg.options)
    spec = body.deployedModel
    path = Path(spec.model).expanduser()
    if not savedmodel.is_savedmodel(path):  # the one place that knows the export layout
        raise InvalidInput(
            f"deployedModel.model {str(path)!r} is not a SavedModel directory (no saved_model.pb)"
        )
    if spec.id is not None:
        number = version_number(spec.id)
        if number is None:
            raise InvalidInput(f"deployedModel.id: {spec.id!r} is not a version number (2 or 'v2')")
    elif path.name.isdigit():
        number = int(path.name)
    else:
        number = max(model.versions) + 1
    if number in model.versions:
        raise InvalidInput(
            f"version {number} of model {model.name!r} is already deployed; undeploy it first "
            "or choose another id"
        )
    for alias in spec.versionAliases:
        check_name(alias)
        if alias in model.labels:
            raise InvalidInput(
                f"version name {alias!r} already names version {model.labels[alias]}; "
                "relabel it first (PATCH versionLabels)"
            )
    split = None
    if body.trafficSplit is not None:  # checked before the (slow) load
        split = model.split(body.trafficSplit, {str(number): number,
                                                **dict.fromkeys(spec.versionAliases, number)})  # fmt: skip
    version = await asyncio.to_thread(reg.load_version, number, path)
    model.add(version, spec.versionAliases)  # load first, then switch atomically
    if split is not None:
        model.set_traffic(split)
    info = {"id": str(number), "model": str(path), "modelVersionId": str(number),
            "versionAliases": spec.versionAliases}  # fmt: skip
    return _operation(request, {"deployedModel": info, "trafficSplit": model.traffic})


async def undeploy(request: Request) -> JSON:
    reg = registry(request)
    model = reg.model(_names(request)[2])
    body = await parse(request, UndeployModelRequest, reg.options)
    try:
        number = model.resolve(body.deployedModelId)
    except NotFound as exc:
        raise NotFound(f"deployedModelId: {exc}") from None
    if body.trafficSplit is not None:
        if len(model.versions) < 2:
            raise InvalidInput("cannot undeploy the only deployed version")
        split = model.split(body.trafficSplit)
        if split.get(number):
            raise InvalidInput(
                f"trafficSplit gives {split[number]}% to version {number}, which is undeployed"
            )
        model.set_traffic({v: w for v, w in split.items() if v != number})
    old = model.remove(number)
    old.close()
    return _operation(request, {"trafficSplit": model.traffic})


E = "/v1/projects/{project:name}/locations/{location:name}/endpoints/{endpoint:name}"
ROUTES = [
    route("POST", E + ":predict", predict,
          "Vertex AI (aiplatform v1) endpoints.predict; the traffic split picks the version",
          "GooglePredictRequest", VertexPredictResponse),
    route("GET", E, get, "Vertex AI endpoints.get: deployed versions, traffic split, version names",
          None, Endpoint),
    route("PATCH", E, patch,
          "Vertex AI endpoints.patch: set the traffic split and the version names (labels)",
          EndpointPatch, Endpoint),
    route("POST", E + ":deployModel", deploy,
          "Vertex AI endpoints.deployModel: load a SavedModel as a new version while serving, "
          "then switch traffic atomically", DeployModelRequest, Operation),
    route("POST", E + ":undeployModel", undeploy,
          "Vertex AI endpoints.undeployModel: move traffic away, then unload a version",
          UndeployModelRequest, Operation),
]  # fmt: skip
