"""The warehouse service's lifecycle, from a client's side: find it, start it, replace it, stop it.

One service per run folder, shared by every process that uses the folder (notebook kernels, Beam
workers, Airflow tasks, the grader). ``RUN_DIR/warehouse.json`` says where it listens; a process
that finds it answering (``GET /prodml/health`` naming this run folder's warehouse file) uses it.
Otherwise, holding ``RUN_DIR/warehouse.lock`` so that one process starts it, a stale entry is
cleared (a dead process, or one that stopped answering: stopped with SIGTERM, then SIGKILL) and a
new service is launched, detached from the process that launched it (it outlives a crashed
kernel; the next kernel reuses it). It logs to ``RUN_DIR/logs/warehouse.log`` and stops itself
when idle (``PRODML_WAREHOUSE_IDLE_SECONDS``, default 300) or when the run folder is deleted;
:class:`Session` starts it again, on the same port, for a client that outlived it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import requests

from prodml import config

__all__ = ["url", "ensure", "stop", "running", "log_path", "Session", "START_TIMEOUT"]

PORT_FILE = "warehouse.json"  # written by prodml.warehouse.server
LOCK_FILE = "warehouse.lock"
START_TIMEOUT = float(os.environ.get("PRODML_WAREHOUSE_START_TIMEOUT", "120"))
_known: dict[Path, str] = {}  # run folder -> URL, found or started by this process

# The detached launch: a short-lived Python starts the service in its own session and prints
# its pid, so the service is nobody's child (a grader's memory watch or a kernel's process group
# does not count it, and it outlives whoever started it).
_LAUNCH = (
    "import subprocess, sys; "
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, "
    "stdout=open(sys.argv[1], 'ab'), stderr=subprocess.STDOUT, start_new_session=True); "
    "print(p.pid)"
)


def _run_dir(run_dir) -> Path:
    return Path(run_dir).resolve() if run_dir is not None else config.settings().run_dir


def log_path(run_dir=None) -> Path:
    """Where the run folder's service logs."""
    return _run_dir(run_dir) / "logs" / "warehouse.log"


def _read(run_dir: Path) -> dict | None:
    try:
        info = json.loads((run_dir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and {"pid", "url"} <= set(info) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _healthy(info: dict, run_dir: Path, timeout: float = 5.0) -> bool:
    """Whether the service of ``info`` answers, as the one of this run folder's file."""
    try:
        with urllib.request.urlopen(f"{info['url']}/prodml/health", timeout=timeout) as answer:
            health = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return health.get("pid") == info["pid"] and health.get("warehouse") == str(
        run_dir / "warehouse.duckdb"
    )


def running(run_dir=None) -> dict | None:
    """The run folder's service (``pid``, ``port``, ``url``) if it is up and answering."""
    run_dir = _run_dir(run_dir)
    info = _read(run_dir)
    if info is None or not _alive(info["pid"]) or not _healthy(info, run_dir):
        return None
    return info


def _ours(pid: int, run_dir: Path) -> bool:
    """Whether ``pid`` is a warehouse service of this run folder (not a recycled pid)."""
    import psutil

    try:
        line = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False
    return "prodml.warehouse.server" in line and str(run_dir) in line


def _terminate(pid: int, timeout: float = 15) -> None:
    """SIGTERM (a stopped process is continued to receive it), then SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)


@contextlib.contextmanager
def _start_lock(run_dir: Path):
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # bounded: the holder is starting a service
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _launch(run_dir: Path, port: int) -> int:
    settings = config.settings()
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding prodml/
    env = {**os.environ, "PRODML_RUN_DIR": str(run_dir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    log = log_path(run_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    server = [sys.executable, "-m", "prodml.warehouse.server", "--run-dir", str(run_dir), "--port",
              str(port), "--project", settings.project, "--location", settings.location]  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _LAUNCH, str(log), *server], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.strip())


def _start(run_dir: Path, port: int) -> dict:
    log = log_path(run_dir)
    offset = log.stat().st_size if log.exists() else 0
    pid = _launch(run_dir, port)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = _read(run_dir)
        if info is not None and info["pid"] == pid and _healthy(info, run_dir):
            return info
        if not _alive(pid):
            text = (
                log.read_bytes()[offset:].decode(errors="replace").strip() if log.exists() else ""
            )
            if port and "cannot bind" in text:
                return _start(run_dir, 0)  # the old port is taken: any free one
            raise RuntimeError(
                f"the warehouse service for {run_dir} did not start; its log {log}:\n{text}"
            )
        time.sleep(0.05)
    _terminate(pid)
    raise TimeoutError(
        f"the warehouse service for {run_dir} did not answer within {START_TIMEOUT:.0f} s; log {log}:\n{_tail(log)}"
    )


def ensure(run_dir=None, port: int = 0) -> str:
    """The URL of the run folder's service, started (on ``port`` if free) when none answers."""
    run_dir = _run_dir(run_dir)
    info = running(run_dir)
    if info is None:
        failed = _read(run_dir)
        with _start_lock(run_dir):
            info = _read(run_dir)  # another process may have started one meanwhile
            if info is None or info == failed or not _healthy(info, run_dir):
                if info is not None and _alive(info["pid"]) and _ours(info["pid"], run_dir):
                    _terminate(info["pid"])  # alive but not answering: replace it
                (run_dir / PORT_FILE).unlink(missing_ok=True)
                info = _start(run_dir, port)
    _known[run_dir] = info["url"]
    return info["url"]


def url(run_dir=None) -> str:
    """The URL of the run folder's service: the one this process found, else :func:`ensure`."""
    run_dir = _run_dir(run_dir)
    return _known.get(run_dir) or ensure(run_dir)


def stop(run_dir=None, timeout: float = 15) -> bool:
    """Stop the run folder's service (requests in flight are answered first); True if one was
    running."""
    run_dir = _run_dir(run_dir)
    _known.pop(run_dir, None)
    info = _read(run_dir)
    if info is None or not _alive(info["pid"]) or not _ours(info["pid"], run_dir):
        return False
    _terminate(info["pid"], timeout)
    return True


def _refused(err: requests.ConnectionError) -> bool:
    """Whether the connection was refused (the request never reached a server)."""
    from urllib3.exceptions import NewConnectionError

    cause = err.args[0] if err.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError | ConnectionRefusedError)


class Session(requests.Session):
    """The HTTP session of a workbook client: talks to the run folder's service, and when the
    service has stopped (idle, or replaced) starts it again, on its old port if free, and
    retries the request that was refused. Proxy settings of the environment are ignored: the
    service is on this machine's loopback."""

    def __init__(self, run_dir: Path, origin: str):
        super().__init__()
        self.trust_env = False
        self.run_dir, self.origin, self.current = run_dir, origin, origin

    def request(self, method, url, *args, **kwargs):
        if self.current != self.origin and url.startswith(self.origin):
            url = self.current + url[len(self.origin) :]
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.ConnectionError as err:
            if not _refused(err):
                raise
        port = int(self.current.rsplit(":", 1)[1])
        new = ensure(self.run_dir, port=port)
        url, self.current = new + url[len(self.current) :], new
        return super().request(method, url, *args, **kwargs)
