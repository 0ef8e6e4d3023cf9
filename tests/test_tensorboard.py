"""prodml.tensorboard: TensorBoard on loopback for any log folder, and the profiler's trace read.

Two real profiles are written with ``tf.profiler.experimental``: a step starved by a slow input
pipeline and a step busy with matrix products. Each step is timed by the loop's own clocks, and
the trace's per-step breakdown (xprof's input pipeline analyzer) must reach the same verdict on
whether the step is input-bound. The browser test opens TensorBoard's Profile tab in Chromium
and finds the run and the input time the analyzer reported.
"""

from __future__ import annotations

import re
import time

import psutil
import pytest
import requests
from prodml import tensorboard

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEPS = 8


def profile_loop(logdir, input_bound: bool) -> float:
    """Profile STEPS training-like steps; return the input share the loop's own timers saw."""
    import numpy as np
    import tensorflow as tf

    def slow(x):
        time.sleep(0.03)  # a round trip to a slow store
        return x

    data = tf.data.Dataset.from_tensors(tf.ones((256, 256))).repeat()
    if input_bound:
        data = data.map(lambda x: tf.numpy_function(slow, [x], tf.float32))
    weights = tf.Variable(np.random.default_rng(0).normal(size=(256, 256)).astype("float32"))

    @tf.function
    def step(x):
        for _ in range(2 if input_bound else 60):
            x = tf.tanh(tf.matmul(x, weights))
        return tf.reduce_sum(x)

    iterator = iter(data)
    step(next(iterator)).numpy()  # trace before profiling
    waiting = computing = 0.0
    tf.profiler.experimental.start(str(logdir))
    try:
        for n in range(STEPS):
            with tf.profiler.experimental.Trace("train", step_num=n, _r=1):
                t0 = time.perf_counter()
                batch = next(iterator)
                t1 = time.perf_counter()
                step(batch).numpy()
                computing += time.perf_counter() - t1
                waiting += t1 - t0
    finally:
        tf.profiler.experimental.stop()
    return waiting / (waiting + computing)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles")
    shares = {}
    for name, input_bound in (("input_bound", True), ("compute_bound", False)):
        shares[name] = profile_loop(root / name, input_bound)
    return root, shares


def trace_share(logdir) -> float:
    steps = tensorboard.step_breakdown(logdir)
    return float(steps["Input"].sum() / steps["Step time"].sum())


@pytest.mark.slow
def test_the_trace_and_the_timers_agree_on_input_bound(profiles):
    root, timers = profiles
    verdicts = {}
    for name, timer_share in timers.items():
        steps = tensorboard.step_breakdown(root / name)
        assert len(steps) >= STEPS - 2, steps  # the analyzer drops at most the first and last
        assert (steps["Step time"] > 0).all()
        share = trace_share(root / name)
        assert (share > 0.5) == (timer_share > 0.5), (name, share, timer_share)
        verdicts[name] = share > 0.5
    assert verdicts == {"input_bound": True, "compute_bound": False}
    assert (
        "HIGHLY input-bound" in tensorboard.step_breakdown(root / "input_bound").attrs["conclusion"]
    )


def test_step_breakdown_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no profiler trace"):
        tensorboard.step_breakdown(tmp_path)


def test_start_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no log folder"):
        tensorboard.start(tmp_path / "absent")


@pytest.mark.slow
def test_tensorboard_serves_any_logdir_on_loopback_and_stops(profiles):
    root, _ = profiles
    with tensorboard.start(root) as board:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", board.url)
        assert "profile" in board.plugins()
        listening = {
            c.laddr.ip
            for c in psutil.Process(board.process.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}, listening
        runs = requests.get(f"{board.url}data/plugin/profile/runs", timeout=30).json()
        assert sorted(run.split("/")[0] for run in runs) == ["compute_bound", "input_bound"]
        process = board.process
    assert process.poll() is not None  # stopped on leaving the block


@pytest.mark.browser
@pytest.mark.slow
def test_browser_opens_the_profile_tab_and_finds_the_run(profiles):
    from playwright.sync_api import sync_playwright

    root, _ = profiles
    logdir = root / "input_bound"
    session = tensorboard.profile_sessions(logdir)[-1].name
    steps = tensorboard.step_breakdown(logdir)
    input_ms = f"{steps['Input'].mean():.1f} ms"
    with tensorboard.start(logdir) as board, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(board.page("profile"))
            deadline = time.monotonic() + 60
            text = ""
            while time.monotonic() < deadline and not (session in text and input_ms in text):
                page.wait_for_timeout(500)
                text = "\n".join(frame.inner_text("body") for frame in page.frames[1:2])
        finally:
            browser.close()
    assert session in text, text[:2000]  # the run, selected in the Sessions list
    assert "Input Time" in text and input_ms in text, (input_ms, text[:2000])
