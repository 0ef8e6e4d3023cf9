"""Synthetic freeway sensor readings in the shape of the course's San Diego traffic data.

The course's streaming demos replay loop-detector readings from San Diego freeways (2008): one
row per lane per station every 5 minutes, with the columns TIMESTAMP, LATITUDE, LONGITUDE,
FREEWAY_ID, FREEWAY_DIR, LANE and SPEED (mph). That file is not a BigQuery public table and is
not shipped here; :func:`generate` makes readings with the same columns and types, and
:func:`load` puts them in the local warehouse under :data:`TABLE`, **the workbook's own
stand-in id** (no such table exists on real BigQuery: ``load`` refuses to write there).
:func:`messages` turns readings into Pub/Sub-shaped JSON messages with event times, ready for
``prodml.pipelines.replay``.

Layout (:func:`stations`): freeways 5 (N/S), 8 (E/W) and 163 (N/S), both directions, with
``stations_per_direction`` stations (default 4) evenly spaced along each, 2 to 4 lanes each
(lane 1 is the fast, leftmost lane). A station's *downstream* neighbour is the next one in the
direction of travel; the last station of a direction is its bottleneck (the merge into
downtown or the next freeway).

How a station's speed is made, per 5-minute tick ``t``::

    local_k(t) = peak rhythm (weekday rush hours, weekend midday) * day-to-day factor + incidents
    load_k(t)  = max(local_k(t), PROPAGATION * load_{k+1}(t - LAG_TICKS))     (k+1: downstream)
    speed_k(t) = free_flow_k * (1 - 0.85 * load_k(t) ** 1.5)

so congestion starts at the bottleneck and moves upstream, one station every ``LAG_TICKS``
ticks (10 minutes): a forecaster that watches the downstream station sees it coming; a
time-of-week average cannot tell today's rush hour (scaled by a day-to-day factor) or an
incident from any other. A lane's reading is the station's speed times a lane factor (fast
lane +4 %, slow lane -7 %), plus sensor noise.

Calibration (:data:`TARGETS`; ``tests/test_traffic.py`` asserts each one):

* free flow 62-70 mph; weekday rush hours (7:00-9:00 inbound, i.e. southbound/westbound, and
  16:00-19:00 outbound) bring the bottleneck stations down to about 20-35 mph; weekends stay
  near free flow (a mild midday hump). The weekday 8:00 mean speed over all readings is
  at least 10 mph below the 3:00 mean.
* incidents: :data:`INCIDENTS_PER_STATION_DAY` (0.25) per station per day, at a uniformly
  random time, lasting 15-90 minutes (3-18 ticks, uniform); each slows one or two lanes of its
  station to about 30 % of their speed, loads the station (+0.7) and so queues upstream; after
  it ends, the station's extra load falls linearly to zero over 30 minutes (the queue clears).
* sensor noise: normal, :data:`NOISE_MPH` (2.5 mph) standard deviation per reading.
* missing readings: :data:`MISSING_RATE` (1 %) of the lane readings are absent (no row).
* bad rows: :data:`BAD_ROW_RATE` (0.2 %) of the rows carry a null SPEED (half) or a
  negative one (-1.0, a detector's error code; the other half).
* the regime change: at :data:`REGIME_DAY` (day 21 from the start, :data:`REGIME_DATE`
  2008-11-24 00:00 at the default start) a lane closure on freeway 5 southbound takes the
  bottleneck station's last lane out for good (its readings stop) and loads it all day
  (+0.45, rush-hour peaks 1.8 times higher), and the queue reaches the stations upstream.
  Mean 5-S speeds at the weekday morning rush fall by 15 mph or more after the change; other
  corridors do not change.

Everything is deterministic in ``(days, seed, stations_per_direction, regime_day, start)``:
the layout depends on ``stations_per_direction`` only; each random component draws from its
own ``numpy`` generator seeded with ``(seed, component)``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prodml.datasets.loading import fingerprint, load_once

__all__ = [
    "BAD_ROW_RATE",
    "COLUMNS",
    "DAYS",
    "LOCAL_TABLE",
    "MISSING_RATE",
    "NOISE_MPH",
    "REGIME_CORRIDOR",
    "REGIME_DATE",
    "REGIME_DAY",
    "START",
    "TABLE",
    "TARGETS",
    "TICK_MINUTES",
    "VERSION",
    "Simulation",
    "default_table",
    "fingerprint",
    "generate",
    "load",
    "messages",
    "simulate",
    "stations",
]

#: The workbook's stand-in public table id (default size, via ``prodml.datasets.PUBLIC_TABLES``).
#: It does not exist on BigQuery: the course's San Diego readings are a CSV file, not a table.
TABLE = "prodml-workbook-synthetic.traffic.sensor_readings"
#: Where :func:`load` puts readings of other sizes: a dataset of the learner's own project.
LOCAL_TABLE = "traffic.sensor_readings"
COLUMNS = ("TIMESTAMP", "LATITUDE", "LONGITUDE", "FREEWAY_ID", "FREEWAY_DIR", "LANE", "SPEED")

START = pd.Timestamp("2008-11-03 00:00:00")  # a Monday, two days after the course's sample
TICK_MINUTES = 5
TICKS_PER_DAY = 24 * 60 // TICK_MINUTES
DAYS = 35
REGIME_DAY = 21
REGIME_DATE = START + pd.Timedelta(days=REGIME_DAY)
#: the corridor the lane closure changes: (freeway, direction)
REGIME_CORRIDOR = (5, "S")

INCIDENTS_PER_STATION_DAY = 0.25
INCIDENT_TICKS = (3, 18)  # 15 to 90 minutes
INCIDENT_LOAD = 0.7
INCIDENT_LANE_FACTOR = 0.3
CLEARANCE_TICKS = 6  # after an incident its queue clears over 30 minutes
NOISE_MPH = 2.5
MISSING_RATE = 0.01
BAD_ROW_RATE = 0.002
BAD_SPEED = -1.0
PROPAGATION = 0.9
LAG_TICKS = 2

#: calibration targets tests/test_traffic.py checks (see the module docstring)
TARGETS: dict[str, tuple[float, float]] = {
    "free_flow_mph": (62.0, 70.0),
    "rush_hour_dip_mph": (10.0, 40.0),  # weekday 03:00 minus 08:00 mean speed, all readings
    "incidents_per_station_day": (0.2, 0.3),
    "missing_rate": (0.008, 0.012),
    "bad_row_rate": (0.0015, 0.0025),
    "regime_drop_mph": (15.0, 50.0),  # 5-S weekday 7-9h mean speed, before minus after
}

# freeway, directions (inbound first), start and end (lat, lon) of the stretch covered
_FREEWAYS = (
    (5, ("S", "N"), (32.95, -117.24), (32.71, -117.16)),
    (8, ("W", "E"), (32.78, -116.96), (32.76, -117.20)),
    (163, ("S", "N"), (32.90, -117.12), (32.72, -117.155)),
)
_COMPONENTS = ("layout", "days", "incidents", "noise", "missing", "bad")


def stations(stations_per_direction: int = 4) -> pd.DataFrame:
    """One row per station: ``station`` (0..n-1), LATITUDE, LONGITUDE, FREEWAY_ID, FREEWAY_DIR,
    ``order`` (0 = upstream end, along the direction of travel), ``downstream`` (the next
    station's id, -1 at the bottleneck), ``lanes``, ``inbound`` (morning-peak direction) and
    ``free_flow`` (mph). The same for every seed."""
    if (
        isinstance(stations_per_direction, bool)
        or not isinstance(stations_per_direction, int | np.integer)
        or stations_per_direction < 2
    ):
        raise ValueError(
            f"stations_per_direction must be an integer >= 2, got {stations_per_direction!r}"
        )
    rng = _rng(0, "layout")
    rows = []
    for freeway, directions, a, b in _FREEWAYS:
        for d, direction in enumerate(directions):
            # inbound travels a -> b; outbound travels b -> a
            frac = np.linspace(0.0, 1.0, stations_per_direction)
            start, end = (a, b) if d == 0 else (b, a)
            offset = 0.0004 * (1 if d == 0 else -1)  # the two carriageways sit apart
            for k, f in enumerate(frac):
                rows.append(
                    {
                        "LATITUDE": round(start[0] + f * (end[0] - start[0]) + offset, 6),
                        "LONGITUDE": round(start[1] + f * (end[1] - start[1]) + offset, 6),
                        "FREEWAY_ID": freeway,
                        "FREEWAY_DIR": direction,
                        "order": k,
                        "inbound": d == 0,
                    }
                )
    frame = pd.DataFrame(rows)
    n = len(frame)
    frame.insert(0, "station", np.arange(n))
    last = frame["order"] == stations_per_direction - 1
    frame["downstream"] = np.where(last, -1, frame["station"] + 1)
    frame["lanes"] = rng.integers(2, 5, n)
    frame["free_flow"] = np.round(rng.uniform(63.0, 69.0, n), 1)
    # bottlenecks peak hardest; stations along the way a little
    frame["peak"] = np.where(last, 0.78, rng.uniform(0.15, 0.35, n))
    return frame


def _rng(seed: int, component: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _COMPONENTS.index(component)])


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _bump(hours: np.ndarray, centre: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / sd) ** 2)


@dataclass
class Simulation:
    """What :func:`simulate` returns: the readings and the ground truth behind them."""

    readings: pd.DataFrame  #: the table's rows (COLUMNS), with the warts
    stations: pd.DataFrame  #: :func:`stations`
    incidents: pd.DataFrame  #: station, start, end (TIMESTAMP, end exclusive), lanes (tuple)
    speed: np.ndarray  #: true station speed (stations x ticks), no noise
    times: pd.DatetimeIndex  #: the ticks
    regime_date: pd.Timestamp


@dataclass
class _Clock:
    """The simulation's ticks: times, hour of the day, day number, weekday, the closure's tick."""

    days: int
    seed: int
    times: pd.DatetimeIndex
    hours: np.ndarray
    day: np.ndarray
    weekday: np.ndarray
    regime_tick: int

    @property
    def n(self) -> int:
        return len(self.times)


def _rhythm(layout: pd.DataFrame, clock: _Clock) -> np.ndarray:
    """Each station's own load per tick: the daily rhythm (inbound peaks in the morning,
    outbound in the evening) times each corridor's and station's day-to-day factor (lognormal,
    sd 0.2 and 0.1: what a time-of-week average cannot know)."""
    morning, evening = _bump(clock.hours, 7.9, 0.8), _bump(clock.hours, 17.4, 1.0)
    midday = _bump(clock.hours, 13.5, 2.5)
    inbound = layout["inbound"].to_numpy()[:, None]
    weekday_shape = np.where(inbound, morning + 0.3 * evening, evening + 0.3 * morning)
    shape = np.where(clock.weekday[None, :], weekday_shape, 0.25 * midday[None, :])
    rng = _rng(clock.seed, "days")
    corridor_id = layout.groupby(["FREEWAY_ID", "FREEWAY_DIR"]).ngroup().to_numpy()
    day_factor = rng.lognormal(0.0, 0.2, (corridor_id.max() + 1, clock.days))[corridor_id]
    day_factor *= rng.lognormal(0.0, 0.1, (len(layout), clock.days))
    return layout["peak"].to_numpy()[:, None] * shape * day_factor[:, clock.day]


def _closed_station(layout: pd.DataFrame) -> int:
    """The bottleneck of the corridor the lane closure changes (5-S)."""
    corridor = (layout["FREEWAY_ID"] == REGIME_CORRIDOR[0]) & (
        layout["FREEWAY_DIR"] == REGIME_CORRIDOR[1]
    )
    return int(layout.index[corridor & (layout["downstream"] == -1)][0])


def _incidents(layout, clock: _Clock, local: np.ndarray, closed: int):
    """Poisson arrivals per station, 15-90 min, on one or two lanes: adds their load to
    ``local`` (in place) and returns (the incident log's columns, each lane's slow-down)."""
    n_st, n_t, lanes = len(layout), clock.n, layout["lanes"].to_numpy()
    rng = _rng(clock.seed, "incidents")
    count = rng.poisson(INCIDENTS_PER_STATION_DAY * clock.days, n_st)
    inc_station = np.repeat(np.arange(n_st), count)
    inc_start = rng.integers(0, n_t, inc_station.size)
    inc_len = rng.integers(INCIDENT_TICKS[0], INCIDENT_TICKS[1] + 1, inc_station.size)
    inc_end = np.minimum(inc_start + inc_len, n_t)
    lane_cap = lanes[inc_station] - (inc_station == closed) * (inc_start >= clock.regime_tick)
    n_lanes = np.minimum(rng.integers(1, 3, inc_station.size), np.maximum(lane_cap - 1, 1))
    first_lane = rng.integers(0, np.maximum(lane_cap - n_lanes + 1, 1))
    lane_slow = np.ones((n_st, int(lanes.max()), n_t))
    clearance = INCIDENT_LOAD * (1.0 - np.arange(1, CLEARANCE_TICKS + 1) / (CLEARANCE_TICKS + 1))
    for s, a, b, n, f in zip(inc_station, inc_start, inc_end, n_lanes, first_lane, strict=True):
        local[s, a:b] += INCIDENT_LOAD
        tail = min(CLEARANCE_TICKS, n_t - b)
        local[s, b : b + tail] += clearance[:tail]  # the queue takes a while to clear
        lane_slow[s, f : f + n, a:b] = INCIDENT_LANE_FACTOR
    log = pd.DataFrame(
        {
            "station": inc_station,
            "start": clock.times[np.minimum(inc_start, n_t - 1)],
            "end": clock.times[0] + pd.to_timedelta(inc_end * TICK_MINUTES, unit="min"),
            "lanes": [
                tuple(range(f + 1, f + n + 1)) for f, n in zip(first_lane, n_lanes, strict=True)
            ],
        }
    ).sort_values(["start", "station"], ignore_index=True)
    return log, lane_slow


def _propagate(layout: pd.DataFrame, local: np.ndarray) -> np.ndarray:
    """Congestion moves upstream: each station feels its downstream neighbour LAG_TICKS later.
    Returns the true station speed (stations x ticks)."""
    load = local.copy()
    order = layout.sort_values("order", ascending=False)
    for s, down in zip(order["station"], order["downstream"], strict=True):
        if down >= 0:
            spill = np.zeros(local.shape[1])
            spill[LAG_TICKS:] = PROPAGATION * load[down, :-LAG_TICKS]
            load[s] = np.maximum(load[s], spill)
    return layout["free_flow"].to_numpy()[:, None] * (1.0 - 0.85 * load**1.5)


def _readings(layout, clock: _Clock, speed, lane_slow, closed: int) -> pd.DataFrame:
    """The lanes' readings: a lane factor, the incidents' slowed lanes, sensor noise, then the
    warts (the closed lane silent, missing readings, bad rows), in time, station, lane order."""
    lanes = layout["lanes"].to_numpy()
    lane_idx = np.arange(int(lanes.max()))
    span = np.maximum(lanes - 1, 1)[:, None]
    factor = 1.04 - 0.11 * lane_idx[None, :] / span  # (stations, lanes)
    lane_speed = speed[:, None, :] * factor[:, :, None] * lane_slow
    lane_speed += _rng(clock.seed, "noise").normal(0.0, NOISE_MPH, lane_speed.shape)
    lane_speed = np.maximum(np.round(lane_speed, 1), 3.0)
    exists = np.broadcast_to(
        lane_idx[None, :, None] < lanes[:, None, None], lane_speed.shape
    ).copy()
    exists[closed, lanes[closed] - 1, clock.regime_tick :] = False  # the closed lane is silent
    exists &= _rng(clock.seed, "missing").random(exists.shape) >= MISSING_RATE
    t_i, s_i, l_i = np.nonzero(exists.transpose(2, 0, 1))
    values = lane_speed[s_i, l_i, t_i]
    rng = _rng(clock.seed, "bad")
    bad = rng.random(values.size) < BAD_ROW_RATE
    null = bad & (rng.random(values.size) < 0.5)
    values = np.where(bad, BAD_SPEED, values)
    values[null] = np.nan
    return pd.DataFrame(
        {
            "TIMESTAMP": clock.times[t_i].as_unit("us"),
            "LATITUDE": layout["LATITUDE"].to_numpy()[s_i],
            "LONGITUDE": layout["LONGITUDE"].to_numpy()[s_i],
            "FREEWAY_ID": layout["FREEWAY_ID"].to_numpy()[s_i].astype("int64"),
            "FREEWAY_DIR": layout["FREEWAY_DIR"].to_numpy()[s_i].astype(object),
            "LANE": (l_i + 1).astype("int64"),
            "SPEED": values,
        }
    )


def simulate(
    days: int = DAYS,
    seed: int = 0,
    stations_per_direction: int = 4,
    regime_day: int | None = REGIME_DAY,
    start: str | pd.Timestamp = START,
) -> Simulation:
    """Simulate ``days`` days of readings (see the module docstring); ``regime_day=None`` (or a
    day past the end) leaves out the lane closure."""
    days = _check_int("days", days, 1)
    seed = _check_int("seed", seed, 0)
    layout = stations(stations_per_direction)
    start = pd.Timestamp(start)
    n_t = days * TICKS_PER_DAY
    tick = np.arange(n_t)
    day = tick // TICKS_PER_DAY
    clock = _Clock(
        days,
        seed,
        pd.date_range(start, periods=n_t, freq=f"{TICK_MINUTES}min"),
        (tick % TICKS_PER_DAY) * TICK_MINUTES / 60.0,
        day,
        ((start.dayofweek + day) % 7) < 5,
        n_t if regime_day is None else min(int(regime_day), days) * TICKS_PER_DAY,
    )
    regime_date = start + pd.Timedelta(days=regime_day if regime_day is not None else days)
    local = _rhythm(layout, clock)
    # the lane closure: the 5-S bottleneck loses its last lane and is loaded all day
    closed = _closed_station(layout)
    after = tick >= clock.regime_tick
    local[closed, after] = 0.45 + 1.8 * local[closed, after]
    incidents, lane_slow = _incidents(layout, clock, local, closed)
    speed = _propagate(layout, np.clip(local, 0.0, 1.0))
    readings = _readings(layout, clock, speed, lane_slow, closed)
    return Simulation(readings, layout, incidents, speed, clock.times, regime_date)


def generate(
    days: int = DAYS,
    seed: int = 0,
    stations_per_direction: int = 4,
    regime_day: int | None = REGIME_DAY,
) -> pd.DataFrame:
    """The readings of :func:`simulate`: one row per lane per station per 5 minutes (less the
    missing ones), columns :data:`COLUMNS`. The same arguments give the same frame."""
    return simulate(days, seed, stations_per_direction, regime_day).readings


def messages(readings: pd.DataFrame) -> tuple[list[bytes], list[float]]:
    """Readings as Pub/Sub message payloads (UTF-8 JSON, one reading each, the CSV's column
    names) and their event times (seconds since the epoch, from TIMESTAMP), in row order:
    ``pipelines.replay(payloads, times, fmt="json")`` replays them as a stream; on Google
    Cloud a publisher sends the payload with the time as the ``event_time`` attribute."""
    missing = [c for c in COLUMNS if c not in readings]
    if missing:
        raise ValueError(f"readings lack column(s) {missing}; they have {list(readings.columns)}")
    frame = readings[list(COLUMNS)]
    stamps = frame["TIMESTAMP"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    speeds = frame["SPEED"].to_numpy(dtype=float)
    payloads = [
        json.dumps(
            {
                "TIMESTAMP": stamp,
                "LATITUDE": float(lat),
                "LONGITUDE": float(lon),
                "FREEWAY_ID": int(fwy),
                "FREEWAY_DIR": str(direction),
                "LANE": int(lane),
                "SPEED": None if np.isnan(speed) else float(speed),
            }
        ).encode()
        for stamp, lat, lon, fwy, direction, lane, speed in zip(
            stamps,
            frame["LATITUDE"],
            frame["LONGITUDE"],
            frame["FREEWAY_ID"],
            frame["FREEWAY_DIR"],
            frame["LANE"],
            speeds,
            strict=True,
        )
    ]
    seconds = (frame["TIMESTAMP"].to_numpy(dtype="datetime64[us]").astype("int64") / 1e6).tolist()
    return payloads, seconds


#: Bump when :func:`generate` changes what its arguments produce; :func:`load` reloads.
VERSION = 1


def default_table() -> pd.DataFrame:
    """The public table at its default size (:data:`DAYS` days, seed 0)."""
    return generate()


def load(
    client=None,
    days: int = DAYS,
    seed: int = 0,
    stations_per_direction: int = 4,
    regime_day: int | None = REGIME_DAY,
    table: str = LOCAL_TABLE,
) -> str:
    """Fill the local warehouse's ``table`` with :func:`generate` and return its id.

    The public stand-in :data:`TABLE` holds the default size and is read-only (the warehouse
    generates it on first reference); readings of other sizes go to a table of your own.

    Loads with ``WRITE_TRUNCATE`` through the client's ``load_table_from_dataframe``; cheap when
    the table already holds those arguments' rows (a marker under the run folder records what
    was loaded and the row count confirms it). Refuses real BigQuery: :data:`TABLE` is the
    workbook's stand-in, not a public table there, and synthetic rows never go to a project.
    """
    from prodml import config, warehouse

    if client is None and config.settings().warehouse == "duckdb":
        client = warehouse.client()
    if client is None or not warehouse.is_local(client):  # BigQuery itself
        raise ValueError(
            f"refusing to write synthetic traffic readings to real BigQuery ({table!r}): the "
            "course's San Diego sensor data is not a BigQuery public table; load the CSV "
            "yourself or use the local warehouse"
        )
    client.create_dataset(table.rsplit(".", 1)[0], exists_ok=True)
    want = {
        "days": int(days),
        "seed": int(seed),
        "stations_per_direction": int(stations_per_direction),
        "regime_day": regime_day,
        "version": VERSION,
    }
    make = functools.partial(generate, days, seed, stations_per_direction, regime_day)
    return load_once(client, table, want, make, "traffic")
