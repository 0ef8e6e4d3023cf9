"""The babyweight lab's Flask front-end, against a real local prediction service.

A smoke-trained babyweight SavedModel is served by ``prodml.serving``; a small recording proxy
between the app and the service keeps every request the app makes, so the tests assert the
exact instance the form turns into (gender and plurality mapping) and the exact resource name.
The browser test drives Debian's headless Chromium with Playwright through the real form.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from support import JSONHandler, LoopbackServer

REPO = Path(__file__).resolve().parents[1]
SOLUTION_APP = REPO / "solutions" / "babyweight_serving" / "application"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RESULT = re.compile(r"(\d+\.\d\d) lbs\.")
COURSE_FORM = {"mother_age": "26", "gestation_weeks": "39", "plurality": "1", "baby_gender": "male"}
COURSE_INSTANCE = {
    "is_male": "True",
    "mother_age": 26.0,
    "plurality": "Single(1)",
    "gestation_weeks": 39.0,
}


def load_frontend(app_dir: Path = SOLUTION_APP):
    """The application's main.py as a module (it is a script folder, not a package)."""
    name = f"babyweight_frontend_{app_dir.parent.parent.name}"
    spec = importlib.util.spec_from_file_location(name, app_dir / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Flask finds templates/ through the module's file
    spec.loader.exec_module(module)
    return module


class Recorder(LoopbackServer):
    """A proxy that forwards to the prediction service and keeps (method, path, JSON body);
    the path without its query string (the Google API client adds ``?alt=json``)."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str, object]] = []
        recorder = self

        class Handler(JSONHandler):
            def _forward(self):
                raw, body = self.read_json()
                recorder.requests.append((self.command, urlsplit(self.path).path, body))
                answer = requests.request(
                    self.command,
                    recorder.upstream + self.path,
                    data=raw,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                self.send_json(answer.status_code, answer.content)

            do_GET = do_POST = _forward

        super().__init__(Handler)


@pytest.fixture(scope="module")
def prediction_service(babyweight_export):
    """The service, serving the session's smoke-trained export (tests/conftest.py)."""
    import prodml.serving

    with prodml.serving.start({"babyweight": babyweight_export}, port=0) as handle:
        yield handle


@pytest.fixture
def recorder(prediction_service):
    proxy = Recorder(prediction_service.url)
    yield proxy
    proxy.close()


@pytest.fixture
def client(recorder, monkeypatch):
    for var in ("VERTEX_ENDPOINT", "MODEL_VERSION", "MODEL_NAME", "PREDICTION_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "local-project")
    app = load_frontend().create_app(endpoint=recorder.url)
    return app.test_client()


def rest_weight(service, instance: dict) -> float:
    """The service's own answer for one instance (TF Serving REST), to compare the app with."""
    answer = requests.post(
        f"{service.url}/v1/models/babyweight:predict", json={"instances": [instance]}, timeout=30
    )
    answer.raise_for_status()
    first = answer.json()["predictions"][0]
    weight = first["weight"] if isinstance(first, dict) else first
    # a model whose output has shape [None, 1] (the course's) answers [w] per instance
    return float(weight[0] if isinstance(weight, list) else weight)


class _Options(HTMLParser):
    """The <option> values of each <select>, and the form's input names."""

    def __init__(self):
        super().__init__()
        self.selects: dict[str, list[str]] = {}
        self.inputs: list[str] = []
        self._select = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "select":
            self._select = attrs["name"]
            self.selects[self._select] = []
        elif tag == "option" and self._select:
            self.selects[self._select].append(attrs["value"])
        elif tag == "input":
            self.inputs.append(attrs["name"])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def parse_form(html: str) -> _Options:
    parser = _Options()
    parser.feed(html)
    return parser


# -- the form ---------------------------------------------------------------------------------


def test_form_offers_the_course_fields(client):
    page = client.get("/")
    assert page.status_code == 200
    form = parse_form(page.get_data(as_text=True))
    assert form.inputs == ["mother_age", "gestation_weeks"]
    assert form.selects == {
        "plurality": ["1", "2", "3"],
        "baby_gender": ["male", "female", "unknown"],
    }


MAPPINGS = [
    ("male", "1", "True", "Single(1)"),
    ("female", "1", "False", "Single(1)"),
    ("male", "2", "True", "Twins(2)"),
    ("female", "3", "False", "Triplets(3)"),
    ("unknown", "1", "Unknown", "Single(1)"),
    ("unknown", "2", "Unknown", "Multiple(2+)"),
    ("unknown", "3", "Unknown", "Multiple(2+)"),
]


@pytest.mark.parametrize(("gender", "plurality", "is_male", "plurality_feature"), MAPPINGS)
def test_form_becomes_the_course_instance(
    client, recorder, prediction_service, gender, plurality, is_male, plurality_feature
):
    form = {
        "mother_age": "31",
        "gestation_weeks": "38",
        "plurality": plurality,
        "baby_gender": gender,
    }
    page = client.post("/", data=form)
    assert page.status_code == 200, page.get_data(as_text=True)

    instance = {
        "is_male": is_male,
        "mother_age": 31.0,
        "plurality": plurality_feature,
        "gestation_weeks": 38.0,
    }
    predicts = [r for r in recorder.requests if r[0] == "POST"]
    assert predicts == [
        ("POST", "/v1/projects/local-project/models/babyweight:predict", {"instances": [instance]})
    ]
    shown = RESULT.search(page.get_data(as_text=True))
    assert shown is not None
    assert shown.group(0) == f"{rest_weight(prediction_service, instance):.2f} lbs."


def test_json_api_answers_in_pounds(client, prediction_service):
    answer = client.post("/api/predict", json=COURSE_FORM)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["features"] == COURSE_INSTANCE
    assert body["result"] == f"{rest_weight(prediction_service, COURSE_INSTANCE):.2f} lbs."
    assert 4.0 <= float(RESULT.fullmatch(body["result"]).group(1)) <= 10.0


def test_model_version_is_part_of_the_resource_name(recorder, prediction_service, monkeypatch):
    monkeypatch.setenv("MODEL_VERSION", "1")
    versions = requests.get(f"{prediction_service.url}/v1/models/babyweight", timeout=10).json()
    version = versions["model_version_status"][0]["version"]
    monkeypatch.setenv("MODEL_VERSION", version)
    client = load_frontend().create_app(endpoint=recorder.url, project="my-project").test_client()
    answer = client.post("/api/predict", json=COURSE_FORM)
    assert answer.status_code == 200, answer.get_json()
    assert (
        recorder.requests[-1][1]
        == f"/v1/projects/my-project/models/babyweight/versions/{version}:predict"
    )


def test_vertex_endpoint_uses_the_aiplatform_api(recorder, prediction_service, monkeypatch):
    monkeypatch.setenv("VERTEX_ENDPOINT", "babyweight")
    monkeypatch.setenv("GOOGLE_CLOUD_REGION", "us-central1")
    client = (
        load_frontend().create_app(endpoint=recorder.url, project="local-project").test_client()
    )
    answer = client.post("/api/predict", json=COURSE_FORM)
    assert answer.status_code == 200, answer.get_json()
    assert recorder.requests[-1][1] == (
        "/v1/projects/local-project/locations/us-central1/endpoints/babyweight:predict"
    )
    assert (
        answer.get_json()["result"]
        == f"{rest_weight(prediction_service, COURSE_INSTANCE):.2f} lbs."
    )


# -- bad input: a 400 that names the problem, and nothing sent to the model -------------------

BAD_FORMS = [
    ({**COURSE_FORM, "mother_age": "twenty"}, "mother_age must be a number, got 'twenty'"),
    (
        {k: v for k, v in COURSE_FORM.items() if k != "gestation_weeks"},
        "missing form field(s): gestation_weeks",
    ),
    ({**COURSE_FORM, "gestation_weeks": ""}, "missing form field(s): gestation_weeks"),
    ({**COURSE_FORM, "gestation_weeks": "90"}, "gestation_weeks must be between 17 and 47, got 90"),
    (
        {**COURSE_FORM, "baby_gender": "boy"},
        "baby_gender must be one of male, female, unknown, got 'boy'",
    ),
    ({**COURSE_FORM, "plurality": "4"}, "plurality must be 1, 2 or 3, got '4'"),
]


@pytest.mark.parametrize(("form", "message"), BAD_FORMS)
def test_bad_form_is_a_400_naming_the_field(client, recorder, form, message):
    page = client.post("/", data=form)
    assert page.status_code == 400
    assert message.replace("'", "&#39;") in page.get_data(as_text=True)
    answer = client.post("/api/predict", json=form)
    assert answer.status_code == 400
    assert answer.get_json() == {"error": message}
    assert recorder.requests == []


def test_api_body_must_be_a_json_object(client, recorder):
    answer = client.post("/api/predict", data="mother_age=26", content_type="text/plain")
    assert answer.status_code == 400
    assert "JSON object" in answer.get_json()["error"]
    assert recorder.requests == []


def test_unknown_model_is_reported_not_a_500(recorder):
    client = load_frontend().create_app(endpoint=recorder.url, model="nosuchmodel").test_client()
    answer = client.post("/api/predict", json=COURSE_FORM)
    assert answer.status_code == 502
    assert "404" in answer.get_json()["error"]


def test_service_down_is_reported_not_a_500():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = load_frontend().create_app(endpoint=f"http://127.0.0.1:{port}").test_client()
    answer = client.post("/api/predict", json=COURSE_FORM)
    assert answer.status_code == 502
    assert answer.get_json()["error"].startswith("the prediction service failed")


# -- the student's copy ----------------------------------------------------------------------


def test_pristine_lab_form_still_renders():
    """The lab's form (what ``prodml release`` writes to labs/, which ``release --check`` keeps
    in step) has the plurality TODO removed and still renders as a usable page."""
    import jinja2
    from prodml.workbook.release import release_html

    source = SOLUTION_APP / "templates" / "form.html"
    template = release_html(source.read_text(), str(source))
    assert "BEGIN SOLUTION" not in template and "TODO 7" in template
    html = jinja2.Environment(autoescape=True).from_string(template).render()
    form = parse_form(html)
    assert form.selects == {"plurality": ["1"], "baby_gender": ["male", "female", "unknown"]}
    assert form.inputs == ["mother_age", "gestation_weeks"]


def test_a_todo_left_in_the_app_is_a_501_naming_it_on_the_page_and_in_the_log(
    tmp_path, recorder, caplog
):
    """The lab's main.py (its TODOs stubs, as `prodml release` writes it) answers 501 "TODO n
    not done", not a 502 blaming the prediction service."""
    import shutil

    from prodml.workbook.release import release_python

    app_dir = tmp_path / "lab" / "babyweight_serving" / "application"
    shutil.copytree(SOLUTION_APP / "templates", app_dir / "templates")
    source = (SOLUTION_APP / "main.py").read_text()
    (app_dir / "main.py").write_text(release_python(source, "main.py"))
    client = load_frontend(app_dir).create_app(endpoint=recorder.url).test_client()
    with caplog.at_level("ERROR", logger="babyweight.frontend"):
        answer = client.post("/api/predict", json=COURSE_FORM)
        page = client.post("/", data=COURSE_FORM)
    assert answer.status_code == 501, answer.get_data(as_text=True)
    message = answer.get_json()["error"]
    assert message.startswith("TODO 6 not done: TODO 6: "), message
    assert page.status_code == 501 and "TODO 6 not done" in page.get_data(as_text=True)
    assert [r.getMessage() for r in caplog.records if r.name == "babyweight.frontend"] == [
        message,
        message,
    ]
    assert recorder.requests == []  # the form never got as far as the service


# -- the browser ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def frontend_url(prediction_service, tmp_path):
    port = _free_port()
    log = (tmp_path / "frontend.log").open("w")
    env = {
        **__import__("os").environ,
        "PREDICTION_ENDPOINT": prediction_service.url,
        "GOOGLE_CLOUD_PROJECT": "local-project",
    }
    process = subprocess.Popen(
        [sys.executable, str(SOLUTION_APP / "main.py"), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(
                    f"the front-end exited: {(tmp_path / 'frontend.log').read_text()}"
                )
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the front-end did not answer within 30 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.browser
def test_browser_fills_the_form_and_reads_a_weight(frontend_url, prediction_service):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(frontend_url)
            page.fill("#mother_age", "26")
            page.fill("#gestation_weeks", "39")
            page.select_option("#plurality", "1")
            page.select_option("#baby_gender", "male")
            with page.expect_navigation():
                page.click("#predict")
            expect(page.locator("#result")).to_have_text(RESULT)
            text = page.inner_text("#result")
            # the page keeps what was chosen
            assert page.input_value("#mother_age") == "26"
            assert page.input_value("#baby_gender") == "male"

            page.select_option("#plurality", "2")
            page.select_option("#baby_gender", "unknown")
            with page.expect_navigation():
                page.click("#predict")
            expect(page.locator("#result")).to_have_text(RESULT)
            twins = page.inner_text("#result")
        finally:
            browser.close()

    weight = float(RESULT.fullmatch(text).group(1))
    assert 4.0 <= weight <= 10.0
    assert text == f"{rest_weight(prediction_service, COURSE_INSTANCE):.2f} lbs."
    multiple = {**COURSE_INSTANCE, "is_male": "Unknown", "plurality": "Multiple(2+)"}
    assert twins == f"{rest_weight(prediction_service, multiple):.2f} lbs."
