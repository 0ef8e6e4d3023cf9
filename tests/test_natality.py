"""The synthetic natality table: calibration, determinism, warts, noise floor, warehouse load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from google.api_core.exceptions import Forbidden
from prodml import config
from prodml.datasets import natality

T = natality.TARGETS
ROWS = 200_000


def within(name: str, value: float) -> None:
    low, high = T[name]
    assert low <= value <= high, f"{name} = {value:.4f}, target {low}..{high}"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return natality.generate(ROWS, seed=0)


@pytest.fixture(scope="module")
def rows(frame) -> pd.DataFrame:
    return natality.clean(frame)


def test_columns_and_types(frame):
    assert len(frame) == ROWS
    for column in ("year", "month", "day", "wday", "plurality", "mother_age", "gestation_weeks"):
        assert str(frame[column].dtype) == "Int64", column
    for column in ("is_male", "mother_married", "cigarette_use", "alcohol_use"):
        assert str(frame[column].dtype) == "boolean", column
    assert frame["weight_pounds"].dtype == np.float64
    assert (frame["source_year"] == frame["year"]).all()
    assert frame["month"].between(1, 12).all() and frame["wday"].between(1, 7).all()
    assert frame["day"].between(1, 31).all()
    # wday agrees with the calendar (1 = Sunday)
    dates = pd.to_datetime(
        {
            "year": frame["year"].astype(int),
            "month": frame["month"].astype(int),
            "day": frame["day"].astype(int),
        }
    )
    assert (
        ((dates.dt.dayofweek + 1) % 7 + 1).to_numpy() == frame["wday"].to_numpy(dtype=int)
    ).all()
    # mostly 2001..2008, but enough earlier years for the course's year > 2000 to matter
    recent = (frame["year"] > 2000).mean()
    assert 0.75 < recent < 0.85
    assert frame["year"].min() == 1969 and frame["year"].max() == 2008


def test_weight_calibration(rows):
    weight = rows["weight_pounds"]
    within("weight_mean", weight.mean())
    within("weight_sd", weight.std())
    boys, girls = weight[rows["is_male"]], weight[~rows["is_male"]]
    within("male_minus_female", boys.mean() - girls.mean())


def test_plurality_calibration(rows):
    share = rows["plurality"].value_counts(normalize=True)
    within("singleton_share", share[1])
    within("twin_share", share[2])
    within("triplet_plus_share", share[share.index >= 3].sum())
    assert set(share.index) <= {1, 2, 3, 4, 5}
    within("twin_weight_mean", rows.loc[rows["plurality"] == 2, "weight_pounds"].mean())


def test_gestation_and_growth(rows):
    weeks = rows["gestation_weeks"].astype(float)
    within("gestation_mean", weeks.mean())
    within("preterm_share", (weeks < 37).mean())
    by_week = rows.groupby("gestation_weeks")["weight_pounds"].mean()
    within("weight_at_28_weeks", by_week[28])
    within("weight_at_40_weeks", by_week[40])
    curve = by_week.loc[28:40].to_numpy()
    assert (np.diff(curve) > 0).all(), f"mean weight must rise from 28 to 40 weeks: {curve}"


def test_mother_age(frame, rows):
    within("mother_age_mean", rows["mother_age"].mean())
    low, high = T["mother_age_range"]
    ages = frame["mother_age"].dropna()
    assert ages[ages > 0].between(low, high).all()


def test_warts(frame):
    n = len(frame)
    assert 0.001 < frame["weight_pounds"].isna().mean() < 0.01
    assert 0.0005 < frame["mother_age"].isna().mean() < 0.01
    assert 0.001 < frame["gestation_weeks"].isna().mean() < 0.02
    assert 0.005 < (frame["gestation_weeks"] == 99).mean() < 0.01
    for column in ("weight_pounds", "mother_age", "plurality", "gestation_weeks"):
        zeros = int((frame[column] == 0).sum())
        assert 0 < zeros < n * 0.001, (column, zeros)
    # the public table's column notes: alcohol from 1989, tobacco from 2003, Apgar 1978-2002,
    # no geography after 2004
    year = frame["year"]
    for column, present in (
        ("alcohol_use", year >= 1989),
        ("drinks_per_week", year >= 1989),
        ("cigarette_use", year >= 2003),
        ("cigarettes_per_day", year >= 2003),
        ("apgar_1min", year.between(1978, 2002)),
        ("state", year <= 2004),
        ("mother_residence_state", year <= 2004),
        ("mother_birth_state", year <= 2004),
    ):
        assert frame.loc[~present, column].isna().all(), column
        assert frame.loc[present, column].notna().mean() > 0.9, column
    assert frame["lmp"].notna().all()


def test_the_public_tables_31_columns(frame):
    assert [(c, str(t)) for c, t in zip(frame.columns, frame.dtypes, strict=True)] == [
        (
            name,
            {"INTEGER": "Int64", "FLOAT": "float64", "BOOLEAN": "boolean", "STRING": "string"}[
                kind
            ],
        )
        for name, kind, _ in natality.SCHEMA_SPEC
    ]
    assert len(frame.columns) == 31
    assert frame.columns[16] == "lmp" and frame.columns[18] == "mother_birth_state"
    # lmp is MMDDYYYY, gestation_weeks whole weeks before the birth; unknown is "99" or "9999"
    known = frame[frame["gestation_weeks"].between(1, 98).fillna(False)]
    lmp = pd.to_datetime(known["lmp"], format="%m%d%Y")
    born = pd.to_datetime(known[["year", "month", "day"]].astype(int))
    assert ((born - lmp).dt.days // 7 == known["gestation_weeks"].astype(int)).all()
    unknown = frame.loc[frame["gestation_weeks"].isna() | (frame["gestation_weeks"] == 99), "lmp"]
    assert set(unknown) == {"99", "9999"}
    mothers = frame.loc[frame["year"] <= 2004]
    home = (mothers["mother_birth_state"] == mothers["state"]).mean()
    assert 0.75 < home < 0.9


def test_course_filter_keeps_the_99_code(frame):
    course = frame[
        (frame["year"] > 2000)
        & (frame["weight_pounds"] > 0)
        & (frame["mother_age"] > 0)
        & (frame["plurality"] > 0)
        & (frame["gestation_weeks"] > 0)
    ]
    assert (
        course[["weight_pounds", "mother_age", "plurality", "gestation_weeks"]].notna().all().all()
    )
    assert (course["gestation_weeks"] == 99).sum() > 0
    assert (natality.clean(frame)["gestation_weeks"] < 99).all()
    assert len(natality.clean(frame)) == len(course) - (course["gestation_weeks"] == 99).sum()


def test_deterministic():
    a = natality.generate(1000, seed=0)
    pd.testing.assert_frame_equal(a, natality.generate(1000, seed=0))
    assert (
        natality.fingerprint(a)
        == "a843e9ded686f20aa413bfd1eebac1428f63b3ce5cf1a726e61f1729f9f9f537"
    )
    assert natality.fingerprint(natality.generate(1000, seed=1)) != natality.fingerprint(a)


def test_noise_floor(rows, frame):
    floor = natality.noise_floor_rmse(frame)
    assert abs(floor - natality.NOISE_FLOOR_RMSE) < 0.01 * natality.NOISE_FLOOR_RMSE
    assert 1.0 <= floor <= 1.1
    rmse = float(np.sqrt(np.mean((natality.expected_weight(rows) - rows["weight_pounds"]) ** 2)))
    assert abs(rmse - floor) < 0.02 * floor, (rmse, floor)
    # the floor is the best there is: the mean alone, or a model that ignores the sex, do worse
    mean_only = float(np.sqrt(np.mean((rows["weight_pounds"] - rows["weight_pounds"].mean()) ** 2)))
    assert mean_only > floor * 1.2
    unisex = rows.assign(is_male=~rows["is_male"])
    worse = float(np.sqrt(np.mean((natality.expected_weight(unisex) - rows["weight_pounds"]) ** 2)))
    assert worse > rmse


def test_bad_input():
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        natality.generate(0)
    with pytest.raises(ValueError, match="seed must be"):
        natality.generate(10, seed=-1)
    raw = natality.generate(20_000, seed=3)
    with pytest.raises(ValueError, match="missing or out-of-range features"):
        natality.expected_weight(raw)
    with pytest.raises(ValueError, match="missing column"):
        natality.expected_weight(raw.drop(columns="plurality"))


def test_refuses_real_bigquery(run_dir, monkeypatch):
    config.configure(warehouse="bigquery", project="some-project")
    assert natality.load() == natality.TABLE  # the public table is already there
    with pytest.raises(ValueError, match="refusing to write synthetic natality"):
        natality.load(table="some-project.mydata.natality")


def test_expected_weight_takes_the_models_strings(rows):
    some = rows.head(500)
    as_strings = some.assign(is_male=some["is_male"].map({True: "True", False: "False"}))
    np.testing.assert_allclose(natality.expected_weight(as_strings), natality.expected_weight(some))
    with pytest.raises(ValueError, match="missing or out-of-range"):
        natality.expected_weight(some.assign(is_male="Unknown"))


class CountingClient:
    """The warehouse client, counting the loads that reach it."""

    def __init__(self, client):
        self.client, self.loads = client, 0

    def load_table_from_dataframe(self, *args, **kwargs):
        self.loads += 1
        return self.client.load_table_from_dataframe(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_load_through_the_warehouse(run_dir):
    from prodml import warehouse

    client = CountingClient(warehouse.client())
    table = natality.load(client, rows=5000, seed=7)
    assert table == natality.TABLE
    assert client.get_table(table).num_rows == 5000 and client.loads == 1
    # the same (rows, seed) again: nothing is written
    assert natality.load(client, rows=5000, seed=7) == table
    assert client.loads == 1
    # what the warehouse holds is exactly the generated frame
    got = client.query(
        f"SELECT year, month, weight_pounds, gestation_weeks, is_male FROM `{table}` "
        "WHERE year > 2000 AND weight_pounds > 0 AND gestation_weeks > 0"
    ).to_dataframe()
    want = natality.generate(5000, seed=7)
    want = want[(want.year > 2000) & (want.weight_pounds > 0) & (want.gestation_weeks > 0)]
    assert len(got) == len(want)
    assert got["weight_pounds"].sum() == pytest.approx(want["weight_pounds"].sum(), rel=1e-12)
    assert int(got["gestation_weeks"].sum()) == int(want["gestation_weeks"].sum())
    # another seed loads again
    natality.load(client, rows=5000, seed=8)
    assert client.loads == 2 and client.get_table(table).num_rows == 5000
    # the public table is read-only to everything but this loader, as on BigQuery
    with pytest.raises(Forbidden, match="Access Denied"):
        client.delete_table(table)
    assert [(f.name, f.field_type, f.mode) for f in client.get_table(table).schema] == (
        natality.SCHEMA_SPEC
    )
    # the default client is the configured warehouse (DuckDB in the run folder)
    assert natality.load(rows=5000, seed=8) == table
    assert config.settings().duckdb_path.is_file()
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        natality.load(client, rows=-1)


def test_load_tells_warehouse_files_apart(run_dir):
    from prodml import warehouse

    first = CountingClient(warehouse.client(run_dir=run_dir / "a"))
    second = CountingClient(warehouse.client(run_dir=run_dir / "b"))
    try:
        natality.load(first, rows=2000, seed=1)
        natality.load(second, rows=2000, seed=1)
        natality.load(first, rows=2000, seed=1)
        assert (first.loads, second.loads) == (1, 1)
        assert second.get_table(natality.TABLE).num_rows == 2000
    finally:
        warehouse.stop(run_dir / "a")
        warehouse.stop(run_dir / "b")
