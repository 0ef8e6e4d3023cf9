"""Google Cloud ML Engine's ``ml v1`` ``projects.predict``, as the course's front-ends call it
(``projects/<p>/models/<m>[/versions/<name>]:predict``). A version is named by a version name
(``dnn``) or a number (``2``, ``v2``). Each prediction is an object keyed by output name."""

from __future__ import annotations

from starlette.requests import Request

from prodml.serving import predict as core
from prodml.serving.schemas import MLEnginePredictResponse, predict_requests
from prodml.serving.wire import JSON, parse, registry, route


async def predict(request: Request) -> JSON:
    reg = registry(request)
    model = reg.model(request.path_params["model"])
    name = request.path_params.get("version")
    version = model.named(name) if name is not None else None
    body = await parse(request, predict_requests(reg.options.max_instances)[1], reg.options)
    version = version or model.version()
    p = await core.predict(version, "serving_default", instances=body.instances,
                           max_instances=reg.options.max_instances)  # fmt: skip
    v = str(version.number)
    return JSON({"predictions": core.rows(p, objects=True)}, headers={"x-model-version": v})


M = "/v1/projects/{project:name}/models/{model:name}"
ROUTES = [
    route("POST", M + ":predict", predict,
          "ML Engine (ml v1) projects.predict on the model's default version",
          "GooglePredictRequest", MLEnginePredictResponse),
    route("POST", M + "/versions/{version:name}:predict", predict,
          "ML Engine (ml v1) projects.predict on a version, by name (e.g. dnn) or number (2, v2)",
          "GooglePredictRequest", MLEnginePredictResponse),
]  # fmt: skip
