"""The feature's test, written with the feature: recorded examples and their expected days."""

import numpy as np
from features import gestation_days


def test_gestation_days_of_recorded_examples():
    weeks = np.array([39, 40, 36, 28], dtype=np.uint8)
    assert gestation_days(weeks) == [273, 280, 252, 196]
