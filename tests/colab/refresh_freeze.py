"""Refresh ``tests/colab/pip-freeze.txt``: Colab's published runtime package set.

Colab publishes the exact packages of its runtime in the ``googlecolab/backend-info`` repository
(``pip-freeze.txt``, with the OS and Python in ``os-info.txt``). This script copies the newest
version (or the one at ``--commit``) with a header naming its source, commit and date. A
maintainer runs it with internet access; no test ever downloads it::

    .venv/bin/python tests/colab/refresh_freeze.py
    git diff tests/colab/pip-freeze.txt     # what Colab changed
    make colab                              # resolve every notebook's install set against it
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.request
from pathlib import Path

REPOSITORY = "googlecolab/backend-info"
FREEZE = Path(__file__).resolve().with_name("pip-freeze.txt")


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "prodml-refresh-freeze"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def commit_of(ref: str | None) -> dict:
    """The commit (sha, date, subject) of ``ref``, or the newest one that changed the freeze."""
    api = f"https://api.github.com/repos/{REPOSITORY}/commits"
    if ref:
        found = json.loads(_get(f"{api}/{ref}"))
    else:
        found = json.loads(_get(f"{api}?path=pip-freeze.txt&per_page=1"))[0]
    return {
        "sha": found["sha"],
        "date": found["commit"]["committer"]["date"][:10],
        "subject": found["commit"]["message"].splitlines()[0],
    }


def runtime_of(os_info: str) -> str:
    """``Ubuntu 22.04.5 LTS, Python 3.13.15`` from ``os-info.txt`` (comment lines skipped)."""
    lines = [line.strip() for line in os_info.splitlines() if line.strip() and line[0] != "#"]
    system = next((line for line in lines if not line.startswith(("Python", "R ", "julia"))), "")
    python = next((line for line in lines if re.match(r"Python \d+\.\d+", line)), "")
    if not python:
        raise ValueError("os-info.txt names no Python version")
    return f"{system}, {python}"


def render(commit: dict, runtime: str, freeze: str) -> str:
    """The repository's copy: a header naming the source, then Colab's file unchanged."""
    url = f"https://github.com/{REPOSITORY}/blob/{commit['sha']}/pip-freeze.txt"
    header = (
        "# Colab's runtime package set, copied by tests/colab/refresh_freeze.py (do not edit).\n"
        f"# source: {url}\n"
        f"# commit: {commit['sha']} ({commit['date']}, {commit['subject']!r})\n"
        f"# runtime: {runtime}\n"
    )
    return header + freeze


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", help="a commit of googlecolab/backend-info (default: newest)")
    args = parser.parse_args(argv)
    commit = commit_of(args.commit)
    raw = f"https://raw.githubusercontent.com/{REPOSITORY}/{commit['sha']}"
    freeze = _get(f"{raw}/pip-freeze.txt").decode()
    runtime = runtime_of(_get(f"{raw}/os-info.txt").decode())
    FREEZE.write_text(render(commit, runtime, freeze))
    print(f"wrote {FREEZE}: {commit['sha'][:7]} of {commit['date']} ({runtime})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
