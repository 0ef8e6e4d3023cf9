"""babyweight's side of the safeness gate: what the gate sends it and what clients rely on.

The gate itself (:mod:`prodml.serving.safeness`) knows no model: it loads a candidate in a fresh
``prodml serve`` process, sends it probe requests and judges the answers. What to send and what
to expect come from the model's contract, here:

- :func:`probe_set`: ``(name, kind, instances)`` triples built from the feature contract (the
  features, each number's plausible range, every category value): ``valid`` inputs at the ends
  of each range; ``extreme`` numbers (0, negative, 1e6, float32's largest, infinity);
  ``missing`` values (empty strings, NaN as ``json.dumps`` writes a missing pandas number,
  ``null``, a feature left out); ``malformed`` ones (numbers as strings, strings as numbers,
  booleans, lists, an extra feature, an unknown category, an empty batch);
- :data:`SIGNATURE`: the serving signature the contract implies, what clients are written
  against when nothing is deployed yet to compare with;
- :data:`PLAUSIBLE_WEIGHT`: answers outside it are reported (not blocked).

    from prodml.serving import safeness
    from prodml.babyweight import probes
    report = safeness.check(export, probes.probe_set(), reference=deployed,
                            signature=probes.SIGNATURE, plausible=probes.PLAUSIBLE_WEIGHT)

Plain Python: importing this module imports neither TensorFlow nor pandas.
"""

from __future__ import annotations

import math

from prodml.babyweight.contract import (
    COURSE_INSTANCE,
    GENDERS,
    NUMERIC_FEATURES,
    PLURALITIES,
    RANGES,
    STRING_FEATURES,
)

__all__ = ["PLAUSIBLE_WEIGHT", "SIGNATURE", "probe_set"]

#: birth weights a model may answer for a valid input without raising an eyebrow (lb)
PLAUSIBLE_WEIGHT = (0.5, 20.0)
#: the signature the contract implies: {signature: {"inputs"|"outputs": {name: (dtype, shape)}}}
SIGNATURE = {
    "serving_default": {
        "inputs": {
            **{f: ("DT_STRING", (-1,)) for f in STRING_FEATURES},
            **{f: ("DT_FLOAT", (-1,)) for f in NUMERIC_FEATURES},
        },
        "outputs": {"weight": ("DT_FLOAT", (-1, 1))},
    }
}

_LEFT_OUT = object()
#: a value outside each string feature's vocabulary
_UNKNOWN = {"is_male": "Maybe", "plurality": "Sextuplets(6)"}


def _with(**changes) -> dict:
    """The course's instance with some features changed (``_LEFT_OUT``: the feature left out)."""
    instance = {**COURSE_INSTANCE, **changes}
    return {k: v for k, v in instance.items() if v is not _LEFT_OUT}


def _numeric(name: str) -> list[tuple[str, str, list]]:
    found = [(f"{name} = {value:g}", "extreme", [_with(**{name: value})])
             for value in (0.0, -1.0, 1e6, 3.4e38, math.inf)]  # fmt: skip
    return found + [
        (f"{name} = NaN", "missing", [_with(**{name: math.nan})]),
        (f"{name} = null", "missing", [_with(**{name: None})]),
        (f"{name} left out", "missing", [_with(**{name: _LEFT_OUT})]),
        (f"{name} as a string", "malformed", [_with(**{name: "twenty"})]),
    ]


def _categorical(name: str) -> list[tuple[str, str, list]]:
    return [
        (f"{name} = ''", "missing", [_with(**{name: ""})]),
        (f"{name} unknown", "malformed", [_with(**{name: _UNKNOWN.get(name, "?")})]),
        (f"{name} as a number", "malformed", [_with(**{name: 1})]),
        (f"{name} as a boolean", "malformed", [_with(**{name: True})]),
    ]


def probe_set() -> list[tuple[str, str, list]]:
    """The probes, ``(name, kind, instances)`` each, built from the feature contract."""
    found = [("the course's instance", "valid", [dict(COURSE_INSTANCE)])]
    for name in NUMERIC_FEATURES:
        low, high = RANGES[name]
        found.append((f"{name} = {low} and {high}", "valid", [_with(**{name: float(v)}) for v in (low, high)]))  # fmt: skip
    every = [_with(is_male=g, plurality=p) for g in GENDERS for p in PLURALITIES]
    found.append(("every category value, one batch", "valid", every))
    for name in NUMERIC_FEATURES:
        found += _numeric(name)
    for name in STRING_FEATURES:
        found += _categorical(name)
    return found + [
        ("a list for a number", "malformed", [_with(mother_age=[26.0, 27.0])]),
        ("an extra feature", "malformed", [_with(race="x")]),
        ("an empty batch", "malformed", []),
    ]
