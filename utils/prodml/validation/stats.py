"""Descriptive statistics per feature (TFDV's ``generate_statistics_from_dataframe``, as a table)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prodml.validation.values import (
    NUMERIC,
    categorical,
    check_frame,
    column_type,
    numeric,
    present,
)

__all__ = ["statistics", "TOP"]

TOP = 5  # most frequent values listed per feature


def statistics(df: pd.DataFrame) -> pd.DataFrame:
    """Descriptive statistics, one row per feature (TFDV's ``generate_statistics``, as a table).

    Columns: ``type``, ``count`` (examples holding the feature), ``missing`` (fraction of
    examples without it), ``mean``, ``std``, ``min``, ``25%``, ``50%``, ``75%``, ``max`` (the
    five-number summary; numeric features only), ``unique`` (distinct values), ``top`` (the
    most frequent values, the modes first) and ``top_freq`` (their fractions).
    """
    check_frame(df)
    rows = []
    for name in df.columns:
        series = df[name]
        kind = column_type(series)
        held = present(series)
        row: dict[str, Any] = {
            "feature": str(name),
            "type": kind,
            "count": int(held.sum()),
            "missing": float(1.0 - held.mean()),
        }
        if kind in NUMERIC:
            values = numeric(series)
            if values.size:
                q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
                row.update(
                    mean=float(values.mean()),
                    std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
                )
                row.update(zip(["min", "25%", "50%", "75%", "max"], map(float, q), strict=True))
        freq = categorical(series).value_counts(normalize=True, sort=True)
        row["unique"] = int(freq.size)
        row["top"] = list(freq.index[:TOP])
        row["top_freq"] = [round(float(f), 4) for f in freq.iloc[:TOP]]
        rows.append(row)
    columns = ["feature", "type", "count", "missing", "mean", "std", "min", "25%", "50%", "75%"]
    columns += ["max", "unique", "top", "top_freq"]
    return pd.DataFrame(rows).reindex(columns=columns).set_index("feature")
