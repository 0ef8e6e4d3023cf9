"""A small load generator: N requests over ``concurrency`` keep-alive HTTP/1.1 connections.

asyncio streams with a minimal HTTP/1.1 client, so the client costs far less CPU than the
server it measures (``requests`` in threads would be the bottleneck on 2 cores). Used by the
load tests and ``benchmarks/serving.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    elapsed: float
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)  # X-Model-Version of the 200s
    errors: list = field(default_factory=list)  # transport errors and non-200 bodies (first 20)
    latencies: list = field(default_factory=list)  # seconds, one per request

    @property
    def failures(self) -> int:
        return self.requests - self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _run(
    url, path, body: bytes, n: int, concurrency: int, on_progress, stop_when
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    result = LoadResult(requests=0, elapsed=0.0)
    todo = iter(range(n))

    async def worker():
        reader = writer = None
        for i in todo:
            if stop_when is not None and stop_when():
                break
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                status, headers, payload = await _read_response(reader)
                result.statuses[status] += 1
                if status == 200:
                    result.versions[headers.get("x-model-version")] += 1
                elif len(result.errors) < 20:
                    result.errors.append(payload.decode(errors="replace"))
                if headers.get("connection") == "close":
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.statuses["transport-error"] += 1
                if len(result.errors) < 20:
                    result.errors.append(repr(exc))
                if writer is not None:
                    writer.close()
                reader = writer = None
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1
            if on_progress is not None:
                on_progress(i)
        if writer is not None:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result


def run_load(
    url: str,
    path: str,
    payload: dict,
    requests: int,
    concurrency: int,
    on_progress=None,
    stop_when=None,
) -> LoadResult:
    """POST ``payload`` to ``url + path`` at most ``requests`` times, ``concurrency`` at a time.

    ``on_progress(i)`` is called (in the event loop) after request ``i`` completes;
    ``stop_when()``, checked before each request, ends the run early when it returns True.
    ``result.requests`` counts the requests made. Works from a notebook cell too (inside a
    running event loop the load runs in a thread of its own).
    """
    body = json.dumps(payload).encode()
    run = _run(url, path, body, requests, concurrency, on_progress, stop_when)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the usual case
        return asyncio.run(run)
    # called from a running loop (a Jupyter cell): asyncio.run cannot nest, so the load runs in
    # a thread of its own with its own loop, and this call waits for it
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run).result()
