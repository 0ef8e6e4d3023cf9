"""Plumbing for notebook 04's multi-process clusters: a loopback-only network, a launcher.

TensorFlow's gRPC server listens on every interface whatever the cluster spec names, and runs
any graph it is sent. So the tasks of a cluster run inside a new network namespace whose only
interface is loopback (:func:`loopback_namespace`, Linux ``unshare --net``), where nothing
outside the machine can reach their ports.

:func:`run_cluster` starts one process per ``TF_CONFIG`` inside one namespace, under a small
supervisor (this module, run as ``python -m prodml.distributed PLAN``) that lives in the
namespace too, so that it can also kill one task mid-run and start it again at the same
address (a worker failure, as a scheduler would restart it). The launch always ends with every
process it started gone, whatever happens (an error, a timeout, an interrupted cell), and
reports what happened as a :class:`Launch`.

    launch = run_cluster("worker.py", configs, job, out, loopback_namespace(),
                         kill=Kill(task=1, when=f"{out}/ckpt-40.index"))
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

__all__ = ["Kill", "Launch", "free_ports", "loopback_namespace", "run_cluster"]


@dataclass
class Kill:
    """Kill task ``task`` (its position in the configs) with SIGKILL once the file ``when``
    exists; start it again ``restart_after_s`` seconds later (None: leave it dead)."""

    task: int
    when: str
    restart_after_s: float | None = None


@dataclass
class Launch:
    """What a :func:`run_cluster` launch did.

    ``pids``: every process id started, per task (a restarted task has two); ``returncodes``:
    each task's last exit status (None: still running at the end, then killed; -9: SIGKILL);
    ``events``: what the supervisor did, in order, with seconds since the start; ``seconds``:
    the launch's wall time; ``logs``: each task's output file.
    """

    pids: dict[int, list[int]]
    returncodes: dict[int, int | None]
    events: list[dict]
    seconds: float
    logs: dict[int, str] = field(default_factory=dict)

    def log(self, task: int, chars: int = 3000) -> str:
        """The last ``chars`` characters of a task's output."""
        path = Path(self.logs[task])
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def loopback_namespace() -> list[str] | None:
    """A command prefix running a program in a new network namespace with only loopback, or
    None where none can be made (not Linux, no ``unshare``/``ip``, not permitted)."""
    if sys.platform != "linux" or not (shutil.which("unshare") and shutil.which("ip")):
        return None
    for prefix in (["unshare", "--net", "--map-root-user"], ["unshare", "--net"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", "ip link set lo up"], capture_output=True, text=True
        )
        if probe.returncode == 0:
            return prefix
    return None


def free_ports(n: int) -> list[int]:
    """``n`` ephemeral loopback ports free now (inside a namespace any fixed ports will do)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_cluster(
    program: str | os.PathLike,
    tf_configs: list[dict],
    job: dict,
    out: str | os.PathLike,
    namespace: list[str] | None = None,
    *,
    timeout: float = 600,
    until: list[int] | None = None,
    kill: Kill | None = None,
) -> Launch:
    """Run ``python program JOB`` once per ``TF_CONFIG`` (JOB: ``job`` as JSON) and wait.

    The launch ends when the tasks in ``until`` (default: all) have exited; the others (servers
    that never exit, such as parameter servers) are then stopped. ``out`` receives each task's
    output (``log-<i>.txt``) and the supervisor's plan and report. Raises ``TimeoutError``
    after ``timeout`` seconds, having killed every process.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "tasks": [
            {
                "argv": [sys.executable, str(Path(program).resolve()), json.dumps(job)],
                "env": {"TF_CONFIG": json.dumps(config)},
                "log": str(out / f"log-{i}.txt"),
            }
            for i, config in enumerate(tf_configs)
        ],
        "until": list(range(len(tf_configs))) if until is None else until,
        "kill": asdict(kill) if kill else None,
        "report": str(out / "launch.json"),
        "loopback_up": bool(namespace),
    }
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    Path(plan["report"]).unlink(missing_ok=True)
    command = [*(namespace or []), sys.executable, "-m", "prodml.distributed", str(plan_path)]
    cwd = Path(program).resolve().parent  # the program imports the modules beside it
    started = time.perf_counter()
    supervisor = subprocess.Popen(command, cwd=cwd, start_new_session=True)
    try:
        supervisor.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(
            f"the cluster did not finish within {timeout} s (logs in {out})"
        ) from None
    finally:
        _stop_group(supervisor, plan["report"])
    report = json.loads(Path(plan["report"]).read_text())
    return Launch(
        pids={int(k): v for k, v in report["pids"].items()},
        returncodes={int(k): v for k, v in report["returncodes"].items()},
        events=report["events"],
        seconds=time.perf_counter() - started,
        logs={i: t["log"] for i, t in enumerate(plan["tasks"])},
    )


def _stop_group(supervisor: subprocess.Popen, report: str) -> None:
    """Kill the supervisor's process group, then any task that left it."""
    if supervisor.poll() is None:
        os.killpg(supervisor.pid, signal.SIGKILL)
    supervisor.wait()
    pids = []
    if Path(report).exists():
        pids = [p for ps in json.loads(Path(report).read_text())["pids"].values() for p in ps]
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                process.kill()
        except psutil.NoSuchProcess:
            pass


# The supervisor: runs inside the namespace, starts the tasks, kills and restarts one.


class _Supervisor:
    def __init__(self, plan: dict):
        self.plan = plan
        self.started = time.monotonic()
        self.processes: dict[int, subprocess.Popen] = {}
        self.pids: dict[int, list[int]] = {}
        self.events: list[dict] = []

    def event(self, what: str, task: int, **details) -> None:
        self.events.append(
            {"t": round(time.monotonic() - self.started, 3), "event": what, "task": task, **details}
        )
        self.write()

    def write(self) -> None:
        returncodes = {i: p.poll() for i, p in self.processes.items()}
        report = {"pids": self.pids, "returncodes": returncodes, "events": self.events}
        tmp = self.plan["report"] + ".tmp"
        Path(tmp).write_text(json.dumps(report, indent=1))
        os.replace(tmp, self.plan["report"])

    def start(self, i: int) -> None:
        task = self.plan["tasks"][i]
        with open(task["log"], "ab") as log:
            process = subprocess.Popen(
                task["argv"], env={**os.environ, **task["env"]}, stdout=log, stderr=log
            )
        self.processes[i] = process
        self.pids.setdefault(i, []).append(process.pid)
        self.event("started", i, pid=process.pid)

    def run(self) -> None:
        for i in range(len(self.plan["tasks"])):
            self.start(i)
        kill, restart_at = self.plan["kill"], None
        while any(self.processes[i].poll() is None for i in self.plan["until"]):
            if kill and os.path.exists(kill["when"]):
                self.processes[kill["task"]].kill()
                self.processes[kill["task"]].wait()
                self.event("killed", kill["task"], pid=self.processes[kill["task"]].pid)
                if kill["restart_after_s"] is not None:
                    restart_at = time.monotonic() + kill["restart_after_s"]
                kill = None
            if restart_at is not None and time.monotonic() >= restart_at:
                self.start(self.plan["kill"]["task"])
                restart_at = None
            time.sleep(0.02)
        for i, process in self.processes.items():
            if process.poll() is None:
                process.terminate()
                self.event("stopped", i, pid=process.pid)
        for process in self.processes.values():
            process.wait()
        self.event("done", -1)


def _supervise(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    if plan["loopback_up"]:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    supervisor = _Supervisor(plan)
    try:
        supervisor.run()
    finally:
        for process in supervisor.processes.values():
            if process.poll() is None:
                process.kill()
        supervisor.write()


if __name__ == "__main__":
    _supervise(sys.argv[1])
