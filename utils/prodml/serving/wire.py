"""What every wire module shares: declaring a documented route, reading a JSON body under the
size limit into a request model, answering JSON, and the 413 that every client can read."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prodml.serving.errors import BodyTooLarge, InvalidInput
from prodml.serving.registry import Options, Registry
from prodml.serving.schemas import explain


class NameConvertor(Convertor):
    """A path segment up to the next '/' or ':' (``/v1/models/toy:predict`` is model ``toy``
    and the ``:predict`` verb, Google's custom-method syntax)."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value) -> str:
        return str(value)


register_url_convertor("name", NameConvertor())


@dataclass(frozen=True)
class Doc:
    """What /openapi.json says about a route."""

    summary: str
    request: type[BaseModel] | str | None = None  # a model, or the name of a predict model
    response: type[BaseModel] | None = None


class _Endpoint:
    """``async def endpoint(request) -> Response`` as a plain ASGI app. Starlette wraps a
    function endpoint in a second, per-route exception handler; the application's handlers
    (:data:`prodml.serving.app.STATUS`) already map every error, and on the predict path that
    extra layer per request is measurable (benchmarks/serving.py)."""

    def __init__(self, fn):
        self.fn = fn
        functools.update_wrapper(self, fn)  # its name and module, for /openapi.json

    async def __call__(self, scope, receive, send) -> None:
        response = await self.fn(Request(scope, receive, send))
        await response(scope, receive, send)


def route(method: str, path: str, endpoint, summary: str, request=None, response=None) -> Route:
    r = Route(path, _Endpoint(endpoint), methods=[method])
    r.doc = Doc(summary, request, response)
    return r


def registry(request: Request) -> Registry:
    return request.app.state.registry


_encode = json.JSONEncoder(separators=(",", ":")).encode  # made once: json.dumps with options
# builds a new encoder on every call


class JSON(Response):
    """JSON as TF Serving writes it (compact; NaN and Infinity allowed in model outputs)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return _encode(content).encode()


async def body(request: Request, limit: int) -> bytes:
    """The request body, refused with BodyTooLarge once it exceeds ``limit`` bytes: at once
    when Content-Length says so, else as soon as the streamed bytes do."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(
            f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def parse(request: Request, model: type[BaseModel], options: Options):
    """Read the body (at most ``options.max_body_bytes``) and validate it with ``model``, the
    schema /openapi.json publishes."""
    raw = await body(request, options.max_body_bytes)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(explain(exc, model)) from None


class LingeringJSON(JSON):
    """An error answer followed by nginx's "lingering close": the response is written at once,
    then the rest of the request body is read and discarded (at most ``drain_bytes`` bytes and
    ``drain_seconds``) before the connection closes. A client that writes its whole body before
    reading (Python's urllib) then reads the answer instead of "connection reset by peer"; a
    body past the bound is cut without reading it all. The connection is not reused."""

    def __init__(self, content, status_code: int, drain_bytes: int, drain_seconds: float):
        super().__init__(content, status_code, headers={"connection": "close"})
        self.drain_bytes, self.drain_seconds = drain_bytes, drain_seconds

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        # more_body=True keeps the server from closing the socket before the drain below
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if not (declared.isdigit() and int(declared) > self.drain_bytes):
            await self._drain(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive) -> None:
        left = self.drain_bytes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_seconds
        while left > 0:
            try:
                message = await asyncio.wait_for(receive(), deadline - loop.time())
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body"):
                return
