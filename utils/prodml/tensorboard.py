"""TensorBoard for any log folder, on 127.0.0.1; and the profiler's analyses read from Python.

    board = prodml.tensorboard.start(logdir)        # TensorBoard serving logdir, as a subprocess
    board.url                                      # "http://127.0.0.1:<port>/"
    board.page("profile")                          # the Profile tab (scalars, projector, ...)
    board.stop()                                   # or: with prodml.tensorboard.start(...) as board:

``logdir`` is any folder TensorBoard reads: Keras' ``TensorBoard`` callback logs (scalars,
graphs, the Embedding Projector's ``projector_config.pbtxt``), ``tf.summary`` files, or the
traces ``tf.profiler.experimental`` writes under ``plugins/profile/``. The Profile tab needs
the ``profile`` extra (``tensorboard-plugin-profile``, i.e. xprof).

:func:`step_breakdown` reads the newest trace in a log folder through xprof's own converter
(the same one the Profile tab's *input pipeline analyzer* calls) and returns its per-step table
(step time, waiting for input, computing, ...) as a DataFrame.

:func:`write_projector` writes an embedding as the Embedding Projector reads it (vectors and
metadata as TSV files, and the Projector tab's ``projector_config.pbtxt``).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from prodml import config, environments

__all__ = ["TensorBoard", "start", "profile_sessions", "step_breakdown", "write_projector"]


class TensorBoard:
    """A running TensorBoard subprocess: ``.url``, ``.port``, ``.logdir``, ``.log_path``,
    ``.page(plugin)``, ``.stop()``; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen, url: str, port: int, logdir: Path, log: Path):
        self.process, self.url, self.port, self.logdir, self.log_path = (
            process,
            url,
            port,
            logdir,
            log,
        )

    def page(self, plugin: str = "") -> str:
        """The address of one dashboard, e.g. ``page("profile")`` or ``page("projector")``."""
        return f"{self.url}#{plugin}" if plugin else self.url

    def plugins(self) -> list[str]:
        """The dashboards this TensorBoard offers for its log folder (name, when active)."""
        with urllib.request.urlopen(f"{self.url}data/plugins_listing", timeout=30) as answer:
            listing = json.load(answer)
        return sorted(name for name, info in listing.items() if info.get("enabled", True))

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def __enter__(self) -> TensorBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TensorBoard({self.url}, logdir={self.logdir})"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(
    logdir: str | os.PathLike, port: int = 0, host: str = "127.0.0.1", timeout: float = 120
) -> TensorBoard:
    """Start TensorBoard on ``logdir`` and wait until it answers; ``port=0`` picks a free port.

    It listens on ``host`` only (loopback by default) and stops at ``stop()``, at the end of a
    ``with`` block, or when this Python process exits. Its output goes to
    ``<run folder>/logs/tensorboard-<pid>.log``. Raises ``FileNotFoundError`` for a missing
    folder, ``RuntimeError`` if TensorBoard exits and ``TimeoutError`` if it never answers.
    """
    logdir = Path(logdir).expanduser().resolve()
    if not logdir.is_dir():
        raise FileNotFoundError(f"no log folder {logdir} for TensorBoard to serve")
    port = port or _free_port(host)
    log_path = config.run_path("logs", f"tensorboard-{os.getpid()}-{time.time_ns()}.log")
    command = [_profile_python(), "-m", "tensorboard.main", "--logdir", str(logdir),
               "--host", host, "--port", str(port), "--reload_interval", "2"]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://{host}:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"TensorBoard exited with status {process.returncode}; log {log_path}:\n"
                + log_path.read_text(errors="replace")[-2000:]
            )
        try:
            with urllib.request.urlopen(f"{url}data/logdir", timeout=5) as answer:
                if answer.status == 200:
                    board = TensorBoard(process, url, port, logdir, log_path)
                    atexit.register(board.stop)  # a kernel or script that ends stops it too
                    return board
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise TimeoutError(f"TensorBoard did not answer within {timeout} s; log {log_path}")


def _profile_python() -> str:
    """The Python that has the profile plugin (xprof): on Colab the plugin lives in the separate
    environment beside the kernel's (``[tool.prodml] colab-separate``: its xprof would replace
    Colab's absl-py and urllib3), locally this interpreter. Plain TensorBoard when neither has it.
    """
    try:
        return environments.python_for("xprof")
    except FileNotFoundError:
        return sys.executable


def _input_pipeline_tables(paths: list[str]) -> str:
    """xprof's input pipeline analysis of the trace files, as its JSON text: in this process when
    xprof imports here, else in the Python that has it (:func:`_profile_python`)."""
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        raw_to_tool_data = None
    if raw_to_tool_data is not None:
        data, _ = raw_to_tool_data.xspace_to_tool_data(paths, "input_pipeline_analyzer", {})
        return data.decode() if isinstance(data, bytes) else (data or "")
    python = _profile_python()
    if python == sys.executable:
        raise ImportError(
            "reading a profile needs xprof: pip install 'prodml[profile]' "
            "(tensorboard-plugin-profile)"
        )
    done = subprocess.run(
        [python, "-m", "prodml.tensorboard", *paths], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"xprof failed in {python}:\n{done.stderr[-2000:]}")
    return done.stdout


def profile_sessions(logdir: str | os.PathLike) -> list[Path]:
    """The profiler's sessions in ``logdir`` (``plugins/profile/<time>/``), oldest first."""
    root = Path(logdir) / "plugins" / "profile"
    return sorted(p for p in root.glob("*") if p.is_dir() and any(p.glob("*.xplane.pb")))


def step_breakdown(logdir: str | os.PathLike) -> pd.DataFrame:
    """The newest profile in ``logdir`` as the input pipeline analyzer sees it: one row per
    step marked with ``tf.profiler.experimental.Trace(..., step_num=n, _r=1)``, one column of
    milliseconds per part of the step (``Step time``, ``Input``, ``Host compute``, ...).

    ``.attrs["conclusion"]`` holds the analyzer's own sentence ("Your program is HIGHLY
    input-bound because ..."). Needs the ``profile`` extra (xprof).
    """
    sessions = profile_sessions(logdir)
    if not sessions:
        raise FileNotFoundError(f"no profiler trace (plugins/profile/*/*.xplane.pb) in {logdir}")
    paths = [str(p) for p in sorted(sessions[-1].glob("*.xplane.pb"))]
    data = _input_pipeline_tables(paths)
    if not data:
        raise ValueError(f"xprof could not analyse the trace in {sessions[-1]}")
    tables = json.loads(data)
    table = next(t for t in tables if any(c.get("id") == "stepTimeMs" for c in t.get("cols", [])))
    labels = [c["label"] for c in table["cols"]]
    rows = [[cell.get("v") for cell in row["c"]] for row in table["rows"]]
    frame = pd.DataFrame(rows, columns=labels).drop(columns=["tooltip"], errors="ignore")
    frame = frame.set_index(labels[0])
    frame.attrs["conclusion"] = table.get("p", {}).get("input_conclusion", "")
    if frame.empty:
        raise ValueError(
            f"the trace in {sessions[-1]} has no marked steps: wrap each step (input included) "
            "in tf.profiler.experimental.Trace('train', step_num=n, _r=1)"
        )
    return frame


def write_projector(
    logdir: str | os.PathLike, name: str, vectors, metadata: pd.DataFrame | None = None
) -> dict[str, Path]:
    """Write an embedding for the Embedding Projector: ``<name>_vectors.tsv`` (one row of
    tab-separated numbers per vocabulary entry, no header), ``<name>_metadata.tsv`` (one row per
    entry; a header row when there is more than one column, as the Projector reads it) and the
    ``projector_config.pbtxt`` that points TensorBoard's Projector tab at them (other embeddings
    already in it are kept). The two TSV files are what projector.tensorflow.org loads too.
    ``logdir`` is TensorBoard's log folder (the Projector reads a config at its root) or one of
    its runs. Returns the three paths. Refuses vectors that are not a finite 2-D array, metadata
    of another length, and a value holding a tab or a newline (it would shift the columns)."""
    import numpy as np
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    table = np.asarray(vectors, dtype="float64")
    if table.ndim != 2 or not table.size or not np.isfinite(table).all():
        raise ValueError(f"{name}: vectors must be a finite 2-D array, got shape {table.shape}")
    folder = Path(logdir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"vectors": folder / f"{name}_vectors.tsv", "config": folder / "projector_config.pbtxt"}
    np.savetxt(paths["vectors"], table, delimiter="\t", fmt="%.6g")
    config = projector.ProjectorConfig()
    if paths["config"].exists():
        text_format.Parse(paths["config"].read_text(), config)
    kept = [e for e in config.embeddings if e.tensor_name != name]
    del config.embeddings[:]
    config.embeddings.extend(kept)
    embedding = config.embeddings.add(tensor_name=name, tensor_path=paths["vectors"].name)
    if metadata is not None:
        paths["metadata"] = folder / f"{name}_metadata.tsv"
        _write_metadata(paths["metadata"], metadata, len(table))
        embedding.metadata_path = paths["metadata"].name
    paths["config"].write_text(text_format.MessageToString(config))
    return paths


def _write_metadata(path: Path, metadata: pd.DataFrame, rows: int) -> None:
    if len(metadata) != rows:
        raise ValueError(f"{path.name}: {len(metadata)} metadata rows for {rows} vectors")
    text = metadata.astype(str).replace({"nan": ""})
    for column in text.columns:
        if text[column].str.contains(r"[\t\n\r]").any():
            raise ValueError(f"{path.name}: column {column!r} holds a tab or a line break")
    lines = ["\t".join(map(str, row)) for row in text.itertuples(index=False)]
    if len(text.columns) > 1:  # the Projector reads a single column without a header
        lines.insert(0, "\t".join(map(str, text.columns)))
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":  # python -m prodml.tensorboard TRACE...: the analysis as JSON (above)
    print(_input_pipeline_tables(sys.argv[1:]))
