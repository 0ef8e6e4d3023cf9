"""Server-side batching of concurrent requests for one signature.

Written here rather than taken from a library: TF Serving's batcher is C++ inside its own server,
and what is needed is small (a queue and one thread per signature that calls the model with the
instances of every request waiting, then hands each request its slice).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import numpy as np


class Batcher:
    """Gathers the instances of concurrent requests and calls the signature once per batch.

    A request's arrays go on a queue. The batching thread takes the first waiting request,
    then adds others that are already queued (or arrive within ``timeout_s``) until
    ``max_batch_size`` instances; it calls the signature once and hands each request its slice.
    With ``timeout_s == 0`` an idle server answers a lone request at once, and requests that
    arrive while the model is busy form the next batch.
    """

    _STOP = object()

    def __init__(self, fn, max_batch_size: int, timeout_s: float):
        self.fn = fn
        self.max_batch_size = max(1, max_batch_size)
        self.timeout_s = max(0.0, timeout_s)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.closed = False
        self.batches = 0
        self.instances = 0
        self.thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self.thread.start()

    def submit(self, arrays: dict[str, np.ndarray], n: int, done) -> bool:
        """Queue a request; ``done(result_or_exception)`` is called from the batching thread.

        Returns False when the batcher is closed (the caller then calls the signature itself).
        """
        with self.lock:
            if self.closed:
                return False
            self.queue.put((arrays, n, done))
        return True

    async def infer(self, arrays: dict[str, np.ndarray], n: int):
        """The event loop's way in: await this request's slice of its batch's outputs (None when
        the batcher is closed: the caller then calls the signature itself).

        The results of one batch reach each event loop in one thread-safe call, not one per
        request: at concurrency 32 that is one wake-up of the loop instead of 32."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self.submit(arrays, n, _Waiter(loop, fut)):
            return None
        return await fut

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.queue.put(self._STOP)

    def _loop(self) -> None:
        held = None
        while True:
            item = held if held is not None else self.queue.get()
            held = None
            if item is self._STOP:
                return
            batch = [item]
            total = item[1]
            deadline = time.monotonic() + self.timeout_s
            stop = False
            while total < self.max_batch_size:
                try:
                    remaining = deadline - time.monotonic()
                    nxt = (
                        self.queue.get(timeout=remaining)
                        if remaining > 0
                        else self.queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is self._STOP:
                    stop = True
                    break
                if total + nxt[1] > self.max_batch_size:
                    held = nxt
                    break
                batch.append(nxt)
                total += nxt[1]
            self._run(batch)
            if stop:
                return

    def _run(self, batch) -> None:
        try:
            if len(batch) == 1:
                results = [self.fn(batch[0][0])]
            else:
                names = batch[0][0].keys()
                joined = {n: np.concatenate([b[0][n] for b in batch]) for n in names}
                out = self.fn(joined)
                results, start = [], 0
                for _, n, _ in batch:
                    results.append({k: v[start : start + n] for k, v in out.items()})
                    start += n
        except Exception as exc:  # handed to every waiting request
            self._deliver(batch, [exc] * len(batch))
            return
        self.batches += 1
        self.instances += sum(b[1] for b in batch)
        self._deliver(batch, results)

    @staticmethod
    def _deliver(batch, results) -> None:
        by_loop: dict = {}
        for (_, _, done), result in zip(batch, results, strict=True):
            if type(done) is _Waiter:
                by_loop.setdefault(done.loop, []).append((done.fut, result))
            else:
                done(result)
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, pairs)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass


class _Waiter:
    """A request awaiting its result in an event loop (see :meth:`Batcher.infer`)."""

    __slots__ = ("loop", "fut")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future):
        self.loop, self.fut = loop, fut


def _resolve_all(pairs) -> None:
    for fut, result in pairs:
        if fut.done():  # the request was cancelled (client gone)
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)
