"""Model handlers for Beam's ``RunInference``: the SavedModel in process, or the prediction
service over HTTP.

Beam's own ``TFModelHandlerTensor`` needs ``tensorflow_hub``; :class:`SavedModelHandler` is the
small version this workbook needs: it loads the exported signature once per worker and calls it
on whole batches (one signature call per batch, ~0.3 ms, rather than Keras ``predict``).
:class:`HTTPModelHandler` posts the same batches to the deployed model over the prediction
service (TF Serving REST, ML Engine or Vertex AI URLs, against ``prodml serve`` or Google), with
the caller's credentials, retrying failures with exponential backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from prodml import babyweight, savedmodel
from prodml.babyweight.contract import NUMERIC_FEATURES, STRING_FEATURES

OUTPUT = "weight"


class _BeamMemoryWarning(logging.Filter):
    """Beam 2.77 imports ``resource`` in one ``try`` with its torch-only ``ModelManager``; without
    torch it sets ``resource = None`` and then warns, on every batch RunInference runs, that
    memory cannot be measured. Drop that one message; every other warning still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Resource module is not available")


if not any(isinstance(f, _BeamMemoryWarning) for f in logging.getLogger().filters):
    logging.getLogger().addFilter(_BeamMemoryWarning())


def resolve_export(export_dir: str | Path) -> str:
    """The SavedModel folder: ``export_dir`` itself when it holds ``saved_model.pb``, else its
    newest numbered version (``export_dir/<int>/``), as TF Serving picks it."""
    return str(savedmodel.resolve(export_dir))


class SavedModelHandler(ModelHandler[dict, PredictionResult, savedmodel.Signature]):
    """RunInference handler: feature dicts -> ``PredictionResult(example, weight)``.

    ``export_dir`` is a SavedModel folder or an export base holding numbered versions;
    ``signature`` one of its signatures (``serving_default``). Batches of ``min_batch_size`` to
    ``max_batch_size`` rows become one signature call each.
    """

    def __init__(
        self,
        export_dir: str | Path,
        signature: str = "serving_default",
        min_batch_size: int = 1,
        max_batch_size: int = 1024,
    ):
        super().__init__()
        self.export_dir, self.signature = str(export_dir), signature
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size

    def load_model(self) -> savedmodel.Signature:
        return savedmodel.load_signature(self.export_dir, self.signature)

    def run_inference(
        self, batch: Sequence[dict], model: savedmodel.Signature, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        # one weight per row whether the output is [None] or the course model's [None, 1]
        weights = np.asarray(savedmodel.predict_columns(model, batch)[OUTPUT]).reshape(len(batch))
        model_id = str(model.path)
        return [
            PredictionResult(example, w, model_id)
            for example, w in zip(batch, weights.tolist(), strict=True)
        ]

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return _feature_bytes(batch)

    def share_model_across_processes(self) -> bool:
        return False


def _feature_bytes(batch: Sequence[dict]) -> int:
    """The size of a batch's features as the model takes them (a string's length, four bytes a
    number), for RunInference's byte metrics. Beam's default pickles the whole batch
    to measure it, which costs more than the model call it measures."""
    strings = sum(len(row[name]) for row in batch for name in STRING_FEATURES)
    return 4 * len(NUMERIC_FEATURES) * len(batch) + strings


class PredictionServiceError(RuntimeError):
    """The prediction service kept failing after every retry, or answered nonsense."""


#: the wire protocols :class:`HTTPModelHandler` speaks
APIS = ("tfserving", "mlengine", "vertex")
#: Google's endpoints, when no ``url`` is given
GOOGLE_ML_ENGINE = "https://ml.googleapis.com"
GOOGLE_VERTEX = "https://{location}-aiplatform.googleapis.com"
_RETRY_STATUS = (429, 500, 502, 503, 504)


def prediction_url(
    url: str | None = None,
    model: str = "babyweight",
    project: str | None = None,
    version: str | int | None = None,
    api: str = "tfserving",
    location: str = "us-central1",
) -> str:
    """The ``:predict`` URL of a deployed model, for one of three wire protocols.

    - ``tfserving``: ``{url}/v1/models/{model}[/versions/{version}]:predict`` (TF Serving REST,
      ``prodml serve``); ``url`` is required.
    - ``mlengine``: ``{url}/v1/projects/{project}/models/{model}[/versions/{version}]:predict``
      (AI Platform / ML Engine, as the course calls it); ``url`` defaults to Google's
      ``https://ml.googleapis.com``; a version may be a number or a name (``dnn``).
    - ``vertex``: ``{url}/v1/projects/{project}/locations/{location}/endpoints/{model}:predict``
      (Vertex AI; ``model`` is the endpoint); ``url`` defaults to
      ``https://{location}-aiplatform.googleapis.com``. Vertex picks the version by the
      endpoint's traffic split, so ``version`` must be None.

    Without a version the service answers with its default version.
    """
    if api not in APIS:
        raise ValueError(f"unknown api {api!r}: choose one of {', '.join(APIS)}")
    if api != "tfserving" and not project:
        raise ValueError(f"api={api!r} needs the project (projects/<project>/...)")
    if api == "vertex" and version is not None:
        raise ValueError(
            "Vertex AI endpoints choose the version by their traffic split: "
            "leave version=None (or use api='mlengine' or 'tfserving')"
        )
    if url is None:
        if api == "tfserving":
            raise ValueError("api='tfserving' needs the server's url, e.g. http://127.0.0.1:8501")
        url = GOOGLE_ML_ENGINE if api == "mlengine" else GOOGLE_VERTEX.format(location=location)
    base = url.rstrip("/")
    suffix = "" if version is None else f"/versions/{version}"
    if api == "tfserving":
        return f"{base}/v1/models/{model}{suffix}:predict"
    if api == "mlengine":
        return f"{base}/v1/projects/{project}/models/{model}{suffix}:predict"
    return f"{base}/v1/projects/{project}/locations/{location}/endpoints/{model}:predict"


class HTTPModelHandler(ModelHandler[dict, PredictionResult, Any]):
    """RunInference handler that calls a deployed model over the prediction service, one
    ``POST`` of ``{"instances": [...]}`` per batch.

    Which model: ``url`` (the service; for ``prodml serve`` its ``server.url``), ``model``,
    and with ``api="mlengine"`` or ``"vertex"`` the ``project`` (and ``location`` for Vertex),
    and optionally a ``version`` (see :func:`prediction_url`). Without ``url`` the ML Engine
    and Vertex APIs go to Google.

    ``credentials``: a ``google.auth`` credentials object the caller chooses, used through
    ``google.auth.transport.requests.AuthorizedSession`` (it adds and refreshes the bearer
    token): ``google.auth.credentials.AnonymousCredentials()`` for the local service (the
    default, ``None``), or Application Default Credentials for Google Cloud,
    ``google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])[0]``.

    Connection errors, timeouts and HTTP 429/5xx are retried up to ``retries`` times with
    exponential backoff (``backoff * 2**(attempt - 1)`` seconds), by urllib3's ``Retry``; other
    HTTP errors fail at once with the service's message.
    """

    def __init__(
        self,
        url: str | None = None,
        model: str = "babyweight",
        retries: int = 4,
        backoff: float = 0.2,
        timeout: float = 30.0,
        min_batch_size: int = 1,
        max_batch_size: int = 256,
        *,
        project: str | None = None,
        version: str | int | None = None,
        api: str = "tfserving",
        location: str = "us-central1",
        credentials: Any = None,
    ):
        super().__init__()
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must be >= 0")
        self.endpoint = prediction_url(url, model, project, version, api, location)
        self.credentials = credentials
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size

    def load_model(self):
        from google.auth.credentials import AnonymousCredentials
        from google.auth.transport.requests import AuthorizedSession
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        session = AuthorizedSession(self.credentials or AnonymousCredentials())
        retry = Retry(
            total=self.retries,
            backoff_factor=self.backoff,
            status_forcelist=_RETRY_STATUS,
            allowed_methods=None,  # POST too: a prediction has no side effect
            raise_on_status=False,  # the last answer comes back; _post names its status
            respect_retry_after_header=True,
        )
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        return session

    def _post(self, session, instances: list[dict]) -> list:
        import requests

        try:
            response = session.post(
                self.endpoint, json={"instances": instances}, timeout=self.timeout
            )
        except requests.RequestException as err:
            raise PredictionServiceError(
                f"{self.endpoint} failed {self.retries + 1} times; last error: "
                f"{type(err).__name__}: {err}"
            ) from None
        if response.status_code in _RETRY_STATUS:
            raise PredictionServiceError(
                f"{self.endpoint} failed {self.retries + 1} times; last error: "
                f"HTTP {response.status_code}: {response.text[:200]}"
            )
        if response.status_code != 200:
            raise PredictionServiceError(
                f"{self.endpoint} answered HTTP {response.status_code}: {response.text[:500]}"
            )
        predictions = response.json().get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(instances):
            raise PredictionServiceError(
                f"{self.endpoint} answered {len(predictions or [])} predictions for "
                f"{len(instances)} instances"
            )
        return predictions

    def run_inference(
        self, batch: Sequence[dict], model, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        instances = [{name: row[name] for name in babyweight.FEATURES} for row in batch]
        predictions = self._post(model, instances)
        return [
            PredictionResult(example, _weight(p), model_id=self.endpoint)
            for example, p in zip(batch, predictions, strict=True)
        ]

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return _feature_bytes(batch)


def _weight(prediction: Any) -> float:
    """One instance's weight from the service's answer: ``{"weight": [x]}`` (the course model's
    shape, named outputs), ``{"weight": x}``, ``[x]`` or ``x``."""
    if isinstance(prediction, dict):
        prediction = prediction[OUTPUT]
    if isinstance(prediction, list):
        if len(prediction) != 1:
            raise PredictionServiceError(f"expected one weight per instance, got {prediction!r}")
        prediction = prediction[0]
    return float(prediction)
