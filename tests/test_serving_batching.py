"""The server's batcher: concurrent requests share one signature call, each gets its own slice."""

from __future__ import annotations

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
