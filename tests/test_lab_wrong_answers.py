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
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from lab_cells import REPO, answer, cell, check, outcome, run

SERVING = ("babyweight_serving", "01_babyweight_serving.ipynb")


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
    "the trainer's export (two signatures)": """
        from prodml.babyweight import model as babyweight_model

        babyweight_model.save(model, export_path)
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


# -- the skew lab ----------------------------------------------------------------------------

SKEW = ("training_serving_skew", "03_training_serving_skew.ipynb")


def load_preprocess(folder: Path, text: str):
    """The lab's serving_preprocess.py with ``text`` as its source, as a fresh module."""
    path = folder / f"serving_preprocess_{uuid.uuid4().hex[:8]}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def preprocess_source() -> str:
    return (REPO / "solutions" / SKEW[0] / "serving_preprocess.py").read_text()


@pytest.fixture(scope="module")
def skew_data(babyweight_export, tmp_path_factory):
    """Sections 1-3 of the skew lab in small: requests (a quarter without a gender), the
    training path's features and predictions, the re-implementation's features."""
    import pandas as pd
    import tensorflow as tf
    from prodml import babyweight, pipelines
    from scipy.spatial import distance

    rng = np.random.default_rng(3)
    n = 300
    messages = [
        json.dumps(
            {
                "key": f"r{i:05d}",
                "is_male": None if rng.random() < 0.25 else bool(rng.random() < 0.5),
                "mother_age": int(rng.integers(15, 46)),
                "plurality": int(rng.choice([1, 1, 1, 1, 2, 3])),
                "gestation_weeks": int(rng.integers(30, 43)),
            }
        )  # fmt: skip
        for i in range(n)
    ]
    folder = tmp_path_factory.mktemp("skew")
    preprocess = load_preprocess(folder, preprocess_source())
    namespace = {"pd": pd, "np": np, "tf": tf, "json": json, "os": os, "shutil": shutil, "Path": Path,
                 "distance": distance, "babyweight": babyweight, "pipelines": pipelines,
                 "FEATURES": list(babyweight.FEATURES), "messages": messages, "WORK": folder,
                 "serving_preprocess": preprocess, "EXPORT_PATH": babyweight_export}  # fmt: skip
    namespace["signature"] = tf.saved_model.load(babyweight_export).signatures["serving_default"]
    predict = cell("solutions", SKEW, "predict-fn").split("\n", 1)[1]  # its own signature: above
    run(predict, namespace)
    requests_df = pd.DataFrame([json.loads(m) for m in messages])
    namespace["batch_features"] = babyweight.preprocess(requests_df)[["key", *babyweight.FEATURES]]
    namespace["batch_pred"] = namespace["predict"](namespace["batch_features"])
    namespace["skewed_features"] = pd.DataFrame(
        [preprocess.reimplemented_features(m) for m in messages]
    )
    run(cell("solutions", SKEW, "distances"), namespace)
    return namespace


# TODO 1: the skew check. The wrong answers differ from the solution in one expression each.
_SKEW_CHECK = """
    rows = {{}}
    for name in training.columns:
        if pd.api.types.is_numeric_dtype(training[name]):
            both = pd.concat([training[name], serving[name]])
            edges = {edges}
            metric, value = "jensen_shannon", {js}
        else:
            metric, value = "l_infinity", {linf}
        rows[name] = {{"metric": metric, "value": value, "threshold": THRESHOLDS[metric]}}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["skewed"] = table["value"] > table["threshold"]
    return table
"""
UNIT = "np.arange(np.floor(both.min()), np.floor(both.max()) + 2) - 0.5"
JS = "js_divergence(training[name], serving[name], edges)"
LINF = "l_infinity(training[name], serving[name])"
SKEW_CHECK_ANSWERS = {
    "solution": None,
    "the library's validate (ten buckets over the training range)": """
        from prodml import validation

        found = validation.validate(serving, validation.infer_schema(training), baseline=training,
                                    thresholds=THRESHOLDS)
        table = found.distances.set_index("feature")[["metric", "value", "threshold"]]
        table["skewed"] = table["value"] > table["threshold"]
        return table
    """,
    "notebook 03's library distances (TFDV's ten-bucket histograms)": _SKEW_CHECK.format(
        edges="None",
        js="validation.jensen_shannon(distances.histogram(training[name].to_numpy()), "
        "distances.histogram(serving[name].to_numpy()))",
        linf="validation.l_infinity(training[name].astype(str).value_counts().to_dict(), "
        "serving[name].astype(str).value_counts().to_dict())",
    ),
    "buckets spanning the training sample only": _SKEW_CHECK.format(
        edges="np.arange(training[name].min(), training[name].max() + 2) - 0.5", js=JS, linf=LINF
    ),
    "ten buckets, as TFDV's default histogram": _SKEW_CHECK.format(
        edges="np.linspace(both.min(), both.max(), 11)", js=JS, linf=LINF
    ),
    "SciPy's Jensen-Shannon distance, not squared": _SKEW_CHECK.format(
        edges=UNIT,
        linf=LINF,
        js="float(distance.jensenshannon(np.histogram(training[name], "
        "bins=edges)[0], np.histogram(serving[name], bins=edges)[0], base=2))",
    ),
    "L-infinity over the values both samples hold (NaN dropped)": _SKEW_CHECK.format(
        edges=UNIT,
        js=JS,
        linf="float((training[name].astype(str).value_counts(normalize=True) - "
        "serving[name].astype(str).value_counts(normalize=True)).dropna().abs().max())",
    ),
}


@pytest.mark.parametrize("wrong", list(SKEW_CHECK_ANSWERS), ids=list(SKEW_CHECK_ANSWERS))
def test_skew_todo_1_skew_check(wrong, skew_data):
    from prodml import validation
    from prodml.validation import distances

    namespace = dict(skew_data, validation=validation, distances=distances)
    source = cell("solutions", SKEW, "skew-check")
    if SKEW_CHECK_ANSWERS[wrong]:
        source = answer(source, 1, SKEW_CHECK_ANSWERS[wrong])
    error = outcome(
        [("skew-check", source), ("test-skew-check", check(SKEW, "test-skew-check"))], namespace
    )
    if SKEW_CHECK_ANSWERS[wrong] is None:
        assert error is None, error
    else:
        fails_its_check(error)


# TODO 2: the shared transform, in serving_preprocess.py.
TRANSFORM_ANSWERS = {
    "solution": None,
    "a correct copy of the trainer's mapping": """
        names = {1: "Single(1)", 2: "Twins(2)", 3: "Triplets(3)", 4: "Quadruplets(4)", 5: "Quintuplets(5)"}
        out = dict(record)
        known = record.get("is_male") is not None
        out["is_male"] = {True: "True", False: "False"}.get(record.get("is_male"), "Unknown")
        count = int(record["plurality"])
        out["plurality"] = names[count] if known or count == 1 else "Multiple(2+)"
        out["mother_age"] = float(record["mother_age"])
        out["gestation_weeks"] = float(record["gestation_weeks"])
        return out
    """,
    "a table built from the trainer's vocabulary when the module loads": """
        out = dict(record)
        out["is_male"] = babyweight.gender(record.get("is_male"))
        count = int(record["plurality"])
        known = out["is_male"] != "Unknown"
        out["plurality"] = NAMES[count] if known or count == 1 else "Multiple(2+)"
        out["mother_age"] = float(record["mother_age"])
        out["gestation_weeks"] = float(record["gestation_weeks"])
        return out
    """,
    "the serving team's re-implementation": """
        return reimplemented_features(record)
    """,
}


@pytest.mark.parametrize("wrong", list(TRANSFORM_ANSWERS), ids=list(TRANSFORM_ANSWERS))
def test_skew_todo_2_shared_transform(wrong, skew_data, tmp_path):
    text = preprocess_source()
    if TRANSFORM_ANSWERS[wrong]:
        text = answer(text, 2, TRANSFORM_ANSWERS[wrong])
        text += "\nNAMES = dict(enumerate(babyweight.PLURALITIES[:5], start=1))\n"
    namespace = dict(skew_data, serving_preprocess=load_preprocess(tmp_path, text))
    run(cell("solutions", SKEW, "skew-check"), namespace)  # the solution's: section 6 uses it
    error = outcome([("fixed", cell("solutions", SKEW, "fixed")),
                     ("test-fixed", check(SKEW, "test-fixed"))], namespace)  # fmt: skip
    if TRANSFORM_ANSWERS[wrong] is None:
        assert error is None, error
    else:
        fails_its_check(error)


# TODO 3: the windowing, watched on section 7's hand-made stream.
_WINDOW = """
    return beam.WindowInto(
        window.FixedWindows(WINDOW_SECONDS),
        trigger=trigger.AfterWatermark({early}late=trigger.AfterCount({late})),
        accumulation_mode=trigger.AccumulationMode.{mode},
        {lateness}
    )
"""
EARLY = "early=trigger.AfterCount(EARLY_EVERY), "
LATENESS = "allowed_lateness=Duration(seconds=ALLOWED_LATENESS),"
WINDOWING_ANSWERS = {
    "solution": (None, True),
    "the library's fixed_windows (the course's: no early panes)": (
        "return pipelines.fixed_windows(WINDOW_SECONDS, ALLOWED_LATENESS)", True),
    "early panes every 2 requests": (_WINDOW.format(
        early="early=trigger.AfterCount(2), ", late=1, mode="DISCARDING", lateness=LATENESS), True),
    "accumulating panes (requests predicted again)": (_WINDOW.format(
        early=EARLY, late=1, mode="ACCUMULATING", lateness=LATENESS), True),
    "no allowed lateness": (_WINDOW.format(early=EARLY, late=1, mode="DISCARDING", lateness=""), True),
    "20 s of allowed lateness": (_WINDOW.format(
        early=EARLY, late=1, mode="DISCARDING",
        lateness="allowed_lateness=Duration(seconds=2 * ALLOWED_LATENESS),"), True),
    "Beam's default trigger": ("""
        return beam.WindowInto(window.FixedWindows(WINDOW_SECONDS),
                               allowed_lateness=Duration(seconds=ALLOWED_LATENESS))
    """, True),
    "a late pane per 2 late requests": (_WINDOW.format(
        early=EARLY, late=2, mode="DISCARDING", lateness=LATENESS), False),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("wrong", list(WINDOWING_ANSWERS), ids=list(WINDOWING_ANSWERS))
def test_skew_todo_3_windowing(wrong, skew_data):
    import apache_beam as beam
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms import window

    code, reaches_check = WINDOWING_ANSWERS[wrong]
    namespace = dict(skew_data, beam=beam, window=window, TestStream=TestStream)
    source = cell("solutions", SKEW, "windowing")
    if code:
        source = answer(source, 3, code)
    sources = [("windowing", source), ("write-pane", cell("solutions", SKEW, "write-pane")),
               ("demo-stream", cell("solutions", SKEW, "demo-stream")),
               ("demo-run", cell("solutions", SKEW, "demo-run")),
               ("test-windowing", check(SKEW, "test-windowing"))]  # fmt: skip
    error = outcome(sources, namespace)
    if code is None:
        assert error is None, error
    else:
        fails_its_check(error, in_check=reaches_check)


# TODO 4: the pipeline's credentials.
CREDENTIALS_ANSWERS = {
    "solution": (None, True),
    "the (credentials, project) pair ADC returns": (
        """
        if urlparse(url).hostname in LOCAL_HOSTS:
            return AnonymousCredentials()
        return google.auth.default(scopes=CLOUD_SCOPES)
    """,
        True,
    ),
    "no credentials anywhere": ("return AnonymousCredentials()", True),
    "ADC for every host, this machine too": (
        "return google.auth.default(scopes=CLOUD_SCOPES)[0]",
        False,
    ),
}


def credential_names() -> dict:
    """What the skew lab's setup and service cells define for its credentials cell."""
    from urllib.parse import urlparse

    import google.auth
    from google.auth.credentials import AnonymousCredentials

    return {"google": google, "AnonymousCredentials": AnonymousCredentials, "urlparse": urlparse,
            "LOCAL_HOSTS": {"127.0.0.1", "localhost", "::1"},
            "CLOUD_SCOPES": ["https://www.googleapis.com/auth/cloud-platform"]}  # fmt: skip


@pytest.mark.parametrize("wrong", list(CREDENTIALS_ANSWERS), ids=list(CREDENTIALS_ANSWERS))
def test_skew_todo_4_credentials(wrong, skew_data, service, monkeypatch):
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    code, reaches_check = CREDENTIALS_ANSWERS[wrong]
    namespace = dict(skew_data, **credential_names(), service=service[0])
    source = cell("solutions", SKEW, "credentials")
    if code:
        source = answer(source, 4, code)
    sources = [("credentials", source), ("stand-in-adc", cell("solutions", SKEW, "stand-in-adc")),
               ("test-credentials", check(SKEW, "test-credentials"))]  # fmt: skip
    error = outcome(sources, namespace)
    if code is None:
        assert error is None, error
    else:
        fails_its_check(error, in_check=reaches_check)


# TODO 5: the handler of the pipeline over the prediction service, checked on its request log.
HANDLER_ANSWERS = {
    "solution": None,
    "TF Serving's API": """
        service_handler = pipelines.HTTPModelHandler(
            service.url, MODEL_NAME, version=VERSION, credentials=credentials_for(service.url)
        )
    """,
    "the version left out": """
        service_handler = pipelines.HTTPModelHandler(
            service.url, MODEL_NAME, project=PROJECT_ID, api="mlengine",
            credentials=credentials_for(service.url),
        )
    """,
}


@pytest.mark.slow
@pytest.mark.parametrize("wrong", list(HANDLER_ANSWERS), ids=list(HANDLER_ANSWERS))
def test_skew_todo_5_handler(wrong, skew_data, service):
    import apache_beam as beam
    from apache_beam.transforms import window
    from prodml import config, pipelines, warehouse

    server, log = service
    namespace = dict(skew_data, **credential_names(), beam=beam, window=window, service=server,
                     REQUEST_LOG=log,
                     PROJECT_ID=config.settings().project, MODEL_NAME="babyweight", VERSION="1",
                     SPEED=60.0, TICK_SECONDS=5.0)  # fmt: skip
    namespace["stream_requests"] = namespace["messages"][:60]
    namespace["request_times"] = pipelines.event_times(60, every=0.1)
    namespace["handler"] = pipelines.SavedModelHandler(namespace["EXPORT_PATH"])
    warehouse.client().create_dataset("babyweight", exists_ok=True)  # the pipeline cell's
    keys = [json.loads(m)["key"] for m in namespace["stream_requests"]]
    namespace["batch_rows"] = namespace["pd"].DataFrame(
        {"key": keys, "predicted_weight_pounds": namespace["batch_pred"][:60]}
    )
    for given in ("windowing", "run-pipeline", "credentials"):
        run(cell("solutions", SKEW, given).replace("print(", "(lambda *a: None)("), namespace)
    source = cell("solutions", SKEW, "service-handler")
    if HANDLER_ANSWERS[wrong]:
        source = answer(source, 5, HANDLER_ANSWERS[wrong])
    sources = [("service-handler", source), ("service-run", cell("solutions", SKEW, "service-run")),
               ("test-service-pipeline", check(SKEW, "test-service-pipeline"))]  # fmt: skip
    namespace["messages"] = namespace["stream_requests"]
    error = outcome(sources, namespace)
    if HANDLER_ANSWERS[wrong] is None:
        assert error is None, error
    else:
        fails_its_check(error)
