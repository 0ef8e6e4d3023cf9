"""The HTTP side: an ASGI application speaking three prediction REST APIs over one registry.

=================================================================  ==========================
route                                                              API
=================================================================  ==========================
``GET  /v1/models/{m}[/versions/{v}]``                             TF Serving model status
``GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata``        TF Serving metadata
``POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict``         TF Serving predict
``POST /v1/projects/{p}/models/{m}[/versions/{v}]:predict``        ML Engine (``ml v1``)
``POST /v1/projects/{p}/locations/{l}/endpoints/{e}:predict``      Vertex AI (``aiplatform v1``)
``GET|PATCH /v1/projects/{p}/locations/{l}/endpoints/{e}``         Vertex endpoint, traffic split
``POST .../endpoints/{e}:deployModel`` / ``:undeployModel``        load / unload a version
``GET  /openapi.json``                                             this API, described
=================================================================  ==========================

Response shapes. TF Serving's row form follows TF Serving: a signature with one output gives a
list of values, several outputs a list of objects. The ML Engine and Vertex routes always give
each prediction as an object keyed by output name (``{"weight": 7.2}``), the form ML Engine
documented for named outputs and what the course's front-end reads
(``response["predictions"][0]["weight"]``). An instance's ``key`` that the signature does not
take is copied into its prediction. Every predict response carries the answering version in the
``X-Model-Version`` header; TF Serving responses also in ``model_version``, Vertex responses in
``deployedModelId``/``modelVersionId``.

Errors: 400 for a client's mistake, 404 for an unknown model, version, label or route, 405 for a
wrong method, 413 for a body over ``max_body_bytes``; the body is ``{"error": "..."}`` naming
the problem (Google Cloud routes: ``{"error": {"code", "message", "status"}}``, as Google's
APIs answer, which the Google API client turns into an ``HttpError``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodml.serving.model import (
    ClientError,
    Model,
    Version,
    _version_number,
    find_versions,
    next_operation_id,
    parse_split,
)

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "INVALID_ARGUMENT",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Options:
    max_batch_size: int = 256
    batch_timeout_ms: float = 0.0
    max_instances: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024


def _decode(value):
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            import base64

            return {"b64": base64.b64encode(value).decode()}
    return value


def _as_list(arr: np.ndarray) -> list:
    """JSON-ready values; float32 keeps its shortest decimal form (7.21, not 7.210000038...)."""
    if arr.dtype == object:
        flat = [_decode(v) for v in arr.reshape(-1)]
    elif arr.dtype in (np.float32, np.float16):
        flat = [float(str(v)) for v in arr.reshape(-1)]
    else:
        return arr.tolist()
    if arr.ndim == 1:
        return flat
    return np.array(flat, dtype=object).reshape(arr.shape).tolist()


class Registry:
    """The served models by name."""

    def __init__(self, options: Options):
        self.options = options
        self.models: dict[str, Model] = {}

    def load_version(self, number: int, path: str | Path) -> Version:
        o = self.options
        return Version(number, Path(path), o.max_batch_size, o.batch_timeout_ms / 1000)

    def add_model(self, name: str, export_dir: str | Path) -> Model:
        model = self.models.get(name) or Model(name)
        versions = find_versions(export_dir)
        for number, path in versions.items():
            model.add(self.load_version(number, path))
        model.routing = None
        model.set_traffic({max(model.versions): 100})  # TF Serving's default: the latest
        self.models[name] = model
        return model

    def model(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise ClientError(
                f"model {name!r} not found; serving: {sorted(self.models)}", 404
            ) from None

    def close(self) -> None:
        for model in self.models.values():
            for version in model.versions.values():
                version.close()


SEG = r"([^/:]+)"
ROUTES: list[tuple[str, str, dict[str, str]]] = [
    # (openapi path, regex, {method: handler name})
    ("/openapi.json", r"/openapi\.json", {"GET": "openapi"}),
    ("/v1/models/{model}", rf"/v1/models/{SEG}", {"GET": "status"}),
    ("/v1/models/{model}/versions/{version}", rf"/v1/models/{SEG}/versions/{SEG}", {"GET": "status"}),
    ("/v1/models/{model}/metadata", rf"/v1/models/{SEG}/metadata", {"GET": "metadata"}),
    ("/v1/models/{model}/versions/{version}/metadata", rf"/v1/models/{SEG}/versions/{SEG}/metadata", {"GET": "metadata"}),
    ("/v1/models/{model}/labels/{label}/metadata", rf"/v1/models/{SEG}/labels/{SEG}/metadata", {"GET": "metadata_label"}),
    ("/v1/models/{model}:predict", rf"/v1/models/{SEG}:predict", {"POST": "tfs_predict"}),
    ("/v1/models/{model}/versions/{version}:predict", rf"/v1/models/{SEG}/versions/{SEG}:predict", {"POST": "tfs_predict"}),
    ("/v1/models/{model}/labels/{label}:predict", rf"/v1/models/{SEG}/labels/{SEG}:predict", {"POST": "tfs_predict_label"}),
    ("/v1/projects/{project}/models/{model}:predict", rf"/v1/projects/{SEG}/models/{SEG}:predict", {"POST": "ml_predict"}),
    ("/v1/projects/{project}/models/{model}/versions/{version}:predict", rf"/v1/projects/{SEG}/models/{SEG}/versions/{SEG}:predict", {"POST": "ml_predict"}),
    ("/v1/projects/{project}/locations/{location}/endpoints/{endpoint}:predict", rf"/v1/projects/{SEG}/locations/{SEG}/endpoints/{SEG}:predict", {"POST": "vertex_predict"}),
    ("/v1/projects/{project}/locations/{location}/endpoints/{endpoint}", rf"/v1/projects/{SEG}/locations/{SEG}/endpoints/{SEG}", {"GET": "endpoint_get", "PATCH": "endpoint_patch"}),
    ("/v1/projects/{project}/locations/{location}/endpoints/{endpoint}:deployModel", rf"/v1/projects/{SEG}/locations/{SEG}/endpoints/{SEG}:deployModel", {"POST": "deploy"}),
    ("/v1/projects/{project}/locations/{location}/endpoints/{endpoint}:undeployModel", rf"/v1/projects/{SEG}/locations/{SEG}/endpoints/{SEG}:undeployModel", {"POST": "undeploy"}),
]  # fmt: skip
_COMPILED = [(re.compile(rx + r"/?"), methods) for _, rx, methods in ROUTES]


class Response(Exception):
    """Raised to answer early (errors)."""

    def __init__(self, status: int, body: dict, headers: list | None = None):
        self.status, self.body, self.headers = status, body, headers or []


class App:
    """The ASGI application."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.options = registry.options

    # -- ASGI plumbing ----------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.registry.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        google = path.startswith("/v1/projects/")
        headers: list = []
        try:
            handler, params = self._route(path, method)
            body = await self._body(scope, receive) if method in ("POST", "PATCH", "PUT") else None
            status, payload, headers = await handler(params, body)
        except Response as r:
            status, payload, headers = r.status, r.body, r.headers
        except ClientError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except Exception as exc:  # a server fault, never a client's mistake
            print(f"prodml serve: internal error on {method} {path}: {exc!r}", file=sys.stderr)
            status, payload = 500, {"error": f"internal error: {exc}"}
        if status >= 400 and google and isinstance(payload.get("error"), str):
            payload = {"error": {"code": status, "message": payload["error"],
                                 "status": GOOGLE_STATUS.get(status, "UNKNOWN")}}  # fmt: skip
        data = json.dumps(payload, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode()), *headers]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})

    def _route(self, path: str, method: str):
        for rx, methods in _COMPILED:
            m = rx.fullmatch(path)
            if m:
                if method not in methods:
                    allow = ", ".join(sorted(methods))
                    raise Response(405, {"error": f"method {method} not allowed on {path}; allowed: {allow}"},
                                   [(b"allow", allow.encode())])  # fmt: skip
                return getattr(self, methods[method]), m.groups()
        raise Response(404, {"error": f"no route for {method} {path}; see GET /openapi.json"})

    async def _body(self, scope, receive):
        limit = self.options.max_body_bytes
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > limit:
                raise Response(
                    413,
                    {"error": f"request body of {int(v)} bytes exceeds the limit of {limit} bytes"},
                )
        chunks, size = [], 0
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Response(413, {"error": f"request body exceeds the limit of {limit} bytes"})
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ClientError(f"malformed JSON in the request body: {exc}") from None
        if not isinstance(body, dict):
            raise ClientError(f"the request body must be a JSON object, got {type(body).__name__}")
        return body

    # -- prediction core --------------------------------------------------------------------
    async def _predict(self, version: Version, body: dict, google: bool):
        """Returns (kind, outputs, keys, n) where kind is 'rows' or 'columns'."""
        sig = version.signature(body.get("signature_name"))
        known = {"signature_name", "instances", "inputs", "parameters"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ClientError(
                f"unknown field(s) {unknown} in the request body; expected 'instances' or 'inputs'"
            )
        if ("instances" in body) == ("inputs" in body):
            raise ClientError(
                "the request body needs exactly one of 'instances' (row form) or 'inputs' (columnar form)"
            )
        if google and "inputs" in body:
            raise ClientError("this route takes 'instances' (a list), not 'inputs'")
        keys = None
        if "instances" in body:
            instances = body["instances"]
            if not isinstance(instances, list):
                raise ClientError(f"'instances' must be a list, got {type(instances).__name__}")
            n = len(instances)
            kind = "rows"
        else:
            kind = "columns"
            n = None
        if n == 0:
            raise ClientError("'instances' is empty: send at least one instance")
        if n is not None and n > self.options.max_instances:
            raise ClientError(
                f"too many instances: {n} > the limit of {self.options.max_instances} per request"
            )
        if kind == "rows":
            cols, keys = sig.columns_from_instances(instances)
        else:
            cols, n = sig.columns_from_inputs(body["inputs"])
            if n == 0:
                raise ClientError("'inputs' is empty: send at least one instance")
            if n > self.options.max_instances:
                raise ClientError(
                    f"too many instances: {n} > the limit of {self.options.max_instances} per request"
                )
        arrays = sig.to_arrays(cols)
        outputs = await self._call(sig, arrays, n)
        return kind, outputs, keys, n

    async def _call(self, sig, arrays, n):
        if sig.batcher is None:
            return await asyncio.to_thread(sig.run, arrays)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(result):
            loop.call_soon_threadsafe(_resolve, fut, result)

        if not sig.batcher.submit(arrays, n, done):  # version unloaded meanwhile: call directly
            return await asyncio.to_thread(sig.run, arrays)
        return await fut

    @staticmethod
    def _rows(outputs: dict, keys, n: int, always_dict: bool) -> list:
        cols = {k: _as_list(v) for k, v in outputs.items()}
        if len(cols) == 1 and not always_dict and keys is None:
            return next(iter(cols.values()))
        names = list(cols)
        rows = [{k: cols[k][i] for k in names} for i in range(n)]
        if keys is not None:
            for row, key in zip(rows, keys, strict=True):
                row["key"] = key
        return rows

    # -- handlers ---------------------------------------------------------------------------
    async def openapi(self, params, body):
        from prodml.serving.openapi import spec

        return 200, spec(), []

    def _status_of(self, version: Version) -> dict:
        return {"version": str(version.number), "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""}}  # fmt: skip

    async def status(self, params, body):
        model = self.registry.model(params[0])
        if len(params) == 2:
            versions = [model.version(params[1])]
        else:
            versions = sorted(model.versions.values(), key=lambda v: v.number, reverse=True)
        return 200, {"model_version_status": [self._status_of(v) for v in versions]}, []

    def _metadata(self, model: Model, version: Version) -> dict:
        return {
            "model_spec": {"name": model.name, "signature_name": "", "version": str(version.number)},
            "metadata": {"signature_def": {
                "signature_def": {k: s.describe() for k, s in version.signatures.items()},
            }},
        }  # fmt: skip

    async def metadata(self, params, body):
        model = self.registry.model(params[0])
        version = (
            model.version(params[1]) if len(params) == 2 else model.version(max(model.versions))
        )
        return 200, self._metadata(model, version), []

    async def metadata_label(self, params, body):
        model = self.registry.model(params[0])
        return 200, self._metadata(model, model.version(label=params[1])), []

    async def _tfs(self, model: Model, version: Version, body: dict):
        kind, outputs, keys, n = await self._predict(version, body, google=False)
        v = str(version.number)
        if kind == "rows":
            payload = {"predictions": self._rows(outputs, keys, n, False)}
        else:
            cols = {k: _as_list(a) for k, a in outputs.items()}
            payload = {"outputs": next(iter(cols.values())) if len(cols) == 1 else cols}
        payload["model_version"] = v
        return 200, payload, [(b"x-model-version", v.encode())]

    async def tfs_predict(self, params, body):
        model = self.registry.model(params[0])
        version = model.version(params[1] if len(params) == 2 else None)
        return await self._tfs(model, version, body)

    async def tfs_predict_label(self, params, body):
        model = self.registry.model(params[0])
        return await self._tfs(model, model.version(label=params[1]), body)

    async def ml_predict(self, params, body):
        model = self.registry.model(params[1])
        number = _version_number(params[2], "version") if len(params) == 3 else None
        version = model.version(number)
        _, outputs, keys, n = await self._predict(version, body, google=True)
        v = str(version.number)
        return (
            200,
            {"predictions": self._rows(outputs, keys, n, True)},
            [(b"x-model-version", v.encode())],
        )

    async def vertex_predict(self, params, body):
        project, location, name = params
        model = self.registry.model(name)
        version = model.version()
        _, outputs, keys, n = await self._predict(version, body, google=True)
        v = str(version.number)
        return (
            200,
            {
                "predictions": self._rows(outputs, keys, n, True),
                "deployedModelId": v,
                "model": f"projects/{project}/locations/{location}/models/{name}",
                "modelDisplayName": name,
                "modelVersionId": v,
            },
            [(b"x-model-version", v.encode())],
        )

    def _endpoint(self, params) -> dict:
        project, location, name = params
        model = self.registry.model(name)
        return {
            "name": f"projects/{project}/locations/{location}/endpoints/{name}",
            "displayName": name,
            "deployedModels": [
                {"id": str(v.number), "model": str(v.path), "displayName": f"{name} v{v.number}",
                 "modelVersionId": str(v.number)}
                for v in sorted(model.versions.values(), key=lambda v: v.number)
            ],
            "trafficSplit": model.traffic,
            "versionLabels": {k: str(v) for k, v in sorted(model.labels.items())},
        }  # fmt: skip

    async def endpoint_get(self, params, body):
        return 200, self._endpoint(params), []

    async def endpoint_patch(self, params, body):
        model = self.registry.model(params[2])
        unknown = sorted(set(body) - {"trafficSplit", "versionLabels", "name", "displayName"})
        if unknown:
            raise ClientError(
                f"unknown field(s) {unknown}; this endpoint updates 'trafficSplit' and 'versionLabels'"
            )
        if "trafficSplit" in body:
            model.set_traffic(body["trafficSplit"])
        if "versionLabels" in body:
            model.set_labels(body["versionLabels"])
        return 200, self._endpoint(params), []

    def _operation(self, params, response: dict) -> dict:
        project, location, name = params
        return {
            "name": f"projects/{project}/locations/{location}/endpoints/{name}/operations/{next_operation_id()}",
            "done": True,
            "response": response,
        }

    async def deploy(self, params, body):
        model = self.registry.model(params[2])
        deployed = body.get("deployedModel")
        if not isinstance(deployed, dict) or not isinstance(deployed.get("model"), str):
            raise ClientError(
                "deployModel needs 'deployedModel': {'model': '<SavedModel directory>', 'id': '<version>'}"
            )
        path = Path(deployed["model"]).expanduser()
        if not (path / "saved_model.pb").is_file():
            raise ClientError(
                f"deployedModel.model {str(path)!r} is not a SavedModel directory (no saved_model.pb)"
            )
        if deployed.get("id") is not None:
            number = _version_number(deployed["id"], "deployedModel.id")
        elif path.name.isdigit():
            number = int(path.name)
        else:
            number = max(model.versions) + 1
        if number in model.versions:
            raise ClientError(
                f"version {number} of model {model.name!r} is already deployed; undeploy it first or choose another id"
            )
        split = body.get("trafficSplit")
        if split is not None:  # validate before the (slow) load
            parse_split(split, {**model.versions, number: None})
        version = await asyncio.to_thread(self.registry.load_version, number, path)
        model.add(version)  # load first, then switch atomically
        if split is not None:
            model.set_traffic(split)
        info = {"id": str(number), "model": str(path), "modelVersionId": str(number)}
        return (
            200,
            self._operation(params, {"deployedModel": info, "trafficSplit": model.traffic}),
            [],
        )

    async def undeploy(self, params, body):
        model = self.registry.model(params[2])
        if "deployedModelId" not in body:
            raise ClientError("undeployModel needs 'deployedModelId'")
        number = _version_number(body["deployedModelId"], "deployedModelId")
        if number not in model.versions:
            raise ClientError(
                f"model {model.name!r} has no deployed version {number}; versions: {sorted(model.versions)}",
                404,
            )
        if body.get("trafficSplit") is not None:
            split = dict(body["trafficSplit"])
            if len(model.versions) < 2:
                raise ClientError("cannot undeploy the only deployed version")
            parse_split(split, {k: v for k, v in model.versions.items() if k != number})
            model.set_traffic(split)
        old = model.remove(number)
        old.close()
        return 200, self._operation(params, {"trafficSplit": model.traffic}), []


def _resolve(fut: asyncio.Future, result) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
