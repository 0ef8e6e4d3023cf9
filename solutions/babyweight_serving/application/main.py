"""The babyweight front-end: a form in, a call to the online prediction service, a weight out.

The same Flask app the course deploys to App Engine. It calls the model through the Google API
client for the ML Engine API (``ml v1``), exactly as the course's code does; only the endpoint
changes:

* ``PREDICTION_ENDPOINT=http://127.0.0.1:8501`` (the workbook's ``prodml serve``) is called
  without credentials;
* ``PREDICTION_ENDPOINT=https://ml.googleapis.com`` (the default) is called with Application
  Default Credentials. ML Engine was shut down on 2025-01-31: on Google Cloud today, set
  ``VERTEX_ENDPOINT`` (an endpoint id) and the app calls Vertex AI (``aiplatform v1``) instead.

Other settings: ``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_CLOUD_REGION`` (Vertex AI only), ``MODEL_NAME``
(default ``babyweight``) and ``MODEL_VERSION`` (default: the model's default version).

Run it with ``python main.py --port 8080`` or ``flask --app main run``; it binds 127.0.0.1.
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
RANGES = {"mother_age": (10, 60), "gestation_weeks": (17, 47)}  # what the natality data holds
ML_ENGINE = "https://ml.googleapis.com"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
logger = logging.getLogger("babyweight.frontend")


class BadInput(ValueError):
    """The form was filled in wrongly: the message names the field and says what is expected."""


def credentials_for(endpoint: str):
    """No credentials for a service on this machine, Application Default Credentials otherwise."""
    if urlparse(endpoint).hostname in LOCAL_HOSTS:
        return AnonymousCredentials()
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return credentials


def build_api(endpoint: str, credentials):
    """The Google API client for ML Engine (``ml v1``), pointed at ``endpoint``."""
    # TODO 7: the Google API client for ML Engine (as in the notebook's section 6), calling
    # `endpoint` with `credentials`. Output: `api`. Graded by: test-frontend
    # BEGIN SOLUTION
    api = discovery.build(
        "ml", "v1", credentials=credentials, client_options={"api_endpoint": endpoint}
    )
    # END SOLUTION
    return api


def features_from(data) -> dict:
    """The model's instance from the form's fields; BadInput names any field that is wrong."""
    missing = [name for name in FIELDS if not str(data.get(name, "")).strip()]
    if missing:
        raise BadInput(f"missing form field(s): {', '.join(missing)}")

    for name, (low, high) in RANGES.items():
        text = str(data[name]).strip()
        try:
            value = float(text)
        except ValueError:
            raise BadInput(f"{name} must be a number, got {text!r}") from None
        if not low <= value <= high:
            raise BadInput(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    gender = str(data["baby_gender"]).strip().lower()
    if gender not in GENDERS:
        raise BadInput(f"baby_gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    plurality = str(data["plurality"]).strip()
    if plurality not in {str(n) for n in PLURALITIES}:
        raise BadInput(f"plurality must be 1, 2 or 3, got {plurality!r}")
    plurality = int(plurality)

    features = {
        "is_male": GENDERS[gender],
        "mother_age": float(data["mother_age"]),
        "plurality": PLURALITIES[plurality],
    }
    # TODO 10: the model's gestation_weeks feature from the form's field of that name.
    # Input: `data` (text values). Output: features["gestation_weeks"], a number.
    # Graded by: test-frontend
    # BEGIN SOLUTION
    features["gestation_weeks"] = float(data["gestation_weeks"])
    # END SOLUTION
    if gender == "unknown" and plurality > 1:
        features["plurality"] = "Multiple(2+)"
    return features


def create_app(
    endpoint: str | None = None,
    project: str | None = None,
    model_name: str | None = None,
) -> Flask:
    """The front-end, calling the prediction service at ``endpoint`` (see the module's docs)."""
    env = os.environ.get
    vertex_endpoint = env("VERTEX_ENDPOINT")
    region = env("GOOGLE_CLOUD_REGION") or "us-central1"
    default = f"https://{region}-aiplatform.googleapis.com" if vertex_endpoint else ML_ENGINE
    endpoint = endpoint or env("PREDICTION_ENDPOINT") or default
    project = project or env("GOOGLE_CLOUD_PROJECT") or "local-project"
    model_name = model_name or env("MODEL_NAME") or "babyweight"
    version = env("MODEL_VERSION")

    app = Flask(__name__)
    # The client is built on the first prediction, then reused. Its connection may have been
    # closed by the server while idle: num_retries=2 retries such connection errors (and 5xx).
    clients = {}

    def get_prediction(features: dict) -> float:
        body = {"instances": [features]}
        if vertex_endpoint:  # Vertex AI, which replaced ML Engine
            if "api" not in clients:
                clients["api"] = discovery.build(
                    "aiplatform",
                    "v1",
                    credentials=credentials_for(endpoint),
                    client_options={"api_endpoint": endpoint},
                )
            name = f"projects/{project}/locations/{region}/endpoints/{vertex_endpoint}"
            endpoints = clients["api"].projects().locations().endpoints()
            prediction = endpoints.predict(endpoint=name, body=body).execute(num_retries=2)
        else:
            if "api" not in clients:
                clients["api"] = build_api(endpoint, credentials_for(endpoint))
            api = clients["api"]
            # TODO 8: the model's resource name, from `project` and `model_name`.
            # Output: `parent`. Graded by: test-frontend
            # BEGIN SOLUTION
            parent = f"projects/{project}/models/{model_name}"
            # END SOLUTION
            if version:
                parent += f"/versions/{version}"
            # TODO 9: ask the model for a prediction of `body`, retrying twice on a dropped
            # connection. Output: `prediction`, the answer as a dict. Graded by: test-frontend
            # BEGIN SOLUTION
            prediction = api.projects().predict(body=body, name=parent).execute(num_retries=2)
            # END SOLUTION
        if "error" in prediction:  # ML Engine reports a failed prediction this way
            raise RuntimeError(prediction["error"])
        # {"predictions": [{"weight": [6.43]}]}: one list of one value per instance (the course
        # model's output shape); a bare number is read too, as older exports answered.
        weight = prediction["predictions"][0]
        weight = weight["weight"] if isinstance(weight, dict) else weight
        return float(weight[0] if isinstance(weight, list) else weight)

    def predict(data) -> tuple[int, dict]:
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
        status, answer = predict(request.form)
        return render_template("form.html", form=request.form, **answer), status

    @app.post("/api/predict")
    def api_predict():
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify(error="the body must be a JSON object with the form's fields"), 400
        status, answer = predict(data)
        return jsonify(answer), status

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
