"""BigQuery's errors, in BigQuery's words, for the BigQuery ML engine.

They are google-api-core's exceptions, the ones the real client raises for BigQuery's answers:
``BadRequest`` (400, reason ``invalidQuery``), ``NotFound`` (404, ``notFound``) and ``Conflict``
(409, ``duplicate``), so a service maps them to HTTP status and reason once, by class.
"""

from __future__ import annotations

from google.api_core import exceptions


class InvalidQuery(exceptions.BadRequest):
    """A BigQuery ML statement BigQuery would refuse, or one the local engine does not run: the
    message names the statement's part (option, column, function) at fault."""


class ModelNotFound(exceptions.NotFound):
    """``Not found: Model project:dataset.model``."""


class ModelExists(exceptions.Conflict):
    """``Already Exists: Model project:dataset.model``."""


def model_path(project: str, dataset: str, model_id: str) -> str:
    """BigQuery's spelling of a model in its messages: ``project:dataset.model``."""
    return f"{project}:{dataset}.{model_id}"


__all__ = ["InvalidQuery", "ModelExists", "ModelNotFound", "model_path"]
