"""Freeway sensor readings (prodml.datasets.traffic) and the traffic lab's feature pipeline.

The generator: determinism, columns, calibration (rush hours, incidents, warts, the regime
change) and structure a forecaster can learn. The pipeline (solutions/traffic_prediction/
traffic_features.py, with the windowing the solution notebook's TODO 1 gives): window values
against pandas on the same rows, batch equal to streaming, dead-letter accounting, the online
store. Grading the lab is tests/test_labs.py's job, its checks' wrong answers
tests/test_traffic_lab_answers.py's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.transforms import trigger, window
from lab_cells import cell, run
from prodml import config, pipelines, warehouse
from prodml.datasets import traffic

REPO = Path(__file__).resolve().parents[1]

T = traffic.TARGETS


def within(name: str, value: float) -> None:
    low, high = T[name]
    assert low <= value <= high, f"{name} = {value:.4f}, target {low}..{high}"


@pytest.fixture(scope="module")
def features_module():
    path = REPO / "solutions" / "traffic_prediction" / "traffic_features.py"
    spec = importlib.util.spec_from_file_location("traffic_features_solution", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def windowing(features_module):
    """The solution's windowing (the notebook's TODO 1), a function making a fresh transform."""
    namespace = {"beam": beam, "window": window, "trigger": trigger,
                 "traffic_features": features_module}  # fmt: skip
    lab = ("traffic_prediction", "01_traffic_prediction.ipynb")
    for cell_id in ("requirement", "windowing"):
        run(cell("solutions", lab, cell_id), namespace, cell_id)
    return namespace["feature_windows"]


@pytest.fixture(scope="module")
def sim() -> traffic.Simulation:
    return traffic.simulate()  # the public table's default: 35 days, 24 stations


@pytest.fixture(scope="module")
def valid(sim) -> pd.DataFrame:
    r = sim.readings
    return r[r["SPEED"] > 0]


# ------------------------------------------------------------------------------ generator


def test_generator_is_deterministic():
    small = traffic.generate(days=1, seed=3, stations_per_direction=2)
    assert traffic.fingerprint(small) == (
        "6db83c0ae8123688ca2887643aa12f76ab62a60b29d9c7b45072a62ffb298469"
    ), traffic.fingerprint(small)
    assert traffic.fingerprint(traffic.generate(days=1, seed=3, stations_per_direction=2)) == (
        traffic.fingerprint(small)
    )
    assert traffic.fingerprint(traffic.generate(days=1, seed=4, stations_per_direction=2)) != (
        traffic.fingerprint(small)
    )


def test_columns_and_shape(sim):
    r = sim.readings
    assert tuple(r.columns) == traffic.COLUMNS
    assert str(r["TIMESTAMP"].dtype) == "datetime64[us]"
    assert r["FREEWAY_ID"].dtype == np.int64 and r["LANE"].dtype == np.int64
    assert set(r["FREEWAY_ID"]) == {5, 8, 163}
    assert set(r["FREEWAY_DIR"]) == {"N", "S", "E", "W"}
    assert len(sim.stations) == 24 and r["LANE"].between(1, 4).all()
    assert r["TIMESTAMP"].is_monotonic_increasing
    assert (r["TIMESTAMP"].dt.minute % 5 == 0).all() and (r["TIMESTAMP"].dt.second == 0).all()
    assert r["TIMESTAMP"].min() == traffic.START
    assert r["TIMESTAMP"].max() == traffic.START + pd.Timedelta(days=35) - pd.Timedelta(minutes=5)
    # one reading per lane per station per tick at most
    assert not r.duplicated(["TIMESTAMP", "LATITUDE", "LONGITUDE", "LANE"]).any()
    assert sim.regime_date == traffic.REGIME_DATE == pd.Timestamp("2008-11-24")


def test_rush_hour_and_weekend(valid):
    hour = valid["TIMESTAMP"].dt.hour
    weekday = valid["TIMESTAMP"].dt.dayofweek < 5
    night = valid.loc[weekday & (hour == 3), "SPEED"].mean()
    rush = valid.loc[weekday & (hour == 8), "SPEED"].mean()
    weekend_rush = valid.loc[~weekday & (hour == 8), "SPEED"].mean()
    within("free_flow_mph", night)
    within("rush_hour_dip_mph", night - rush)
    assert abs(weekend_rush - night) < 3, (weekend_rush, night)


def test_incident_rate_and_shape(sim):
    inc = sim.incidents
    within("incidents_per_station_day", len(inc) / len(sim.stations) / 35)
    minutes = (inc["end"] - inc["start"]).dt.total_seconds() / 60
    assert minutes.min() >= 15 and minutes.max() <= 90, minutes.describe()
    assert inc["lanes"].map(len).between(1, 2).all()


def test_incidents_slow_their_lanes(sim, valid):
    """An incident's lanes read far below the same station's other lanes meanwhile."""
    layout = sim.stations.set_index("station")
    ratios = []
    for inc in sim.incidents.head(40).itertuples():
        st = layout.loc[inc.station]
        at = valid[
            (valid["LATITUDE"] == st.LATITUDE)
            & (valid["LONGITUDE"] == st.LONGITUDE)
            & (valid["TIMESTAMP"] >= inc.start)
            & (valid["TIMESTAMP"] < inc.end)
        ]
        hit = at["LANE"].isin(inc.lanes)
        if hit.any() and (~hit).any():
            ratios.append(at.loc[hit, "SPEED"].mean() / at.loc[~hit, "SPEED"].mean())
    assert len(ratios) > 20 and np.median(ratios) < 0.5, np.median(ratios)


def test_missing_and_bad_rows(sim):
    r = sim.readings
    bad = ~(r["SPEED"] > 0)
    within("bad_row_rate", bad.mean())
    assert set(r.loc[bad & r["SPEED"].notna(), "SPEED"]) == {traffic.BAD_SPEED}
    assert 0.3 < r["SPEED"].isna().sum() / bad.sum() < 0.7
    # missing: against every lane of every station at every tick, before the closure
    before = r[r["TIMESTAMP"] < sim.regime_date]
    expected = sim.stations["lanes"].sum() * 288 * traffic.REGIME_DAY
    within("missing_rate", 1 - len(before) / expected)


def test_regime_change_is_visible(sim, valid):
    rows = valid.merge(sim.stations, on=list(traffic.COLUMNS[1:5]))
    t = rows["TIMESTAMP"]
    rush = rows[(t.dt.dayofweek < 5) & t.dt.hour.between(7, 8)]
    after = rush["TIMESTAMP"] >= sim.regime_date
    by = rush.groupby([rush["FREEWAY_ID"], rush["FREEWAY_DIR"], after])["SPEED"].mean().unstack()
    drop = by[False] - by[True]
    within("regime_drop_mph", drop.loc[traffic.REGIME_CORRIDOR])
    others = drop.drop(index=[traffic.REGIME_CORRIDOR])
    assert others.abs().max() < 6, others
    # the closed lane stops reporting at the closure, for good
    corridor = sim.stations[
        (sim.stations["FREEWAY_ID"] == 5) & (sim.stations["FREEWAY_DIR"] == "S")
    ]
    bottleneck = corridor[corridor["downstream"] == -1].iloc[0]
    at = sim.readings[
        (sim.readings["LATITUDE"] == bottleneck.LATITUDE)
        & (sim.readings["LANE"] == bottleneck.lanes)
    ]
    assert at["TIMESTAMP"].max() < sim.regime_date <= at["TIMESTAMP"].max() + pd.Timedelta("1h")


def test_congestion_moves_upstream(sim):
    """A station's speed follows its downstream neighbour's with a lag of LAG_TICKS."""
    s = sim.stations
    up = s[s["downstream"] >= 0]
    lag = traffic.LAG_TICKS
    corr = {
        k: np.mean(
            [
                np.corrcoef(sim.speed[u, k:], sim.speed[d, : sim.speed.shape[1] - k])[0, 1]
                for u, d in zip(up["station"], up["downstream"], strict=True)
            ]
        )
        for k in (0, lag, 2 * lag + 2)
    }
    assert corr[lag] > corr[0] and corr[lag] > corr[2 * lag + 2], corr


def test_structure_a_forecaster_can_learn(sim):
    """Least squares on the current and the downstream speed beats the time-of-week average
    30 minutes ahead, overall and by far during incidents: the lab's model has something to
    learn that the static table cannot."""
    speed, s = sim.speed, sim.stations
    horizon, days = 6, 21  # 30 minutes; fit on the first three weeks, test on the fourth
    split = days * 288
    down = np.where(s["downstream"] >= 0, s["downstream"], s["station"])
    now = speed[:, :-horizon]
    target = speed[:, horizon:]
    tow = np.arange(now.shape[1]) % (7 * 288)
    table = np.stack([now[:, :split][:, tow[:split] == k].mean(axis=1) for k in range(7 * 288)], 1)
    # the table's answer for t + 30 min is the average at that time of week
    static = table[:, (tow + horizon) % (7 * 288)]
    x = np.stack([now, speed[down, :-horizon], static, np.ones_like(now)], axis=-1)
    coef = np.linalg.lstsq(x[:, :split].reshape(-1, 4), target[:, :split].ravel(), rcond=None)[0]
    pred = x @ coef
    test = slice(split, split + 7 * 288)
    incident = np.zeros_like(now, dtype=bool)
    for inc in sim.incidents.itertuples():
        a = int((inc.start - traffic.START) / pd.Timedelta("5min"))
        b = int((inc.end - traffic.START) / pd.Timedelta("5min"))
        incident[inc.station, a + 1 : b] = True  # under way when the forecast is made
    err_model = np.abs(pred - target)[:, test]
    err_static = np.abs(static - target)[:, test]
    during = incident[:, test]
    assert err_model.mean() < 0.8 * err_static.mean(), (err_model.mean(), err_static.mean())
    assert err_model[during].mean() < 0.75 * err_static[during].mean()


def test_messages_carry_the_reading_and_its_event_time():
    r = traffic.generate(days=1, stations_per_direction=2).iloc[:500]
    payloads, seconds = traffic.messages(r)
    assert len(payloads) == len(seconds) == 500
    first = json.loads(payloads[0])
    assert list(first) == list(traffic.COLUMNS)
    assert seconds[0] == pd.Timestamp(first["TIMESTAMP"]).timestamp()
    nulls = [
        json.loads(p)["SPEED"] for p, v in zip(payloads, r["SPEED"], strict=True) if np.isnan(v)
    ]
    assert all(v is None for v in nulls)
    with pytest.raises(ValueError, match="SPEED"):
        traffic.messages(r.drop(columns="SPEED"))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="days"):
        traffic.generate(days=0)
    with pytest.raises(ValueError, match="stations_per_direction"):
        traffic.stations(1)


def test_load_into_the_local_warehouse_and_refuse_bigquery(run_dir, monkeypatch):
    table = traffic.load(days=1, stations_per_direction=2)
    assert table == traffic.LOCAL_TABLE
    client = warehouse.client()
    got = client.query(
        f"SELECT COUNT(*) AS n, COUNTIF(SPEED IS NULL) AS nulls FROM `{table}`"
    ).to_dataframe()
    frame = traffic.generate(days=1, stations_per_direction=2)
    assert int(got["n"][0]) == len(frame)
    assert int(got["nulls"][0]) == int(frame["SPEED"].isna().sum()) > 0
    config.configure(warehouse="bigquery", project="some-project")
    with pytest.raises(ValueError, match="refusing"):
        traffic.load(days=1)


# ------------------------------------------------------------------------------- pipeline


def pandas_features(readings: pd.DataFrame, layout: pd.DataFrame) -> pd.DataFrame:
    """15-minute windows every 5 minutes per station, computed independently with pandas."""
    ok = readings[readings["SPEED"] > 0].merge(layout, on=list(traffic.COLUMNS[1:5]))
    tick = ok["TIMESTAMP"].astype("int64") // (300 * 10**6)  # datetime64[us] -> 5-min ticks
    frames = [ok.assign(window_end=(tick + 1 + lag) * 300.0) for lag in range(3)]
    lane = pd.concat(frames).groupby(["station", "window_end", "LANE"])["SPEED"].mean()
    lane = lane.rename("lane").reset_index()
    by = lane.groupby(["station", "window_end"])["lane"]
    out = pd.DataFrame({"speed": by.mean(), "lanes": by.size(), "min_lane": by.min()})
    lane = lane.join(out["speed"], on=["station", "window_end"])
    out["slow_lanes"] = (
        (lane["lane"] < 0.5 * lane["speed"]).groupby([lane["station"], lane["window_end"]]).sum()
    )
    return out.reset_index().sort_values(["station", "window_end"], ignore_index=True)


@pytest.fixture(scope="module")
def stream_sample():
    s = traffic.simulate(days=1, seed=5, stations_per_direction=2)
    r = s.readings
    r = r[
        r["TIMESTAMP"].between(
            traffic.START + pd.Timedelta("7h"), traffic.START + pd.Timedelta("8h30min")
        )
    ]
    return s.stations, r


def run_pipeline(module, windows, source, layout, folder, store=None, mode="batch"):
    """The library's pipeline with the lab's readings contract and feature transform."""
    contract = module.readings_contract(module.station_index(layout))
    sink = pipelines.Sink(folder=str(folder), table=None)
    with beam.Pipeline(options=pipelines.options(mode)) as p:
        out = pipelines.build_pipeline(
            p, source, contract, mode=mode, sink=sink, transform=module.Features(windows)
        )
        if store is not None:
            _ = out.rows | module.WriteToOnlineStore(store)
    return pipelines.counts(sink)


def frame(folder, prefix="features") -> pd.DataFrame:
    """The rows a run wrote to ``folder/<prefix>-*.jsonl``, in (station, window_end) order."""
    parts = [pd.read_json(path, lines=True) for path in sorted(folder.glob(f"{prefix}-*.jsonl"))]
    rows = pd.concat(parts, ignore_index=True)
    if prefix != "features":
        return rows
    return rows.sort_values(["station", "window_end"], ignore_index=True)


@pytest.fixture(scope="module")
def batch_and_stream(features_module, windowing, stream_sample, tmp_path_factory):
    layout, r = stream_sample
    payloads, times = traffic.messages(r)
    null_speed = json.dumps({**json.loads(payloads[10]), "SPEED": None}).encode()
    payloads[10:10] = [b"{broken", b'{"TIMESTAMP": "2008-11-03 07:30:00", "SPEED": 50}', null_speed]
    times[10:10] = [times[10]] * 3
    out = tmp_path_factory.mktemp("traffic_pipeline")
    m = features_module
    batch = run_pipeline(
        m, windowing(), pipelines.from_records(payloads, "json"), layout, out / "b"
    )
    stream = run_pipeline(
        m,
        windowing(),
        pipelines.replay(payloads, times, "json", tick=300, speed=1e5),
        layout,
        out / "s",
        store=out / "online.db",
        mode="streaming",
    )
    return {"batch": batch, "stream": stream, "dir": out, "payloads": payloads, "readings": r}


def test_window_values_match_pandas(features_module, stream_sample, batch_and_stream):
    layout, r = stream_sample
    got = frame(batch_and_stream["dir"] / "b")
    want = pandas_features(r, layout)
    assert len(got) == len(want) > 0
    assert (
        got[["station", "window_end"]].to_numpy() == want[["station", "window_end"]].to_numpy()
    ).all()
    cols = ["speed", "lanes", "min_lane", "slow_lanes"]
    assert np.abs(got[cols].to_numpy(float) - want[cols].to_numpy(float)).max() < 1e-9
    # 7:00 to 8:30: 19 ticks, each in 3 windows -> 21 window ends
    assert got["window_end"].nunique() == 21


def test_batch_and_streaming_features_are_equal(batch_and_stream):
    b = frame(batch_and_stream["dir"] / "b")
    s = frame(batch_and_stream["dir"] / "s")
    assert len(b) == len(s)
    assert (
        (
            b[["station", "window_end", "lanes", "slow_lanes"]]
            == s[["station", "window_end", "lanes", "slow_lanes"]]
        )
        .all()
        .all()
    )
    assert (
        np.abs(b[["speed", "min_lane"]].to_numpy() - s[["speed", "min_lane"]].to_numpy()).max()
        < 1e-9
    )


def test_dead_letter_accounting(batch_and_stream):
    r = batch_and_stream["readings"]
    bad = int((~(r["SPEED"] > 0)).sum())
    for mode in ("batch", "stream"):
        counts = batch_and_stream[mode]
        assert counts["records_in"] == len(batch_and_stream["payloads"]) == len(r) + 3, counts
        assert counts["records_in"] == counts["readings"] + counts["dead_letters"], counts
        assert counts["dead_letters"] == bad + 3, counts
        folder = batch_and_stream["dir"] / ("b" if mode == "batch" else "s")
        dead = frame(folder, "dead_letters")
        assert len(dead) == counts["dead_letters"]
        reasons = " ".join(dead["reason"])
        assert (
            "invalid JSON" in reasons and "missing field" in reasons and "SPEED is null" in reasons
        )


def test_online_store_keeps_the_latest_row(features_module, batch_and_stream, tmp_path):
    b = frame(batch_and_stream["dir"] / "b")
    store = features_module.OnlineStore(batch_and_stream["dir"] / "online.db")
    try:
        latest = b.groupby("station").tail(1).set_index("station")
        for station, row in latest.iterrows():
            got = store.get(station)
            assert (
                got["window_end"] == row["window_end"] and abs(got["speed"] - row["speed"]) < 1e-9
            )
        assert store.get(999) is None
    finally:
        store.close()
    # an older window never replaces a newer one; a later pane of the same window does
    other = features_module.OnlineStore(tmp_path / "x.db")
    row = {"station": 1, "window_end": 600.0, "pane": 0, "speed": 50.0, "lanes": 2,
           "min_lane": 40.0, "slow_lanes": 0}  # fmt: skip
    other.put([row, {**row, "window_end": 300.0, "pane": 3, "speed": 10.0}])
    assert other.get(1)["speed"] == 50.0
    other.put([{**row, "pane": 1, "speed": 48.0}])  # the same window, corrected
    assert other.get(1)["speed"] == 48.0 and other.get(1)["pane"] == 1
    other.put([{**row, "pane": 0, "speed": 47.0}])  # its first pane again, replayed
    assert other.get(1)["speed"] == 48.0
    other.close()


def test_bad_readings_name_their_problem(features_module):
    """The lab's readings contract, checked by the library: a good reading becomes the model's
    input, each bad one a RecordError naming its problem, in a CSV line as in a dict."""
    stations = {features_module.location_key(32.9, -117.2, 5, "S"): 0}
    contract = features_module.readings_contract(stations)
    good = {"TIMESTAMP": "2008-11-03 08:00:00", "LATITUDE": 32.9, "LONGITUDE": -117.2,
            "FREEWAY_ID": 5, "FREEWAY_DIR": "S", "LANE": 1, "SPEED": 55.0}  # fmt: skip
    reading = contract.check(good)
    assert reading == {"station": 0, "LANE": 1, "SPEED": 55.0, "event_time": 1225699200.0}
    columns = list(good)
    line = ",".join(str(good[c]) for c in columns)
    assert pipelines.check_csv_lines([line], columns, contract) == [reading]
    for change, reason in (
        ({"SPEED": None}, "SPEED is null"),
        ({"SPEED": -1.0}, "negative"),
        ({"LATITUDE": 10.0}, "unknown location"),
        ({"LANE": 12}, "LANE 12"),
        ({"LANE": 1.5}, "LANE is not a whole number"),
        ({"TIMESTAMP": "soon"}, "TIMESTAMP"),
    ):
        with pytest.raises(pipelines.RecordError, match=reason):
            contract.check({**good, **change})
        bad = {**good, **change}
        text = ",".join("" if bad[c] is None else str(bad[c]) for c in columns)
        assert pipelines.check_csv_lines([text], columns, contract) == [None]  # the slow path


def test_public_stand_in_table_answers_sql(run_dir):
    """The first query naming the stand-in id generates the default table into the warehouse."""
    got = (
        warehouse.client()
        .query(
            f"SELECT COUNT(*) AS n, COUNT(DISTINCT FREEWAY_ID) AS freeways FROM `{traffic.TABLE}`"
        )
        .to_dataframe()
    )
    assert int(got["n"][0]) == len(traffic.generate()) and int(got["freeways"][0]) == 3
