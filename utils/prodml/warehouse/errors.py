"""BigQuery's errors, as the local warehouse service raises and answers them.

Each error names the problem in BigQuery's words and carries BigQuery's ``reason``
(``invalidQuery``, ``notFound``, ``accessDenied``, ``duplicate``, ``invalid``...). The HTTP
status each reason becomes is decided once, in :data:`STATUS` (the table google-cloud-bigquery
itself uses to turn a job's ``errorResult`` back into an exception), and the body is BigQuery's::

    {"error": {"code": 404, "message": "Not found: Table p:d.t", "status": "NOT_FOUND",
               "errors": [{"message": "...", "domain": "global", "reason": "notFound"}]}}

so the real client raises ``google.api_core.exceptions.NotFound`` with the same message. A
failed job carries the same error as ``status.errorResult``.

(This module does not import ``google.api_core``: the service starts without it.)
"""

from __future__ import annotations

__all__ = [
    "BigQueryError",
    "InvalidQuery",
    "Invalid",
    "NotFound",
    "AccessDenied",
    "Duplicate",
    "NotImplementedHere",
    "STATUS",
    "error_body",
]

# reason -> HTTP status (google.cloud.bigquery.job.base._ERROR_REASON_TO_EXCEPTION's table)
STATUS = {
    "invalidQuery": 400,
    "invalid": 400,
    "resourcesExceeded": 400,
    "accessDenied": 403,
    "notFound": 404,
    "duplicate": 409,
    "internalError": 500,
    "notImplemented": 501,
}
_CANONICAL = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
}


class BigQueryError(Exception):
    """A request or job the warehouse cannot carry out; ``str(exc)`` is BigQuery's message."""

    reason = "invalid"
    location: str | None = None  # what the error is about: "query", a column, a file line

    def __init__(self, message: str, location: str | None = None, errors: list | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.errors = errors  # further problems (a load job's bad records), BigQuery's list

    @property
    def status(self) -> int:
        return STATUS.get(self.reason, 500)

    def error_proto(self) -> dict:
        """BigQuery's ErrorProto: ``{"reason", "location", "message"}``."""
        proto = {"reason": self.reason, "message": self.message}
        if self.location is not None:
            proto["location"] = self.location
        return proto


class InvalidQuery(BigQueryError, ValueError):
    """SQL that does not run here (BigQuery's ``invalidQuery``): a syntax error, an unknown
    name, BigQuery ML without an engine, or SQL that is not BigQuery's."""

    reason = "invalidQuery"

    def __init__(self, message: str, location: str | None = "query", errors=None):
        super().__init__(message, location, errors)


class Invalid(BigQueryError):
    """A malformed request or a value that does not fit (BigQuery's ``invalid``)."""

    reason = "invalid"


class NotFound(BigQueryError):
    """A project, dataset, table, model or job that does not exist."""

    reason = "notFound"


class AccessDenied(BigQueryError):
    """A write to a read-only public dataset."""

    reason = "accessDenied"


class Duplicate(BigQueryError):
    """A dataset, table or job id that already exists."""

    reason = "duplicate"


class NotImplementedHere(BigQueryError):
    """A BigQuery feature the local warehouse does not implement (501)."""

    reason = "notImplemented"


def error_body(status: int, message: str, errors: list[dict] | None = None) -> dict:
    """BigQuery's error envelope for an HTTP error answer."""
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": errors or [{"message": message, "domain": "global", "reason": "invalid"}],
            "status": _CANONICAL.get(status, "UNKNOWN"),
        }
    }
