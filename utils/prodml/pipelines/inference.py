"""Model handlers for Beam's ``RunInference``: the SavedModel in process, or the prediction
service over HTTP.

Beam's own ``TFModelHandlerTensor`` needs ``tensorflow_hub``; :class:`SavedModelHandler` is the
small version this workbook needs: it loads the exported signature once per worker and calls it
on whole batches (one signature call per batch, ~0.3 ms, rather than Keras ``predict``).
:class:`HTTPModelHandler` posts the same batches to a TF Serving REST endpoint
(``POST {url}/v1/models/{model}:predict`` with ``{"instances": [...]}``), retrying failures with
exponential backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from prodml import babyweight, savedmodel

NAMESPACE = "prodml.pipelines"
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
            PredictionResult(example, w, model_id=model_id)
            for example, w in zip(batch, weights.tolist(), strict=True)
        ]

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def share_model_across_processes(self) -> bool:
        return False


class PredictionServiceError(RuntimeError):
    """The prediction service kept failing after every retry, or answered nonsense."""


_RETRY_STATUS = {429, 500, 502, 503, 504}


class HTTPModelHandler(ModelHandler[dict, PredictionResult, Any]):
    """RunInference handler that calls a TF Serving REST endpoint with batches of instances.

    Each batch is one ``POST {url}/v1/models/{model}:predict``. Connection errors, timeouts and
    HTTP 429/5xx are retried up to ``retries`` times, waiting ``backoff * 2**attempt`` seconds
    (exponential backoff); other HTTP errors fail at once with the server's message. Retries are
    counted in the ``http_retries`` counter.
    """

    def __init__(
        self,
        url: str,
        model: str = "babyweight",
        retries: int = 4,
        backoff: float = 0.2,
        timeout: float = 30.0,
        min_batch_size: int = 1,
        max_batch_size: int = 256,
    ):
        super().__init__()
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must be >= 0")
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model}:predict"
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size
        self._retried = Metrics.counter(NAMESPACE, "http_retries")

    def load_model(self):
        import requests

        return requests.Session()

    def _post(self, session, instances: list[dict]) -> list:
        import requests

        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                self._retried.inc()
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = session.post(
                    self.endpoint, json={"instances": instances}, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                last = f"{type(err).__name__}: {err}"
                continue
            if response.status_code in _RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
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
        raise PredictionServiceError(
            f"{self.endpoint} failed {self.retries + 1} times; last error: {last}"
        )

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


def _weight(prediction: Any) -> float:
    """TF Serving's row format: ``{"weight": x}`` for named outputs, ``x`` or ``[x]`` for one."""
    if isinstance(prediction, dict):
        prediction = prediction[OUTPUT]
    if isinstance(prediction, list):
        prediction = prediction[0]
    return float(prediction)
