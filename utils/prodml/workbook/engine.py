"""The one way the workbook executes a notebook: a papermill engine with limits.

``prodml run`` (through ``papermill.execute_notebook(engine_name="prodml")``) and ``prodml
grade`` (through :func:`execute`) both run notebooks with :class:`LimitedEngine`, papermill's
nbclient engine plus what the workbook needs, as papermill's engines are meant to be extended:

* each cell's status is recorded as it happens (papermill's ``cell_start`` /
  ``cell_exception`` / ``cell_complete``, in ``cell.metadata.papermill``), and why a run
  stopped early in ``nb.metadata.prodml`` (``stopped``, ``stopped_at``: the cell index);
* ``keep_going``: a failing cell does not stop the run (grading: later checks still score);
  otherwise the first failure stops it, as papermill does;
* :class:`Limits`: a cell time limit, a total time limit, a memory limit and an output limit
  per cell. The memory limit is the kernel's ``RLIMIT_DATA`` (its heap and private writable
  mappings: a larger allocation raises ``MemoryError``; ``RLIMIT_AS`` would count the
  gigabytes of address space TensorFlow reserves without using them), plus, on Linux, a
  watchdog summing the resident memory of the kernel and every process it started
  (``/proc``). Output beyond the per-cell limit is dropped and stops the run, as nbgrader's
  ``LimitOutput`` keeps notebooks small, and a stored stream keeps at most
  :data:`MAX_LINES` lines. When a limit is hit the kernel is killed (never merely
  interrupted, so a run cannot hang);
* the kernel talks over IPC (no TCP on loopback, so no "running over TCP without encryption"
  warning), with the environment given and its own standard error (TensorFlow's C++ start-up
  lines, a crash's last words) in a log file rather than the terminal.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

__all__ = ["ENGINE", "MAX_LINES", "Execution", "LimitedEngine", "Limits", "execute"]

ENGINE = "prodml"  #: the engine's name for ``papermill.execute_notebook(engine_name=...)``
MAX_LINES = 1000  #: lines kept per stream output (nbgrader's LimitOutput)


@dataclass(frozen=True)
class Limits:
    """What a run may use; None: no limit. Seconds, GiB and characters of output per cell."""

    cell_timeout: float | None = None
    total_timeout: float | None = None
    memory_gib: float | None = None
    max_output: int | None = None
    #: stop (without a limit being hit) after the first cell whose error matches this pattern
    stop_on: str | None = None


@dataclass
class Execution:
    """An executed notebook, why it stopped early ("" if it did not), in which cell, and
    whether a limit stopped it (rather than ``Limits.stop_on``)."""

    nb: object
    stopped: str = ""
    stopped_at: int | None = None
    limit: bool = False


def _kernel_manager_class(stderr=None, preexec_fn=None):
    """A Jupyter kernel manager whose kernels talk over IPC (Unix sockets in the runtime folder),
    send their standard error to ``stderr`` (an open file) and start with ``preexec_fn``."""
    # nbclient awaits its kernel client: the manager must be the asynchronous one, or a
    # blocking client's poll for output starves the event loop and a cell timeout never fires
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc" if os.name == "posix" else "tcp"  # Windows has no IPC transport

        @default("ip")
        def _default_ip(self):
            # jupyter_client's default IPC path is relative ("kernel-ipc"): a kernel started in
            # another folder would listen where the client never looks; one absolute, unique
            # path per kernel in Jupyter's runtime folder
            if self.transport != "ipc":
                return "127.0.0.1"
            from jupyter_core.paths import jupyter_runtime_dir

            folder = jupyter_runtime_dir()
            os.makedirs(folder, exist_ok=True)
            return os.path.join(folder, f"kernel-{uuid.uuid4().hex[:12]}-ipc")

        async def start_kernel(self, **kw):  # kw: Popen arguments, as jupyter_client documents
            if stderr is not None:
                kw.setdefault("stderr", stderr)
            if preexec_fn is not None:
                kw.setdefault("preexec_fn", preexec_fn)
            return await super().start_kernel(**kw)

    return IPCKernelManager


def _process(client):
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    return provisioner, getattr(provisioner, "process", None)


def kill(client) -> None:
    """Kill the kernel and everything it started (its own process group), without asking."""
    provisioner, process = _process(client)
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(getattr(provisioner, "pgid", None) or process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        process.kill()


def resident_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux ``/proc``; 0 elsewhere)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    page, total = os.sysconf("SC_PAGE_SIZE"), 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def _limit_memory(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


class _LimitedClient(PapermillNotebookClient):
    """papermill's client, executing cells under :class:`Limits` (see the module's docs)."""

    def setup_limits(self, limits: Limits, keep_going: bool) -> None:
        self.limits, self.keep_going = limits, keep_going
        self.stopped, self.stopped_at, self.limit_hit = "", None, ""
        self.stop_on_hit = False
        self._cell_index, self._cell_chars = -1, 0
        total = limits.total_timeout
        self.deadline = None if total is None else time.monotonic() + total

    def output(self, outs, msg, display_id, cell_index):
        limit = self.limits.max_output
        if limit is not None:
            if cell_index != self._cell_index:
                self._cell_index, self._cell_chars = cell_index, 0
            content = msg.get("content", {})
            self._cell_chars += len(content.get("text", "")) + sum(
                len(str(v)) for v in content.get("data", {}).values()
            )
            self._cell_chars += sum(len(line) for line in content.get("traceback", []))
            if self._cell_chars > limit:
                if not self.limit_hit:
                    self.limit_hit = (
                        f"a cell's output exceeded the output limit of {limit:,} characters"
                    )
                    kill(self)
                return None
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None and out.get("output_type") == "stream":
            lines = out.text.splitlines(keepends=True)
            if len(lines) > MAX_LINES:
                out.text = "".join(lines[:MAX_LINES]) + "... (output truncated)\n"
        return out

    def papermill_execute_cells(self):
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code":
                continue
            if not self._run_cell(index, cell):
                break

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _run_cell(self, index: int, cell) -> bool:
        """Execute one cell; False when the run must stop."""
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        remaining, total = self._time_left(), self.limits.total_timeout
        if remaining is not None and remaining <= 0:
            self.stopped = f"the total time limit of {total:g} s was reached"
            return False
        cell_limit = self.limits.cell_timeout
        allowed = [t for t in (cell_limit, remaining) if t is not None]
        self.timeout = max(1, int(min(allowed) + 0.999)) if allowed else None
        self.nb_man.cell_start(cell, index)
        try:
            self.execute_cell(cell, index)
        except CellExecutionError as error:
            self.nb_man.cell_exception(cell, cell_index=index, exception=error)
            return False
        except CellTimeoutError:
            over_total = remaining is not None and (cell_limit is None or remaining < cell_limit)
            which = f"the total time limit of {total:g} s was reached" if over_total else None
            self._stop(index, which or f"a cell exceeded the {cell_limit:g} s cell time limit")
            kill(self)
            raise
        except DeadKernelError:
            self._stop(index, "the kernel died")
            raise
        finally:
            self.nb_man.cell_complete(cell, cell_index=index)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            self.nb_man.cell_exception(cell, cell_index=index)
        wanted = self.limits.stop_on
        if wanted and any(
            re.search(wanted, f"{o.get('ename')}: {o.get('evalue')}") for o in errors
        ):
            self._stop(index, f"stopped after cell {index}, as asked ({wanted})")
            self.stop_on_hit = True
            return False
        if self.limit_hit or any(o.get("ename") == "MemoryError" for o in cell.get("outputs", [])):
            self._stop(index, self.limit_hit or "")
            return False
        return True

    def _stop(self, index: int, reason: str) -> None:
        self.stopped, self.stopped_at = reason, index


class LimitedEngine(NBClientEngine):
    """papermill's nbclient engine with :class:`Limits`, ``keep_going``, the kernel's
    environment (``kernel_env``) and standard error (``kernel_log``, a path)."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        limits: Limits | None = None,
        keep_going: bool = False,
        kernel_env: dict | None = None,
        kernel_log: str | Path | None = None,
        kernel_cwd: str | Path | None = None,
        start_timeout: float = 120,
        **kwargs,
    ):
        limits = limits or Limits(cell_timeout=kwargs.pop("execution_timeout", None))
        kwargs.pop("execution_timeout", None)
        kwargs.pop("input_path", None)
        memory = None if limits.memory_gib is None else int(limits.memory_gib * 2**30)
        stderr = open(kernel_log, "ab") if kernel_log else None  # noqa: SIM115 - the kernel's life
        manager = _kernel_manager_class(stderr, memory and _limit_memory(memory))
        client = _LimitedClient(
            nb_man,
            kernel_name=kernel_name,
            kernel_manager_class=manager,
            allow_errors=keep_going,
            startup_timeout=start_timeout,
            shutdown_kernel="immediate" if keep_going else "graceful",
            **kwargs,
        )
        client.setup_limits(limits, keep_going)
        start = {"env": kernel_env} if kernel_env is not None else {}
        if kernel_cwd is not None:
            start["cwd"] = str(kernel_cwd)
        done = threading.Event()
        over_memory = threading.Event()
        watchdog = threading.Thread(
            target=_watch, args=(client, memory, done, over_memory), daemon=True
        )
        watchdog.start()
        try:
            return client.execute(**start)
        finally:
            done.set()
            if keep_going:
                kill(client)
            if stderr is not None:
                stderr.close()
            _record(nb_man.nb, client, limits, over_memory.is_set())


def _watch(client, memory: int | None, done: threading.Event, over: threading.Event) -> None:
    """Every 0.2 s: the memory of the kernel's process tree; and, whatever nbclient waits on,
    the kernel dies 30 s after the total time limit."""
    while not done.wait(0.2):
        _, process = _process(client)
        alive = process is not None and process.poll() is None
        if memory and alive and Path("/proc").is_dir() and resident_bytes(process.pid) > memory:
            over.set()
            kill(client)
        if client.deadline is not None and time.monotonic() > client.deadline + 30:
            kill(client)


def _record(nb, client, limits: Limits, over_memory: bool) -> None:
    """Why the run stopped, in ``nb.metadata.prodml`` (``stopped``, ``stopped_at``)."""
    stopped, at = client.stopped, client.stopped_at
    if client.limit_hit:
        stopped = client.limit_hit
    elif over_memory or (
        at is not None and any(o.get("ename") == "MemoryError" for o in nb.cells[at].outputs)
    ):
        stopped = f"the memory limit of {limits.memory_gib:g} GiB was exceeded"
    if stopped or at is not None:
        limit = not client.stop_on_hit
        nb.metadata.setdefault("prodml", {}).update(stopped=stopped, stopped_at=at, limit=limit)


papermill_engines.register(ENGINE, LimitedEngine)


def execute(
    nb,
    folder: str | Path,
    env: dict,
    limits: Limits,
    *,
    keep_going: bool = True,
    kernel_log: str | Path | None = None,
) -> Execution:
    """Execute ``nb`` (a parameterised notebook node) with :class:`LimitedEngine` in a fresh
    ``python3`` kernel started in ``folder`` with environment ``env``; a failing cell does not
    stop the run when ``keep_going``. Never raises for what the notebook does: a timeout, a
    dead kernel or a kernel that does not start comes back as :attr:`Execution.stopped`."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    stopped = ""
    try:
        LimitedEngine.execute_notebook(  # executes nb in place
            nb,
            "python3",
            progress_bar=False,
            autosave_cell_every=0,
            limits=limits,
            keep_going=keep_going,
            kernel_env=env,
            kernel_log=kernel_log,
            kernel_cwd=folder,
        )
    except CellTimeoutError:
        pass  # recorded in nb.metadata.prodml
    except DeadKernelError:  # in a cell (recorded), or while starting or shutting down
        stopped = "the kernel died"
    except RuntimeError as error:  # the kernel did not start
        stopped = f"the kernel did not start: {str(error).strip().splitlines()[0]}"
    found = nb.metadata.get("prodml", {})
    limit = bool(found.get("limit", bool(stopped)))
    return Execution(nb, found.get("stopped") or stopped, found.get("stopped_at"), limit)
