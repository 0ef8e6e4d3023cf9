"""prodml serve: every route, every bad input, the Google API clients, the 413 every client
reads, output shapes as the model gives them, a bounded load test.

The server runs as a subprocess (``prodml.serving.start``) on toy SavedModels with babyweight's
signatures: ``toy`` (versions 1 and 2; version v answers v times the toy formula), ``single``
(one SavedModel directory) and ``column`` (``weight`` of shape [None, 1], as the course's model).
Nothing here changes the server's state, so the tests run in any order.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request

import jsonschema
import pytest
import requests
from prodml import serving
from prodml.serving.app import create_app
from prodml.serving.registry import Registry
from support import INSTANCE, export_toy_model, google_api, toy_weight

pytestmark = pytest.mark.timeout(300)

FEATURES = ["gestation_weeks", "is_male", "mother_age", "plurality"]


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy_export")
    export_toy_model(base, version=1, scale=1.0)
    export_toy_model(base, version=2, scale=2.0)
    export_toy_model(base / "column", version=1, column=True)
    return base


MAX_BODY = 100_000
MAX_DRAIN = 64 * 1024 * 1024  # the server's default bound on what a 413 drains


@pytest.fixture(scope="module")
def server(export_base):
    with serving.start(
        {"toy": export_base, "single": export_base / "1", "column": export_base / "column"},
        max_instances=100,
        max_body_bytes=MAX_BODY,
    ) as s:
        yield s
    assert s.process.returncode == 0  # SIGTERM ends it cleanly


@pytest.fixture(scope="module")
def openapi(server):
    return requests.get(server.url + "/openapi.json", timeout=30).json()


def _operation(doc: dict, method: str, path: str):
    """The operation of /openapi.json that ``method path`` hits, found by the spec's own
    parameter patterns."""
    for template, item in doc["paths"].items():
        if method.lower() not in item:
            continue
        params = {p["name"]: p["schema"] for p in item[method.lower()]["parameters"]}
        rx = re.escape(template)
        for name, schema in params.items():
            part = "[0-9]+" if schema["type"] == "integer" else schema["pattern"].strip("^$")
            rx = rx.replace(re.escape("{" + name + "}"), f"({part})")
        if re.fullmatch(rx, path):
            return item[method.lower()]
    return None  # no such route: the 404 below still has the Error shape


def call(server, method: str, path: str, body=None, raw: bytes | None = None, status: int = 200):
    """Make a request, check its status and that the response matches /openapi.json."""
    doc = requests.get(server.url + "/openapi.json", timeout=30).json()
    r = requests.request(method, server.url + path, json=body, data=raw, timeout=30)
    assert r.status_code == status, r.text
    payload = r.json()
    op = _operation(doc, method, path)
    if op is not None:
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    else:
        schema = {"$ref": "#/components/schemas/Error"}
    jsonschema.validate(payload, {**schema, "components": doc["components"]})
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


# -- output shapes: what the model gives per instance, never squeezed ----------------------------
OTHER = {**INSTANCE, "is_male": "False", "plurality": "Twins(2)", "gestation_weeks": 35.5}


def test_column_output_is_a_list_per_instance_on_every_route(server):
    w0, w1 = toy_weight(INSTANCE), toy_weight(OTHER)
    body = {"instances": [INSTANCE, OTHER]}
    meta = call(server, "GET", "/v1/models/column/metadata")
    dims = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert [d["size"] for d in dims["weight"]["tensor_shape"]["dim"]] == ["-1", "1"]
    tfs = call(server, "POST", "/v1/models/column:predict", body)
    assert tfs["predictions"] == [[pytest.approx(w0, rel=1e-5)], [pytest.approx(w1, rel=1e-5)]]
    cols = call(server, "POST", "/v1/models/column:predict", {"inputs": {"is_male": ["True"],
                "mother_age": [26.0], "plurality": ["Single(1)"], "gestation_weeks": [39]}})  # fmt: skip
    assert cols["outputs"] == [[pytest.approx(w0, rel=1e-5)]]
    expected = [
        {"weight": [pytest.approx(w0, rel=1e-5)]},
        {"weight": [pytest.approx(w1, rel=1e-5)]},
    ]
    ml = call(server, "POST", "/v1/projects/p/models/column:predict", body)
    assert ml["predictions"] == expected
    vertex = call(server, "POST", "/v1/projects/p/locations/l/endpoints/column:predict", body)
    assert vertex["predictions"] == expected
    keyed = call(server, "POST", "/v1/models/column:predict",
                 {"signature_name": "keyed", "instances": [{**INSTANCE, "key": "k"}]})  # fmt: skip
    assert keyed["predictions"] == [{"key": "k", "weight": [pytest.approx(w0, rel=1e-5)]}]


def test_scalar_output_is_a_scalar_per_instance_on_every_route(server):
    w0 = toy_weight(INSTANCE)
    body = {"instances": [INSTANCE]}
    assert call(server, "POST", "/v1/models/single:predict", body)["predictions"] == [
        pytest.approx(w0, rel=1e-5)
    ]
    for path in ("/v1/projects/p/models/single:predict",
                 "/v1/projects/p/locations/l/endpoints/single:predict"):  # fmt: skip
        assert call(server, "POST", path, body)["predictions"] == [
            {"weight": pytest.approx(w0, rel=1e-5)}
        ]


def test_course_client_code_reads_weight_zero(server):
    """The course's front-end: ``response['predictions'][0]['weight'][0]``, unchanged."""
    api = google_api("ml", "v1", server.url)
    response = (
        api.projects()
        .predict(body={"instances": [INSTANCE]}, name="projects/p/models/column")
        .execute()
    )
    assert response["predictions"][0]["weight"][0] == pytest.approx(toy_weight(INSTANCE), rel=1e-5)


# -- OpenAPI --------------------------------------------------------------------------------------
def test_openapi_describes_every_route(server):
    doc = call(server, "GET", "/openapi.json")
    assert doc["openapi"].startswith("3.")
    described = {(p, m.upper()) for p, item in doc["paths"].items() for m in item}
    app = create_app(Registry())
    routed = {
        (re.sub(r"{(\w+):\w+}", r"{\1}", r.path), m)
        for r in app.routes
        for m in r.methods - {"HEAD"}
    }
    assert described == routed and len(routed) == 17
    for path, item in doc["paths"].items():
        for op in item.values():
            assert {p["name"] for p in op["parameters"]} == set(re.findall(r"{(\w+)}", path))
            assert {"200", "400", "404"} <= set(op["responses"])
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})


def test_openapi_request_schemas_are_the_validators(server, openapi):
    """The published request schema accepts what the server accepts and rejects what it
    rejects: both come from one pydantic model."""
    schema = openapi["paths"]["/v1/models/{model}:predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": openapi["components"]})
    good, bad = {"instances": [INSTANCE]}, {"instances": [INSTANCE] * 101}
    assert validator.is_valid(good) and not validator.is_valid(bad)
    assert requests.post(server.url + PREDICT, json=good, timeout=30).status_code == 200
    assert requests.post(server.url + PREDICT, json=bad, timeout=30).status_code == 400
    for body in ({"instancs": [INSTANCE]}, {"instances": []}, {"instances": {"a": 1}}):
        assert not validator.is_valid(body)
        assert requests.post(server.url + PREDICT, json=body, timeout=30).status_code == 400


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
        ({"instances": {"is_male": "True"}}, ["instances", "valid array", "dict"]),
        ({"instances": ["True"]}, ["instance 0", "object"]),
        ({}, ["instances", "inputs", "exactly one"]),
        ({"instances": [INSTANCE], "inputs": {}}, ["exactly one"]),
        ({"instancs": [INSTANCE]}, ["unknown field", "instancs", "instances"]),
        ({"instances": [INSTANCE], "signature_name": 3}, ["signature_name", "string"]),
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
    out = call(server, "POST", PREDICT, raw=b" " * (MAX_BODY + 1), status=413)
    assert "100000" in out["error"] and "limit" in out["error"]


def test_oversized_body_413_reaches_urllib(server):
    """urllib sends its whole body (and Connection: close) before reading: the server drains
    the rest of the body, so urllib reads the 413 instead of a connection reset. Bodies larger
    than loopback's socket buffers (8 and 30 MB) are what fail without the drain (a server
    started with max_drain_bytes=0 answers these with "broken pipe" / "connection reset")."""
    for size in (MAX_BODY + 1, 8_000_000, 30_000_000):
        req = urllib.request.Request(server.url + PREDICT, data=b" " * size,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 413
        assert "exceeds the limit of 100000 bytes" in json.loads(err.value.read())["error"]
    google = urllib.request.Request(server.url + "/v1/projects/p/models/toy:predict",
                                    data=b" " * (MAX_BODY * 3), method="POST")  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(google, timeout=30)
    assert err.value.code == 413 and json.loads(err.value.read())["error"]["code"] == 413


def test_oversized_streamed_body_413_reaches_requests(server):
    """No Content-Length (chunked): refused once the streamed bytes pass the limit."""

    def chunks():
        for _ in range(30):
            yield b" " * 10_000

    r = requests.post(server.url + PREDICT, data=chunks(), timeout=30)
    assert r.status_code == 413 and "limit of 100000 bytes" in r.json()["error"]
    assert r.headers["connection"] == "close"
    assert requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30).ok


def test_body_past_the_drain_bound_is_cut_without_reading_it_all(server):
    """A client still sending far past the bound is cut off: the server reads no more."""
    total, sent = 4 * MAX_DRAIN, 0
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {total}\r\n\r\n".encode())  # fmt: skip
        chunk = b" " * 65536
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
    assert sent < MAX_DRAIN // 2, sent  # only socket buffers' worth went out


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


def test_the_load_generator_runs_from_inside_a_running_event_loop():
    """A Jupyter cell runs inside an event loop, where asyncio.run cannot nest."""
    from prodml.serving.load import run_load
    from support import JSONHandler, LoopbackServer

    class Echo(JSONHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

        def do_POST(self):
            _, body = self.read_json()
            self.send_json(200, {"predictions": body["instances"]})

    async def cell():  # what a notebook cell is: code running while a loop runs
        return run_load(server.url, "/p", {"instances": [1]}, requests=40, concurrency=4)

    with LoopbackServer(Echo) as server:
        result = asyncio.run(cell())
    assert result.requests == 40 and result.statuses[200] == 40 and result.failures == 0
