"""The one schema source: pydantic models of every request body the server takes (it validates
with them) and every answer it gives; ``/openapi.json`` is generated from these same classes.

What depends on the loaded model (feature names, dtypes and shapes) is not here: it comes from
the SavedModel's signature, which TF Serving's metadata route publishes.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _sums_to_100(split: dict[str, int]) -> dict[str, int]:
    if sum(split.values()) != 100:
        raise ValueError(f"percentages must sum to 100, got {sum(split.values())}")
    return split


VersionRef = Annotated[
    StrictStr | StrictInt,
    Field(description="a version number (2, '2' or 'v2') or a version name (e.g. 'dnn')"),
]
TrafficSplit = Annotated[
    dict[str, Annotated[StrictInt, Field(ge=0, le=100)]],
    Field(
        min_length=1,
        description="deployed model id (the version number) or version name -> percentage; "
        "integers summing to 100",
    ),
    AfterValidator(_sums_to_100),
]


def _instances(max_instances: int):
    return Annotated[
        list[Any],
        Field(
            min_length=1,
            max_length=max_instances,
            description="one object per instance (feature name -> value), or bare values for "
            "a one-input signature; an instance's 'key' that the signature does not take is "
            "copied to its prediction",
        ),
    ]


@cache
def predict_requests(max_instances: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """The TF Serving and the Google (ML Engine, Vertex) predict request models for a server
    that takes at most ``max_instances`` instances per request."""
    Instances = _instances(max_instances)  # noqa: N806 - a type

    class PredictRequest(_Request):
        """TF Serving predict: row form ('instances') or columnar form ('inputs')."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}]},
        )
        signature_name: StrictStr = "serving_default"
        instances: Instances | None = None
        inputs: Any = Field(
            None, description="columnar form: feature name -> list of values (one per instance)"
        )

        @model_validator(mode="after")
        def _one_form(self):
            if ("instances" in self.model_fields_set) == ("inputs" in self.model_fields_set):
                raise ValueError(
                    "the request body needs exactly one of 'instances' (row form) or "
                    "'inputs' (columnar form)"
                )
            return self

    class GooglePredictRequest(_Request):
        """ML Engine projects.predict and Vertex AI endpoints.predict: 'instances' only."""

        instances: Instances
        parameters: dict[str, Any] | None = None

    return PredictRequest, GooglePredictRequest


class EndpointPatch(_Request):
    """Vertex AI endpoints.patch: the traffic split, and the version names (labels)."""

    name: str | None = None
    displayName: str | None = None  # noqa: N815 - Google's field names
    trafficSplit: TrafficSplit | None = None  # noqa: N815
    versionLabels: dict[str, VersionRef] | None = Field(  # noqa: N815
        None, description="version name -> version number; replaces the names set before"
    )


class DeployedModelSpec(BaseModel):
    """Vertex's DeployedModel. Machine fields (dedicatedResources, ...) mean nothing on one
    local process and are accepted and ignored, so the course's deploy calls run unchanged."""

    model_config = ConfigDict(extra="ignore")
    model: StrictStr = Field(description="a SavedModel directory")
    id: VersionRef | None = Field(
        None,
        description="the version number (default: the directory's name if numeric, else the next)",
    )
    displayName: str | None = None  # noqa: N815
    versionAliases: list[StrictStr] = Field(  # noqa: N815
        default_factory=list,
        description="version names for the new version (Vertex's model version aliases), "
        "e.g. ['dnn']; then usable as ML Engine versions/<name> and TF Serving labels/<name>",
    )


class DeployModelRequest(_Request):
    deployedModel: DeployedModelSpec  # noqa: N815
    trafficSplit: TrafficSplit | None = None  # noqa: N815


class UndeployModelRequest(_Request):
    deployedModelId: VersionRef  # noqa: N815
    trafficSplit: TrafficSplit | None = None  # noqa: N815


# -- answers (documented in /openapi.json and checked by the tests) ---------------------------
class Error(BaseModel):
    error: str = Field(description="what is wrong, naming the feature, model or version")


class GoogleErrorBody(BaseModel):
    code: int
    message: str
    status: str


class GoogleError(BaseModel):
    """Google's error envelope; the Google API client turns it into an HttpError."""

    error: GoogleErrorBody


class StatusDetail(BaseModel):
    error_code: str
    error_message: str


class VersionStatus(BaseModel):
    version: Annotated[str, Field(pattern=r"^[0-9]+$")]
    state: Literal["AVAILABLE"]
    status: StatusDetail


class ModelStatus(BaseModel):
    model_version_status: Annotated[list[VersionStatus], Field(min_length=1)]


class Dim(BaseModel):
    size: str
    name: str = ""


class TensorShape(BaseModel):
    dim: list[Dim]
    unknown_rank: bool


class TensorInfo(BaseModel):
    dtype: Annotated[str, Field(pattern=r"^DT_[A-Z0-9]+$")]
    tensor_shape: TensorShape
    name: str


class SignatureInfo(BaseModel):
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str


class SignatureDefMap(BaseModel):
    signature_def: dict[str, SignatureInfo]


class MetadataBody(BaseModel):
    signature_def: SignatureDefMap


class ModelSpec(BaseModel):
    name: str
    signature_name: str
    version: str


class Metadata(BaseModel):
    model_spec: ModelSpec
    metadata: MetadataBody


class TFServingPredictResponse(BaseModel):
    """'predictions' (row form: values for a one-output signature, else objects) or 'outputs'
    (columnar form); 'model_version' names the version that answered."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}]}
    )
    predictions: list[Any] = None
    outputs: Any = None
    model_version: str


class MLEnginePredictResponse(BaseModel):
    predictions: list[dict[str, Any]] = Field(
        description="one object per instance: output name -> the model's output for it, as is "
        "(a scalar for shape [None], a list for [None, k])"
    )


class VertexPredictResponse(BaseModel):
    predictions: list[dict[str, Any]]
    deployedModelId: str  # noqa: N815
    model: str
    modelDisplayName: str  # noqa: N815
    modelVersionId: str  # noqa: N815


class DeployedModel(BaseModel):
    id: str
    model: str
    displayName: str  # noqa: N815
    modelVersionId: str  # noqa: N815
    versionAliases: list[str]  # noqa: N815


class Endpoint(BaseModel):
    name: str
    displayName: str  # noqa: N815
    deployedModels: list[DeployedModel]  # noqa: N815
    trafficSplit: dict[str, int]  # noqa: N815
    versionLabels: dict[str, str]  # noqa: N815


class Operation(BaseModel):
    name: str
    done: Literal[True]
    response: dict[str, Any]


# -- a ValidationError in plain words -----------------------------------------------------------
def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def explain(exc: ValidationError, model: type[BaseModel]) -> str:
    """One sentence per problem, naming the field: what a client can act on."""
    parts: list[str] = []
    unknown: list[str] = []
    for e in exc.errors(include_url=False):
        kind, loc, ctx, value = e["type"], e["loc"], e.get("ctx") or {}, e.get("input")
        where = _where(loc)
        if kind == "json_invalid":
            parts.append(f"malformed JSON in the request body: {ctx.get('error', e['msg'])}")
        elif kind == "model_type" and not loc:
            parts.append(f"the request body must be a JSON object, got {type(value).__name__}")
        elif kind == "extra_forbidden":
            unknown.append(where)
        elif kind == "missing":
            parts.append(f"{where!r} is required")
        elif kind == "too_short" and ctx.get("min_length") == 1:
            parts.append(f"{where!r} is empty: it needs at least one item")
        elif kind == "too_long" and loc == ("instances",):
            parts.append(
                f"too many instances: {ctx['actual_length']} > the limit of "
                f"{ctx['max_length']} per request"
            )
        elif kind == "value_error":
            msg = str(ctx.get("error", e["msg"]))
            parts.append(f"{where}: {msg}" if where else msg)
        else:
            got = f"{type(value).__name__} {value!r}"[:120]
            parts.append(f"{where}: {e['msg'][0].lower()}{e['msg'][1:]}, got {got}")
    if unknown:
        known = sorted(f.alias or name for name, f in model.model_fields.items())
        parts.insert(0, f"unknown field(s) {sorted(unknown)} in the request body; it takes {known}")
    return "; ".join(parts)
