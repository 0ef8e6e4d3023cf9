"""The babyweight front-end: a form in, a call to the online prediction service, a weight out.

The Flask app the course deploys to App Engine. It calls the deployed model with the Google API
client, through whichever prediction API its configuration names; only the endpoint changes
between this machine and Google Cloud:

* ``PREDICTION_ENDPOINT=http://127.0.0.1:8501`` (the workbook's ``prodml serve``);
* ``PREDICTION_ENDPOINT=https://ml.googleapis.com`` (the default): ML Engine, the ``ml v1`` API,
  shut down on 2025-01-31. On Google Cloud today set ``VERTEX_ENDPOINT`` (an endpoint id) and
  the app calls Vertex AI (``aiplatform v1``) at ``https://REGION-aiplatform.googleapis.com``.

Which model: ``GOOGLE_CLOUD_PROJECT`` (the project), ``MODEL_NAME`` (default ``babyweight``),
``MODEL_VERSION`` (a version to pin the page to; default: the model's default version, which
follows the model's traffic split) and, for Vertex AI, ``GOOGLE_CLOUD_REGION``.

The lab's notebook calls :func:`credentials_for`, :func:`build_api`, :func:`model_name` and
:func:`predict` itself before it starts the app. Run the app with ``python main.py --port 8080``
or ``flask --app main run``; it binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from urllib.parse import urlparse

import google.auth
from flask import Flask, jsonify, render_template, request
from google.auth.credentials import AnonymousCredentials
from googleapiclient import discovery
from googleapiclient.errors import HttpError

GENDERS = {"male": "True", "female": "False", "unknown": "Unknown"}
PLURALITIES = {1: "Single(1)", 2: "Twins(2)", 3: "Triplets(3)"}
FIELDS = ("baby_gender", "mother_age", "plurality", "gestation_weeks")
#: what the natality data holds; the model never saw values outside these
RANGES = {"mother_age": (10, 60), "gestation_weeks": (17, 47)}
ML_ENGINE = "https://ml.googleapis.com"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CLOUD_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
APIS = ("ml", "aiplatform")  # ML Engine, Vertex AI
logger = logging.getLogger("babyweight.frontend")


class BadInput(ValueError):
    """The form was filled in wrongly: the message names the field and says what is expected."""


def credentials_for(endpoint: str):
    """The credentials to present to the prediction service at ``endpoint``: a
    ``google.auth.credentials.Credentials`` object (never a tuple)."""
    # TODO 2: the identity the app presents to the prediction service at `endpoint`.
    # Input: the service's URL. Output: a credentials object (not a tuple).
    # A service on this machine (LOCAL_HOSTS) checks no identity. Google's APIs refuse
    # anonymous calls: there the app presents the identity its environment provides (App
    # Engine's service account, or a laptop signed in with gcloud), allowed to use Cloud
    # services (CLOUD_SCOPES). The notebook's section 6 explains ADC. Checked for a local URL
    # and, under a stand-in service account, for Google's. Graded by: test-credentials
    # BEGIN SOLUTION
    if urlparse(endpoint).hostname in LOCAL_HOSTS:
        return AnonymousCredentials()
    credentials, _ = google.auth.default(scopes=CLOUD_SCOPES)
    return credentials
    # END SOLUTION


def build_api(api: str, endpoint: str, credentials):
    """A Google API client for the prediction API ``api`` (one of :data:`APIS`, version v1)
    whose requests go to ``endpoint``, presenting ``credentials``."""
    if api not in APIS:
        raise ValueError(f"api must be one of {APIS}, got {api!r}")
    # TODO 3: the API client through which the app talks to the prediction service.
    # Inputs: `api`, `endpoint`, `credentials`. Output: the client.
    # The same code must reach Google's service or the stand-in on this machine by `endpoint`
    # alone, for either API, and never send a request to Google when `endpoint` is local
    # (section 6 of the notebook). Checked on the requests the local service logs.
    # Graded by: test-api-client
    # BEGIN SOLUTION
    return discovery.build(
        api, "v1", credentials=credentials, client_options={"api_endpoint": endpoint}
    )
    # END SOLUTION


def model_name(project: str, model: str, version: str | None = None) -> str:
    """ML Engine's resource name for ``model`` of ``project``, or for one ``version`` of it."""
    # TODO 4: the resource name of what the app asks for: a model, or one version of it.
    # Inputs: the project, the model and optionally a version. Output: the name (a str).
    # Name it as ML Engine names its resources. With `version` the page is pinned to that
    # version (while a canary runs, say); without one the service answers with the model's
    # default version, which follows the traffic split (sections 6 to 8 of the notebook).
    # Checked on the paths the service logs. Graded by: test-api-client, test-frontend
    # BEGIN SOLUTION
    name = f"projects/{project}/models/{model}"
    return f"{name}/versions/{version}" if version else name
    # END SOLUTION


def predict(api, name: str, instances: list[dict]) -> dict:
    """The prediction service's answer (a dict, as the API gives it) for ``instances`` from
    ``name``: an ML Engine model or version, or a Vertex AI endpoint
    (``projects/P/locations/L/endpoints/E``)."""
    # TODO 5: the prediction call, on either API, riding out transient failures.
    # Inputs: a client from build_api, the resource name, a list of instances (dicts).
    # Output: the service's answer, a dict with "predictions".
    # `name` says which API it belongs to (an ML Engine model or version, or a Vertex AI
    # endpoint). App Engine keeps the client for hours, so a request may meet a connection the
    # service has dropped, or a 503 while it scales: a transient failure must be retried (up
    # to twice), not shown to the parent as an error (section 6 of the notebook).
    # Graded by: test-api-client, test-retries
    # BEGIN SOLUTION
    body = {"instances": list(instances)}
    if "/endpoints/" in name:
        call = api.projects().locations().endpoints().predict(endpoint=name, body=body)
    else:
        call = api.projects().predict(name=name, body=body)
    return call.execute(num_retries=2)
    # END SOLUTION


def weight_of(prediction: dict) -> float:
    """The first instance's weight in pounds from a prediction answer.

    ``{"predictions": [{"weight": [6.43]}]}``: one list of one value per instance (the course
    model's output shape ``[None, 1]``); a bare number is read too, as older exports answered."""
    if "error" in prediction:  # ML Engine reports a failed prediction this way
        raise RuntimeError(prediction["error"])
    weight = prediction["predictions"][0]
    weight = weight["weight"] if isinstance(weight, dict) else weight
    return float(weight[0] if isinstance(weight, list) else weight)


def _number(data, name: str) -> float:
    text = str(data[name]).strip()
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"{name} must be a number, got {text!r}") from None
    low, high = RANGES[name]
    if not low <= value <= high:
        raise BadInput(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def features_from(data) -> dict:
    """The model's instance from the form's fields (text); BadInput names any field that is
    wrong."""
    missing = [name for name in FIELDS if not str(data.get(name, "")).strip()]
    if missing:
        raise BadInput(f"missing form field(s): {', '.join(missing)}")
    gender = str(data["baby_gender"]).strip().lower()
    if gender not in GENDERS:
        raise BadInput(f"baby_gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    plurality = str(data["plurality"]).strip()
    if plurality not in {str(n) for n in PLURALITIES}:
        raise BadInput(f"plurality must be 1, 2 or 3, got {plurality!r}")
    plurality = int(plurality)

    features = {
        "is_male": GENDERS[gender],
        "mother_age": _number(data, "mother_age"),
        "plurality": PLURALITIES[plurality],
    }
    # TODO 6: the model's gestation_weeks from the form's text, as natality records it.
    # Input: `data` (text values). Output: the "gestation_weeks" entry of `features`, a float.
    # Parents and midwives write it as whole weeks ("39") or in the clinical weeks+days
    # notation ("38+4": 38 weeks and 4 days). The model learnt from natality, which records
    # gestation in completed weeks: give the model the value natality would have recorded.
    # Anything else, or a value outside RANGES, is a BadInput naming gestation_weeks (section 8
    # of the notebook). Graded by: test-frontend
    # BEGIN SOLUTION
    text = str(data["gestation_weeks"]).strip()
    match = re.fullmatch(r"(\d{1,2})(?:\s*\+\s*([0-6]))?", text)
    if not match:
        raise BadInput(f"gestation_weeks must be weeks (39) or weeks+days (38+4), got {text!r}")
    weeks = float(match.group(1))
    low, high = RANGES["gestation_weeks"]
    if not low <= weeks <= high:
        raise BadInput(f"gestation_weeks must be between {low:g} and {high:g}, got {weeks:g}")
    features["gestation_weeks"] = weeks
    # END SOLUTION
    if gender == "unknown" and plurality > 1:
        features["plurality"] = "Multiple(2+)"
    return features


def create_app(
    endpoint: str | None = None,
    project: str | None = None,
    model: str | None = None,
) -> Flask:
    """The front-end, calling the prediction service at ``endpoint`` (see the module's docs)."""
    env = os.environ.get
    vertex_endpoint = env("VERTEX_ENDPOINT")
    region = env("GOOGLE_CLOUD_REGION") or "us-central1"
    default = f"https://{region}-aiplatform.googleapis.com" if vertex_endpoint else ML_ENGINE
    endpoint = endpoint or env("PREDICTION_ENDPOINT") or default
    project = project or env("GOOGLE_CLOUD_PROJECT") or "local-project"
    model = model or env("MODEL_NAME") or "babyweight"
    version = env("MODEL_VERSION") or None
    if vertex_endpoint:  # Vertex AI, which replaced ML Engine: the endpoint picks the version
        api_name, name = "aiplatform", (
            f"projects/{project}/locations/{region}/endpoints/{vertex_endpoint}"
        )
    else:
        api_name, name = "ml", None

    app = Flask(__name__)
    clients = {}  # built on the first prediction, then reused for the app's life

    def get_prediction(features: dict) -> float:
        if "api" not in clients:
            clients["api"] = build_api(api_name, endpoint, credentials_for(endpoint))
        return weight_of(predict(clients["api"], name or model_name(project, model, version),
                                 [features]))  # fmt: skip

    def answer(data) -> tuple[int, dict]:
        try:
            features = features_from(data)
            weight = get_prediction(features)
        except BadInput as error:
            return 400, {"error": str(error)}
        except NotImplementedError as error:  # a TODO left in this file: say which, not 502
            todo = re.search(r"TODO \d+", str(error))
            message = f"{todo.group(0) if todo else 'a TODO'} not done: {error}"
            logger.error(message)
            return 501, {"error": message}
        except HttpError as error:
            reason = error.reason or error.content.decode(errors="replace")
            return 502, {"error": f"the prediction service answered {error.status_code}: {reason}"}
        except (OSError, RuntimeError) as error:
            return 502, {"error": f"the prediction service failed: {error}"}
        return 200, {"result": f"{weight:.2f} lbs.", "features": features}

    @app.get("/")
    def form():
        return render_template("form.html")

    @app.post("/")
    def form_predict():
        status, body = answer(request.form)
        return render_template("form.html", form=request.form, **body), status

    @app.post("/api/predict")
    def api_predict():
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify(error="the body must be a JSON object with the form's fields"), 400
        status, body = answer(data)
        return jsonify(body), status

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--endpoint", help="the prediction service (default: PREDICTION_ENDPOINT)")
    args = parser.parse_args(argv)
    create_app(endpoint=args.endpoint).run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
