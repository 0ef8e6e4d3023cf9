"""Horizontal scaling: prodml serve replicas behind Caddy on 127.0.0.1 (prodml.serving.balancer)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
import requests
from prodml.serving import balancer
from prodml.serving.load import run_load
from support import INSTANCE, export_toy_model

PREDICT = "/v1/models/babyweight:predict"


def test_config_is_one_loopback_server_proxying_to_every_replica():
    cfg = balancer.config(["http://127.0.0.1:9001", "http://127.0.0.1:9002/"], 8080, "round_robin")
    server = cfg["apps"]["http"]["servers"]["balancer"]
    assert server["listen"] == ["127.0.0.1:8080"]
    proxy = server["routes"][0]["handle"][0]
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:9001"}, {"dial": "127.0.0.1:9002"}]
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
    assert cfg["admin"]["disabled"] is True  # no admin API listening anywhere


@pytest.mark.parametrize(
    ("upstreams", "policy", "message"),
    [
        ([], "least_conn", "at least one upstream"),
        (["http://127.0.0.1:9001"], "fastest", "unknown policy 'fastest'"),
        (["127.0.0.1:9001"], "least_conn", "is not http://HOST:PORT"),
        (["http://127.0.0.1"], "least_conn", "is not http://HOST:PORT"),
    ],
)
def test_bad_settings_are_refused_by_name(upstreams, policy, message):
    with pytest.raises(ValueError, match=message):
        balancer.config(upstreams, 8080, policy)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy") / "babyweight"
    export_toy_model(base, column=True)
    started = balancer.start_replicas({"babyweight": base}, 3)
    yield {"base": base, "servers": started}
    for server in started:
        server.stop()


@pytest.mark.slow
def test_the_replica_sweep_returns_a_table_of_three_replica_counts(replicas, run_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(run_dir / "home"))  # Caddy must write nothing outside the run
    servers, rows = replicas["servers"], []
    for k in (1, 2, 3):
        with balancer.start([r.url for r in servers[:k]]) as lb:
            session = requests.Session()
            seen = Counter(
                session.post(lb.url + PREDICT, json={"instances": [INSTANCE]}).headers["X-Upstream"]
                for _ in range(30)
            )
            result = run_load(
                lb.url, PREDICT, {"instances": [INSTANCE]}, requests=300, concurrency=8
            )
        rows.append({"replicas": k, "served by": len(seen), "requests/s": result.rate,
                     "p99 ms": 1000 * result.percentile(99), "failures": result.failures})  # fmt: skip
    table = pd.DataFrame(rows).set_index("replicas")
    assert list(table.index) == [1, 2, 3]
    assert (table["served by"] == table.index).all(), table  # every replica got traffic
    assert (table["failures"] == 0).all() and (table["requests/s"] > 0).all(), table
    assert (table["p99 ms"] > 0).all()
    written = sorted(p.suffix for p in (run_dir / "balancer").glob("caddy-*"))
    assert written == [".json"] * 3 + [".log"] * 3, written  # a config and a log per balancer
    assert not (run_dir / "home").exists(), "caddy wrote under HOME"


@pytest.mark.slow
def test_the_balancer_routes_around_a_replica_that_is_down(replicas):
    first = replicas["servers"][0]
    (extra,) = balancer.start_replicas({"babyweight": replicas["base"]}, 1)
    with balancer.start([first.url, extra.url]) as lb:
        extra.stop()
        session = requests.Session()
        answers = [
            session.post(lb.url + PREDICT, json={"instances": [INSTANCE]}) for _ in range(20)
        ]
    assert [a.status_code for a in answers] == [200] * 20
    assert {a.headers["X-Upstream"] for a in answers} == {first.url.removeprefix("http://")}


def test_caddy_failing_to_start_names_the_log(run_dir):
    with pytest.raises(RuntimeError, match=r"caddy did not answer .*; log .*caddy-.*\.log"):
        balancer.start(["http://127.0.0.1:9"], ready_path="/nothing", timeout=3)
