"""prodml serve: several versions, version names, traffic split, version labels,
deploy/undeploy, and a version swap under load without a single failed request.

The module's server starts with versions 1 and 2 of the toy model and version 1 named ``dnn``;
a test that changes its state puts it back in ``finally``, and tests that deploy or undeploy
start a server of their own, so the tests pass in any order.
"""

from __future__ import annotations

import threading

import pytest
import requests
from googleapiclient.errors import HttpError
from prodml import serving
from prodml.serving.load import run_load
from support import INSTANCE, export_toy_model, google_api, toy_weight

pytestmark = pytest.mark.timeout(300)

ENDPOINT = "/v1/projects/p/locations/us-central1/endpoints/toy"
PREDICT = "/v1/models/toy:predict"
START = {"trafficSplit": {"2": 100}, "versionLabels": {"dnn": "1"}}


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy_versions")
    for version in (1, 2):
        export_toy_model(base, version=version, scale=float(version))
    extra = tmp_path_factory.mktemp("toy_extra")
    export_toy_model(extra, version=3, scale=3.0)
    return base, extra / "3"


@pytest.fixture(scope="module")
def server(export_base):
    with serving.start({"toy": export_base[0]}, version_name=["dnn=1"]) as s:
        yield s


@pytest.fixture
def own_server(export_base):
    """A server of this test's own, for tests that deploy and undeploy."""
    with serving.start({"toy": export_base[0]}, version_name=["toy/dnn=1"]) as s:
        yield s


def patch(server, body, status=200):
    r = requests.patch(server.url + ENDPOINT, json=body, timeout=30)
    assert r.status_code == status, r.text
    return r.json()


def weight_of(response: requests.Response) -> float:
    first = response.json()["predictions"][0]
    return first["weight"] if isinstance(first, dict) else first


def test_default_is_highest_version(server):
    r = requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30)
    assert r.headers["x-model-version"] == "2" and r.json()["model_version"] == "2"
    assert requests.get(server.url + ENDPOINT, timeout=30).json()["trafficSplit"] == {"2": 100}


def test_set_default_version(server):
    try:
        assert patch(server, {"trafficSplit": {"1": 100}})["trafficSplit"] == {"1": 100}
        r = requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30)
        assert r.json()["model_version"] == "1"
        assert weight_of(r) == pytest.approx(toy_weight(INSTANCE, 1))
    finally:
        patch(server, START)


# -- version names ------------------------------------------------------------------------------
def test_named_version_through_the_ml_v1_discovery_client(server):
    api = google_api("ml", "v1", server.url)
    body = {"instances": [INSTANCE]}
    named = api.projects().predict(name="projects/p/models/toy/versions/dnn", body=body).execute()
    assert named["predictions"][0]["weight"] == pytest.approx(toy_weight(INSTANCE, 1))
    default = api.projects().predict(name="projects/p/models/toy", body=body).execute()
    assert default["predictions"][0]["weight"] == pytest.approx(toy_weight(INSTANCE, 2))
    with pytest.raises(HttpError) as err:
        api.projects().predict(name="projects/p/models/toy/versions/ml_on_gcp", body=body).execute()
    assert err.value.resp.status == 404
    message = str(err.value)
    assert "'ml_on_gcp'" in message and "'dnn'" in message and "[1, 2]" in message


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1/projects/p/models/toy/versions/dnn:predict", "1"),
        ("/v1/projects/p/models/toy/versions/v2:predict", "2"),
        ("/v1/projects/p/models/toy/versions/2:predict", "2"),
        ("/v1/models/toy/labels/dnn:predict", "1"),
    ],
)
def test_named_version_through_requests(server, path, version):
    r = requests.post(server.url + path, json={"instances": [INSTANCE]}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-model-version"] == version
    assert weight_of(r) == pytest.approx(toy_weight(INSTANCE, int(version)))


def test_named_version_status_metadata_and_endpoint(server):
    status = requests.get(server.url + "/v1/models/toy/labels/dnn", timeout=30).json()
    assert status["model_version_status"][0]["version"] == "1"
    meta = requests.get(server.url + "/v1/models/toy/labels/dnn/metadata", timeout=30).json()
    assert meta["model_spec"]["version"] == "1"
    endpoint = requests.get(server.url + ENDPOINT, timeout=30).json()
    assert endpoint["versionLabels"] == {"dnn": "1"}
    assert {d["id"]: d["versionAliases"] for d in endpoint["deployedModels"]} == {
        "1": ["dnn"],
        "2": [],
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/projects/p/models/toy/versions/wide:predict"),
        ("POST", "/v1/models/toy/labels/wide:predict"),
        ("GET", "/v1/models/toy/labels/wide"),
    ],
)
def test_unknown_version_name_is_404_naming_the_known_ones(server, method, path):
    r = requests.request(method, server.url + path, json={"instances": [INSTANCE]}, timeout=30)
    assert r.status_code == 404
    error = r.json()["error"]
    text = error["message"] if isinstance(error, dict) else error
    assert "'wide'" in text and "'dnn'" in text, text


def test_vertex_traffic_split_by_version_name(server):
    try:
        out = patch(server, {"trafficSplit": {"dnn": 100}})
        assert out["trafficSplit"] == {"1": 100}
        r = requests.post(server.url + ENDPOINT + ":predict", json={"instances": [INSTANCE]},
                          timeout=30)  # fmt: skip
        assert r.json()["deployedModelId"] == "1"
    finally:
        patch(server, START)


# -- traffic split ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [PREDICT, "/v1/projects/p/models/toy:predict", ENDPOINT + ":predict"],
)
def test_traffic_split_proportions(server, path):
    patch(server, {"trafficSplit": {"1": 90, "2": 10}})
    try:
        result = run_load(server.url, path, {"instances": [INSTANCE]}, requests=1000, concurrency=8)
    finally:
        patch(server, START)
    assert result.failures == 0, result.errors[:3]
    # smooth weighted round robin: every 100 consecutive requests give exactly 90 and 10
    assert result.versions == {"1": 900, "2": 100}


def test_vertex_response_names_the_version(server):
    patch(server, {"trafficSplit": {"1": 50, "2": 50}})
    try:
        seen = {}
        for _ in range(4):
            out = requests.post(
                server.url + ENDPOINT + ":predict", json={"instances": [INSTANCE]}, timeout=30
            ).json()
            seen[out["deployedModelId"]] = out["predictions"][0]["weight"]
    finally:
        patch(server, START)
    assert set(seen) == {"1", "2"}
    assert seen["1"] == pytest.approx(toy_weight(INSTANCE, 1))
    assert seen["2"] == pytest.approx(toy_weight(INSTANCE, 2))


BAD_SPLITS = [
    ({"1": 50, "2": 40}, ["sum to 100", "90"]),
    ({"1": 50, "7": 50}, ["'7'", "not loaded"]),
    ({"1": 150, "2": -50}, ["trafficSplit.1", "less than or equal to 100", "trafficSplit.2"]),
    ({"1": "50", "2": 50}, ["trafficSplit.1", "integer"]),
    ({"one": 100}, ["'one'", "not loaded"]),
    ({}, ["trafficSplit", "empty"]),
    ([1, 2], ["trafficSplit", "object", "list"]),
]


@pytest.mark.parametrize("route", ["PATCH", ":deployModel", ":undeployModel"])
@pytest.mark.parametrize(("split", "words"), BAD_SPLITS)
def test_bad_traffic_split_is_400_on_every_route(server, export_base, route, split, words):
    """One schema for trafficSplit: PATCH, deployModel and undeployModel refuse the same
    values with the same words (undeployModel once answered [1, 2] with a 500)."""
    if route == "PATCH":
        r = requests.patch(server.url + ENDPOINT, json={"trafficSplit": split}, timeout=30)
    elif route == ":deployModel":
        body = {"deployedModel": {"model": str(export_base[1])}, "trafficSplit": split}
        r = requests.post(server.url + ENDPOINT + route, json=body, timeout=30)
    else:
        body = {"deployedModelId": "1", "trafficSplit": split}
        r = requests.post(server.url + ENDPOINT + route, json=body, timeout=30)
    assert r.status_code == 400, r.text
    for word in words:
        assert word in r.json()["error"]["message"], r.json()
    endpoint = requests.get(server.url + ENDPOINT, timeout=30).json()
    assert endpoint["trafficSplit"] == {"2": 100}
    assert [d["id"] for d in endpoint["deployedModels"]] == ["1", "2"]


def test_version_labels(server):
    try:
        out = patch(server, {"versionLabels": {"stable": "1", "canary": 2}})
        assert out["versionLabels"] == {"canary": "2", "stable": "1"}
        r = requests.post(
            server.url + "/v1/models/toy/labels/stable:predict",
            json={"instances": [INSTANCE]},
            timeout=30,
        )
        assert r.json()["model_version"] == "1"
        meta = requests.get(server.url + "/v1/models/toy/labels/canary/metadata", timeout=30)
        assert meta.json()["model_spec"]["version"] == "2"
        bad = patch(server, {"versionLabels": {"next": 5}}, status=400)
        assert "5" in bad["error"]["message"] and "not loaded" in bad["error"]["message"]
        numeric = patch(server, {"versionLabels": {"v2": 1}}, status=400)
        assert "'v2' cannot be a version name" in numeric["error"]["message"]
    finally:
        patch(server, START)


def test_deploy_and_undeploy(own_server, export_base):
    _, v3 = export_base
    server = own_server
    url = server.url + ENDPOINT
    bad = requests.post(
        url + ":deployModel", json={"deployedModel": {"model": "/no/such/dir"}}, timeout=30
    )
    assert bad.status_code == 400 and "/no/such/dir" in bad.json()["error"]["message"]
    dup = requests.post(
        url + ":deployModel", json={"deployedModel": {"model": str(v3), "id": "2"}}, timeout=30
    )
    assert dup.status_code == 400 and "already deployed" in dup.json()["error"]["message"]
    taken = requests.post(url + ":deployModel", timeout=30,
                          json={"deployedModel": {"model": str(v3), "versionAliases": ["dnn"]}})  # fmt: skip
    assert (
        taken.status_code == 400 and "already names version 1" in taken.json()["error"]["message"]
    )

    op = requests.post(
        url + ":deployModel",
        json={
            "deployedModel": {"model": str(v3), "versionAliases": ["wide"]},
            "trafficSplit": {"2": 0, "wide": 100},
        },
        timeout=120,
    )
    assert op.status_code == 200, op.text
    assert op.json()["done"] is True and op.json()["response"]["deployedModel"]["id"] == "3"
    assert op.json()["response"]["trafficSplit"] == {"3": 100}
    out = requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30).json()
    assert out["model_version"] == "3"
    assert out["predictions"][0] == pytest.approx(toy_weight(INSTANCE, 3))
    api = google_api("ml", "v1", server.url)
    wide = api.projects().predict(
        name="projects/p/models/toy/versions/wide", body={"instances": [INSTANCE]}
    )
    assert wide.execute()["predictions"][0]["weight"] == pytest.approx(toy_weight(INSTANCE, 3))

    busy = requests.post(url + ":undeployModel", json={"deployedModelId": "2"}, timeout=30)
    assert busy.status_code == 200, busy.text  # 0 % of the traffic: it may go
    named = requests.post(url + ":undeployModel", json={"deployedModelId": "wide"}, timeout=30)
    assert named.status_code == 400 and "100%" in named.json()["error"]["message"]
    ghost = requests.post(url + ":undeployModel", json={"deployedModelId": "8"}, timeout=30)
    assert ghost.status_code == 404 and "8" in ghost.json()["error"]["message"]
    labelled = requests.post(url + ":undeployModel", json={"deployedModelId": "dnn"}, timeout=30)
    assert labelled.status_code == 400 and "['dnn']" in labelled.json()["error"]["message"]
    patch(server, {"versionLabels": {"wide": "3"}})
    gone = requests.post(url + ":undeployModel", json={"deployedModelId": "1"}, timeout=30)
    assert gone.status_code == 200, gone.text
    status = requests.get(server.url + "/v1/models/toy", timeout=30).json()
    assert [s["version"] for s in status["model_version_status"]] == ["3"]
    r = requests.post(
        server.url + "/v1/models/toy/versions/1:predict", json={"instances": [INSTANCE]}, timeout=30
    )
    assert r.status_code == 404 and "version" in r.json()["error"]


def test_version_swap_under_load_fails_no_request(export_base, tmp_path):
    """Deploy a new version (loaded while serving), canary it, switch all traffic to it and
    unload the old one, all while 32 connections keep predicting."""
    base, _ = export_base
    new = export_toy_model(tmp_path, version=5, scale=5.0)
    progress = {"done": 0, "swapped_at": None}
    started = threading.Event()
    admin: list = []

    def on_progress(i):
        progress["done"] += 1
        if progress["done"] == 300:
            started.set()

    with serving.start({"toy": base}) as s:
        url = s.url + ENDPOINT

        def swap():
            started.wait(120)
            admin.append(
                requests.post(
                    url + ":deployModel",
                    json={"deployedModel": {"model": str(new)}, "trafficSplit": {"2": 90, "5": 10}},
                    timeout=120,
                )
            )
            admin.append(requests.patch(url, json={"trafficSplit": {"5": 100}}, timeout=30))
            admin.append(
                requests.post(url + ":undeployModel", json={"deployedModelId": "2"}, timeout=30)
            )
            admin.append(
                requests.post(url + ":undeployModel", json={"deployedModelId": "1"}, timeout=30)
            )
            progress["swapped_at"] = progress["done"]

        def stop_when():
            return (
                progress["swapped_at"] is not None
                and progress["done"] >= progress["swapped_at"] + 500
            )

        thread = threading.Thread(target=swap)
        thread.start()
        result = run_load(
            s.url,
            PREDICT,
            {"instances": [INSTANCE]},
            requests=200_000,
            concurrency=32,
            on_progress=on_progress,
            stop_when=stop_when,
        )
        thread.join(60)
        status = requests.get(s.url + "/v1/models/toy", timeout=30).json()

    assert [r.status_code for r in admin] == [200, 200, 200, 200], [r.text for r in admin]
    assert progress["swapped_at"] is not None and result.requests < 200_000  # swapped during load
    assert result.failures == 0, result.errors[:3]
    assert result.versions["2"] >= 300 and result.versions["5"] >= 500, result.versions
    assert set(result.versions) == {"2", "5"}
    assert [v["version"] for v in status["model_version_status"]] == ["5"]
