"""``prodml serve``: load SavedModels and answer the TF Serving, ML Engine and Vertex AI REST APIs.

    prodml serve --model babyweight=runs/.../export [--model other=DIR] [--port 8501]
    prodml serve --model babyweight=models:/babyweight@champion [--model babyweight=models:/babyweight/3]

``EXPORT_DIR`` is a SavedModel directory or a TF-Serving-style base directory of integer version
subdirectories (all are loaded; the highest takes the traffic), or a registered model version
in the run folder's MLflow registry (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
``models:/NAME/latest``, resolved by ``prodml.tracking.resolve``): it is served as its registry
version number, and its aliases (``champion``) become version names. ``--version-name dnn=1`` names
version 1 ``dnn`` (``projects/<p>/models/<m>/versions/dnn``, ``/v1/models/<m>/labels/dnn``). The HTTP server is uvicorn
(httptools, uvloop) running the Starlette app of :mod:`prodml.serving.app`; SIGTERM or SIGINT stop it
gracefully (requests in flight are answered). ``--access-log FILE`` keeps one line per request
(client, method, path, status): the request log a lab reads to see which API and version a
client called.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import sys
from pathlib import Path

DEFAULT_PORT = 8501  # TF Serving's REST port


def _model_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--model takes NAME=EXPORT_DIR, got {text!r}")
    return name, path


def _name_arg(text: str) -> tuple[str | None, str, str]:
    target, sep, version = text.partition("=")
    model, _, name = target.rpartition("/")
    if not sep or not name or not version:
        raise argparse.ArgumentTypeError(
            f"--version-name takes [MODEL/]NAME=VERSION (e.g. dnn=1), got {text!r}"
        )
    return model or None, name, version


def version_names(models: list[str], given: list[tuple[str | None, str, str]]) -> dict:
    """--version-name values -> {model: {name: version number}}; MODEL/ may be left out when
    one model is served."""
    from prodml.serving.model import check_name, version_number

    names: dict[str, dict[str, int]] = {}
    for model, name, version in given:
        if model is None:
            if len(models) != 1:
                raise ValueError(
                    f"--version-name {name}={version}: say which model, as MODEL/NAME=VERSION; serving {models}"
                )
            model = models[0]
        if model not in models:
            raise ValueError(
                f"--version-name {model}/{name}: no --model {model!r}; serving {models}"
            )
        number = version_number(version)
        if number is None:
            raise ValueError(
                f"--version-name {name}={version}: {version!r} is not a version number"
            )
        names.setdefault(model, {})[check_name(name)] = number
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", type=_model_arg, required=True,
                        metavar="NAME=EXPORT_DIR",
                        help="a model to serve: an export folder or models:/NAME@ALIAS, "
                             "models:/NAME/VERSION (repeatable)")  # fmt: skip
    parser.add_argument("--version-name", action="append", type=_name_arg, default=[],
                        metavar="[MODEL/]NAME=VERSION",
                        help="name a version (e.g. dnn=1): ML Engine versions/NAME, TF Serving labels/NAME, "
                             "Vertex trafficSplit keys (repeatable)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    parser.add_argument("--port-file", help="write the bound port and URL here as JSON once ready")
    parser.add_argument("--access-log", metavar="FILE",
                        help="append one line per answered request to FILE: client, method, "
                             "path and status (uvicorn's access log; off by default)")  # fmt: skip
    parser.add_argument("--max-batch-size", type=int, default=256,
                        help="most instances per signature call when batching concurrent requests")  # fmt: skip
    parser.add_argument("--batch-timeout-ms", type=float, default=0.0,
                        help="how long a batch waits for more requests (0: run as soon as the model is free)")  # fmt: skip
    parser.add_argument("--max-instances", type=int, default=10_000,
                        help="most instances in one request (more: 400)")  # fmt: skip
    parser.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024,
                        help="largest request body (more: 413)")  # fmt: skip
    parser.add_argument("--max-drain-bytes", type=int, default=64 * 1024 * 1024,
                        help="after a 413, read and discard at most this much of the body so the client reads the answer")  # fmt: skip


def _access_log(path: str) -> None:
    """uvicorn's access log (``127.0.0.1:50412 - "POST /v1/...:predict HTTP/1.1" 200``) to
    ``path``, one line per request, flushed as it is written; nothing on the console."""
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("uvicorn.access")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _add_model(registry, name: str, path: str, names: dict | None):
    """An export folder, or a registered version (``models:/``) resolved through the MLflow
    registry: served as its registry version number, its aliases as version names."""
    if not path.startswith("models:/"):
        return registry.add_model(name, path, names)
    from prodml.tracking import resolve

    found = resolve(path)
    print(f"prodml serve: {path} is version {found.version} (run {found.run_id}) at {found.path}")
    return registry.add_model(name, found.path, {**found.labels(), **(names or {})}, found.version)


def _load(args: argparse.Namespace):
    """The registry with every ``--model`` loaded, or an error message."""
    from prodml.serving.app import Options, Registry
    from prodml.serving.errors import InvalidInput

    registry = Registry(Options(max_batch_size=args.max_batch_size,
                                batch_timeout_ms=args.batch_timeout_ms,
                                max_instances=args.max_instances,
                                max_body_bytes=args.max_body_bytes,
                                max_drain_bytes=args.max_drain_bytes))  # fmt: skip
    try:
        names = version_names([name for name, _ in args.model], args.version_name)
    except (ValueError, InvalidInput) as exc:
        return None, f"prodml serve: {exc}"
    for name, path in args.model:
        try:
            model = _add_model(registry, name, path, names.get(name))
        except (FileNotFoundError, ValueError, OSError, InvalidInput, LookupError) as exc:
            return None, f"prodml serve: cannot load model {name!r}: {exc}"
        print(
            f"prodml serve: model {name!r} versions {sorted(model.versions)}"
            + (f" names {model.labels}" if model.labels else "")
            + f" from {path}",
            flush=True,
        )
    return registry, ""


def _server(registry, url: str, port: int, port_file: str | None, access_log: str | None):
    """The uvicorn server for the app, announcing ``url`` (and writing ``port_file``) once its
    socket listens; with ``access_log``, one line per request to that file."""
    import uvicorn

    from prodml.serving.app import create_app

    # Keep idle connections open longer than clients keep them pooled (uvicorn's default is
    # 5 s): Google's API clients and requests.Session reuse a connection after a pause, and a
    # server that has closed it meanwhile turns their next POST into a broken pipe.
    config = uvicorn.Config(
        create_app(registry),
        loop="auto",
        http="auto",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=75,
        # Nothing here reads the client's address, so X-Forwarded-For need not be parsed on
        # every request; and the response names no server software.
        proxy_headers=False,
        server_header=False,
    )
    if access_log:  # after the Config, which clears uvicorn.access's handlers
        _access_log(access_log)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets=None):  # the socket is already listening; tell whoever waits
        await original_startup(sockets=sockets)
        print(f"prodml serve: listening on {url}", flush=True)
        if port_file:
            tmp = Path(port_file).with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": port, "url": url, "pid": os.getpid()}))
            tmp.replace(port_file)

    server.startup = startup
    return server


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    registry, error = _load(args)
    if registry is None:
        print(error, file=sys.stderr)
        return 2
    # The loaded models are hundreds of thousands of long-lived Python objects (TensorFlow's
    # graphs and functions). Freezing them out of the garbage collector's generations keeps a
    # full collection, which every few thousand requests' allocations trigger, from walking
    # them all while requests wait.
    gc.freeze()
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"prodml serve: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    url = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{port}"
    server = _server(registry, url, port, args.port_file, args.access_log)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal: end cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[sock])
    except (SystemExit, KeyboardInterrupt):
        pass
    print("prodml serve: stopped", flush=True)
    return 0
