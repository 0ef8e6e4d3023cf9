"""The server's batcher: concurrent requests share one signature call, each gets its own slice."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
from prodml.serving.batching import Batcher


def test_concurrent_requests_are_merged_into_batches_and_answered_in_order():
    calls = []

    def signature(arrays):  # a model that takes 20 ms a call, whatever the batch size
        calls.append(len(arrays["x"]))
        time.sleep(0.02)
        return {"y": arrays["x"] * 10}

    batcher = Batcher(signature, max_batch_size=64, timeout_s=0.0)
    results: dict[int, np.ndarray] = {}
    finished = threading.Event()

    def request(i: int) -> None:
        box = []
        done = threading.Event()
        assert batcher.submit(
            {"x": np.array([i, i + 0.5])}, 2, lambda r: (box.append(r), done.set())
        )
        assert done.wait(10)
        results[i] = box[0]["y"]
        if len(results) == 40:
            finished.set()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    assert finished.wait(30)
    for t in threads:
        t.join()
    batcher.close()

    assert {i: list(v) for i, v in results.items()} == {i: [i * 10, i * 10 + 5] for i in range(40)}
    assert batcher.instances == sum(calls) == 80
    assert batcher.batches == len(calls) < 40  # requests queued behind a busy model share a call
    assert max(calls) <= 64 and max(calls) > 2


def test_a_batch_never_exceeds_the_maximum_size():
    calls = []

    def signature(arrays):
        calls.append(len(arrays["x"]))
        time.sleep(0.01)
        return {"y": arrays["x"]}

    batcher = Batcher(signature, max_batch_size=5, timeout_s=0.05)
    events = []
    for i in range(6):
        done = threading.Event()
        events.append(done)
        batcher.submit({"x": np.arange(3) + i}, 3, lambda r, d=done: d.set())
    assert all(e.wait(10) for e in events)
    batcher.close()
    assert calls and max(calls) <= 5 and sum(calls) == 18


def test_a_failing_signature_fails_every_request_in_its_batch():
    def signature(arrays):
        time.sleep(0.01)
        raise ValueError("bad batch")

    batcher = Batcher(signature, max_batch_size=64, timeout_s=0.05)
    got = []
    events = []
    for i in range(4):
        done = threading.Event()
        events.append(done)
        batcher.submit({"x": np.array([i])}, 1, lambda r, d=done: (got.append(r), d.set()))
    assert all(e.wait(10) for e in events)
    batcher.close()
    assert len(got) == 4 and all(isinstance(r, ValueError) for r in got)
    assert batcher.batches == 0


class _CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the wake-ups other threads ask of it."""

    threadsafe_calls = 0

    def call_soon_threadsafe(self, *args, **kwargs):
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_awaiting_requests_get_their_slices_with_one_loop_wake_up_per_batch():
    def signature(arrays):  # 20 ms a call: requests arriving meanwhile form the next batch
        time.sleep(0.02)
        return {"y": arrays["x"] * 10}

    batcher = Batcher(signature, max_batch_size=64, timeout_s=0.0)

    async def main():
        return await asyncio.gather(
            *(batcher.infer({"x": np.array([i, i + 0.5])}, 2) for i in range(40))
        )

    loop = _CountingLoop()
    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    batcher.close()
    assert [list(r["y"]) for r in results] == [[i * 10, i * 10 + 5] for i in range(40)]
    assert batcher.instances == 80
    assert 2 <= batcher.batches < 40
    assert loop.threadsafe_calls == batcher.batches  # not one per request


def test_a_closed_batcher_hands_the_request_back():
    batcher = Batcher(lambda arrays: arrays, max_batch_size=8, timeout_s=0.0)
    batcher.close()
    assert asyncio.run(batcher.infer({"x": np.array([1])}, 1)) is None
