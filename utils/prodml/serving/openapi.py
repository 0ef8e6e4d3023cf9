"""The OpenAPI 3.1 description served at ``GET /openapi.json``.

Paths come from :data:`prodml.serving.app.ROUTES`, so a route cannot go undescribed; the
schemas below say what each one takes and answers (JSON Schema 2020-12, as OpenAPI 3.1 uses).
"""

from __future__ import annotations

import re
from functools import cache

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "description": "what is wrong, naming the feature, model or version",
        }
    },
}
GOOGLE_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
            },
        }
    },
}
TENSOR_INFO = {
    "type": "object",
    "required": ["dtype", "tensor_shape", "name"],
    "properties": {
        "dtype": {"type": "string", "pattern": "^DT_[A-Z0-9]+$"},
        "tensor_shape": {
            "type": "object",
            "required": ["dim", "unknown_rank"],
            "properties": {
                "dim": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {"size": {"type": "string"}, "name": {"type": "string"}},
                    },
                },
                "unknown_rank": {"type": "boolean"},
            },
        },
        "name": {"type": "string"},
    },
}
SCHEMAS = {
    "Error": ERROR,
    "GoogleError": GOOGLE_ERROR,
    "ModelStatus": {
        "type": "object",
        "required": ["model_version_status"],
        "properties": {
            "model_version_status": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["version", "state", "status"],
                    "properties": {
                        "version": {"type": "string", "pattern": "^[0-9]+$"},
                        "state": {"enum": ["AVAILABLE"]},
                        "status": {
                            "type": "object",
                            "properties": {
                                "error_code": {"type": "string"},
                                "error_message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    },
    "Metadata": {
        "type": "object",
        "required": ["model_spec", "metadata"],
        "properties": {
            "model_spec": {
                "type": "object",
                "required": ["name", "version"],
                "properties": {
                    "name": {"type": "string"},
                    "signature_name": {"type": "string"},
                    "version": {"type": "string"},
                },
            },
            "metadata": {
                "type": "object",
                "required": ["signature_def"],
                "properties": {
                    "signature_def": {
                        "type": "object",
                        "required": ["signature_def"],
                        "properties": {
                            "signature_def": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "required": ["inputs", "outputs", "method_name"],
                                    "properties": {
                                        "inputs": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "$ref": "#/components/schemas/TensorInfo"
                                            },
                                        },
                                        "outputs": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "$ref": "#/components/schemas/TensorInfo"
                                            },
                                        },
                                        "method_name": {"type": "string"},
                                    },
                                },
                            }
                        },
                    }
                },
            },
        },
    },
    "TensorInfo": TENSOR_INFO,
    "PredictRequest": {
        "type": "object",
        "description": "Row form ('instances': one object per instance, or bare values for a one-input "
        "signature) or columnar form ('inputs': one list per feature). An instance's 'key' "
        "that the signature does not take is copied to its prediction.",
        "properties": {
            "signature_name": {"type": "string", "default": "serving_default"},
            "instances": {"type": "array", "minItems": 1, "maxItems": 10000},
            "inputs": {},
        },
        "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
    },
    "GooglePredictRequest": {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "minItems": 1, "maxItems": 10000},
            "parameters": {},
        },
    },
    "TFServingPredictResponse": {
        "type": "object",
        "description": "'predictions' (row form: values for a one-output signature, else objects) or "
        "'outputs' (columnar form); 'model_version' names the version that answered.",
        "properties": {
            "predictions": {"type": "array"},
            "outputs": {},
            "model_version": {"type": "string"},
        },
        "oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}],
    },
    "MLEnginePredictResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "items": {"type": "object"}}},
    },
    "VertexPredictResponse": {
        "type": "object",
        "required": ["predictions", "deployedModelId", "model", "modelVersionId"],
        "properties": {
            "predictions": {"type": "array", "items": {"type": "object"}},
            "deployedModelId": {"type": "string"},
            "model": {"type": "string"},
            "modelDisplayName": {"type": "string"},
            "modelVersionId": {"type": "string"},
        },
    },
    "TrafficSplit": {
        "type": "object",
        "description": "version id -> percentage; integers summing to 100",
        "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
    },
    "Endpoint": {
        "type": "object",
        "required": ["name", "deployedModels", "trafficSplit"],
        "properties": {
            "name": {"type": "string"},
            "displayName": {"type": "string"},
            "deployedModels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "model"],
                    "properties": {
                        "id": {"type": "string"},
                        "model": {"type": "string"},
                        "displayName": {"type": "string"},
                        "modelVersionId": {"type": "string"},
                    },
                },
            },
            "trafficSplit": {"$ref": "#/components/schemas/TrafficSplit"},
            "versionLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "EndpointPatch": {
        "type": "object",
        "properties": {
            "trafficSplit": {"$ref": "#/components/schemas/TrafficSplit"},
            "versionLabels": {
                "type": "object",
                "additionalProperties": {"type": ["string", "integer"]},
            },
        },
    },
    "DeployModelRequest": {
        "type": "object",
        "required": ["deployedModel"],
        "properties": {
            "deployedModel": {
                "type": "object",
                "required": ["model"],
                "properties": {
                    "model": {"type": "string", "description": "a SavedModel directory"},
                    "id": {
                        "type": "string",
                        "description": "the version number (default: the directory's name if numeric, else the next one)",
                    },
                },
            },
            "trafficSplit": {"$ref": "#/components/schemas/TrafficSplit"},
        },
    },
    "UndeployModelRequest": {
        "type": "object",
        "required": ["deployedModelId"],
        "properties": {
            "deployedModelId": {"type": "string"},
            "trafficSplit": {"$ref": "#/components/schemas/TrafficSplit"},
        },
    },
    "Operation": {
        "type": "object",
        "required": ["name", "done", "response"],
        "properties": {
            "name": {"type": "string"},
            "done": {"const": True},
            "response": {"type": "object"},
        },
    },
}

# handler name -> (summary, request schema, response schema)
OPERATIONS = {
    "openapi": ("This description", None, None),
    "status": ("TF Serving: the model's (or one version's) status", None, "ModelStatus"),
    "metadata": ("TF Serving: signatures with input and output dtypes and shapes", None, "Metadata"),
    "metadata_label": ("TF Serving: metadata of the version a label points to", None, "Metadata"),
    "tfs_predict": ("TF Serving predict; unversioned requests follow the traffic split", "PredictRequest", "TFServingPredictResponse"),
    "tfs_predict_label": ("TF Serving predict on the version a label points to", "PredictRequest", "TFServingPredictResponse"),
    "ml_predict": ("ML Engine (ml v1) projects.predict", "GooglePredictRequest", "MLEnginePredictResponse"),
    "vertex_predict": ("Vertex AI (aiplatform v1) endpoints.predict; the traffic split picks the version", "GooglePredictRequest", "VertexPredictResponse"),
    "endpoint_get": ("Vertex AI endpoints.get: deployed versions, traffic split, version labels", None, "Endpoint"),
    "endpoint_patch": ("Vertex AI endpoints.patch: set the traffic split (and TF Serving version labels)", "EndpointPatch", "Endpoint"),
    "deploy": ("Vertex AI endpoints.deployModel: load a SavedModel as a new version while serving, then switch traffic atomically", "DeployModelRequest", "Operation"),
    "undeploy": ("Vertex AI endpoints.undeployModel: move traffic away, then unload a version", "UndeployModelRequest", "Operation"),
}  # fmt: skip

ERRORS = {
    "400": "a client's mistake: malformed JSON, a missing, extra or mistyped feature, empty or too many instances",
    "404": "unknown model, version or label",
    "405": "wrong method for this path",
    "413": "request body larger than the limit (10 MB by default)",
}


def schema_ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


@cache
def spec() -> dict:
    from prodml.serving.app import ROUTES

    paths: dict = {}
    for path, _, methods in ROUTES:
        params = re.findall(r"{(\w+)}", path)
        google = path.startswith("/v1/projects/")
        item = paths.setdefault(path, {})
        for method, handler in methods.items():
            summary, request, response = OPERATIONS[handler]
            op: dict = {
                "operationId": f"{handler}_{method.lower()}_{len(paths)}",
                "summary": summary,
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in params
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": schema_ref(response) if response else {"type": "object"}
                            }
                        },
                    },
                    **{
                        code: {
                            "description": text,
                            "content": {
                                "application/json": {
                                    "schema": schema_ref("GoogleError" if google else "Error")
                                }
                            },
                        }
                        for code, text in ERRORS.items()
                    },
                },
            }
            if request:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema_ref(request)}},
                }
            item[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "prodml serve",
            "version": "1",
            "description": "A local prediction service speaking the TF Serving REST API and the ML Engine (ml v1) and Vertex AI (aiplatform v1) predict routes.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
