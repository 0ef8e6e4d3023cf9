"""How the natality stand-in draws its rows (:func:`prodml.datasets.natality.generate` composes
these steps, in this order, from one generator): the weight model (Alexander's growth curve,
the sex, plurality and mother's-age factors, the hidden columns' effects), then one function
per group of columns: when and where, the mother and the birth, gestation, the weight, the
other columns, the public table's warts, the columns added last, and the frame.
"""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd

__all__ = [
    "CV",
    "GRAMS_PER_POUND",
    "UNKNOWN",
    "added_last",
    "age_factor",
    "first_birth_p",
    "married_p",
    "nullable_bool",
    "nullable_int",
    "previous_births_rate",
    "smoke_p",
    "frame",
    "gestation",
    "hidden_moments",
    "mean_weight",
    "mother_and_birth",
    "other_columns",
    "warts",
    "weight",
    "when_and_where",
]

GRAMS_PER_POUND = 453.59237
#: natality codes an unknown value (gestation_weeks, the Apgar scores, father_age) as 99.
UNKNOWN = 99

# --- the weight model -------------------------------------------------------------------
# Mean birth weight (g) by completed gestation week, singletons of both sexes (Alexander 1996).
# fmt: off
GROWTH_WEEKS = np.array([17, 20, 22, 24, 26, 28, 30, 32, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 47])
GROWTH_GRAMS = np.array([150, 330, 480, 650, 850, 1150, 1450, 1850, 2350, 2600, 2850, 3080, 3260,
                          3390, 3480, 3560, 3590, 3580, 3550, 3500])
# fmt: on
#: Alexander's curve is for 1991 births; this lifts the overall mean to NCHS's 2000s figure.
SCALE = 1.025
SEX_FACTOR = {True: 1.018, False: 0.982}
#: weight at the same gestation relative to a singleton, by plurality 1..5.
PLURALITY_FACTOR = np.array([np.nan, 1.0, 0.88, 0.80, 0.75, 0.72])
CV = 0.136  # the individual baby: SD relative to the conditional mean
# hidden columns: (multiplicative effect on weight)
SMOKE_EFFECT = -0.06
ALCOHOL_EFFECT = -0.03
MARRIED_EFFECT = 0.015
FIRST_BIRTH_EFFECT = -0.03
ALCOHOL_P = 0.02


def age_factor(age: np.ndarray) -> np.ndarray:
    """The mother's-age factor on weight (a mild hump around 27-30)."""
    age = np.asarray(age, dtype=float)
    return 1.0 + 0.0015 * (age - 27.0) - 0.0001 * (age - 30.0) ** 2


def smoke_p(age: np.ndarray) -> np.ndarray:
    """P(smoker | mother_age)."""
    age = np.asarray(age, dtype=float)
    return np.select([age < 20, age < 25, age < 30], [0.16, 0.14, 0.10], 0.08)


def married_p(age: np.ndarray) -> np.ndarray:
    """P(married | mother_age)."""
    age = np.asarray(age, dtype=float)
    return 0.85 / (1.0 + np.exp(-(age - 23.0) / 2.5))


def first_birth_p(age: np.ndarray) -> np.ndarray:
    """P(first birth | mother_age)."""
    # ever_born = 1 + Poisson(lambda(age)); a first birth is ever_born == 1.
    return np.exp(-previous_births_rate(age))


def previous_births_rate(age: np.ndarray) -> np.ndarray:
    """The Poisson rate of earlier births by mother_age."""
    age = np.asarray(age, dtype=float)
    return np.clip((age - 17.0) * 0.09, 0.02, None)


def hidden_moments(age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[m | age] and E[m^2 | age] for the product of independent Bernoulli effects."""
    m1 = np.ones_like(np.asarray(age, dtype=float))
    m2 = np.ones_like(m1)
    for effect, p in (
        (SMOKE_EFFECT, smoke_p(age)),
        (ALCOHOL_EFFECT, np.full_like(m1, ALCOHOL_P)),
        (MARRIED_EFFECT, married_p(age)),
        (FIRST_BIRTH_EFFECT, first_birth_p(age)),
    ):
        m1 = m1 * (1.0 + effect * p)
        m2 = m2 * (1.0 + (2 * effect + effect**2) * p)
    return m1, m2


def mean_weight(is_male, mother_age, plurality, gestation_weeks) -> np.ndarray:
    """mu: the growth curve at the gestation week times the sex, plurality and age factors (lb)."""
    grams = np.interp(np.asarray(gestation_weeks, dtype=float), GROWTH_WEEKS, GROWTH_GRAMS)
    sex = np.where(np.asarray(is_male, dtype=bool), SEX_FACTOR[True], SEX_FACTOR[False])
    plur = PLURALITY_FACTOR[np.asarray(plurality, dtype=int)]
    return SCALE * grams / GRAMS_PER_POUND * sex * plur * age_factor(mother_age)


# --- the other columns ------------------------------------------------------------------
# approximate shares (%) of US births in the 2000s, by state (and DC)
STATE_SHARES = """
CA 13.2 TX 9.3 NY 6.1 FL 5.3 IL 4.3 PA 3.5 OH 3.6 GA 3.4 NC 3.0 MI 3.1 NJ 2.8 AZ 2.3 VA 2.5
WA 2.0 IN 2.1 TN 1.9 MA 1.9 MO 1.9 MD 1.8 MN 1.7 WI 1.7 CO 1.7 AL 1.5 SC 1.4 LA 1.5 KY 1.4
OK 1.3 UT 1.3 OR 1.2 CT 1.0 AR 0.9 MS 1.0 IA 0.9 KS 1.0 NV 0.9 NM 0.7 NE 0.6 ID 0.6 WV 0.5
HI 0.46 ME 0.34 NH 0.35 RI 0.32 MT 0.3 DE 0.29 SD 0.28 ND 0.27 AK 0.25 DC 0.24 VT 0.16 WY 0.17
""".split()
STATES = np.array(STATE_SHARES[0::2], dtype=object)
STATE_WEIGHTS = np.array(STATE_SHARES[1::2], dtype=float)
# natality race codes: white, black, american indian, chinese, japanese, filipino, other, asian
# indian, korean, vietnamese
RACES = np.array([1, 2, 3, 4, 5, 7, 9, 18, 28, 48])
RACE_WEIGHTS = np.array([0.77, 0.15, 0.011, 0.012, 0.003, 0.008, 0.02, 0.012, 0.005, 0.009])
MONTH_WEIGHTS = np.array([81, 76, 83, 80, 84, 84, 89, 90, 88, 85, 79, 81], dtype=float)
YEARS_RECENT = np.arange(2001, 2009)
RECENT_SHARE = 0.8  # 2001-2008; the rest 1969-2000, which the course's year > 2000 drops
# gestation by plurality: (P(preterm tail), term mean, term sd, tail start, tail scale)
GESTATION = {
    1: (0.06, 39.2, 1.5, 36.5, 2.2),
    2: (0.25, 36.6, 1.4, 35.5, 3.0),
    3: (0.0, 32.5, 2.5, 0.0, 1.0),
    4: (0.0, 30.5, 2.5, 0.0, 1.0),
    5: (0.0, 29.0, 2.5, 0.0, 1.0),
}


def nullable_int(values: np.ndarray, null: np.ndarray | None = None) -> pd.arrays.IntegerArray:
    """A nullable Int64 column, NULL where ``null``."""
    values = np.asarray(values).astype("int64")
    mask = np.zeros(values.shape, bool) if null is None else np.asarray(null, bool)
    return pd.arrays.IntegerArray(values, mask)


def nullable_bool(values: np.ndarray, null: np.ndarray | None = None) -> pd.arrays.BooleanArray:
    """A nullable boolean column, NULL where ``null``."""
    values = np.asarray(values, dtype=bool)
    mask = np.zeros(values.shape, bool) if null is None else np.asarray(null, bool)
    return pd.arrays.BooleanArray(values, mask)


def when_and_where(rng: np.random.Generator, n: int) -> dict:
    """year (80 % in 2001-2008), month, day, weekday and state."""
    recent = rng.random(n) < RECENT_SHARE
    year = np.where(recent, rng.choice(YEARS_RECENT, n), rng.integers(1969, 2001, n))
    month = rng.choice(np.arange(1, 13), n, p=MONTH_WEIGHTS / MONTH_WEIGHTS.sum())
    leap = np.array([calendar.isleap(y) for y in range(1969, 2009)])[year - 1969]
    days_in_month = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month - 1] + (
        leap & (month == 2)
    )
    day = 1 + np.floor(rng.random(n) * days_in_month).astype(int)
    dates = pd.to_datetime({"year": year, "month": month, "day": day})
    wday = ((dates.dt.dayofweek.to_numpy() + 1) % 7) + 1  # 1 = Sunday ... 7 = Saturday
    state = rng.choice(STATES, n, p=STATE_WEIGHTS / STATE_WEIGHTS.sum())
    state[year > 2004] = None
    return {"recent": recent, "year": year, "month": month, "day": day, "dates": dates,
            "wday": wday, "state": state}  # fmt: skip


def mother_and_birth(rng: np.random.Generator, n: int, recent: np.ndarray) -> dict:
    """mother_age, the races, is_male and plurality (twins rarer before 2001)."""
    mother_age = np.clip(np.rint(12.0 + rng.gamma(6.0, 2.6, n)), 12, 50).astype(int)
    mother_race = rng.choice(RACES, n, p=RACE_WEIGHTS / RACE_WEIGHTS.sum())
    child_race = np.where(rng.random(n) < 0.93, mother_race, rng.choice(RACES, n, p=RACE_WEIGHTS))
    is_male = rng.random(n) < 0.512
    u = rng.random(n)
    twin_p = np.where(recent, 0.0325, 0.023)
    more_p = np.where(recent, 0.0017, 0.0007)
    plurality = np.where(u < twin_p, 2, 1)
    higher = u > 1.0 - more_p
    plurality[higher] = rng.choice([3, 4, 5], int(higher.sum()), p=[0.88, 0.09, 0.03])
    return {"mother_age": mother_age, "mother_race": mother_race, "child_race": child_race,
            "is_male": is_male, "plurality": plurality}  # fmt: skip


def gestation(rng: np.random.Generator, plurality: np.ndarray, mother_age: np.ndarray):
    """gestation_weeks by plurality: a term peak and a preterm tail (heavier for young and old
    mothers)."""
    gestation = np.empty(len(plurality))
    for k, (tail_p, mean, sd, start, scale) in GESTATION.items():
        sel = plurality == k
        size = int(sel.sum())
        tail_p = tail_p * np.where((mother_age[sel] < 18) | (mother_age[sel] >= 40), 1.3, 1.0)
        tail = rng.random(size) < tail_p
        term = rng.normal(mean, sd, size)
        early = start - rng.exponential(scale, size)
        gestation[sel] = np.where(tail, early, term)
    return np.clip(np.rint(gestation), 20, 45).astype(int)


def weight(rng: np.random.Generator, n: int, c: dict) -> dict:
    """The columns the course's model does not see, and the weight."""
    mother_age = c["mother_age"]
    smoker = rng.random(n) < smoke_p(mother_age)
    drinker = rng.random(n) < ALCOHOL_P
    married = rng.random(n) < married_p(mother_age)
    ever_born = 1 + rng.poisson(previous_births_rate(mother_age))
    hidden = (
        (1 + SMOKE_EFFECT * smoker)
        * (1 + ALCOHOL_EFFECT * drinker)
        * (1 + MARRIED_EFFECT * married)
        * (1 + FIRST_BIRTH_EFFECT * (ever_born == 1))
    )
    mu = mean_weight(c["is_male"], mother_age, c["plurality"], c["gestation"])
    grams = np.rint(mu * hidden * (1.0 + CV * rng.standard_normal(n)) * GRAMS_PER_POUND)
    weight_pounds = np.maximum(grams, 100.0) / GRAMS_PER_POUND  # recorded in grams, as the real one
    return {"smoker": smoker, "drinker": drinker, "married": married, "ever_born": ever_born,
            "weight_pounds": weight_pounds}  # fmt: skip


def other_columns(rng: np.random.Generator, n: int, c: dict) -> dict:
    """Cigarettes, drinks, weight gain, earlier births, the father, Apgar scores, record weight."""
    smoker, drinker, married = c["smoker"], c["drinker"], c["married"]
    mother_age, mother_race, ever_born = c["mother_age"], c["mother_race"], c["ever_born"]
    cigarettes_per_day = np.where(smoker, np.clip(np.rint(rng.gamma(2.0, 5.0, n)), 1, 60), 0)
    drinks_per_week = np.where(drinker, np.clip(np.rint(rng.gamma(1.5, 2.0, n)), 1, 40), 0)
    weight_gain = np.clip(np.rint(rng.normal(30.0, 12.0, n)), 0, 98)
    born_alive_dead = rng.binomial(ever_born - 1, 0.01)
    born_alive_alive = ever_born - 1 - born_alive_dead
    born_dead = rng.poisson(0.03, n)
    father_age = np.clip(np.rint(mother_age + rng.normal(2.5, 4.0, n)), 14, 90).astype(int)
    father_age[rng.random(n) < np.where(married, 0.03, 0.35)] = UNKNOWN
    father_race = np.where(rng.random(n) < 0.85, mother_race, rng.choice(RACES, n, p=RACE_WEIGHTS))
    apgar_1min = np.clip(
        np.rint(rng.normal(8.2 - 0.35 * np.clip(37 - c["gestation"], 0, None), 1.2)), 0, 10
    )
    apgar_5min = np.clip(np.rint(apgar_1min + rng.normal(1.0, 0.6, n)), 0, 10)
    apgar_unknown = rng.random(n) < 0.015
    apgar_1min[apgar_unknown] = UNKNOWN
    apgar_5min[apgar_unknown] = UNKNOWN
    year = c["year"]
    record_weight = np.where((year >= 1972) & (year <= 1984) & (rng.random(n) < 0.5), 2, 1)
    return {"cigarettes_per_day": cigarettes_per_day, "drinks_per_week": drinks_per_week,
            "weight_gain": weight_gain, "born_alive_dead": born_alive_dead,
            "born_alive_alive": born_alive_alive, "born_dead": born_dead,
            "father_age": father_age, "father_race": father_race, "apgar_1min": apgar_1min,
            "apgar_5min": apgar_5min, "record_weight": record_weight}  # fmt: skip


def warts(rng: np.random.Generator, n: int, c: dict) -> dict:
    """The public table's nulls, impossible zeros and 99 codes (in place), and null masks."""

    def share(p):
        return rng.random(n) < p

    weight_null = share(0.004)
    c["weight_pounds"][share(0.0002)] = 0.0
    c["weight_pounds"][weight_null] = np.nan
    age_null = share(0.001)
    c["mother_age"][share(0.0002)] = 0
    plurality_null = share(0.0005)
    c["plurality"][share(0.0001)] = 0
    gestation_null = share(np.where(c["recent"], 0.003, 0.05))
    c["gestation"][share(0.007)] = UNKNOWN
    c["gestation"][share(0.0002)] = 0
    # the public table's own column notes: alcohol use from 1989, tobacco use from 2003, Apgar
    # scores 1978-2002 (the Apgar score joined the birth certificate in 1978)
    year = c["year"]
    return {"age_null": age_null, "plurality_null": plurality_null,
            "gestation_null": gestation_null, "smoking_null": year < 2003,
            "drinking_null": year < 1989, "apgar_null": (year < 1978) | (year > 2002)}  # fmt: skip


def added_last(rng: np.random.Generator, n: int, c: dict) -> dict:
    """Columns added after the rest (drawn last, so the columns above keep their values): the
    mother's birth state (home state for ~80 %, like the state of birth otherwise; not
    published after 2004, like state) and the last menstrual period, MMDDYYYY, consistent with
    gestation_weeks; "99" (nothing known) or "9999" (no year) where it is unknown."""
    state, gestation = c["state"], c["gestation"]
    mother_birth_state = np.where(
        rng.random(n) < 0.8, state, rng.choice(STATES, n, p=STATE_WEIGHTS / STATE_WEIGHTS.sum())
    )
    mother_birth_state[c["year"] > 2004] = None
    lmp_days = gestation * 7 + rng.integers(0, 7, n)
    lmp_dates = (c["dates"] - pd.to_timedelta(lmp_days, unit="D")).dt.strftime("%m%d%Y").to_numpy()
    lmp_unknown = c["gestation_null"] | (gestation == UNKNOWN) | (gestation == 0)
    lmp = np.where(lmp_unknown, np.where(rng.random(n) < 0.5, "99", "9999"), lmp_dates)
    return {"mother_birth_state": mother_birth_state, "lmp": lmp}


def frame(c: dict) -> pd.DataFrame:
    """The columns, in the public table's order and types."""
    smoking_null, drinking_null, apgar_null = c["smoking_null"], c["drinking_null"], c["apgar_null"]
    return pd.DataFrame(
        {
            "source_year": nullable_int(c["year"]),
            "year": nullable_int(c["year"]),
            "month": nullable_int(c["month"]),
            "day": nullable_int(c["day"]),
            "wday": nullable_int(c["wday"]),
            "state": pd.array(c["state"], dtype="string"),
            "is_male": nullable_bool(c["is_male"]),
            "child_race": nullable_int(c["child_race"]),
            "weight_pounds": c["weight_pounds"],
            "plurality": nullable_int(c["plurality"], c["plurality_null"]),
            "apgar_1min": nullable_int(c["apgar_1min"], apgar_null),
            "apgar_5min": nullable_int(c["apgar_5min"], apgar_null),
            "mother_residence_state": pd.array(c["state"], dtype="string"),
            "mother_race": nullable_int(c["mother_race"]),
            "mother_age": nullable_int(c["mother_age"], c["age_null"]),
            "gestation_weeks": nullable_int(c["gestation"], c["gestation_null"]),
            "lmp": pd.array(c["lmp"], dtype="string"),
            "mother_married": nullable_bool(c["married"]),
            "mother_birth_state": pd.array(c["mother_birth_state"], dtype="string"),
            "cigarette_use": nullable_bool(c["smoker"], smoking_null),
            "cigarettes_per_day": nullable_int(c["cigarettes_per_day"], smoking_null),
            "alcohol_use": nullable_bool(c["drinker"], drinking_null),
            "drinks_per_week": nullable_int(c["drinks_per_week"], drinking_null),
            "weight_gain_pounds": nullable_int(c["weight_gain"]),
            "born_alive_alive": nullable_int(c["born_alive_alive"]),
            "born_alive_dead": nullable_int(c["born_alive_dead"]),
            "born_dead": nullable_int(c["born_dead"]),
            "ever_born": nullable_int(c["ever_born"]),
            "father_race": nullable_int(c["father_race"]),
            "father_age": nullable_int(c["father_age"]),
            "record_weight": nullable_int(c["record_weight"]),
        }
    )
