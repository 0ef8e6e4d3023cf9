"""The OpenAPI 3.1 description served at ``GET /openapi.json``, generated from the routes and
the pydantic models they validate with (:mod:`prodml.serving.schemas`), so a route cannot go
undescribed and the spec cannot disagree with the checks. Takes the routes as an argument:
nothing here imports the app."""

from __future__ import annotations

import re

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.convertors import IntegerConvertor

from prodml.serving import schemas

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "a client's mistake: malformed JSON, a missing, extra or mistyped feature, empty or "
    "too many instances, a bad traffic split",
    "404": "unknown model, version, version name or label",
    "405": "wrong method for this path",
    "413": "request body larger than the limit (10 MB by default)",
}


def _path_parameter(name: str, convertor) -> dict:
    if isinstance(convertor, IntegerConvertor):
        schema = {"type": "integer", "minimum": 0}
    else:
        schema = {"type": "string", "pattern": f"^{convertor.regex}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _operation(r, method: str, number: int, ref, google_route: bool) -> dict:
    """One OpenAPI operation of route ``r``: its parameters, answers and request body."""
    error = ref(schemas.GoogleError if google_route else schemas.Error)
    op: dict = {
        "operationId": f"{r.endpoint.__module__.rsplit('.', 1)[-1]}_{r.endpoint.__name__}"
        f"_{method.lower()}_{number}",
        "summary": r.doc.summary,
        "parameters": [_path_parameter(n, c) for n, c in r.param_convertors.items()],
        "responses": {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": ref(r.doc.response) if r.doc.response else {"type": "object"}
                    }
                },
            },
            **{
                code: {"description": text, "content": {"application/json": {"schema": error}}}
                for code, text in ERRORS.items()
            },
        },
    }
    if r.doc.request:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(r.doc.request)}},
        }
    return op


def spec(routes, max_instances: int) -> dict:
    """OpenAPI for ``routes`` (Starlette routes carrying a ``doc``), for a server taking at
    most ``max_instances`` instances per request."""
    predict, google = schemas.predict_requests(max_instances)
    named = {"PredictRequest": predict, "GooglePredictRequest": google}
    documented = [r for r in routes if hasattr(r, "doc")]
    models: list[type[BaseModel]] = [schemas.Error, schemas.GoogleError, *named.values()]
    for r in documented:
        for m in (r.doc.request, r.doc.response):
            if isinstance(m, type) and m not in models:
                models.append(m)
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)

    def ref(model) -> dict:
        model = named.get(model, model)
        return refs[(model, "validation")]

    paths: dict = {}
    for r in documented:
        template = re.sub(r"{(\w+):\w+}", r"{\1}", r.path)
        for method in sorted(r.methods - {"HEAD"}):
            op = _operation(r, method, len(paths), ref, template.startswith("/v1/projects/"))
            paths.setdefault(template, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "prodml serve",
            "version": "1",
            "description": "A local prediction service speaking the TF Serving REST API and the "
            "ML Engine (ml v1) and Vertex AI (aiplatform v1) predict routes.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {})},
    }
