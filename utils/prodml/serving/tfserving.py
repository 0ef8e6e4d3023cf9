"""TF Serving's REST API: model status, metadata and predict, by version number or label.

A version name (``--version-name dnn=1``, a PATCHed ``versionLabels`` entry or a deploy-time
``versionAliases`` entry) is a TF Serving version label: ``/v1/models/<m>/labels/dnn``.
"""

from __future__ import annotations

from starlette.requests import Request

from prodml.serving import predict as core
from prodml.serving.model import Model, Version
from prodml.serving.registry import Registry
from prodml.serving.schemas import Metadata, ModelStatus, TFServingPredictResponse, predict_requests
from prodml.serving.wire import JSON, parse, registry, route


def _pick(request: Request, reg: Registry) -> tuple[Model, Version | None]:
    """The model, and the version the path names (None: the path names none)."""
    p = request.path_params
    model = reg.model(p["model"])
    if "version" in p:
        return model, model.version(p["version"])
    if "label" in p:
        return model, model.labelled(p["label"])
    return model, None


def _status_of(version: Version) -> dict:
    return {"version": str(version.number), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}  # fmt: skip


async def status(request: Request) -> JSON:
    model, version = _pick(request, registry(request))
    if version is None:
        versions = sorted(model.versions.values(), key=lambda v: v.number, reverse=True)
    else:
        versions = [version]
    return JSON({"model_version_status": [_status_of(v) for v in versions]})


async def metadata(request: Request) -> JSON:
    model, version = _pick(request, registry(request))
    version = version or model.version(max(model.versions))
    return JSON({
        "model_spec": {"name": model.name, "signature_name": "", "version": str(version.number)},
        "metadata": {"signature_def": {
            "signature_def": {k: s.describe() for k, s in version.signatures.items()},
        }},
    })  # fmt: skip


async def predict(request: Request) -> JSON:
    reg = registry(request)
    options = reg.options
    model, version = _pick(request, reg)
    body = await parse(request, predict_requests(options.max_instances)[0], options)
    version = version or model.version()  # unversioned: the traffic split chooses
    p = await core.predict(version, body.signature_name, instances=body.instances,
                           inputs=body.inputs, max_instances=options.max_instances)  # fmt: skip
    v = str(version.number)
    if body.instances is not None:
        payload = {"predictions": core.rows(p, objects=False), "model_version": v}
    else:
        payload = {"outputs": core.columns(p), "model_version": v}
    return JSON(payload, headers={"x-model-version": v})


M = "/v1/models/{model:name}"
ROUTES = [
    route("POST", M + ":predict", predict,
          "TF Serving predict; unversioned requests follow the traffic split",
          "PredictRequest", TFServingPredictResponse),
    route("POST", M + "/versions/{version:int}:predict", predict, "TF Serving predict on one version",
          "PredictRequest", TFServingPredictResponse),
    route("POST", M + "/labels/{label:name}:predict", predict,
          "TF Serving predict on the version a label (version name) points to",
          "PredictRequest", TFServingPredictResponse),
    route("GET", M, status, "TF Serving: the model's versions, newest first", None, ModelStatus),
    route("GET", M + "/versions/{version:int}", status, "TF Serving: one version's status",
          None, ModelStatus),
    route("GET", M + "/labels/{label:name}", status,
          "TF Serving: the status of the version a label points to", None, ModelStatus),
    route("GET", M + "/metadata", metadata,
          "TF Serving: signatures with input and output dtypes and shapes (newest version)",
          None, Metadata),
    route("GET", M + "/versions/{version:int}/metadata", metadata,
          "TF Serving: one version's signatures", None, Metadata),
    route("GET", M + "/labels/{label:name}/metadata", metadata,
          "TF Serving: signatures of the version a label points to", None, Metadata),
]  # fmt: skip
