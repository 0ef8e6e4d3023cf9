"""``prodml serve --access-log FILE``: one line per answered request, naming the method, the
path the client called (API, project, model, version) and the status; off by default."""

from __future__ import annotations

import re

import prodml.serving
import pytest
import requests

LINE = re.compile(
    r'^127\.0\.0\.1:\d+ - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.1" (?P<status>\d{3})$'
)
INSTANCE = {"is_male": "True", "mother_age": 26.0, "plurality": "Single(1)", "gestation_weeks": 39}


@pytest.mark.slow
def test_access_log_names_each_request_path_and_status(babyweight_export, tmp_path):
    log = tmp_path / "requests.log"
    with prodml.serving.start({"babyweight": babyweight_export}, access_log=str(log)) as server:
        version = requests.get(f"{server.url}/v1/models/babyweight", timeout=10).json()[
            "model_version_status"
        ][0]["version"]
        body = {"instances": [INSTANCE]}
        ml = f"{server.url}/v1/projects/p1/models/babyweight/versions/{version}:predict"
        assert requests.post(ml, json=body, timeout=30).status_code == 200
        missing = f"{server.url}/v1/projects/p1/models/nosuchmodel:predict?alt=json"
        assert requests.post(missing, json=body, timeout=30).status_code == 404
        lines = log.read_text().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    logged = [(m["method"], m["path"], m["status"]) for m in parsed]
    # start() itself polls the model's status once before it returns
    assert logged == [
        ("GET", "/v1/models/babyweight", "200"),
        ("GET", "/v1/models/babyweight", "200"),
        ("POST", f"/v1/projects/p1/models/babyweight/versions/{version}:predict", "200"),
        ("POST", "/v1/projects/p1/models/nosuchmodel:predict?alt=json", "404"),
    ]


@pytest.mark.slow
def test_no_access_log_unless_asked(babyweight_export, run_dir):
    with prodml.serving.start({"babyweight": babyweight_export}) as server:
        assert requests.post(
            f"{server.url}/v1/models/babyweight:predict", json={"instances": [INSTANCE]}, timeout=30
        ).ok
        log = server.log_path.read_text()
    assert ":predict" not in log and "HTTP/1.1" not in log, log
