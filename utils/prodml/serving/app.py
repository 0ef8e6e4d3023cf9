"""The HTTP side: a Starlette application speaking three prediction REST APIs over one registry.

==================================================================  ==========================
route                                                               API (module)
==================================================================  ==========================
``GET  /v1/models/{m}[/versions/{v}|/labels/{l}]``                  TF Serving model status
``GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata``         TF Serving metadata
``POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict``          TF Serving predict (tfserving)
``POST /v1/projects/{p}/models/{m}[/versions/{name}]:predict``      ML Engine ``ml v1`` (mlengine)
``POST /v1/projects/{p}/locations/{l}/endpoints/{e}:predict``       Vertex ``aiplatform v1`` (vertex)
``GET|PATCH /v1/projects/{p}/locations/{l}/endpoints/{e}``          Vertex endpoint, traffic split
``POST .../endpoints/{e}:deployModel`` / ``:undeployModel``         load / unload a version
``GET  /openapi.json``                                              this API, described
==================================================================  ==========================

Each wire module parses its envelope with the pydantic models of :mod:`~prodml.serving.schemas`
(from which ``/openapi.json`` is generated) and calls the protocol-neutral core
:mod:`~prodml.serving.predict`. Every predict response carries the answering version in the
``X-Model-Version`` header. Errors are typed exceptions (:mod:`~prodml.serving.errors`), turned
into HTTP once, by :data:`STATUS` below; the body is ``{"error": "..."}`` naming the problem
(Google Cloud routes: ``{"error": {"code", "message", "status"}}``, as Google's APIs answer,
which the Google API client turns into an ``HttpError``).
"""

from __future__ import annotations

import contextlib
import sys

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match, Route

from prodml.serving import mlengine, tfserving, vertex
from prodml.serving.errors import BodyTooLarge, InvalidInput, NotFound
from prodml.serving.openapi import spec
from prodml.serving.registry import Options, Registry
from prodml.serving.wire import JSON, LingeringJSON, registry, route

__all__ = ["STATUS", "Options", "Registry", "create_app"]

# The one table from error to HTTP status (HTTPException: Starlette's routing 404 and 405).
STATUS: dict[type[Exception], int] = {
    InvalidInput: 400,
    NotFound: 404,
    BodyTooLarge: 413,
    Exception: 500,  # a server fault, never a client's mistake
}
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                 413: "INVALID_ARGUMENT", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


def _allowed(request: Request) -> list[str]:
    return sorted({m for r in request.app.routes if isinstance(r, Route)
                   and r.matches(request.scope)[0] != Match.NONE for m in r.methods})  # fmt: skip


async def on_error(request: Request, exc: Exception) -> JSON:
    method, path = request.method, request.url.path
    headers = {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 404:
            message = f"no route for {method} {path}; see GET /openapi.json"
        elif status == 405:
            allow = ", ".join(_allowed(request))
            message = f"method {method} not allowed on {path}; allowed: {allow}"
            headers["allow"] = allow
        else:
            message = exc.detail
    else:
        status = next(s for cls, s in STATUS.items() if isinstance(exc, cls))
        message = str(exc)
        if status == 500:
            print(f"prodml serve: internal error on {method} {path}: {exc!r}", file=sys.stderr)
            message = f"internal error: {exc}"
    payload = {"error": message}
    if path.startswith("/v1/projects/"):
        payload = {"error": {"code": status, "message": message,
                             "status": GOOGLE_STATUS.get(status, "UNKNOWN")}}  # fmt: skip
    if isinstance(exc, BodyTooLarge):
        o = registry(request).options
        return LingeringJSON(payload, status, o.max_drain_bytes, o.drain_seconds)
    return JSON(payload, status, headers=headers)


async def openapi(request: Request) -> JSON:
    app = request.app
    if not hasattr(app.state, "openapi"):
        app.state.openapi = spec(app.routes, registry(request).options.max_instances)
    return JSON(app.state.openapi)


def create_app(registry: Registry) -> Starlette:
    """The ASGI application serving ``registry``'s models."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        registry.close()

    routes = [
        *tfserving.ROUTES,
        *mlengine.ROUTES,
        *vertex.ROUTES,
        route("GET", "/openapi.json", openapi, "This description"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: on_error, **dict.fromkeys(STATUS, on_error)},
        lifespan=lifespan,
    )
    app.state.registry = registry
    return app
