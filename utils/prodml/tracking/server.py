"""``mlflow server`` on 127.0.0.1 over the run folder's store: the UI and the REST API.

    with prodml.tracking.start() as ui:
        print(ui.url)          # open it in a browser; MlflowClient(ui.url) talks to it

Like ``prodml.serving.start``: a subprocess whose log goes to ``<run folder>/logs/``, started
in the run folder (anything MLflow writes by default lands there), stopped with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prodml import config
from prodml.tracking.store import artifact_root, tracking_uri, use


class TrackingServer:
    """A running ``mlflow server``: ``.url``, ``.port``, ``.log_path``, ``.stop()``."""

    def __init__(self, process: subprocess.Popen, url: str, port: int, log_path: Path):
        self.process, self.url, self.port, self.log_path = process, url, port, log_path

    def __enter__(self) -> TrackingServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"<mlflow server {self.url} pid {self.process.pid} {state}; log {self.log_path}>"

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL after
        ``timeout``."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def _free_port(host: str) -> int:
    # `mlflow server` cannot report the port it bound, so one is picked here (the OS's choice
    # for port 0, released just before the server binds it).
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(port: int = 0, host: str = "127.0.0.1", timeout: float = 120) -> TrackingServer:
    """Start ``mlflow server`` on ``host`` (127.0.0.1) over this run's store and wait until it
    answers ``/health``. ``port=0`` picks a free port. Its log: ``<run folder>/logs/``."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        raise ValueError(
            f"PRODML_TRACKING_URI is {uri}: a tracking server is already configured, "
            "open it instead of starting one"
        )
    use(experiment=None)  # created at the current schema, or refused naming the migration
    port = port or _free_port(host)
    logs = config.run_path("logs", "x").parent
    log_path = logs / f"mlflow-server-{os.getpid()}-{time.time_ns()}.log"
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_bin) if mlflow_bin.is_file() else "mlflow", "server",
           "--backend-store-uri", uri, "--default-artifact-root", artifact_root(),
           "--artifacts-destination", artifact_root(),
           "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.settings().run_dir,
            start_new_session=True,  # its own process group: stop() ends the workers too
        )
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    server = TrackingServer(process, url, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with status {process.returncode}; log {log_path}:\n"
                + _tail(log_path)
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(
        f"mlflow server did not answer within {timeout} s; log {log_path}:\n" + _tail(log_path)
    )


__all__ = ["TrackingServer", "start"]
