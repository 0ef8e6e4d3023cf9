"""prodml serve: every route, every bad input, the Google API clients, a bounded load test.

The server runs as a subprocess (``prodml.serving.start``) on a toy SavedModel with babyweight's
signatures (versions 1 and 2; version v answers v times the toy formula).
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import requests
from prodml import serving
from prodml.serving.app import ROUTES
from prodml.serving.openapi import spec
from prodml.serving.testing import INSTANCE, export_toy_model, toy_weight
from support import google_api

pytestmark = pytest.mark.timeout(300)

FEATURES = ["gestation_weeks", "is_male", "mother_age", "plurality"]


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy_export")
    export_toy_model(base, version=1, scale=1.0)
    export_toy_model(base, version=2, scale=2.0)
    return base


@pytest.fixture(scope="module")
def server(export_base):
    with serving.start(
        {"toy": export_base, "single": export_base / "1"}, max_instances=100, max_body_bytes=100_000
    ) as s:
        yield s
    assert s.process.returncode == 0  # SIGTERM ends it cleanly


def _operation(method: str, path: str):
    for template, rx, methods in ROUTES:
        if re.fullmatch(rx, path) and method in methods:
            return spec()["paths"][template][method.lower()]
    return None  # no such route: the 404 below still has the Error shape


def call(server, method: str, path: str, body=None, raw: bytes | None = None, status: int = 200):
    """Make a request, check its status and that the response matches /openapi.json."""
    r = requests.request(method, server.url + path, json=body, data=raw, timeout=30)
    assert r.status_code == status, r.text
    payload = r.json()
    op = _operation(method, path)
    if op is not None:
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    else:
        schema = {"$ref": "#/components/schemas/Error"}
    jsonschema.validate(payload, {**schema, "components": spec()["components"]})
    return payload


def approx(value, expected):
    return value == pytest.approx(expected, rel=1e-5)


# -- TF Serving REST API ------------------------------------------------------------------------
def test_status_lists_versions_newest_first(server):
    out = call(server, "GET", "/v1/models/toy")
    assert [s["version"] for s in out["model_version_status"]] == ["2", "1"]
    assert {s["state"] for s in out["model_version_status"]} == {"AVAILABLE"}
    one = call(server, "GET", "/v1/models/toy/versions/1")
    assert [s["version"] for s in one["model_version_status"]] == ["1"]
    single = call(server, "GET", "/v1/models/single")  # a SavedModel dir named 1: version 1
    assert [s["version"] for s in single["model_version_status"]] == ["1"]


def test_metadata_describes_signatures(server):
    out = call(server, "GET", "/v1/models/toy/metadata")
    assert out["model_spec"] == {"name": "toy", "signature_name": "", "version": "2"}
    sigs = out["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == {"serving_default", "keyed"}
    inputs = sigs["serving_default"]["inputs"]
    assert sorted(inputs) == FEATURES
    assert inputs["is_male"]["dtype"] == "DT_STRING"
    assert inputs["mother_age"]["dtype"] == "DT_FLOAT"
    assert inputs["mother_age"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}],
        "unknown_rank": False,
    }
    assert sorted(sigs["keyed"]["inputs"]) == sorted(["key", *FEATURES])
    assert sorted(sigs["keyed"]["outputs"]) == ["key", "weight"]
    assert sigs["serving_default"]["outputs"]["weight"]["dtype"] == "DT_FLOAT"
    v1 = call(server, "GET", "/v1/models/toy/versions/1/metadata")
    assert v1["model_spec"]["version"] == "1"


def test_predict_row_form_single_output_gives_scalars(server):
    other = {**INSTANCE, "is_male": "False", "plurality": "Twins(2)", "gestation_weeks": 35.5}
    out = call(server, "POST", "/v1/models/toy:predict", {"instances": [INSTANCE, other]})
    assert out["model_version"] == "2"
    assert len(out["predictions"]) == 2
    assert approx(out["predictions"][0], toy_weight(INSTANCE, 2))
    assert approx(out["predictions"][1], toy_weight(other, 2))
    v1 = call(server, "POST", "/v1/models/toy/versions/1:predict", {"instances": [INSTANCE]})
    assert v1["model_version"] == "1" and approx(v1["predictions"][0], toy_weight(INSTANCE, 1))


def test_predict_keyed_signature_gives_objects(server):
    body = {
        "signature_name": "keyed",
        "instances": [{**INSTANCE, "key": "a"}, {**INSTANCE, "key": "b"}],
    }
    out = call(server, "POST", "/v1/models/toy/versions/1:predict", body)
    assert [p["key"] for p in out["predictions"]] == ["a", "b"]
    assert approx(out["predictions"][0]["weight"], toy_weight(INSTANCE))


def test_key_passes_through_a_signature_without_key(server):
    body = {"instances": [{**INSTANCE, "key": 17}, {**INSTANCE, "key": 18}]}
    out = call(server, "POST", "/v1/models/toy/versions/1:predict", body)
    assert [p["key"] for p in out["predictions"]] == [17, 18]
    assert approx(out["predictions"][1]["weight"], toy_weight(INSTANCE))


def test_predict_columnar_form(server):
    inputs = {k: [v, v] for k, v in INSTANCE.items()}
    out = call(server, "POST", "/v1/models/toy/versions/1:predict", {"inputs": inputs})
    assert len(out["outputs"]) == 2 and approx(out["outputs"][0], toy_weight(INSTANCE))
    keyed = call(
        server,
        "POST",
        "/v1/models/toy:predict",
        {"signature_name": "keyed", "inputs": {**inputs, "key": ["x", "y"]}},
    )
    assert keyed["outputs"]["key"] == ["x", "y"] and approx(
        keyed["outputs"]["weight"][1], toy_weight(INSTANCE, 2)
    )


# -- Google Cloud routes --------------------------------------------------------------------------
def test_ml_engine_route(server):
    out = call(server, "POST", "/v1/projects/p/models/toy:predict", {"instances": [INSTANCE]})
    assert list(out) == ["predictions"]
    assert approx(out["predictions"][0]["weight"], toy_weight(INSTANCE, 2))
    for version in ("v1", "1"):
        out = call(
            server,
            "POST",
            f"/v1/projects/p/models/toy/versions/{version}:predict",
            {"instances": [INSTANCE]},
        )
        assert approx(out["predictions"][0]["weight"], toy_weight(INSTANCE, 1))


def test_vertex_route(server):
    out = call(
        server,
        "POST",
        "/v1/projects/p/locations/us-central1/endpoints/toy:predict",
        {"instances": [INSTANCE]},
    )
    assert out["deployedModelId"] == "2" and out["modelVersionId"] == "2"
    assert out["model"] == "projects/p/locations/us-central1/models/toy"
    assert approx(out["predictions"][0]["weight"], toy_weight(INSTANCE, 2))


def test_google_api_client_ml_v1(server):
    api = google_api("ml", "v1", server.url)
    parent = "projects/local-project/models/toy"
    prediction = api.projects().predict(body={"instances": [INSTANCE]}, name=parent).execute()
    assert approx(prediction["predictions"][0]["weight"], toy_weight(INSTANCE, 2))
    versioned = (
        api.projects()
        .predict(body={"instances": [INSTANCE]}, name=parent + "/versions/v1")
        .execute()
    )
    assert approx(versioned["predictions"][0]["weight"], toy_weight(INSTANCE, 1))

    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as err:
        api.projects().predict(body={"instances": [{"is_male": "True"}]}, name=parent).execute()
    assert err.value.resp.status == 400 and "mother_age" in str(err.value)


def test_google_api_client_aiplatform_v1(server):
    api = google_api("aiplatform", "v1", server.url)
    endpoint = "projects/local-project/locations/us-central1/endpoints/toy"
    out = (
        api.projects()
        .locations()
        .endpoints()
        .predict(endpoint=endpoint, body={"instances": [INSTANCE]})
        .execute()
    )
    assert out["deployedModelId"] == "2" and approx(
        out["predictions"][0]["weight"], toy_weight(INSTANCE, 2)
    )
    info = api.projects().locations().endpoints().get(name=endpoint).execute()
    assert info["trafficSplit"] == {"2": 100} and [d["id"] for d in info["deployedModels"]] == [
        "1",
        "2",
    ]


# -- OpenAPI --------------------------------------------------------------------------------------
def test_openapi_describes_every_route(server):
    doc = call(server, "GET", "/openapi.json")
    assert doc["openapi"].startswith("3.")
    described = {(p, m.upper()) for p, item in doc["paths"].items() for m in item}
    routed = {(p, m) for p, _, methods in ROUTES for m in methods}
    assert described == routed
    for path, item in doc["paths"].items():
        for op in item.values():
            assert {p["name"] for p in op["parameters"]} == set(re.findall(r"{(\w+)}", path))
            assert {"200", "400", "404"} <= set(op["responses"])
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})


# -- errors ---------------------------------------------------------------------------------------
PREDICT = "/v1/models/toy:predict"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"instances": [{k: v for k, v in INSTANCE.items() if k != "plurality"}]},
            ["missing", "plurality"],
        ),
        ({"instances": [{**INSTANCE, "color": "red"}]}, ["unexpected", "color"]),
        ({"instances": [{**INSTANCE, "mother_age": "26"}]}, ["mother_age", "float32"]),
        ({"instances": [{**INSTANCE, "is_male": True}]}, ["is_male", "string"]),
        (
            {"instances": [INSTANCE, {**INSTANCE, "gestation_weeks": None}]},
            ["instance 1", "gestation_weeks", "float32"],
        ),
        ({"instances": [{**INSTANCE, "mother_age": [26.0]}]}, ["mother_age", "shape"]),
        ({"instances": []}, ["empty"]),
        ({"instances": [INSTANCE] * 101}, ["too many", "101", "100"]),
        ({"instances": {"is_male": "True"}}, ["instances", "must be a list"]),
        ({"instances": ["True"]}, ["instance 0", "object"]),
        ({}, ["instances", "inputs"]),
        ({"instances": [INSTANCE], "inputs": {}}, ["exactly one"]),
        ({"instancs": [INSTANCE]}, ["unknown field", "instancs"]),
        ({"instances": [INSTANCE], "signature_name": "nope"}, ["signature_name", "nope", "keyed"]),
        ({"inputs": {"is_male": ["True"]}}, ["missing", "mother_age"]),
        (
            {"inputs": {**{k: [v] for k, v in INSTANCE.items()}, "plurality": ["a", "b"]}},
            ["different lengths"],
        ),
    ],
)
def test_bad_instances_are_400_naming_the_problem(server, body, words):
    out = call(server, "POST", PREDICT, body, status=400)
    for word in words:
        assert word in out["error"], out["error"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"instances": [', ["malformed JSON"]),
        (b"[1, 2]", ["JSON object", "list"]),
        (b"\xff\xfe", ["malformed JSON"]),
    ],
)
def test_malformed_bodies_are_400(server, raw, words):
    out = call(server, "POST", PREDICT, raw=raw, status=400)
    for word in words:
        assert word in out["error"]


def test_oversized_body_is_413(server):
    out = call(server, "POST", PREDICT, raw=b" " * 100_001, status=413)
    assert "100000" in out["error"] and "limit" in out["error"]


def test_google_routes_answer_google_errors(server):
    out = call(server, "POST", "/v1/projects/p/models/toy:predict", {"instances": []}, status=400)
    assert out["error"]["status"] == "INVALID_ARGUMENT" and "empty" in out["error"]["message"]
    out = call(server, "POST", "/v1/projects/p/models/toy:predict", {"inputs": {}}, status=400)
    assert "instances" in out["error"]["message"]
    out = call(
        server,
        "POST",
        "/v1/projects/p/locations/l/endpoints/ghost:predict",
        {"instances": [INSTANCE]},
        status=404,
    )
    assert "ghost" in out["error"]["message"] and out["error"]["code"] == 404


@pytest.mark.parametrize(
    ("method", "path", "words"),
    [
        ("GET", "/v1/models/ghost", ["ghost", "toy"]),
        ("GET", "/v1/models/toy/versions/7", ["version '7'", "[1, 2]"]),
        ("GET", "/v1/models/toy/versions/7/metadata", ["version '7'"]),
        ("POST", "/v1/models/ghost:predict", ["ghost"]),
        ("POST", "/v1/models/toy/versions/9:predict", ["9"]),
        ("POST", "/v1/models/toy/labels/canary:predict", ["label 'canary'"]),
        ("POST", "/v1/projects/p/models/toy/versions/v9:predict", ["9"]),
        ("GET", "/v2/nothing", ["no route", "/v2/nothing"]),
    ],
)
def test_unknown_model_version_or_route_is_404(server, method, path, words):
    out = call(
        server, method, path, {"instances": [INSTANCE]} if method == "POST" else None, status=404
    )
    text = json.dumps(out)
    for word in words:
        assert word in text, text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/toy:predict"),
        ("POST", "/v1/models/toy"),
        ("DELETE", "/v1/models/toy/metadata"),
        ("PUT", "/v1/projects/p/models/toy:predict"),
    ],
)
def test_wrong_method_is_405(server, method, path):
    r = requests.request(method, server.url + path, timeout=30)
    assert r.status_code == 405
    assert (
        method in r.json()["error"]
        if isinstance(r.json()["error"], str)
        else r.json()["error"]["message"]
    )
    assert r.headers["allow"]


# -- load -----------------------------------------------------------------------------------------
def test_loopback_load_has_no_failures(server):
    from prodml.serving.load import run_load

    result = run_load(server.url, PREDICT, {"instances": [INSTANCE]}, requests=3000, concurrency=32)
    assert result.failures == 0, result.errors[:3]
    assert result.statuses == {200: 3000}
    assert result.versions == {"2": 3000}
