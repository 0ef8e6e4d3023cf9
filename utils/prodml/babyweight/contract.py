"""The babyweight feature contract: one definition of what the model is fed, used everywhere.

The natality table the data comes from, the rows the course keeps (the clean filter), the four
features and the label, the plausible range of each number, and the course's example instance.
The warehouse's generator, the trainer's query, the prediction pipeline's record checks, the
tests and the benchmarks import these names rather than restating them. (The App Engine
front-end is deployed on its own and keeps its own copy of the form's values.)

Plain Python only: importing this module imports neither pandas nor TensorFlow.
"""

from __future__ import annotations

#: The public table the course queries (``publicdata.samples.natality`` is BigQuery's alias).
TABLE = "bigquery-public-data.samples.natality"

LABEL = "weight_pounds"
FEATURES = ("is_male", "mother_age", "plurality", "gestation_weeks")
STRING_FEATURES = ("is_male", "plurality")
NUMERIC_FEATURES = ("mother_age", "gestation_weeks")
#: the features a record must carry (is_male may be missing: 'Unknown', as without ultrasound)
REQUIRED = ("mother_age", "plurality", "gestation_weeks")

#: natality codes an unknown gestation as 99 weeks: a code, not a duration.
UNKNOWN_GESTATION = 99

#: Plausible values, inclusive ``(low, high)``: what the natality stand-in generates on clean
#: rows, hence the range the model is trained on. The pipeline's record check rejects values
#: outside them (a dead letter naming the range) rather than predicting from an extrapolation.
RANGES: dict[str, tuple[int, int]] = {
    "mother_age": (12, 50),
    "plurality": (1, 5),
    "gestation_weeks": (17, 47),
}

#: The course's filter (``> 0`` drops NULLs and zeros alike) plus ``gestation_weeks < 99``.
CLEAN_CONDITIONS = (
    "year > 2000",
    f"{LABEL} > 0",
    "mother_age > 0",
    "plurality > 0",
    "gestation_weeks > 0",
    f"gestation_weeks < {UNKNOWN_GESTATION}",
)
#: The same as one SQL condition, for ``WHERE``.
CLEAN_WHERE = " AND ".join(CLEAN_CONDITIONS)

#: The course's instance, exactly as its front-end sends it to the prediction service.
COURSE_INSTANCE = {
    "is_male": "True",
    "mother_age": 26.0,
    "plurality": "Single(1)",
    "gestation_weeks": 39,
}


def clean(df):
    """The rows of a natality DataFrame that :data:`CLEAN_WHERE` keeps (NULLs dropped)."""
    keep = (
        (df["year"] > 2000)
        & (df[LABEL] > 0)
        & (df["mother_age"] > 0)
        & (df["plurality"] > 0)
        & (df["gestation_weeks"] > 0)
        & (df["gestation_weeks"] < UNKNOWN_GESTATION)
    )
    return df[keep.fillna(False).astype(bool)]


def in_range(name: str, value: float) -> bool:
    """True when ``value`` lies in ``RANGES[name]`` (NaN never does)."""
    low, high = RANGES[name]
    return low <= value <= high


__all__ = [
    "CLEAN_CONDITIONS",
    "CLEAN_WHERE",
    "COURSE_INSTANCE",
    "FEATURES",
    "LABEL",
    "NUMERIC_FEATURES",
    "RANGES",
    "REQUIRED",
    "STRING_FEATURES",
    "TABLE",
    "UNKNOWN_GESTATION",
    "clean",
    "in_range",
]
