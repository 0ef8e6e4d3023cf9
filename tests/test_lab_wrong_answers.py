"""Plausible wrong answers to every lab TODO fail the lab's visible check.

Each case writes one wrong answer in place of a TODO's solution region (in the notebook cell or
the lab's file), runs the cells that lead to the check, then the check as the learner sees it
(the ``labs/`` copy: hidden tests removed), and expects it to fail; the same cells with the
solution pass, so a check that always fails would be caught too. Cells run in one namespace
here rather than in a kernel: one real service and one model serve every case, so the whole
file costs about as much as one lab run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from prodml.workbook import notebooks

REPO = Path(__file__).resolve().parents[1]
SERVING = ("babyweight_serving", "01_babyweight_serving.ipynb")


# -- reading and editing the lab ---------------------------------------------------------------


def cell(kind: str, lab: tuple[str, str], cell_id: str) -> str:
    """A code cell's source from ``solutions`` or ``labs`` (the learner's copy), magics dropped."""
    nb = notebooks.read(REPO / kind / lab[0] / lab[1])
    found = next(c for c in nb.cells if c.get("id") == cell_id)
    return "\n".join(line for line in found.source.splitlines() if not line.startswith("%"))


def check(lab: tuple[str, str], cell_id: str) -> str:
    """The visible check: the test cell as the learner's copy has it."""
    source = cell("labs", lab, cell_id)
    assert "HIDDEN" not in source, source
    return source


def answer(text: str, todo: int, wrong: str) -> str:
    """``text`` (a cell or a file) with TODO ``todo``'s solution region replaced by ``wrong``."""
    lines = text.splitlines()
    start = next(
        i for i, line in enumerate(lines) if re.match(rf"\s*(#|<!--)\s*TODO {todo}:", line)
    )
    begin = next(i for i in range(start, len(lines)) if "BEGIN SOLUTION" in lines[i])
    end = next(i for i in range(begin, len(lines)) if "END SOLUTION" in lines[i])
    indent = re.match(r"\s*", lines[begin]).group(0)
    body = textwrap.indent(textwrap.dedent(wrong).strip("\n"), indent).splitlines()
    return "\n".join([*lines[:begin], *body, *lines[end + 1 :]]) + "\n"


def run(source: str, namespace: dict, name: str = "cell") -> None:
    exec(compile(source, name, "exec"), namespace)


def outcome(sources: list[tuple[str, str]], namespace: dict) -> BaseException | None:
    """Run (name, source) pairs in order; the first exception, or None when all pass."""
    try:
        for name, source in sources:
            run(source, namespace, name)
    except Exception as error:  # noqa: BLE001 - the outcome is what the test inspects
        return error
    return None


def fails_its_check(error: BaseException | None, *, in_check: bool = True) -> None:
    assert error is not None, "the wrong answer passed the visible check"
    if in_check:  # it reaches the check, whose assertion names the problem
        assert isinstance(error, AssertionError), f"{type(error).__name__}: {error}"


# -- the serving lab -------------------------------------------------------------------------


def load_app(folder: Path, main: str, form: str | None = None):
    """The lab's front-end with ``main`` as its main.py (and ``form`` as its template)."""
    app = folder / f"application-{uuid.uuid4().hex[:8]}"
    shutil.copytree(REPO / "solutions" / SERVING[0] / "application", app)
    (app / "main.py").write_text(main)
    if form is not None:
        (app / "templates" / "form.html").write_text(form)
    name = f"frontend_{app.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, app / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, app


def solution_main() -> str:
    return (REPO / "solutions" / SERVING[0] / "application" / "main.py").read_text()


@pytest.fixture(scope="module")
def service(babyweight_export, tmp_path_factory):
    """The smoke-trained babyweight model as version 1 of a served base folder, with a request log."""
    import prodml.serving

    base = tmp_path_factory.mktemp("serving") / "export"
    shutil.copytree(babyweight_export, base / "1")
    log = base.parent / "requests.log"
    with prodml.serving.start({"babyweight": str(base)}, access_log=str(log)) as server:
        yield server, log


@pytest.fixture
def lab_namespace(service, tmp_path):
    """What the lab's setup and earlier sections define, for the cells under test."""
    from prodml import config

    server, log = service
    work = tmp_path / "work"
    work.mkdir()
    namespace = {
        "json": json, "os": os, "re": re, "shutil": shutil, "socket": socket,
        "subprocess": subprocess, "sys": sys, "time": time, "Path": Path, "np": np,
        "requests": requests, "atexit": __import__("atexit"), "settings": config.settings(),
        "WORK": work, "server": server, "REQUEST_LOG": log, "SEED": 42,
        "COURSE_INSTANCE": {"is_male": "True", "mother_age": 26.0, "plurality": "Single(1)",
                            "gestation_weeks": 39},
    }  # fmt: skip
    run(cell("solutions", SERVING, "request-log").replace("print(REQUEST_LOG.read_text())", ""),
        namespace)  # fmt: skip
    answer = requests.post(f"{server.url}/v1/models/babyweight:predict",
                           json={"instances": [namespace["COURSE_INSTANCE"]]}, timeout=30)  # fmt: skip
    namespace["rest_weight"] = float(answer.json()["predictions"][0][0])
    yield namespace
    process = namespace.get("frontend_process")
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


# TODO 1: the export. The check reads the export back (section 3's cell) and compares its
# signature with the model's inputs.
EXPORT_ANSWERS = {
    "solution": None,
    "float64 numbers (what JSON numbers are)": """
        specs = [tf.TensorSpec([None], tf.string, name="is_male"),
                 tf.TensorSpec([None], tf.float64, name="mother_age"),
                 tf.TensorSpec([None], tf.string, name="plurality"),
                 tf.TensorSpec([None], tf.float64, name="gestation_weeks")]
        cast = lambda a, b, c, d: serving_fn(a, tf.cast(b, tf.float32), c, tf.cast(d, tf.float32))
        tf.saved_model.save(model, str(export_path), signatures={
            "serving_default": tf.function(cast, input_signature=specs)})
    """,
    "one instance per request (shape [1])": """
        serve = tf.function(serving_fn, input_signature=[
            tf.TensorSpec([1], tf.string, name="is_male"),
            tf.TensorSpec([1], tf.float32, name="mother_age"),
            tf.TensorSpec([1], tf.string, name="plurality"),
            tf.TensorSpec([1], tf.float32, name="gestation_weeks")])
        tf.saved_model.save(model, str(export_path), signatures={"serving_default": serve})
    """,
    "no signature given (Keras decides)": """
        tf.saved_model.save(model, str(export_path))
    """,
    "the library's export (two signatures)": """
        from prodml.babyweight import model as babyweight_model

        tf.saved_model.save(model, str(export_path), signatures={
            "serving_default": babyweight_model.serving_fn(model),
            "keyed": babyweight_model.keyed_fn(model)})
    """,
}


@pytest.mark.slow
@pytest.mark.parametrize("wrong", list(EXPORT_ANSWERS), ids=list(EXPORT_ANSWERS))
def test_serving_todo_1_export(wrong, tmp_path):
    import tensorflow as tf
    from prodml.babyweight import model as babyweight_model

    namespace = {"tf": tf, "np": np, "shutil": shutil, "WORK": tmp_path,
                 "model": babyweight_model.build(seed=1)}  # fmt: skip
    export = cell("solutions", SERVING, "670e5806")
    if EXPORT_ANSWERS[wrong]:
        export = answer(export, 1, EXPORT_ANSWERS[wrong])
    sources = [("export", export), ("load", cell("solutions", SERVING, "c400bf0e")),
               ("test-signature", check(SERVING, "test-signature"))]  # fmt: skip
    error = outcome(sources, namespace)
    if EXPORT_ANSWERS[wrong] is None:
        assert error is None, error
    else:
        fails_its_check(error)


# TODOs 2-5: main.py's functions, called by section 6 and its three checks. Each case: the
# TODO, the wrong body, the check it must fail, and whether it gets that far (a client that
# cannot reach the service fails in section 6's own cells, where the learner sees the error).
MAIN_ANSWERS = {
    "solution": (None, None, "all", True),
    "TODO 2: the (credentials, project) pair ADC returns": (
        2,
        """
        if urlparse(endpoint).hostname in LOCAL_HOSTS:
            return AnonymousCredentials()
        return google.auth.default(scopes=CLOUD_SCOPES)
    """,
        "test-credentials",
        True,
    ),
    "TODO 2: ADC without the Cloud scope": (
        2,
        """
        if urlparse(endpoint).hostname in LOCAL_HOSTS:
            return AnonymousCredentials()
        return google.auth.default()[0]
    """,
        "test-credentials",
        True,
    ),
    "TODO 2: no credentials anywhere": (
        2,
        """
        return AnonymousCredentials()
    """,
        "test-credentials",
        True,
    ),
    "TODO 2: ADC for every host, this machine too": (
        2,
        """
        return google.auth.default(scopes=CLOUD_SCOPES)[0]
    """,
        "test-credentials",
        False,
    ),
    "TODO 3: Vertex AI's preview version (v1beta1)": (
        3,
        """
        version = "v1" if api == "ml" else "v1beta1"
        return discovery.build(api, version, credentials=credentials,
                               client_options={"api_endpoint": endpoint})
    """,
        "test-api-client",
        False,
    ),
    "TODO 4: the version left out": (
        4,
        """
        return f"projects/{project}/models/{model}"
    """,
        "test-api-client",
        True,
    ),
    "TODO 5: no retries": (
        5,
        """
        body = {"instances": list(instances)}
        if "/endpoints/" in name:
            return api.projects().locations().endpoints().predict(endpoint=name, body=body).execute()
        return api.projects().predict(name=name, body=body).execute()
    """,
        "test-retries",
        True,
    ),
    "TODO 5: one retry": (
        5,
        """
        body = {"instances": list(instances)}
        if "/endpoints/" in name:
            call = api.projects().locations().endpoints().predict(endpoint=name, body=body)
        else:
            call = api.projects().predict(name=name, body=body)
        return call.execute(num_retries=1)
    """,
        "test-retries",
        True,
    ),
    "TODO 5: ML Engine's call for a Vertex endpoint too": (
        5,
        """
        return api.projects().predict(name=name, body={"instances": list(instances)}).execute(
            num_retries=2
        )
    """,
        "test-api-client",
        False,
    ),
}
SECTION_6 = ("90c1ea79", "b136462e", "pinned", "stand-in-adc")


@pytest.mark.slow
@pytest.mark.parametrize("wrong", list(MAIN_ANSWERS), ids=list(MAIN_ANSWERS))
def test_serving_todos_2_to_5_client(wrong, lab_namespace, tmp_path):
    todo, code, target, reaches_check = MAIN_ANSWERS[wrong]
    main = solution_main() if todo is None else answer(solution_main(), todo, code)
    lab_namespace["frontend"], _ = load_app(tmp_path, main)
    checks = ("test-credentials", "test-api-client", "test-retries")
    section = [(c, cell("solutions", SERVING, c)) for c in SECTION_6]
    if target == "all":
        assert outcome([*section, *[(c, check(SERVING, c)) for c in checks]], lab_namespace) is None
        return
    section_error = outcome(section, lab_namespace)
    if not reaches_check:  # the wrong client fails in the section's own cells
        fails_its_check(section_error, in_check=False)
        return
    assert section_error is None, section_error
    fails_its_check(outcome([(target, check(SERVING, target))], lab_namespace))
    for other in set(checks) - {target}:  # one wrong answer, one failing check
        assert outcome([(other, check(SERVING, other))], lab_namespace) is None, other


# TODOs 4, 6 and 7 in the running app: section 8 starts it (pinned to version 1) and posts
# the form; test-frontend reads the answers and the service's request log, test-form drives
# the page in headless Chromium.
FRONTEND_ANSWERS = {
    "solution": (None, None, None),
    "TODO 6: a constant 39 weeks": (
        6,
        """
        features["gestation_weeks"] = 39.0
    """,
        "test-frontend",
    ),
    "TODO 6: the text as a number (38+4 is a server error)": (
        6,
        """
        features["gestation_weeks"] = float(data["gestation_weeks"])
    """,
        "test-frontend",
    ),
    "TODO 6: weeks and days as a fraction (38+4 is 38.57)": (
        6,
        """
        weeks, _, days = str(data["gestation_weeks"]).strip().partition("+")
        features["gestation_weeks"] = float(weeks) + float(days or 0) / 7
    """,
        "test-frontend",
    ),
    "TODO 4: the pinned version ignored": (
        4,
        """
        return f"projects/{project}/models/{model}"
    """,
        "test-frontend",
    ),
    "TODO 7: the plurality choices left as they were": (7, "", "test-form"),
    "TODO 7: labels sent as values": (
        7,
        """
        <option value="Twins">Twins</option>
        <option value="Triplets">Triplets</option>
    """,
        "test-form",
    ),
}
SECTION_8 = ("831241b2", "post-form", "497b0396", "fill-form")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("wrong", list(FRONTEND_ANSWERS), ids=list(FRONTEND_ANSWERS))
def test_serving_todos_4_6_7_frontend(wrong, lab_namespace, service, tmp_path):
    server, _ = service
    todo, code, target = FRONTEND_ANSWERS[wrong]
    main, form = solution_main(), None
    if todo == 7:
        template = REPO / "solutions" / SERVING[0] / "application" / "templates" / "form.html"
        form = answer(template.read_text(), 7, code)
    elif todo is not None:
        main = answer(main, todo, code)
    lab_namespace["frontend"], lab_namespace["APP_DIR"] = load_app(tmp_path, main, form)
    # section 7 left version 2 deployed as a 10 % canary: the pinned page must not see it
    endpoint = (
        f"projects/{lab_namespace['settings'].project}/locations/us-central1/endpoints/babyweight"
    )
    status = requests.get(f"{server.url}/v1/{endpoint}", timeout=10).json()
    assert [m["id"] for m in status["deployedModels"]] == ["1"], status
    section = [(c, cell("solutions", SERVING, c)) for c in SECTION_8]
    assert outcome(section, lab_namespace) is None
    checks = ("test-frontend", "test-form")
    if target is None:
        assert outcome([(c, check(SERVING, c)) for c in checks], lab_namespace) is None
        return
    fails_its_check(outcome([(target, check(SERVING, target))], lab_namespace))
    for other in set(checks) - {target}:
        assert outcome([(other, check(SERVING, other))], lab_namespace) is None, other


# TODO 8: the bandit. The check's first assertions try the learner's function on its own;
# the regret figures come from section 10's loop, which these cases do not run: they are given
# values the solution reaches (the full solution run in test_labs.py checks them for real).
BANDIT_ANSWERS = {
    "solution": None,
    "Beta parameters reversed (favours the loser)": """
        draws = {v: rng.beta(losses[v] + 1, wins[v] + 1) for v in wins}
        return max(draws, key=draws.get)
    """,
    "a random version": """
        return list(wins)[int(rng.integers(len(wins)))]
    """,
    "always version 2": """
        return "2"
    """,
    "greedy: the best mean so far, no exploration": """
        means = {v: (wins[v] + 1) / (wins[v] + losses[v] + 2) for v in wins}
        return max(means, key=means.get)
    """,
}


@pytest.mark.parametrize("wrong", list(BANDIT_ANSWERS), ids=list(BANDIT_ANSWERS))
def test_serving_todo_8_bandit(wrong):
    source = cell("solutions", SERVING, "2f3c9a1e")
    if BANDIT_ANSWERS[wrong]:
        source = answer(source, 8, BANDIT_ANSWERS[wrong])
    namespace = {"np": np, "BANDIT_REQUESTS": 300, "bandit": [None] * 300, "canary": [None] * 300,
                 "bandit_regret": np.array([3.4]), "canary_regret": np.array([54.0]),
                 "bandit_best_share": 0.94, "canary_best_share": 0.10}  # fmt: skip
    error = outcome(
        [("thompson", source), ("test-bandit", check(SERVING, "test-bandit"))], namespace
    )
    if BANDIT_ANSWERS[wrong] is None:
        assert error is None, error
    else:
        fails_its_check(error)
