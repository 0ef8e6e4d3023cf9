"""Two datasets side by side, feature by feature (TFDV's ``visualize_statistics(lhs, rhs)``).

TFDV draws its comparison with Facets in the browser; here one matplotlib figure: per feature,
the two distributions overlaid (numeric: histograms on shared bins, as densities; categorical:
the share of each value, side by side) and the share of examples missing the feature in each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from prodml.validation.values import categorical, check_frame, column_type, numeric, present

__all__ = ["visualize_statistics", "COLORS", "BINS", "TOP_VALUES"]

COLORS = ("tab:blue", "tab:orange")
BINS = 20
TOP_VALUES = 8


def _numeric_panel(ax, columns: list[pd.Series], names: tuple[str, str]) -> None:
    values = [numeric(c) for c in columns]
    joined = np.concatenate([v for v in values if v.size] or [np.zeros(1)])
    edges = np.histogram_bin_edges(joined, bins=BINS)
    for v, name, color in zip(values, names, COLORS, strict=True):
        if v.size:
            ax.hist(v, bins=edges, density=True, alpha=0.5, color=color, label=name)
    ax.set_ylabel("density")


def _categorical_panel(ax, columns: list[pd.Series], names: tuple[str, str]) -> None:
    shares = [categorical(c).value_counts(normalize=True) for c in columns]
    order = (shares[0].add(shares[1], fill_value=0)).sort_values(ascending=False).index
    order = list(order[:TOP_VALUES])
    x = np.arange(len(order))
    for i, (share, name, color) in enumerate(zip(shares, names, COLORS, strict=True)):
        ax.bar(
            x + (i - 0.5) * 0.4, share.reindex(order, fill_value=0.0), 0.4, color=color, label=name
        )
    ax.set_xticks(x, [str(v)[:14] for v in order], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("share of values")


def visualize_statistics(
    lhs: pd.DataFrame,
    rhs: pd.DataFrame,
    lhs_name: str = "train",
    rhs_name: str = "serving",
    features: list[str] | None = None,
    columns: int = 3,
    categorical: Iterable[str] = (),
):
    """A matplotlib figure comparing two datasets feature by feature: overlaid distributions
    and, in each panel's title, the share of examples missing the feature on each side
    (``missing train 0.0% / serving 12.5%``). A feature absent from one side is drawn from the
    other alone and titled "absent". ``categorical`` names numeric columns to draw as
    categories (as ``infer_schema(categorical=...)`` treats them). Returns the figure."""
    import matplotlib.pyplot as plt

    check_frame(lhs, "lhs")
    check_frame(rhs, "rhs")
    names = (lhs_name, rhs_name)
    features = list(features) if features is not None else list(dict.fromkeys([*lhs, *rhs]))
    unknown = [f for f in features if f not in lhs and f not in rhs]
    if unknown:
        raise ValueError(f"features {unknown} are in neither dataset")
    rows = math.ceil(len(features) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    categorical = set(categorical)
    for ax, name in zip(axes.flat, features, strict=False):
        _panel(ax, name, lhs, rhs, names, name in categorical)
    for ax in list(axes.flat)[len(features) :]:
        ax.set_visible(False)
    fig.suptitle(f"{lhs_name} vs {rhs_name}: distributions and missing values per feature")
    fig.tight_layout()
    return fig


def _panel(ax, name: str, lhs, rhs, names: tuple[str, str], as_category: bool) -> None:
    empty = pd.Series([], dtype=object)
    sides = [frame[name] if name in frame else empty for frame in (lhs, rhs)]
    missing = [
        f"{side}: absent" if name not in frame else f"{side} {1 - present(frame[name]).mean():.1%}"
        for frame, side in zip((lhs, rhs), names, strict=True)
    ]
    source = sides[0] if name in lhs else sides[1]
    if column_type(source) in ("int", "float") and not as_category:
        _numeric_panel(ax, sides, names)
    else:
        _categorical_panel(ax, sides, names)
    ax.set_title(f"{name}\nmissing: {' / '.join(missing)}", fontsize=9)
    ax.set_xlabel(name)
    ax.legend(fontsize=7)
