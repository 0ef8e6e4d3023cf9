"""BigQuery's errors, in BigQuery's words, for the BigQuery ML engine.

They are the warehouse's own errors (:mod:`prodml.warehouse.errors`), so the service answers
them as BigQuery does -- HTTP status, ``reason`` and message -- and the real client raises
google-api-core's ``BadRequest`` (400, ``invalidQuery``), ``NotFound`` (404, ``notFound``) and
``Conflict`` (409, ``duplicate``) for them.
"""

from __future__ import annotations

from prodml.warehouse import errors

InvalidQuery = errors.InvalidQuery  # the message names the option, column or function at fault


class ModelNotFound(errors.NotFound):
    """``Not found: Model project:dataset.model``."""


class DatasetNotFound(errors.NotFound):
    """``Not found: Dataset project:dataset``."""


class ModelExists(errors.Duplicate):
    """``Already Exists: Model project:dataset.model``."""


def model_path(project: str, dataset: str, model_id: str) -> str:
    """BigQuery's spelling of a model in its messages: ``project:dataset.model``."""
    return f"{project}:{dataset}.{model_id}"


__all__ = ["DatasetNotFound", "InvalidQuery", "ModelExists", "ModelNotFound", "model_path"]
