"""The babyweight feature contract: one definition of what the model is fed, used everywhere.

The natality table the data comes from, the rows the course keeps (the clean filter) and the
plausible range of each number are the table's facts (:mod:`prodml.datasets.natality`), which
the model takes from there. Defined here: the four features and the label, how a value becomes
what the model takes (:func:`gender`, :func:`plurality`), the course's example instance, and
:data:`CONTRACT`, the record contract the prediction pipeline checks records against
(``prodml.pipelines`` names no model: it is handed this). The trainer's query, the pipeline's
record checks, the tests and the benchmarks import these names rather than restating them.
(The App Engine front-end is deployed on its own and keeps its own copy of the form's values.)

Importing this module imports neither Beam nor TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

from prodml.contracts import Derived, Field, RecordContract
from prodml.datasets.natality import CLEAN_CONDITIONS, CLEAN_WHERE, RANGES, TABLE, clean
from prodml.datasets.natality import UNKNOWN as UNKNOWN_GESTATION

__all__ = [
    "CLEAN_CONDITIONS",
    "CLEAN_WHERE",
    "CONTRACT",
    "COURSE_INSTANCE",
    "FEATURES",
    "GENDERS",
    "LABEL",
    "MULTIPLE",
    "NUMERIC_FEATURES",
    "PLURALITIES",
    "PREDICTIONS_TABLE",
    "RANGES",
    "REQUIRED",
    "STRING_FEATURES",
    "TABLE",
    "UNKNOWN",
    "UNKNOWN_GESTATION",
    "clean",
    "gender",
    "in_range",
    "plurality",
]

LABEL = "weight_pounds"
FEATURES = ("is_male", "mother_age", "plurality", "gestation_weeks")
STRING_FEATURES = ("is_male", "plurality")
NUMERIC_FEATURES = ("mother_age", "gestation_weeks")
#: the features a record must carry (is_male may be missing: 'Unknown', as without ultrasound)
REQUIRED = ("mother_age", "plurality", "gestation_weeks")
#: where the prediction pipeline writes babyweight's predictions by default
PREDICTIONS_TABLE = "babyweight.predictions"

#: plurality 1..5 as the course spells it, then the value used when the count is unknown.
PLURALITIES = (
    "Single(1)",
    "Twins(2)",
    "Triplets(3)",
    "Quadruplets(4)",
    "Quintuplets(5)",
    "Multiple(2+)",
)
MULTIPLE = PLURALITIES[-1]
#: is_male as the model takes it; 'Unknown' when there was no ultrasound.
GENDERS = ("True", "False", "Unknown")
UNKNOWN = GENDERS[-1]
_TRUE, _FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")

#: The course's instance, exactly as its front-end sends it to the prediction service.
COURSE_INSTANCE = {
    "is_male": "True",
    "mother_age": 26.0,
    "plurality": "Single(1)",
    "gestation_weeks": 39,
}


def _is_nan(value: Any) -> bool:
    """NaN or pandas' NA, without importing pandas (a record rarely holds either)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN (float, NumPy); pd.NA raises TypeError
    except TypeError:
        return True
    except ValueError:  # an array: not one missing value
        return False


def gender(is_male) -> str:
    """is_male as the model takes it: True -> 'True', False -> 'False', missing -> 'Unknown'.

    Strings already in :data:`GENDERS` pass through unchanged.
    """
    if isinstance(is_male, str):
        if is_male in GENDERS:
            return is_male
        raise ValueError(f"is_male must be True, False or one of {GENDERS}, got {is_male!r}")
    if isinstance(is_male, bool):  # the common case first: a pipeline calls this per record
        return "True" if is_male else "False"
    if _is_nan(is_male):
        return UNKNOWN
    if is_male in (0, 1):  # NumPy's bools and integers too
        return "True" if bool(is_male) else "False"
    raise ValueError(f"is_male must be True, False or one of {GENDERS}, got {is_male!r}")


def plurality(count, is_male=True) -> str:
    """Plurality as the model takes it: 1 -> 'Single(1)', ..., 5 -> 'Quintuplets(5)'.

    When the gender is unknown (no ultrasound) a count above 1 is only known as
    'Multiple(2+)', as in the course's augmentation and front-end. Strings already in
    :data:`PLURALITIES` pass through unchanged.
    """
    if isinstance(count, str):
        if count in PLURALITIES:
            return count
        raise ValueError(f"plurality must be 1..5 or one of {PLURALITIES}, got {count!r}")
    if type(count) is not int and (isinstance(count, bool) or _is_nan(count)):
        raise ValueError(f"plurality must be an integer 1..5, got {count!r}")
    if count not in range(1, 6):
        raise ValueError(f"plurality must be an integer 1..5, got {count!r}")
    if int(count) > 1 and gender(is_male) == UNKNOWN:
        return MULTIPLE
    return PLURALITIES[int(count) - 1]


def in_range(name: str, value: float) -> bool:
    """True when ``value`` lies in ``RANGES[name]`` (NaN never does)."""
    low, high = RANGES[name]
    return low <= value <= high


# --- the record contract: how the pipeline reads each field of an incoming record -----------


def _record_gender(value: Any) -> str:
    """A record's is_male (a bool, 'true'/'false' text, a model string, or missing)."""
    if value is None or isinstance(value, bool):
        return gender(value)
    text = str(value).strip()
    if text in GENDERS:
        return text
    if text.lower() in _TRUE:
        return "True"
    if text.lower() in _FALSE:
        return "False"
    raise ValueError(f"is_male must be true, false or Unknown, got {value!r}")


def _record_plurality(value: Any) -> Any:
    """A record's plurality: a model string as it is, else a count 1..5 (text or number)."""
    if isinstance(value, str):
        text = value.strip()
        if text in PLURALITIES:
            return text
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"unknown plurality: {value!r}") from None
    if isinstance(value, float) and not math.isnan(value) and value.is_integer():
        value = int(value)
    low, high = RANGES["plurality"]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"unknown plurality: {value!r} (expected {low}..{high})")
    return value


#: The prediction pipeline's record contract: the four features checked as the model was trained
#: on them (is_male may be missing; a plurality count is spelled by the gender, as
#: :func:`plurality` does), the label kept when present, predictions to
#: :data:`PREDICTIONS_TABLE` as ``predicted_weight_pounds`` from the signature's ``weight``.
CONTRACT = RecordContract(
    name="babyweight",
    fields=(
        Field("is_male", parse=_record_gender, required=False),
        Field("mother_age", range=RANGES["mother_age"]),
        Field("plurality", parse=_record_plurality),
        Field(
            "gestation_weeks",
            range=RANGES["gestation_weeks"],
            codes=((UNKNOWN_GESTATION, "means unknown in natality"),),
        ),
    ),
    derived=(Derived("plurality", ("plurality", "is_male"), plurality),),
    label=LABEL,
    output="weight",
    prediction=f"predicted_{LABEL}",
    table=PREDICTIONS_TABLE,
)
