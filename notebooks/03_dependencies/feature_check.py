"""The feature's test, written with the feature: recorded examples and their expected days.

Named so that pytest runs it only when asked (`pytest feature_check.py`): it fails on purpose
under numpy 2, and notebook 03 runs it under both environments.
"""

import numpy as np
from features import gestation_days


def test_gestation_days_of_recorded_examples():
    weeks = np.array([39, 40, 36, 28], dtype=np.uint8)
    assert gestation_days(weeks) == [273, 280, 252, 196]
