"""The local prediction service: ``prodml serve`` and helpers to start and stop it.

    with prodml.serving.start({"babyweight": export_dir}) as server:
        requests.post(f"{server.url}/v1/models/babyweight:predict", json={"instances": [...]})

The server speaks the TF Serving REST API and Google Cloud's ``ml v1`` and ``aiplatform v1``
predict routes (see :mod:`prodml.serving.app`), so notebooks use the real client libraries.
Versions can carry names: ``start({"babyweight": base}, version_name=["dnn=1"])`` answers
``projects/<p>/models/babyweight/versions/dnn`` (ML Engine) and ``labels/dnn`` (TF Serving).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prodml import config

__all__ = ["Server", "start"]


class Server:
    """A running ``prodml serve`` subprocess: ``.url``, ``.port``, ``.log_path``, ``.stop()``."""

    def __init__(self, process: subprocess.Popen, url: str, port: int, log_path: Path):
        self.process, self.url, self.port, self.log_path = process, url, port, log_path

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"<prodml serve {self.url} pid {self.process.pid} {state}; log {self.log_path}>"

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (graceful: requests in flight are answered), then SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _source(path: str | os.PathLike) -> str:
    """An export folder as an absolute path; a registered version (``models:/...``) as it is,
    checked here first so that a wrong alias or version raises in the caller, naming the
    registered ones (``prodml.tracking.ModelNotFound``)."""
    if isinstance(path, str) and path.startswith("models:/"):
        from prodml.tracking import resolve

        resolve(path)
        return path
    return str(Path(path).expanduser().resolve())


def _command(models: dict, host: str, port: int, port_file: Path, opts: dict) -> list[str]:
    """The ``prodml serve`` command line for :func:`start`'s arguments."""
    cmd = [sys.executable, "-m", "prodml.cli", "serve", "--host", host, "--port", str(port),
           "--port-file", str(port_file)]  # fmt: skip
    for name, sources in models.items():
        for source in sources if isinstance(sources, list | tuple) else [sources]:
            cmd += ["--model", f"{name}={_source(source)}"]
    for key, value in opts.items():
        for one in value if isinstance(value, list | tuple) else [value]:
            cmd += [f"--{key.replace('_', '-')}", str(one)]
    return cmd


def start(
    models: dict[str, str | os.PathLike | list],
    port: int = 0,
    host: str = "127.0.0.1",
    timeout: float = 180,
    **opts,
) -> Server:
    """Launch ``prodml serve`` for ``models`` (name -> export dir) and wait until it answers.

    A model's source may be a registered version, ``models:/babyweight@champion`` (or
    ``models:/babyweight/3``), or a list of sources served as one model's versions, e.g.
    ``{"babyweight": ["models:/babyweight@champion", "models:/babyweight@challenger"]}``
    for a canary (each alias becomes a version name; the highest version takes the traffic
    until ``trafficSplit`` says otherwise).

    ``port=0`` picks a free port. ``opts`` are the command's other options with underscores,
    e.g. ``max_batch_size=64, batch_timeout_ms=1``; a list repeats its option
    (``version_name=["dnn=1", "wide=2"]``). The server's log goes to
    ``<run folder>/logs/serve-<pid>.log``.
    """
    if not models:
        raise ValueError("start() needs at least one model: {'name': export_dir}")
    logs = config.run_path("logs", "x").parent
    stamp = f"{os.getpid()}-{time.time_ns()}"
    port_file = logs / f"serve-{stamp}.port.json"
    log_path = logs / f"serve-{stamp}.log"
    cmd = _command(models, host, port, port_file, opts)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    first = next(iter(models))
    info = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"prodml serve exited with status {process.returncode}; log {log_path}:\n"
                + _log_tail(log_path)
            )
        if info is None and port_file.is_file():
            info = json.loads(port_file.read_text())
        if info is not None:
            try:
                with urllib.request.urlopen(f"{info['url']}/v1/models/{first}", timeout=5) as r:
                    if r.status == 200:
                        port_file.unlink(missing_ok=True)
                        return Server(process, info["url"], info["port"], log_path)
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise TimeoutError(
        f"prodml serve did not answer within {timeout} s; log {log_path}:\n" + _log_tail(log_path)
    )
