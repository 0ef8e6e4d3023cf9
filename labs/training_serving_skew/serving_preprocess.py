"""The serving team's preprocessing: one JSON prediction request -> the model's four inputs.

A prediction request is a natality record as the hospital's systems send it::

    {"key": "r00042", "is_male": true, "mother_age": 26, "plurality": 1, "gestation_weeks": 39}

``is_male`` is ``null`` (or absent) when there was no ultrasound, ``plurality`` is the number of
babies. The model takes ``is_male`` as "True" / "False" / "Unknown", ``plurality`` as
"Single(1)" ... "Quintuplets(5)" or "Multiple(2+)", and the two numbers as floats.

:func:`reimplemented_features` is how the serving team first wrote it: a fresh copy of the
training code's mapping, tested by eye on a few requests. It is kept here, unused by
:func:`features`, so the lab can measure what it does to predictions. :func:`features` is what
the serving path uses: the online path of the lab's section 6 and the Beam pipeline of its
section 7 (``build_pipeline(parse=features)``) alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from prodml import babyweight

#: the serving team's table of plurality names (copied from a slide, not from the trainer)
PLURALITY_NAMES = {
    1: "Single(1)",
    2: "Multiple(2+)",
    3: "Multiple(2+)",
    4: "Multiple(2+)",
    5: "Multiple(2+)",
}


def parse(message: str | bytes | Mapping) -> dict:
    """A request as a dict (JSON text or bytes are decoded); refuses anything but an object."""
    if isinstance(message, bytes):
        message = message.decode("utf-8")
    if isinstance(message, str):
        message = json.loads(message)
    if not isinstance(message, Mapping):
        raise ValueError(f"a request must be a JSON object, got {type(message).__name__}")
    return dict(message)


def reimplemented_features(message: str | bytes | Mapping) -> dict:
    """The serving team's re-implementation. It looks right and it runs without an error."""
    record = parse(message)
    return {
        "key": record.get("key"),
        # str(None) is "None": a request without an ultrasound becomes a gender the model
        # never saw in training (it learnt "Unknown").
        "is_male": str(record.get("is_male")),
        "mother_age": float(record["mother_age"]),
        # Every count above one becomes "Multiple(2+)", as on the web form, even when the
        # gender is known and training used "Twins(2)", "Triplets(3)", ...
        "plurality": PLURALITY_NAMES[int(record["plurality"])],
        "gestation_weeks": float(record["gestation_weeks"]),
    }


def features(message: str | bytes | Mapping) -> dict:
    """The serving path's preprocessing: one request -> the model's four inputs and the
    request's ``key``; a request the model cannot use raises ``ValueError`` saying why."""
    record = parse(message)
    # TODO 2: the shared transform: the model's inputs for one request, made so that serving
    # can never drift from training.
    # Input: `record`, a parsed request (a dict). Output: a dict of the four features and the
    # request's "key"; a ValueError naming the problem for a request the model cannot use.
    # Equal to the inputs training made from the same record, today and after the trainer's
    # team changes its mapping (the check renames the plurality values). Sections 1 and 6 of
    # the notebook.
    # Graded by: test-fixed, test-pipeline
    raise NotImplementedError("TODO 2: the shared transform: the model's inputs for one request, made so that serving can never drift from training")
