"""``prodml run``: execute notebooks headlessly with papermill, in course order.

Each notebook runs at its default parameters (``--smoke``: ``SMOKE=True``, ``--full``:
``FULL=True``, plus any ``-p NAME VALUE``) with kernel ``python3`` and the workbook's one
notebook engine (:mod:`prodml.workbook.engine`, the one ``prodml grade`` runs too), its own folder as cwd (labs
import the app files beside them), ``PRODML_RUN_DIR`` set to the run folder and
``PRODML_NOTEBOOK`` to its stem. Executed copies, ``summary.json`` and ``summary.md`` (status,
seconds, the metrics each notebook passed to :func:`prodml.workbook.record`, the first line of
the error) go to the run folder, ``runs/<YYYYmmdd-HHMMSS>/`` by default. A failed notebook does
not stop the run; the exit status is non-zero if any failed.

``--prepare-only`` executes nothing: it writes parameter-injected copies to ``--out`` (with the
non-notebook files of each notebook's folder, so the copies run where they are) for
``pytest --nbval-lax``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

from prodml.workbook import engine, metrics_path, notebooks, services


def _repo() -> Path | None:
    try:
        return notebooks.find_repo()
    except FileNotFoundError:
        return None


def relative_paths(paths: list[Path], repo: Path | None) -> dict[Path, Path]:
    """Notebook -> where its copy goes: relative to the repo, else to the given path's parent."""
    result: dict[Path, Path] = {}
    for given in paths:
        resolved = given.resolve()
        if repo and resolved.is_relative_to(repo):
            base = repo
        else:
            base = resolved.parent
        for nb in notebooks.discover([given]):
            result.setdefault(nb, nb.relative_to(base))
    return dict(sorted(result.items(), key=lambda item: notebooks.course_key(item[0])))


def parameters(args: argparse.Namespace) -> dict[str, object]:
    params: dict[str, object] = {}
    if args.smoke:
        params["SMOKE"] = True
    if args.full:
        params["FULL"] = True
    for name, value in args.parameter or []:
        if not name.isidentifier():
            raise ValueError(f"-p {name} {value}: {name!r} is not a Python name")
        params[name] = notebooks.parse_value(value)
    return params


def copy_siblings(notebook_dirs: dict[Path, Path], out: Path, repo: Path | None) -> list[Path]:
    """Copy each notebook folder's other files (apps, pipelines) beside the prepared copies."""
    copied = []
    for folder, target in notebook_dirs.items():
        if repo and folder == repo:
            continue  # a notebook at the repo root: do not copy the whole checkout
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if (
                not path.is_file()
                or path.suffix == ".ipynb"
                or notebooks.skipped(rel)
                or path.resolve().is_relative_to(out.resolve())
            ):
                continue
            destination = out / target / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied.append(destination)
    return copied


def _metric_text(metrics: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )


def summary_markdown(results: list[dict]) -> str:
    lines = ["| notebook | status | seconds | metrics | error |", "|---|---|---:|---|---|"]
    for r in results:
        error = (r["error"] or "").replace("|", "\\|")
        metrics = _metric_text(r["metrics"]).replace("|", "\\|")
        lines.append(
            f"| {r['notebook']} | {r['status']} | {r['seconds']:.1f} | {metrics} | {error} |"
        )
    failed = sum(r["status"] != "ok" for r in results)
    lines.append("")
    lines.append(f"{len(results) - failed} ok, {failed} failed")
    return "\n".join(lines) + "\n"


def kernel_log_path(run_dir: Path, stem: str) -> Path:
    """Where ``prodml run`` keeps a notebook's kernel standard error (under the run folder)."""
    return Path(run_dir) / "logs" / f"{stem}.kernel.log"


def execute_one(notebook: Path, output: Path, params: dict, run_dir: Path, cell_timeout) -> dict:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    stem = notebook.stem
    saved = {k: os.environ.get(k) for k in ("PRODML_RUN_DIR", "PRODML_NOTEBOOK")}
    os.environ["PRODML_RUN_DIR"] = str(run_dir)
    os.environ["PRODML_NOTEBOOK"] = stem
    metrics_file = metrics_path(stem)
    metrics_file.unlink(missing_ok=True)  # a failed run must not report an earlier run's metrics
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    error = None
    kernel_log = kernel_log_path(run_dir, stem)
    kernel_log.parent.mkdir(parents=True, exist_ok=True)
    kernel_log.write_bytes(b"")
    try:
        papermill.execute_notebook(  # the workbook's one engine (prodml.workbook.engine)
            str(notebook),
            str(output),
            parameters=params,
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=True,
            engine_name=engine.ENGINE,
            limits=engine.Limits(cell_timeout=cell_timeout),
            kernel_log=kernel_log,
        )
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {notebooks.first_line(exc.evalue)}"
    except Exception as exc:  # timeouts, a dead kernel, an unreadable notebook
        error = f"{type(exc).__name__}: {notebooks.first_line(str(exc))}"
        error += f" (the kernel's standard error: {kernel_log})"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.monotonic() - started
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {
        "status": "failed" if error else "ok",
        "seconds": round(seconds, 2),
        "metrics": metrics,
        "error": error,
    }


def execute_all(targets: dict, params: dict, out: Path, cell_timeout) -> list[dict]:
    """Execute each notebook in turn into the run folder ``out``; their results. The services
    their kernels left in ``out`` (the local warehouse) are stopped at the end."""
    results = []
    try:
        for number, (notebook, rel) in enumerate(targets.items(), start=1):
            print(f"[{number}/{len(targets)}] {rel}", flush=True)
            result = execute_one(notebook, out / rel, params, out, cell_timeout)
            result = {"notebook": rel.as_posix(), "output": str(out / rel), **result}
            print(
                f"    {result['status']} in {result['seconds']:.1f} s"
                + (f": {result['error']}" if result["error"] else ""),
                flush=True,
            )
            results.append(result)
    finally:
        stopped = services.stop_services(out)
        if stopped:
            print(f"stopped the run folder's {', '.join(stopped)} service", flush=True)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks or folders (default: notebooks/ solutions/)"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="SMOKE=True: tiny sizes")
    size.add_argument("--full", action="store_true", help="FULL=True: production-like sizes")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a papermill parameter (numbers, True/False/None, else a string)",
    )
    parser.add_argument("--out", type=Path, help="run folder (default: <repo>/runs/<timestamp>)")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="write parameter-injected copies to --out without executing them",
    )
    parser.add_argument("--cell-timeout", type=float, help="seconds per cell (default: no limit)")


def main(args: argparse.Namespace) -> int:
    repo = _repo()
    paths = args.paths or ([repo / "notebooks", repo / "solutions"] if repo else [])
    if not paths:
        print("prodml run: no workbook checkout here: pass notebooks or folders")
        return 2
    try:
        params = parameters(args)
        targets = relative_paths([p for p in paths if p.exists() or args.paths], repo)
    except (ValueError, FileNotFoundError) as error:
        print(f"prodml run: {error}")
        return 2
    if not targets:
        print(f"prodml run: no notebooks in {', '.join(map(str, paths))}")
        return 1
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or (repo or Path.cwd()) / "runs" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)

    if args.prepare_only:
        import papermill

        for notebook, rel in targets.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            papermill.execute_notebook(
                str(notebook),
                str(out / rel),
                parameters=params,
                kernel_name="python3",
                prepare_only=True,
                progress_bar=False,
            )
            print(f"prepared {out / rel}")
        folders = {nb.parent: rel.parent for nb, rel in targets.items()}
        copied = copy_siblings(folders, out, repo)
        print(f"{len(targets)} notebooks and {len(copied)} other files in {out}")
        return 0

    results = execute_all(targets, params, out, args.cell_timeout)
    summary = {"run_dir": str(out), "parameters": params, "notebooks": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    markdown = summary_markdown(results)
    (out / "summary.md").write_text(markdown)
    print()
    print(markdown, end="")
    print(f"run folder: {out}")
    return 1 if any(r["status"] != "ok" for r in results) else 0
