"""The traffic lab's visible checks: plausible wrong answers to each TODO fail them, and other
right answers (the requirement admits several) pass them.

The solution notebook runs once, in this process, at ``SMOKE`` size: its code cells executed
in order in one namespace, as the kernel would, down to the last section (which stops the
prediction server: done at teardown). Each case then starts from a copy of that namespace,
writes its answer in place of the TODO's solution region, runs that cell and the cells after it
that define or compute what the check reads, and then the check as the learner's copy
(``labs/``) has it. So one real pipeline, model and prediction server serve every case, and
the whole file costs about two runs of the lab.
"""

from __future__ import annotations

import sys

import matplotlib
import pytest
from lab_cells import REPO, answer, cell, check, code_cells, outcome, run

matplotlib.use("Agg")  # the cells' plots, drawn nowhere

LAB = ("traffic_prediction", "01_traffic_prediction.ipynb")


@pytest.fixture(scope="module")
def solution_run():
    """The namespace of the solution run at SMOKE size, up to (not including) its last cell."""
    sys.path.insert(0, str(REPO / "solutions" / LAB[0]))  # the lab imports traffic_features
    namespace = {"__name__": "__main__"}
    try:
        for cell_id, source in code_cells("solutions", LAB):
            if cell_id == "check":
                break
            run(source, namespace, cell_id)
            if cell_id == "parameters":
                namespace["SMOKE"] = True  # as papermill injects it
        yield namespace
    finally:
        if "server" in namespace:
            namespace["server"].stop()
        if "store" in namespace:
            namespace["store"].close()
        sys.path.remove(str(REPO / "solutions" / LAB[0]))


def grade(base: dict, todo: int, code: str | None, cells: tuple[str, ...], target: str, work):
    """Run ``cells`` (the first holds TODO ``todo``, answered with ``code``; None: the
    solution) on a copy of ``base``, then the visible check ``target``: its outcome."""
    namespace = dict(base, WORK=work)
    sources = []
    for cell_id in cells:
        source = cell("solutions", LAB, cell_id)
        if cell_id == cells[0] and code is not None:
            source = answer(source, todo, code)
        sources.append((cell_id, source))
    return outcome([*sources, (target, check(LAB, target))], namespace)


def fails_its_check(error: BaseException | None, *, in_check: bool = True, words: str = "") -> None:
    assert error is not None, "the wrong answer passed the visible check"
    if in_check:  # it reaches the check, whose assertion names the problem
        assert isinstance(error, AssertionError), f"{type(error).__name__}: {error}"
        assert words in str(error), error


# TODO 1: the windowing. The cells of section 2 that define the pipeline's helpers (each reads
# the learner's feature_windows), the 3-hour slice and the hand-made stream, then test-windows.
SECTION_2 = ("windowing", "run-features", "read-rows", "pandas-features", "compare", "slice",
             "demo-stream", "append-row", "run-demo")  # fmt: skip
_WINDOWS = """
    return beam.WindowInto(
        window.{windows},
        trigger=trigger.AfterWatermark({early}late=trigger.AfterCount({late})),
        accumulation_mode=trigger.AccumulationMode.{mode},
        allowed_lateness={lateness},
    )
"""
SLIDING = "SlidingWindows(WINDOW_SECONDS, PERIOD_SECONDS)"


def windows(windows=SLIDING, early="", late=1, mode="ACCUMULATING", lateness="LATENESS_SECONDS"):
    return _WINDOWS.format(windows=windows, early=early, late=late, mode=mode, lateness=lateness)


# (answer, right, reaches the check): two wrong answers make Beam's DirectRunner fail in the
# demo's own cell (windows with gaps between them; a late trigger waiting for two readings),
# where the learner sees the error, before the check.
WINDOWING_ANSWERS = {
    "solution": (None, True, True),
    "right: Beam's default trigger, accumulating, with the lateness": ("""
        return beam.WindowInto(
            window.SlidingWindows(WINDOW_SECONDS, PERIOD_SECONDS),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=LATENESS_SECONDS,
        )
    """, True, True),
    "fixed windows of 15 minutes": (windows(windows="FixedWindows(WINDOW_SECONDS)"), False, True),
    "size and period swapped": (
        windows(windows="SlidingWindows(PERIOD_SECONDS, WINDOW_SECONDS)"), False, False),
    "the library's fixed_windows": (
        "return pipelines.fixed_windows(WINDOW_SECONDS, LATENESS_SECONDS)", False, True),
    "sliding windows with Beam's defaults (no lateness)": (
        "return beam.WindowInto(window.SlidingWindows(WINDOW_SECONDS, PERIOD_SECONDS))", False,
        True),
    "discarding panes (a late pane holds the late reading alone)": (
        windows(mode="DISCARDING"), False, True),
    "15 minutes of lateness": (windows(lateness="LATENESS_SECONDS + 5 * 60"), False, True),
    "5 minutes of lateness": (windows(lateness="LATENESS_SECONDS - 5 * 60"), False, True),
    "early panes every 2 ticks": (windows(early="early=trigger.AfterCount(2), "), False, True),
    "a late pane per 2 late readings": (windows(late=2), False, False),
}  # fmt: skip


@pytest.mark.parametrize("name", list(WINDOWING_ANSWERS), ids=list(WINDOWING_ANSWERS))
def test_todo_1_windowing(name, solution_run, tmp_path):
    code, right, reaches_check = WINDOWING_ANSWERS[name]
    error = grade(solution_run, 1, code, SECTION_2, "test-windows", tmp_path)
    if right:
        assert error is None, error
    else:
        fails_its_check(error, in_check=reaches_check)


# TODO 2: the schedule. A schedule outside the requirement fails the check's requirement part,
# whatever the models do (so the section's retraining loop is not run for it); a right one is
# run through the loop, and must also pass the check's comparison on the closed corridor.
SCHEDULE_ANSWERS = {
    "solution": (None, ""),
    "right: every two days": ("return list(range(first_day + 2, end_day, 2))", ""),
    "right: the next day, then every three": ("return list(range(first_day + 1, end_day, 3))", ""),
    "every day": ("return list(range(first_day + 1, end_day))", "over budget"),
    "never": ("return []", "too stale"),
    "every four days": ("return list(range(first_day + 4, end_day, 4))", "too stale"),
    "the day after the closure": ("return [REGIME_DAY + 1] if first_day < REGIME_DAY + 1 < end_day else []",
                                  "too stale"),
    "every day once the world has changed": (
        "return list(range(max(first_day, REGIME_DAY) + 1, end_day))", "over budget"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCHEDULE_ANSWERS), ids=list(SCHEDULE_ANSWERS))
def test_todo_2_retraining_schedule(name, solution_run, tmp_path):
    code, problem = SCHEDULE_ANSWERS[name]
    cells = ("schedule",) if problem else ("schedule", "dynamic")
    error = grade(solution_run, 2, code, cells, "test-training", tmp_path)
    if problem:
        fails_its_check(error, words=problem)
    else:
        assert error is None, error


# TODO 3: the static table's keys, then the precompute job and test-static.
KEYS_ANSWERS = {
    "solution": None,
    "right: itertools.product": """
        import itertools

        pairs = itertools.product(station_ids, range(7 * 24 * 60 // slot_minutes))
        return pd.DataFrame(list(pairs), columns=["station", "slot"])
    """,
    "the slots of one day": """
        slots = pd.DataFrame({"slot": range(24 * 60 // slot_minutes)})
        return pd.DataFrame({"station": list(station_ids)}).merge(slots, how="cross")
    """,
    "the keys the held-out days carry": """
        return evaluation[["station", "slot"]].drop_duplicates()
    """,
    "a slot per 5-minute window": """
        slots = pd.DataFrame({"slot": range(7 * 24 * 60 // 5)})
        return pd.DataFrame({"station": list(station_ids)}).merge(slots, how="cross")
    """,
    "a row per horizon": """
        slots = pd.DataFrame({"slot": range(7 * 24 * 60 // slot_minutes)})
        keys = pd.DataFrame({"station": list(station_ids)}).merge(slots, how="cross")
        return keys.merge(pd.DataFrame({"horizon": list(HORIZONS)}), how="cross")
    """,
}


@pytest.mark.parametrize("name", list(KEYS_ANSWERS), ids=list(KEYS_ANSWERS))
def test_todo_3_static_table_keys(name, solution_run, tmp_path):
    code = KEYS_ANSWERS[name]
    cells = ("table-keys", "usual-inputs", "precompute")
    error = grade(solution_run, 3, code, cells, "test-static", tmp_path)
    if code is None or name.startswith("right"):
        assert error is None, error
    else:
        fails_its_check(error)


# TODO 4: the routing rule, then the request path (its hybrid calls the rule), the latency and
# the designs' table, and test-serving.
ROUTING_ANSWERS = {
    "solution": (None, True),
    "right: alerts and a 20 % drop of the station's own speed": ("""
        slow = np.asarray(live["slow_lanes"]) > 0
        return slow | (np.asarray(live["speed"]) < 0.8 * np.asarray(usual["speed"]))
    """, True),
    "everything to the model": ("return np.ones_like(np.asarray(live['speed']), bool)", True),
    "nothing to the model": ("return np.zeros_like(np.asarray(live['speed']), bool)", True),
    "alerts only": ("return np.asarray(live['slow_lanes']) > 0", True),
    "a jam only below half the usual speed": ("""
        slow = np.asarray(live["slow_lanes"]) > 0
        return slow | (np.asarray(live["speed"]) < 0.5 * np.asarray(usual["speed"]))
    """, True),
    "the comparison reversed": ("""
        slow = np.asarray(live["slow_lanes"]) > 0
        return slow | (np.asarray(live["speed"]) > 0.85 * np.asarray(usual["speed"]))
    """, True),
    "Python's `or` on arrays": ("""
        return live["slow_lanes"] > 0 or live["speed"] < 0.85 * usual["speed"]
    """, False),
}  # fmt: skip
SECTION_7 = ("routing", "request-path", "request-path-live", "latency", "designs")


@pytest.mark.parametrize("name", list(ROUTING_ANSWERS), ids=list(ROUTING_ANSWERS))
def test_todo_4_routing_rule(name, solution_run, tmp_path):
    code, reaches_check = ROUTING_ANSWERS[name]
    error = grade(solution_run, 4, code, SECTION_7, "test-serving", tmp_path)
    if code is None or name.startswith("right"):
        assert error is None, error
    else:
        fails_its_check(error, in_check=reaches_check)
