"""prodml serve: several versions, traffic split, version labels, deploy/undeploy, and a version
swap under load without a single failed request."""

from __future__ import annotations

import threading

import pytest
import requests
from prodml import serving
from prodml.serving.load import run_load
from prodml.serving.testing import INSTANCE, export_toy_model, toy_weight

pytestmark = pytest.mark.timeout(300)

ENDPOINT = "/v1/projects/p/locations/us-central1/endpoints/toy"
PREDICT = "/v1/models/toy:predict"


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
    with serving.start({"toy": export_base[0]}) as s:
        yield s


def patch(server, body, status=200):
    r = requests.patch(server.url + ENDPOINT, json=body, timeout=30)
    assert r.status_code == status, r.text
    return r.json()


def test_default_is_highest_version(server):
    r = requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30)
    assert r.headers["x-model-version"] == "2" and r.json()["model_version"] == "2"
    assert requests.get(server.url + ENDPOINT, timeout=30).json()["trafficSplit"] == {"2": 100}


def test_set_default_version(server):
    assert patch(server, {"trafficSplit": {"1": 100}})["trafficSplit"] == {"1": 100}
    out = requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30).json()
    assert out["model_version"] == "1" and out["predictions"][0] == pytest.approx(
        toy_weight(INSTANCE, 1)
    )
    patch(server, {"trafficSplit": {"2": 100}})


@pytest.mark.parametrize(
    "path",
    [PREDICT, "/v1/projects/p/models/toy:predict", ENDPOINT + ":predict"],
)
def test_traffic_split_proportions(server, path):
    patch(server, {"trafficSplit": {"1": 90, "2": 10}})
    try:
        result = run_load(server.url, path, {"instances": [INSTANCE]}, requests=1000, concurrency=8)
    finally:
        patch(server, {"trafficSplit": {"2": 100}})
    assert result.failures == 0, result.errors[:3]
    # binomial(1000, 0.1): sd 9.5; 4 sd either side (the split is counter-based, so exact here)
    assert 62 <= result.versions["2"] <= 138, result.versions
    assert result.versions["1"] + result.versions["2"] == 1000


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
        patch(server, {"trafficSplit": {"2": 100}})
    assert set(seen) == {"1", "2"}
    assert seen["1"] == pytest.approx(toy_weight(INSTANCE, 1)) and seen["2"] == pytest.approx(
        toy_weight(INSTANCE, 2)
    )


@pytest.mark.parametrize(
    ("split", "words"),
    [
        ({"1": 50, "2": 40}, ["sum to 100", "90"]),
        ({"1": 50, "7": 50}, ["'7'", "not loaded"]),
        ({"1": 150, "2": -50}, ["non-negative"]),
        ({"1": "50", "2": 50}, ["integer"]),
        ({"one": 100}, ["'one'", "version number"]),
        ({}, ["non-empty"]),
        ([1, 2], ["trafficSplit"]),
    ],
)
def test_bad_traffic_split_is_400(server, split, words):
    out = patch(server, {"trafficSplit": split}, status=400)
    for word in words:
        assert word in out["error"]["message"], out
    assert requests.get(server.url + ENDPOINT, timeout=30).json()["trafficSplit"] == {"2": 100}


def test_version_labels(server):
    out = patch(server, {"versionLabels": {"stable": "1", "canary": 2}})
    assert out["versionLabels"] == {"canary": "2", "stable": "1"}
    r = requests.post(
        server.url + "/v1/models/toy/labels/stable:predict",
        json={"instances": [INSTANCE]},
        timeout=30,
    )
    assert r.json()["model_version"] == "1"
    meta = requests.get(server.url + "/v1/models/toy/labels/canary/metadata", timeout=30).json()
    assert meta["model_spec"]["version"] == "2"
    bad = patch(server, {"versionLabels": {"next": 5}}, status=400)
    assert "5" in bad["error"]["message"] and "not loaded" in bad["error"]["message"]


def test_deploy_and_undeploy(server, export_base):
    _, v3 = export_base
    url = server.url + ENDPOINT
    bad = requests.post(
        url + ":deployModel", json={"deployedModel": {"model": "/no/such/dir"}}, timeout=30
    )
    assert bad.status_code == 400 and "/no/such/dir" in bad.json()["error"]["message"]
    dup = requests.post(
        url + ":deployModel", json={"deployedModel": {"model": str(v3), "id": "2"}}, timeout=30
    )
    assert dup.status_code == 400 and "already deployed" in dup.json()["error"]["message"]
    badsplit = requests.post(
        url + ":deployModel",
        json={"deployedModel": {"model": str(v3)}, "trafficSplit": {"3": 50}},
        timeout=30,
    )
    assert badsplit.status_code == 400 and "sum to 100" in badsplit.json()["error"]["message"]

    op = requests.post(
        url + ":deployModel",
        json={"deployedModel": {"model": str(v3)}, "trafficSplit": {"2": 0, "3": 100}},
        timeout=120,
    )
    assert op.status_code == 200, op.text
    assert op.json()["done"] is True and op.json()["response"]["deployedModel"]["id"] == "3"
    out = requests.post(server.url + PREDICT, json={"instances": [INSTANCE]}, timeout=30).json()
    assert out["model_version"] == "3" and out["predictions"][0] == pytest.approx(
        toy_weight(INSTANCE, 3)
    )

    busy = requests.post(url + ":undeployModel", json={"deployedModelId": "3"}, timeout=30)
    assert busy.status_code == 400 and "100%" in busy.json()["error"]["message"]
    ghost = requests.post(url + ":undeployModel", json={"deployedModelId": "8"}, timeout=30)
    assert ghost.status_code == 404 and "8" in ghost.json()["error"]["message"]
    patch(server, {"versionLabels": {}})
    gone = requests.post(url + ":undeployModel", json={"deployedModelId": "1"}, timeout=30)
    assert gone.status_code == 200, gone.text
    status = requests.get(server.url + "/v1/models/toy", timeout=30).json()
    assert [s["version"] for s in status["model_version_status"]] == ["3", "2"]
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
