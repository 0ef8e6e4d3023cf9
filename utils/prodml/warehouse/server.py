"""The warehouse service process: one per run folder, owning its DuckDB file.

    python -m prodml.warehouse.server --run-dir RUN_DIR [--port 0] [--idle 300]

Opens ``RUN_DIR/warehouse.duckdb`` (the only process that does), serves BigQuery's REST API
(:mod:`~prodml.warehouse.rest`) with uvicorn on 127.0.0.1, and once listening writes
``RUN_DIR/warehouse.json`` (``pid``, ``port``, ``url``, ``warehouse``) for every process of the
run folder to find it (:mod:`~prodml.warehouse.service` starts and finds it). It stops on
SIGTERM or SIGINT (requests in flight are answered), after ``--idle`` seconds without a request,
or when its run folder is deleted; on the way out it removes the port file if it is still its
own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

__all__ = ["PORT_FILE", "DEFAULT_IDLE", "main"]

PORT_FILE = "warehouse.json"
DEFAULT_IDLE = float(os.environ.get("PRODML_WAREHOUSE_IDLE_SECONDS", "300"))


class Activity:
    """ASGI middleware: when the last request ended, and how many are in flight."""

    def __init__(self, app):
        self.app, self.last, self.busy = app, time.monotonic(), 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.busy += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.busy -= 1
            self.last = time.monotonic()


def _mine(port_file: Path) -> bool:
    try:
        return json.loads(port_file.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError):
        return False


async def _watch(server, activity: Activity, run_dir: Path, port_file: Path, idle: float) -> None:
    """Stop the server when idle, or when the run folder (or our port file) is gone."""
    while not server.should_exit:
        await asyncio.sleep(min(1.0, idle / 4))
        if activity.busy:
            continue
        idle_for = time.monotonic() - activity.last
        if idle_for > idle:
            print(f"prodml warehouse: idle for {idle_for:.0f} s, stopping", flush=True)
            server.should_exit = True
        elif server.started and (not run_dir.is_dir() or not _mine(port_file)):
            print("prodml warehouse: the run folder or its port file is gone, stopping", flush=True)
            server.should_exit = True


def _write_port_file(port_file: Path, info: dict) -> None:
    tmp = port_file.with_name(f".{port_file.name}.{os.getpid()}")
    tmp.write_text(json.dumps(info))
    tmp.replace(port_file)


def _open(run_dir: Path, location: str):
    import duckdb

    from prodml.warehouse.engine import Warehouse

    path = run_dir / "warehouse.duckdb"
    try:
        return Warehouse(path, location=location)
    except duckdb.IOException as err:
        print(f"prodml warehouse: cannot open {path}: {err}", file=sys.stderr, flush=True)
        return None


def _bind(host: str, port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"prodml warehouse: cannot bind {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return None
    return sock


def _server(app, warehouse, run_dir: Path, url: str, idle: float):
    """The uvicorn server of ``app``; once it listens, the port file says where."""
    import uvicorn

    port_file, holder = run_dir / PORT_FILE, {}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        info = {"pid": os.getpid(), "port": int(url.rsplit(":", 1)[1]), "url": url,
                "warehouse": str(warehouse.path)}  # fmt: skip
        _write_port_file(port_file, info)
        print(f"prodml warehouse: {warehouse.path} on {url}", flush=True)
        task = asyncio.create_task(
            _watch(holder["server"], holder["activity"], run_dir, port_file, idle)
        )
        yield
        task.cancel()

    activity = Activity(app(lifespan))
    # keep idle connections open longer than clients pool them (see prodml.serving.server)
    config = uvicorn.Config(activity, lifespan="on", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10, timeout_keep_alive=75,
                            proxy_headers=False, server_header=False)  # fmt: skip
    holder.update(server=uvicorn.Server(config), activity=activity)
    return holder["server"]


def serve(args) -> int:
    import warnings

    from prodml.warehouse.rest import create_app

    # DuckDB suggests its relation API for Arrow results; the engine fetches through a cursor on
    # purpose (a few rows come back as Python values, cheaper than Arrow's fixed costs)
    warnings.filterwarnings(
        "ignore", message="Arrow output on a DB-API result", category=UserWarning
    )
    run_dir = Path(args.run_dir).resolve()
    warehouse = _open(run_dir, args.location)
    sock = _bind(args.host, args.port) if warehouse is not None else None
    if sock is None:
        return 2
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    server = _server(
        lambda lifespan: create_app(warehouse, args.project, lifespan=lifespan),
        warehouse,
        run_dir,
        url,
        args.idle,
    )
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again: end cleanly
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[sock])
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        if _mine(run_dir / PORT_FILE):
            (run_dir / PORT_FILE).unlink(missing_ok=True)
        warehouse.close()
        print("prodml warehouse: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The service process's command line (``python -m prodml.warehouse.server``)."""
    parser = argparse.ArgumentParser(
        prog="python -m prodml.warehouse.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--run-dir", required=True, help="the run folder whose warehouse.duckdb to serve"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--idle",
        type=float,
        default=DEFAULT_IDLE,
        help="stop after this many seconds without a request",
    )
    parser.add_argument(
        "--project", default="local-project", help="the default project (projects.list)"
    )
    parser.add_argument("--location", default="US", help="the location datasets and jobs report")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
