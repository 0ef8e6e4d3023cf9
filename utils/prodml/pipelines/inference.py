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

import copy
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from prodml import savedmodel
from prodml.contracts import RecordContract

__all__ = [
    "APIS",
    "GOOGLE_ML_ENGINE",
    "GOOGLE_VERTEX",
    "HTTPModelHandler",
    "PredictionServiceError",
    "SavedModelHandler",
    "prediction_url",
    "resolve_export",
]


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


class _Contracted:
    """What both handlers share: the record contract they predict for. ``build_pipeline`` hands
    a handler its contract (:meth:`with_contract`); a handler used on its own is given one."""

    contract: RecordContract | None = None

    def with_contract(self, contract: RecordContract):
        """This handler for ``contract`` (a copy when it has none yet; itself when it has it)."""
        if not isinstance(contract, RecordContract):
            raise TypeError(f"expected a RecordContract, got {type(contract).__name__}")
        if self.contract is not None:
            if self.contract != contract:
                raise ValueError(
                    f"this handler predicts for contract {self.contract.name!r}, not "
                    f"{contract.name!r}"
                )
            return self
        bound = copy.copy(self)
        bound.contract = contract
        bound._bound()
        return bound

    def _bound(self) -> None:
        """Hook: the contract was just set."""

    def _needs_contract(self) -> RecordContract:
        if self.contract is None:
            raise ValueError(
                f"{type(self).__name__} has no record contract: pass contract=... (e.g. "
                "prodml.babyweight.CONTRACT) or use it through pipelines.build_pipeline"
            )
        return self.contract

    def _output(self) -> str:
        output = self._needs_contract().output
        if output is None:
            raise ValueError(f"contract {self.contract.name!r} names no model output (output=)")
        return output


class SavedModelHandler(_Contracted, ModelHandler[dict, PredictionResult, savedmodel.Signature]):
    """RunInference handler: feature dicts -> ``PredictionResult(example, prediction)``, the
    prediction being the signature's output ``contract.output`` (one value per row).

    ``export_dir`` is a SavedModel folder or an export base holding numbered versions;
    ``signature`` one of its signatures (``serving_default``). Batches of ``min_batch_size`` to
    ``max_batch_size`` rows become one signature call each. ``contract``: the record contract
    (``build_pipeline`` passes its own).
    """

    def __init__(
        self,
        export_dir: str | Path,
        signature: str = "serving_default",
        min_batch_size: int = 1,
        max_batch_size: int = 1024,
        *,
        contract: RecordContract | None = None,
    ):
        super().__init__()
        self.export_dir, self.signature = str(export_dir), signature
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size
        self.contract = contract

    def load_model(self) -> savedmodel.Signature:
        self._output()  # fail before loading when the contract is missing
        return savedmodel.load_signature(self.export_dir, self.signature)

    def run_inference(
        self, batch: Sequence[dict], model: savedmodel.Signature, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        # one value per row whether the output is [None] or, like the course model's, [None, 1]
        output = savedmodel.predict_columns(model, batch)[self._output()]
        values = np.asarray(output).reshape(len(batch))
        model_id = str(model.path)
        return [
            PredictionResult(example, w, model_id)
            for example, w in zip(batch, values.tolist(), strict=True)
        ]

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return _feature_bytes(batch, self._needs_contract().features)

    def share_model_across_processes(self) -> bool:
        return False


def _feature_bytes(batch: Sequence[dict], features: Sequence[str]) -> int:
    """The size of a batch's features as the model takes them (a string's length, four bytes
    anything else), for RunInference's byte metrics. Beam's default pickles the whole batch
    to measure it, which costs more than the model call it measures. The first row decides
    which features are strings."""
    if not batch:
        return 0
    strings = [name for name in features if isinstance(batch[0][name], str)]
    text = sum(len(row[name]) for row in batch for name in strings)
    return 4 * (len(features) - len(strings)) * len(batch) + text


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
    model: str | None = None,
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
    if not model:
        raise ValueError("name the deployed model (model=...)")
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


class HTTPModelHandler(_Contracted, ModelHandler[dict, PredictionResult, Any]):
    """RunInference handler that calls a deployed model over the prediction service, one
    ``POST`` of ``{"instances": [...]}`` per batch (each instance the contract's features).

    Which model: ``url`` (the service; for ``prodml serve`` its ``server.url``), ``model``
    (default the contract's name, e.g. ``babyweight``), and with ``api="mlengine"`` or ``"vertex"`` the ``project`` (and ``location`` for Vertex),
    and optionally a ``version`` (see :func:`prediction_url`). Without ``url`` the ML Engine
    and Vertex APIs go to Google.

    ``credentials``: the identity the pipeline presents to the service, a ``google.auth``
    credentials object that the caller chooses; every request carries it (a token, refreshed
    when it expires). ``None`` (the default) presents no identity, which is what a service on
    this machine expects; Google's prediction APIs accept only credentials allowed to use Cloud
    services.

    Connection errors, timeouts and HTTP 429/5xx are retried up to ``retries`` times with
    exponential backoff (``backoff * 2**(attempt - 1)`` seconds), by urllib3's ``Retry``; other
    HTTP errors fail at once with the service's message.
    """

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
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
        contract: RecordContract | None = None,
    ):
        super().__init__()
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must be >= 0")
        self._where = (url, model, project, version, api, location)
        self.contract = contract
        self.endpoint = None
        self._bound()  # the URL now when the model is named (or the contract given)
        self.credentials = credentials
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size

    def _bound(self) -> None:
        url, model, project, version, api, location = self._where
        if model is None and self.contract is not None:
            model = self.contract.name
        if model is not None or self.endpoint is None:
            self.endpoint = prediction_url(url, model or "<model>", project, version, api, location)
        self.named = model is not None

    def load_model(self):
        self._needs_contract()
        if not self.named:
            raise ValueError("HTTPModelHandler: name the deployed model (model=...)")
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
        features = self._needs_contract().features
        instances = [{name: row[name] for name in features} for row in batch]
        predictions = self._post(model, instances)
        output = self._output()
        return [
            PredictionResult(example, _value(p, output), model_id=self.endpoint)
            for example, p in zip(batch, predictions, strict=True)
        ]

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return _feature_bytes(batch, self._needs_contract().features)


def _value(prediction: Any, output: str) -> float:
    """One instance's prediction from the service's answer: ``{output: [x]}`` (named outputs,
    shape ``[None, 1]`` like the course model's), ``{output: x}``, ``[x]`` or ``x``."""
    if isinstance(prediction, dict):
        prediction = prediction[output]
    if isinstance(prediction, list):
        if len(prediction) != 1:
            raise PredictionServiceError(f"expected one {output} per instance, got {prediction!r}")
        prediction = prediction[0]
    return float(prediction)
