"""A serving feature as it was first written, when numpy 1.26 was current (notebook 03, §3).

The requests' gestation arrives in a compact column of weeks (``uint8``, one byte a value, as
module 02's Parquet files store small counts), and the feature is computed row by row, as a
serving function does.
"""

DAYS_PER_WEEK = 7


def gestation_days(weeks) -> list[int]:
    """Days of gestation for each value of ``weeks`` (a numpy array of whole weeks)."""
    return [int(w * DAYS_PER_WEEK) for w in weeks]
