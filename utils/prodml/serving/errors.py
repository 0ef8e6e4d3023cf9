"""The server's typed errors. Each names the problem in its message; which HTTP status each one
becomes is decided once, in :data:`prodml.serving.app.STATUS` (KServe's shape: invalid input 400,
not found 404, ...), never where it is raised."""

from __future__ import annotations


class ServingError(Exception):
    """A request the server cannot answer; ``str(exc)`` says why, for the client."""


class InvalidInput(ServingError):
    """The client's mistake: malformed JSON, a missing or mistyped feature, a bad traffic split."""


class NotFound(ServingError):
    """An unknown model, version, version name or label."""


class BodyTooLarge(ServingError):
    """A request body over the server's ``max_body_bytes``."""
