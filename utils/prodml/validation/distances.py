"""TFDV's two distribution distances, computed with scipy.

* **L-infinity distance** (categorical features; TFDV's ``infinity_norm`` comparator): normalise
  each side's value counts to sum to 1 and take the largest absolute difference over all values,
  ``max_v |p(v) - q(v)|`` (``scipy.spatial.distance.chebyshev``); 0 means identical, 1 disjoint.
* **Jensen-Shannon divergence** (numeric features; TFDV's ``jensen_shannon_divergence``
  comparator): two histograms over common buckets, normalised, and
  ``JS = (KL(P||M) + KL(Q||M)) / 2`` with ``M = (P + Q) / 2`` and KL in **base 2**, so
  0 <= JS <= 1 (``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``: scipy returns the
  distance, the square root of the divergence). TFDV caps the result at 1.0 and so do we.

Both follow ``tensorflow_data_validation/anomalies/metrics.cc``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial import distance

__all__ = [
    "l_infinity",
    "js_divergence",
    "histogram",
    "jensen_shannon",
    "js_on_baseline_buckets",
    "HISTOGRAM_BUCKETS",
]

HISTOGRAM_BUCKETS = 10  # TFDV's default number of equal-width buckets


def l_infinity(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """TFDV's L-infinity distance: the largest ``|p(v) - q(v)|`` of normalised value counts."""
    p_total, q_total = sum(p.values()), sum(q.values())
    if p_total <= 0 or q_total <= 0:
        raise ValueError("L-infinity distance needs two non-empty value counts")
    keys = sorted(set(p) | set(q))
    p_vec = np.array([p.get(k, 0.0) for k in keys], dtype=float) / p_total
    q_vec = np.array([q.get(k, 0.0) for k in keys], dtype=float) / q_total
    return float(distance.chebyshev(p_vec, q_vec))


def js_divergence(p, q) -> float:
    """Base-2 Jensen-Shannon divergence of two count vectors over the same buckets, capped at 1."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("Jensen-Shannon divergence needs two non-empty histograms")
    return float(min(distance.jensenshannon(p, q, base=2) ** 2, 1.0))


def histogram(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> dict[str, list[float]]:
    """Equal-width histogram ``{"edges": [...], "counts": [...]}`` between the values' min and max;
    a point mass is one zero-width bucket, as TFDV records it."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return {"edges": [lo, hi], "counts": [float(values.size)]}
    counts, edges = np.histogram(values, bins=buckets, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [float(c) for c in counts]}


def _rebucket(edges: list[float], counts: list[float], bounds: np.ndarray) -> np.ndarray:
    """Spread each bucket's count uniformly over the ``bounds`` intervals it covers."""
    out = np.zeros(len(bounds) - 1)
    for lo, hi, count in zip(edges[:-1], edges[1:], counts, strict=True):
        if hi == lo:  # point mass: the interval that contains it (the last one holds its end)
            i = min(int(np.searchsorted(bounds, lo, side="right")) - 1, len(out) - 1)
            out[max(i, 0)] += count
            continue
        for i in range(len(out)):
            overlap = min(hi, bounds[i + 1]) - max(lo, bounds[i])
            if overlap > 0:
                out[i] += count * overlap / (hi - lo)
    return out


def jensen_shannon(p_hist: Mapping[str, list[float]], q_hist: Mapping[str, list[float]]) -> float:
    """TFDV's approximate Jensen-Shannon divergence (base 2, capped at 1) of two histograms.

    Each histogram is ``{"edges": [...], "counts": [...]}``. As TFDV does, both are re-bucketed
    onto the union of their boundaries assuming values spread uniformly within a bucket, then
    normalised and compared.
    """
    bounds = np.unique(np.concatenate([p_hist["edges"], q_hist["edges"]]))
    if bounds.size == 1:  # both are the same single point
        bounds = np.array([bounds[0], bounds[0] + 1.0])
    p = _rebucket(p_hist["edges"], p_hist["counts"], bounds)
    q = _rebucket(q_hist["edges"], q_hist["counts"], bounds)
    return js_divergence(p, q)


def js_on_baseline_buckets(base: Mapping[str, list[float]], values: np.ndarray) -> float:
    """JS divergence of new ``values`` against a baseline histogram, on the baseline's buckets.

    New values are counted in the baseline's buckets, plus one bucket below its minimum and one
    above its maximum (where the baseline has nothing), so the two histograms share their bins.
    This avoids the artefacts of spreading counts uniformly when features take few distinct
    values (weeks, ages in years).
    """
    edges = np.asarray(base["edges"], dtype=float)
    lo, hi = edges[0], edges[-1]
    if lo == hi:
        inside = np.array([np.sum(values == lo)], dtype=float)
    else:
        inside = np.histogram(values[(values >= lo) & (values <= hi)], bins=edges)[0]
    q = np.concatenate([[np.sum(values < lo)], inside, [np.sum(values > hi)]])
    p = np.concatenate([[0.0], np.asarray(base["counts"], dtype=float), [0.0]])
    return js_divergence(p, q)
