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

import functools

import numpy as np
import pandas as pd

from prodml.datasets import natality_model as model
from prodml.datasets.loading import fingerprint, load_once
from prodml.datasets.natality_model import CV, GRAMS_PER_POUND, UNKNOWN

__all__ = [
    "CLEAN_CONDITIONS",
    "CLEAN_WHERE",
    "CV",
    "GRAMS_PER_POUND",
    "NOISE_FLOOR_RMSE",
    "RANGES",
    "SCHEMA_SPEC",
    "TABLE",
    "TARGETS",
    "UNKNOWN",
    "VERSION",
    "clean",
    "expected_weight",
    "fingerprint",
    "generate",
    "load",
    "noise_floor_rmse",
    "public_table",
    "schema",
]

#: The public table (``publicdata.samples.natality`` is BigQuery's alias).
TABLE = "bigquery-public-data.samples.natality"

#: Plausible values, inclusive ``(low, high)``: what this stand-in generates on clean rows
#: (so the range a model trained on it knows). Table facts: models import them, not the reverse.
RANGES: dict[str, tuple[int, int]] = {
    "mother_age": (12, 50),
    "plurality": (1, 5),
    "gestation_weeks": (17, 47),
}

#: The course's filter (``> 0`` drops NULLs and zeros alike) plus ``gestation_weeks < 99``:
#: the "clean rows" the noise floor is stated for.
CLEAN_CONDITIONS = (
    "year > 2000",
    "weight_pounds > 0",
    "mother_age > 0",
    "plurality > 0",
    "gestation_weeks > 0",
    f"gestation_weeks < {UNKNOWN}",
)
#: The same as one SQL condition, for ``WHERE``.
CLEAN_WHERE = " AND ".join(CLEAN_CONDITIONS)


def clean(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a natality DataFrame that :data:`CLEAN_WHERE` keeps (NULLs dropped)."""
    keep = (
        (df["year"] > 2000)
        & (df["weight_pounds"] > 0)
        & (df["mother_age"] > 0)
        & (df["plurality"] > 0)
        & (df["gestation_weeks"] > 0)
        & (df["gestation_weeks"] < UNKNOWN)
    )
    return df[keep.fillna(False).astype(bool)]


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


def _features(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """is_male (bool), mother_age, plurality (int), gestation_weeks as arrays; refuses bad rows."""
    missing = [c for c in ("is_male", *RANGES) if c not in df]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}; it has {list(df.columns)}")
    sex = df["is_male"]
    if not pd.api.types.is_bool_dtype(sex):  # the model's strings "True" / "False"
        sex = sex.map({"True": True, "False": False, True: True, False: False})
    bad = sex.isna().to_numpy().copy()
    values = {}
    for name, (low, high) in RANGES.items():
        values[name] = pd.to_numeric(df[name]).astype("float64").to_numpy(na_value=np.nan)
        bad |= ~((values[name] >= low) & (values[name] <= high))  # NaN fails both
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        shown = df.iloc[first][["is_male", *RANGES]].to_dict()
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
    m1, _ = model.hidden_moments(age)
    return model.mean_weight(is_male, age, plur, gest) * m1


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
    mu = model.mean_weight(is_male, age, plur, gest)
    m1, m2 = model.hidden_moments(age)
    variance = mu**2 * (m2 * (1.0 + CV**2) - m1**2)
    return float(np.sqrt(variance.mean()))


@functools.cache
def _default_noise_floor() -> float:
    return noise_floor_rmse(generate(1_000_000, seed=0))


def generate(rows: int = 1_000_000, seed: int = 0) -> pd.DataFrame:
    """``rows`` synthetic natality records; the same ``(rows, seed)`` gives the same frame.

    Columns and types follow the public table (INTEGER -> nullable ``Int64``, FLOAT ->
    ``float64`` with NaN for NULL, BOOLEAN -> nullable ``boolean``, STRING -> ``str``). The
    steps below draw from one generator, in this order (so a frame never changes when the code
    is reorganised): when and where, the mother and the birth, gestation, the weight, the other
    columns, the warts, and the columns added last.
    """
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows <= 0:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = int(rows)
    rng = np.random.default_rng(seed)
    c = model.when_and_where(rng, n)
    c.update(model.mother_and_birth(rng, n, c["recent"]))
    c["gestation"] = model.gestation(rng, c["plurality"], c["mother_age"])
    c.update(model.weight(rng, n, c))
    c.update(model.other_columns(rng, n, c))
    c.update(model.warts(rng, n, c))
    c.update(model.added_last(rng, n, c))
    return model.frame(c)


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
