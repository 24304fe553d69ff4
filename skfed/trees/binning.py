"""Each party bins its own columns (quantile edges); the edges never leave it.

The rule follows scikit-learn's ``HistGradientBoosting`` binner: a column with
at most ``max_bins`` distinct values gets one bin per value (edges halfway
between consecutive values); otherwise edges at ``max_bins - 1`` evenly
spaced quantiles (averaged inverted CDF), with duplicates merged. Missing
values (NaN) get a bin of their own, ``MISSING_BIN``, whatever ``max_bins``.

A value ``x`` falls in bin ``b = #{edges < x}``, so "bin <= b" and
"x <= edges[b]" are the same test: a split learnt on bins is applied to raw
values with its edge as the threshold.
"""

import numpy as np

__all__ = ["MISSING_BIN", "bin_edges", "apply_bins"]

# Binned data are uint8: bins 0..254 for values, 255 for NaN (max_bins <= 255).
MISSING_BIN = 255


def bin_edges(X, max_bins):
    """Per-column bin edges of a 2-D float array with NaN for missing values.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    max_bins : int
        At most this many bins for the non-missing values (2..255).

    Returns
    -------
    edges : list of ndarray
        ``edges[j]`` is increasing, of length (number of bins of column j) - 1.
    """
    edges = []
    for j in range(X.shape[1]):
        col = X[:, j]
        col = np.sort(col[~np.isnan(col)])
        distinct = np.unique(col)
        if distinct.size <= max_bins:
            e = (distinct[:-1] + distinct[1:]) * 0.5
            # Halfway between two adjacent floats can round up to the larger
            # one, which must stay right of the edge.
            e = np.where(e == distinct[1:], distinct[:-1], e)
        else:
            q = np.linspace(0, 100, max_bins + 1)[1:-1]
            e = np.percentile(col, q, method="averaged_inverted_cdf")
        edges.append(np.unique(e.astype(np.float64)))
    return edges


def apply_bins(X, edges):
    """Bin indices (uint8) of ``X`` for the given edges; NaN -> ``MISSING_BIN``."""
    out = np.empty(X.shape, dtype=np.uint8)
    for j, e in enumerate(edges):
        col = X[:, j]
        b = np.searchsorted(e, col, side="left")
        out[:, j] = np.where(np.isnan(col), MISSING_BIN, b)
    return out


def bin_party(X, train, max_bins):
    """A party's binning of its own columns: edges from its training rows.

    Returns a dict with ``Xb`` (all rows binned), ``edges``, ``n_bins`` and
    ``has_missing`` (missing values among the training rows), per column.
    """
    edges = bin_edges(X[train], max_bins)
    return {"Xb": apply_bins(X, edges), "edges": edges,
            "n_bins": [e.size + 1 for e in edges],
            "has_missing": np.isnan(X[train]).any(axis=0).tolist()}
