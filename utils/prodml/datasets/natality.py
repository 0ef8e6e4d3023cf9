"""A synthetic, deterministic stand-in for ``bigquery-public-data.samples.natality``.

The public table holds US birth records, 1969-2008, one row per birth. :func:`generate` makes a
frame with the same columns, types and null conventions, calibrated to published US birth
statistics (NCHS natality reports; Alexander et al. 1996, "A United States national reference
for fetal growth"), and :func:`load` puts it in the local warehouse under the public table's name
so the course's SQL runs unchanged.

Calibration targets (:data:`TARGETS`; ``tests/test_natality.py`` asserts every one, on the clean
rows of a 200,000-row frame):

* weight_pounds: mean 7.2-7.4 lb, standard deviation 1.2-1.4 lb; boys 0.2-0.35 lb heavier.
* plurality: singletons 96-97 %, twins about 3 % (2.7-3.4 %), triplets and more 0.1-0.2 %;
  twins weigh 5.0-5.5 lb on average.
* gestation_weeks: mean 38.5-39.0, preterm (< 37 weeks) 10-12 %.
* weight by gestation: 2-3 lb at 28 weeks, about 7.5 lb (7.2-7.9) at 40, rising in between.
* mother_age: mean 27-28, every value in 12..50.

Years: 80 % of rows fall in 2001-2008 and the rest in 1969-2000, so the course's
``year > 2000`` matters; twins are rarer before 2001, as they were.

How weight is made, and the noise floor. For each birth::

    weight = mu(is_male, mother_age, plurality, gestation_weeks) * m(hidden) * (1 + CV * e)

``mu`` is the growth curve by gestation week (Alexander's means) times a sex factor, a
plurality factor and a mild mother's-age factor; ``m`` multiplies the effects of columns the
course's model does not see (cigarette_use, alcohol_use, mother_married, first birth), whose
probabilities depend on mother_age only; ``e`` is standard normal (the individual baby). So the
best possible prediction from the course's four features is :func:`expected_weight`
(``mu * E[m | mother_age]``) and its error is known exactly: :func:`noise_floor_rmse` gives the
RMSE a perfect four-feature model reaches on the clean rows of a frame, about
:data:`NOISE_FLOOR_RMSE` lb. No model trained on this data can beat it, on average.

The real table's warts are reproduced, because the course's WHERE clause exists for them:

* the public table's 31 columns in its order and types (:data:`SCHEMA`; ``source_year`` and
  ``is_male`` REQUIRED), with the NULLs its column notes state: alcohol_use and drinks_per_week
  before 1989, cigarette_use and cigarettes_per_day before 2003, the Apgar scores outside
  1978-2002, state, mother_residence_state and mother_birth_state after 2004; ``lmp`` (the last
  menstrual period, MMDDYYYY, consistent with gestation_weeks) is "99" or "9999" when unknown.
* nulls: weight_pounds (~0.4 %), mother_age (~0.1 %), plurality (~0.05 %), gestation_weeks
  (~0.3 % since 2001, ~5 % before).
* impossible zeros in a few rows (0.01-0.02 % each) of weight_pounds, mother_age, plurality and
  gestation_weeks;
* code 99 for "unknown": gestation_weeks (~0.7 %), apgar_1min/apgar_5min, father_age.

Filtering. The course keeps ``year > 2000 AND weight_pounds > 0 AND mother_age > 0 AND
plurality > 0 AND gestation_weeks > 0``: ``> 0`` drops the nulls and the zeros alike (a
comparison with NULL is not true). It does not drop ``gestation_weeks = 99``, which is a code,
not a duration: add ``AND gestation_weeks < 99`` (``prodml.babyweight.data.query`` does). Those
are the "clean rows" (:data:`CLEAN_WHERE`, :func:`clean`) the floor is stated for.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import json

import numpy as np
import pandas as pd

# The table's name, the clean filter (the rows the noise floor is stated for) and the
# features' plausible ranges are the babyweight feature contract's, defined once there.
from prodml.babyweight.contract import CLEAN_WHERE, TABLE, clean
from prodml.babyweight.contract import RANGES as _FEATURE_RANGES
from prodml.datasets.loading import load_once

#: Published figures the generator is calibrated to: (low, high) ranges, on clean rows.
TARGETS: dict[str, tuple[float, float]] = {
    "weight_mean": (7.2, 7.4),
    "weight_sd": (1.2, 1.4),
    "male_minus_female": (0.2, 0.35),
    "singleton_share": (0.96, 0.97),
    "twin_share": (0.027, 0.034),
    "triplet_plus_share": (0.001, 0.002),
    "twin_weight_mean": (5.0, 5.5),
    "gestation_mean": (38.5, 39.0),
    "preterm_share": (0.10, 0.12),
    "weight_at_28_weeks": (2.0, 3.0),
    "weight_at_40_weeks": (7.2, 7.9),
    "mother_age_mean": (27.0, 28.0),
    "mother_age_range": (12, 50),
}

#: The public table's columns, in its order, with its types and modes.
SCHEMA_SPEC: list[tuple[str, str, str]] = [
    ("source_year", "INTEGER", "REQUIRED"),
    ("year", "INTEGER", "NULLABLE"),
    ("month", "INTEGER", "NULLABLE"),
    ("day", "INTEGER", "NULLABLE"),
    ("wday", "INTEGER", "NULLABLE"),
    ("state", "STRING", "NULLABLE"),
    ("is_male", "BOOLEAN", "REQUIRED"),
    ("child_race", "INTEGER", "NULLABLE"),
    ("weight_pounds", "FLOAT", "NULLABLE"),
    ("plurality", "INTEGER", "NULLABLE"),
    ("apgar_1min", "INTEGER", "NULLABLE"),
    ("apgar_5min", "INTEGER", "NULLABLE"),
    ("mother_residence_state", "STRING", "NULLABLE"),
    ("mother_race", "INTEGER", "NULLABLE"),
    ("mother_age", "INTEGER", "NULLABLE"),
    ("gestation_weeks", "INTEGER", "NULLABLE"),
    ("lmp", "STRING", "NULLABLE"),
    ("mother_married", "BOOLEAN", "NULLABLE"),
    ("mother_birth_state", "STRING", "NULLABLE"),
    ("cigarette_use", "BOOLEAN", "NULLABLE"),
    ("cigarettes_per_day", "INTEGER", "NULLABLE"),
    ("alcohol_use", "BOOLEAN", "NULLABLE"),
    ("drinks_per_week", "INTEGER", "NULLABLE"),
    ("weight_gain_pounds", "INTEGER", "NULLABLE"),
    ("born_alive_alive", "INTEGER", "NULLABLE"),
    ("born_alive_dead", "INTEGER", "NULLABLE"),
    ("born_dead", "INTEGER", "NULLABLE"),
    ("ever_born", "INTEGER", "NULLABLE"),
    ("father_race", "INTEGER", "NULLABLE"),
    ("father_age", "INTEGER", "NULLABLE"),
    ("record_weight", "INTEGER", "NULLABLE"),
]

#: About the RMSE of a perfect model on the four course features (clean rows, lb).
NOISE_FLOOR_RMSE = 1.02

GRAMS_PER_POUND = 453.59237
UNKNOWN = 99

# --- the weight model -------------------------------------------------------------------
# Mean birth weight (g) by completed gestation week, singletons of both sexes (Alexander 1996).
# fmt: off
_GROWTH_WEEKS = np.array([17, 20, 22, 24, 26, 28, 30, 32, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 47])
_GROWTH_GRAMS = np.array([150, 330, 480, 650, 850, 1150, 1450, 1850, 2350, 2600, 2850, 3080, 3260,
                          3390, 3480, 3560, 3590, 3580, 3550, 3500])
# fmt: on
#: Alexander's curve is for 1991 births; this lifts the overall mean to NCHS's 2000s figure.
_SCALE = 1.025
_SEX_FACTOR = {True: 1.018, False: 0.982}
#: weight at the same gestation relative to a singleton, by plurality 1..5.
_PLURALITY_FACTOR = np.array([np.nan, 1.0, 0.88, 0.80, 0.75, 0.72])
CV = 0.136  # the individual baby: SD relative to the conditional mean
# hidden columns: (multiplicative effect on weight)
_SMOKE_EFFECT = -0.06
_ALCOHOL_EFFECT = -0.03
_MARRIED_EFFECT = 0.015
_FIRST_BIRTH_EFFECT = -0.03
_ALCOHOL_P = 0.02


def _age_factor(age: np.ndarray) -> np.ndarray:
    age = np.asarray(age, dtype=float)
    return 1.0 + 0.0015 * (age - 27.0) - 0.0001 * (age - 30.0) ** 2


def _smoke_p(age: np.ndarray) -> np.ndarray:
    age = np.asarray(age, dtype=float)
    return np.select([age < 20, age < 25, age < 30], [0.16, 0.14, 0.10], 0.08)


def _married_p(age: np.ndarray) -> np.ndarray:
    age = np.asarray(age, dtype=float)
    return 0.85 / (1.0 + np.exp(-(age - 23.0) / 2.5))


def _first_birth_p(age: np.ndarray) -> np.ndarray:
    # ever_born = 1 + Poisson(lambda(age)); a first birth is ever_born == 1.
    return np.exp(-_previous_births_rate(age))


def _previous_births_rate(age: np.ndarray) -> np.ndarray:
    age = np.asarray(age, dtype=float)
    return np.clip((age - 17.0) * 0.09, 0.02, None)


def _hidden_moments(age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[m | age] and E[m^2 | age] for the product of independent Bernoulli effects."""
    m1 = np.ones_like(np.asarray(age, dtype=float))
    m2 = np.ones_like(m1)
    for effect, p in (
        (_SMOKE_EFFECT, _smoke_p(age)),
        (_ALCOHOL_EFFECT, np.full_like(m1, _ALCOHOL_P)),
        (_MARRIED_EFFECT, _married_p(age)),
        (_FIRST_BIRTH_EFFECT, _first_birth_p(age)),
    ):
        m1 = m1 * (1.0 + effect * p)
        m2 = m2 * (1.0 + (2 * effect + effect**2) * p)
    return m1, m2


def _mu(is_male, mother_age, plurality, gestation_weeks) -> np.ndarray:
    grams = np.interp(np.asarray(gestation_weeks, dtype=float), _GROWTH_WEEKS, _GROWTH_GRAMS)
    sex = np.where(np.asarray(is_male, dtype=bool), _SEX_FACTOR[True], _SEX_FACTOR[False])
    plur = _PLURALITY_FACTOR[np.asarray(plurality, dtype=int)]
    return _SCALE * grams / GRAMS_PER_POUND * sex * plur * _age_factor(mother_age)


def _features(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """is_male (bool), mother_age, plurality (int), gestation_weeks as arrays; refuses bad rows."""
    missing = [c for c in ("is_male", *_FEATURE_RANGES) if c not in df]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; it has {list(df.columns)}")
    sex = df["is_male"]
    if not pd.api.types.is_bool_dtype(sex):  # the model's strings "True" / "False"
        sex = sex.map({"True": True, "False": False, True: True, False: False})
    bad = sex.isna().to_numpy().copy()
    values = {}
    for name, (low, high) in _FEATURE_RANGES.items():
        values[name] = pd.to_numeric(df[name]).astype("float64").to_numpy(na_value=np.nan)
        bad |= ~((values[name] >= low) & (values[name] <= high))  # NaN fails both
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        shown = df.iloc[first][["is_male", *_FEATURE_RANGES]].to_dict()
        raise ValueError(
            f"{int(bad.sum())} row(s) have missing or out-of-range features (first: position "
            f"{first}, {shown}); keep the clean rows first: clean(df) or WHERE {CLEAN_WHERE}"
        )
    return (
        sex.to_numpy(dtype=bool),
        values["mother_age"],
        values["plurality"].astype(int),
        values["gestation_weeks"],
    )


def expected_weight(df: pd.DataFrame) -> np.ndarray:
    """The true conditional mean of weight_pounds given the course's four features.

    ``df`` needs is_male, mother_age, plurality and gestation_weeks, all valid (clean rows).
    """
    is_male, age, plur, gest = _features(df)
    m1, _ = _hidden_moments(age)
    return _mu(is_male, age, plur, gest) * m1


def noise_floor_rmse(df: pd.DataFrame | None = None) -> float:
    """The RMSE a perfect model on (is_male, mother_age, plurality, gestation_weeks) reaches.

    On the clean rows of ``df`` (see :func:`clean`; default: a fresh 1,000,000-row frame,
    seed 0) it is ``sqrt(mean(Var[weight | features]))``, computed exactly from the generator's
    model rather than estimated from the sampled weights.
    """
    if df is None:
        return _default_noise_floor()
    rows = clean(df)
    if rows.empty:
        raise ValueError("no clean rows to state a noise floor for")
    is_male, age, plur, gest = _features(rows)
    mu = _mu(is_male, age, plur, gest)
    m1, m2 = _hidden_moments(age)
    variance = mu**2 * (m2 * (1.0 + CV**2) - m1**2)
    return float(np.sqrt(variance.mean()))


@functools.cache
def _default_noise_floor() -> float:
    return noise_floor_rmse(generate(1_000_000, seed=0))


# --- the other columns ------------------------------------------------------------------
# approximate shares (%) of US births in the 2000s, by state (and DC)
_STATE_SHARES = """
CA 13.2 TX 9.3 NY 6.1 FL 5.3 IL 4.3 PA 3.5 OH 3.6 GA 3.4 NC 3.0 MI 3.1 NJ 2.8 AZ 2.3 VA 2.5
WA 2.0 IN 2.1 TN 1.9 MA 1.9 MO 1.9 MD 1.8 MN 1.7 WI 1.7 CO 1.7 AL 1.5 SC 1.4 LA 1.5 KY 1.4
OK 1.3 UT 1.3 OR 1.2 CT 1.0 AR 0.9 MS 1.0 IA 0.9 KS 1.0 NV 0.9 NM 0.7 NE 0.6 ID 0.6 WV 0.5
HI 0.46 ME 0.34 NH 0.35 RI 0.32 MT 0.3 DE 0.29 SD 0.28 ND 0.27 AK 0.25 DC 0.24 VT 0.16 WY 0.17
""".split()
_STATES = np.array(_STATE_SHARES[0::2], dtype=object)
_STATE_WEIGHTS = np.array(_STATE_SHARES[1::2], dtype=float)
# natality race codes: white, black, american indian, chinese, japanese, filipino, other, asian
# indian, korean, vietnamese
_RACES = np.array([1, 2, 3, 4, 5, 7, 9, 18, 28, 48])
_RACE_WEIGHTS = np.array([0.77, 0.15, 0.011, 0.012, 0.003, 0.008, 0.02, 0.012, 0.005, 0.009])
_MONTH_WEIGHTS = np.array([81, 76, 83, 80, 84, 84, 89, 90, 88, 85, 79, 81], dtype=float)
_YEARS_RECENT = np.arange(2001, 2009)
_RECENT_SHARE = 0.8  # 2001-2008; the rest 1969-2000, which the course's year > 2000 drops
# gestation by plurality: (P(preterm tail), term mean, term sd, tail start, tail scale)
_GESTATION = {
    1: (0.06, 39.2, 1.5, 36.5, 2.2),
    2: (0.25, 36.6, 1.4, 35.5, 3.0),
    3: (0.0, 32.5, 2.5, 0.0, 1.0),
    4: (0.0, 30.5, 2.5, 0.0, 1.0),
    5: (0.0, 29.0, 2.5, 0.0, 1.0),
}


def _nullable_int(values: np.ndarray, null: np.ndarray | None = None) -> pd.arrays.IntegerArray:
    values = np.asarray(values).astype("int64")
    mask = np.zeros(values.shape, bool) if null is None else np.asarray(null, bool)
    return pd.arrays.IntegerArray(values, mask)


def _nullable_bool(values: np.ndarray, null: np.ndarray | None = None) -> pd.arrays.BooleanArray:
    values = np.asarray(values, dtype=bool)
    mask = np.zeros(values.shape, bool) if null is None else np.asarray(null, bool)
    return pd.arrays.BooleanArray(values, mask)


def generate(rows: int = 1_000_000, seed: int = 0) -> pd.DataFrame:
    """``rows`` synthetic natality records; the same ``(rows, seed)`` gives the same frame.

    Columns and types follow the public table (INTEGER -> nullable ``Int64``, FLOAT ->
    ``float64`` with NaN for NULL, BOOLEAN -> nullable ``boolean``, STRING -> ``str``).
    """
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows <= 0:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = int(rows)
    rng = np.random.default_rng(seed)

    # when and where
    recent = rng.random(n) < _RECENT_SHARE
    year = np.where(recent, rng.choice(_YEARS_RECENT, n), rng.integers(1969, 2001, n))
    month = rng.choice(np.arange(1, 13), n, p=_MONTH_WEIGHTS / _MONTH_WEIGHTS.sum())
    leap = np.array([calendar.isleap(y) for y in range(1969, 2009)])[year - 1969]
    days_in_month = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month - 1] + (
        leap & (month == 2)
    )
    day = 1 + np.floor(rng.random(n) * days_in_month).astype(int)
    dates = pd.to_datetime({"year": year, "month": month, "day": day})
    wday = ((dates.dt.dayofweek.to_numpy() + 1) % 7) + 1  # 1 = Sunday ... 7 = Saturday
    state = rng.choice(_STATES, n, p=_STATE_WEIGHTS / _STATE_WEIGHTS.sum())
    state[year > 2004] = None

    # the mother and the birth
    mother_age = np.clip(np.rint(12.0 + rng.gamma(6.0, 2.6, n)), 12, 50).astype(int)
    mother_race = rng.choice(_RACES, n, p=_RACE_WEIGHTS / _RACE_WEIGHTS.sum())
    child_race = np.where(rng.random(n) < 0.93, mother_race, rng.choice(_RACES, n, p=_RACE_WEIGHTS))
    is_male = rng.random(n) < 0.512
    u = rng.random(n)
    twin_p = np.where(recent, 0.0325, 0.023)
    more_p = np.where(recent, 0.0017, 0.0007)
    plurality = np.where(u < twin_p, 2, 1)
    higher = u > 1.0 - more_p
    plurality[higher] = rng.choice([3, 4, 5], int(higher.sum()), p=[0.88, 0.09, 0.03])

    gestation = np.empty(n)
    for k, (tail_p, mean, sd, start, scale) in _GESTATION.items():
        sel = plurality == k
        size = int(sel.sum())
        tail_p = tail_p * np.where((mother_age[sel] < 18) | (mother_age[sel] >= 40), 1.3, 1.0)
        tail = rng.random(size) < tail_p
        term = rng.normal(mean, sd, size)
        early = start - rng.exponential(scale, size)
        gestation[sel] = np.where(tail, early, term)
    gestation = np.clip(np.rint(gestation), 20, 45).astype(int)

    # the columns the course's model does not see, and the weight
    smoker = rng.random(n) < _smoke_p(mother_age)
    drinker = rng.random(n) < _ALCOHOL_P
    married = rng.random(n) < _married_p(mother_age)
    ever_born = 1 + rng.poisson(_previous_births_rate(mother_age))
    hidden = (
        (1 + _SMOKE_EFFECT * smoker)
        * (1 + _ALCOHOL_EFFECT * drinker)
        * (1 + _MARRIED_EFFECT * married)
        * (1 + _FIRST_BIRTH_EFFECT * (ever_born == 1))
    )
    mu = _mu(is_male, mother_age, plurality, gestation)
    grams = np.rint(mu * hidden * (1.0 + CV * rng.standard_normal(n)) * GRAMS_PER_POUND)
    weight_pounds = np.maximum(grams, 100.0) / GRAMS_PER_POUND  # recorded in grams, as the real one

    cigarettes_per_day = np.where(smoker, np.clip(np.rint(rng.gamma(2.0, 5.0, n)), 1, 60), 0)
    drinks_per_week = np.where(drinker, np.clip(np.rint(rng.gamma(1.5, 2.0, n)), 1, 40), 0)
    weight_gain = np.clip(np.rint(rng.normal(30.0, 12.0, n)), 0, 98)
    born_alive_dead = rng.binomial(ever_born - 1, 0.01)
    born_alive_alive = ever_born - 1 - born_alive_dead
    born_dead = rng.poisson(0.03, n)
    father_age = np.clip(np.rint(mother_age + rng.normal(2.5, 4.0, n)), 14, 90).astype(int)
    father_age[rng.random(n) < np.where(married, 0.03, 0.35)] = UNKNOWN
    father_race = np.where(
        rng.random(n) < 0.85, mother_race, rng.choice(_RACES, n, p=_RACE_WEIGHTS)
    )
    apgar_1min = np.clip(
        np.rint(rng.normal(8.2 - 0.35 * np.clip(37 - gestation, 0, None), 1.2)), 0, 10
    )
    apgar_5min = np.clip(np.rint(apgar_1min + rng.normal(1.0, 0.6, n)), 0, 10)
    apgar_unknown = rng.random(n) < 0.015
    apgar_1min[apgar_unknown] = UNKNOWN
    apgar_5min[apgar_unknown] = UNKNOWN
    apgar_null = year < 1978  # the Apgar score joined the birth certificate in 1978
    record_weight = np.where((year >= 1972) & (year <= 1984) & (rng.random(n) < 0.5), 2, 1)

    # the warts
    def share(p):
        return rng.random(n) < p

    weight_null = share(0.004)
    weight_pounds[share(0.0002)] = 0.0
    weight_pounds[weight_null] = np.nan
    age_null = share(0.001)
    mother_age[share(0.0002)] = 0
    plurality_null = share(0.0005)
    plurality[share(0.0001)] = 0
    gestation_null = share(np.where(recent, 0.003, 0.05))
    gestation[share(0.007)] = UNKNOWN
    gestation[share(0.0002)] = 0
    # the public table's own column notes: alcohol use from 1989, tobacco use from 2003, Apgar
    # scores 1978-2002
    smoking_null = year < 2003
    drinking_null = year < 1989
    apgar_null = apgar_null | (year > 2002)

    # columns added after the rest (drawn last, so the columns above keep their values):
    # the mother's birth state (home state for ~80 %, like the state of birth otherwise; not
    # published after 2004, like state) and the last menstrual period, MMDDYYYY, consistent
    # with gestation_weeks; "99" (nothing known) or "9999" (no year) where it is unknown.
    mother_birth_state = np.where(
        rng.random(n) < 0.8, state, rng.choice(_STATES, n, p=_STATE_WEIGHTS / _STATE_WEIGHTS.sum())
    )
    mother_birth_state[year > 2004] = None
    lmp_days = gestation * 7 + rng.integers(0, 7, n)
    lmp_dates = (dates - pd.to_timedelta(lmp_days, unit="D")).dt.strftime("%m%d%Y").to_numpy()
    lmp_unknown = gestation_null | (gestation == UNKNOWN) | (gestation == 0)
    lmp = np.where(lmp_unknown, np.where(rng.random(n) < 0.5, "99", "9999"), lmp_dates)

    df = pd.DataFrame(
        {
            "source_year": _nullable_int(year),
            "year": _nullable_int(year),
            "month": _nullable_int(month),
            "day": _nullable_int(day),
            "wday": _nullable_int(wday),
            "state": pd.array(state, dtype="string"),
            "is_male": _nullable_bool(is_male),
            "child_race": _nullable_int(child_race),
            "weight_pounds": weight_pounds,
            "plurality": _nullable_int(plurality, plurality_null),
            "apgar_1min": _nullable_int(apgar_1min, apgar_null),
            "apgar_5min": _nullable_int(apgar_5min, apgar_null),
            "mother_residence_state": pd.array(state, dtype="string"),
            "mother_race": _nullable_int(mother_race),
            "mother_age": _nullable_int(mother_age, age_null),
            "gestation_weeks": _nullable_int(gestation, gestation_null),
            "lmp": pd.array(lmp, dtype="string"),
            "mother_married": _nullable_bool(married),
            "mother_birth_state": pd.array(mother_birth_state, dtype="string"),
            "cigarette_use": _nullable_bool(smoker, smoking_null),
            "cigarettes_per_day": _nullable_int(cigarettes_per_day, smoking_null),
            "alcohol_use": _nullable_bool(drinker, drinking_null),
            "drinks_per_week": _nullable_int(drinks_per_week, drinking_null),
            "weight_gain_pounds": _nullable_int(weight_gain),
            "born_alive_alive": _nullable_int(born_alive_alive),
            "born_alive_dead": _nullable_int(born_alive_dead),
            "born_dead": _nullable_int(born_dead),
            "ever_born": _nullable_int(ever_born),
            "father_race": _nullable_int(father_race),
            "father_age": _nullable_int(father_age),
            "record_weight": _nullable_int(record_weight),
        }
    )
    return df


def fingerprint(df: pd.DataFrame) -> str:
    """A SHA-256 of a frame's values, index and column names (to pin determinism)."""
    digest = hashlib.sha256(json.dumps([list(df.columns), [str(t) for t in df.dtypes]]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return digest.hexdigest()


#: Bump when :func:`generate` changes what a (rows, seed) pair produces; :func:`load` reloads.
VERSION = 3


def schema() -> list:
    """:data:`SCHEMA_SPEC` as google-cloud-bigquery ``SchemaField`` objects (for load jobs)."""
    from google.cloud.bigquery import SchemaField

    return [SchemaField(name, kind, mode=mode) for name, kind, mode in SCHEMA_SPEC]


def public_table():
    """The public table at its default size, for the local warehouse's first reference to it
    (``prodml.datasets.PUBLIC_TABLES``): a pyarrow Table whose non-nullable fields are the
    public table's REQUIRED columns."""
    import pyarrow as pa

    frame = generate()
    types = pa.Schema.from_pandas(frame, preserve_index=False)
    required = {name for name, _, mode in SCHEMA_SPEC if mode == "REQUIRED"}
    schema = pa.schema([f.with_nullable(f.name not in required) for f in types])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def load(client=None, rows: int = 1_000_000, seed: int = 0, table: str = TABLE) -> str:
    """Fill the local warehouse's ``table`` with :func:`generate` ``(rows, seed)``; return its id.

    Writes through the client's ``load_table_from_dataframe`` with ``WRITE_TRUNCATE``, the call
    one would make on BigQuery. Cheap when the table already holds that ``(rows, seed)``: a
    marker under the run folder records what was loaded, and the table's row count confirms it.

    On real BigQuery the public table is already there: for :data:`TABLE` nothing is written and
    its id is returned; any other table is refused (synthetic rows never go to a real project).
    """
    from prodml import config, warehouse

    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows <= 0:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if client is None and config.settings().warehouse == "duckdb":
        client = warehouse.client()
    if client is None or not warehouse.is_local(client):  # BigQuery itself
        if table == TABLE:
            return table
        raise ValueError(
            f"refusing to write synthetic natality rows to {table!r} on real BigQuery: there, "
            f"query the public table {TABLE!r} itself (load() returns its id)"
        )
    want = {"rows": int(rows), "seed": int(seed), "version": VERSION}
    make = functools.partial(generate, int(rows), int(seed))
    return load_once(client, table, want, make, "natality", schema())
