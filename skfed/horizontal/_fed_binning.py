"""Bin edges agreed by clients who never show their own distribution.

scikit-learn's binner (:mod:`skfed.trees.binning`) needs the pooled column:
one bin per distinct value when there are at most ``max_bins`` of them,
otherwise edges at ``max_bins - 1`` quantiles. Here the clients only ever
upload *counts on a public grid*, summed by secure aggregation, so the
server learns the federation's counts per grid cell and nothing per client.

The grid is the float itself. A float64 maps to an order-preserving 64-bit
key (sign, exponent, mantissa; :func:`float_keys`); a *cell* is the set of
keys sharing a prefix of ``bits`` bits. The first round counts every column
on the 12-bit cells (sign and exponent: one cell per binade, whatever the
range of the data). Each further round splits chosen cells into 256
sub-cells (8 more bits), all columns in one secure sum:

* while a column has at most ``max_bins`` non-empty cells, every non-empty
  cell is refined, down to single floats (64 bits). A column that ends there
  has at most ``max_bins`` distinct values, which are now known exactly,
  with their counts: it gets scikit-learn's edges (midpoints);
* otherwise only the cells holding the order statistics of the quantiles
  are refined, to 20 bits (a relative resolution of 2**-8 of the value),
  and each edge is the largest float of its quantile's cell, so that an edge
  never cuts a cell: the counts of every bin are exact sums of cell counts.

What the server learns: the number of training rows and of missing values
per column, and the federation's counts on the cells it asked about (for a
column with few distinct values: those values and how often each occurs).
What it does not learn: any client's counts, rows or values. The edges are
public to every party (they are part of the model).
"""

import numpy as np

from ..trees.binning import bin_edges

__all__ = ["float_keys", "key_floats", "FIRST_BITS", "QUANTILE_BITS", "STEP_BITS",
           "ClientColumns", "BinningServer"]

FIRST_BITS = 12
STEP_BITS = 8
QUANTILE_BITS = 20
_TOP = np.uint64(1 << 63)


def float_keys(values):
    """Order-preserving uint64 keys of finite floats (``-0.0`` is ``0.0``)."""
    u = (np.asarray(values, dtype=np.float64) + 0.0).view(np.uint64)
    return np.where(u & _TOP, ~u, u | _TOP)


def key_floats(keys):
    """The floats of keys (inverse of :func:`float_keys`)."""
    k = np.asarray(keys, dtype=np.uint64)
    return np.where(k & _TOP, k & ~_TOP, ~k).view(np.float64)


class ClientColumns:
    """A client's sorted keys per column (its training rows, non-missing values)."""

    def __init__(self, X):
        self.n_missing = np.isnan(X).sum(axis=0).astype(np.int64)
        self.keys = [np.sort(float_keys(col[~np.isnan(col)])) for col in X.T]

    def first_counts(self):
        """Counts on the 12-bit cells of every column, then missing counts."""
        out = [np.bincount((k >> np.uint64(64 - FIRST_BITS)).astype(np.int64),
                           minlength=1 << FIRST_BITS) for k in self.keys]
        return np.concatenate(out + [self.n_missing]).astype(np.int64)

    def refine_counts(self, request):
        """Counts on the sub-cells of the requested cells, column by column.

        ``request`` is a list of ``(feature, bits, prefixes)``; every
        requested cell of a column has the same ``bits``.
        """
        out = []
        for f, bits, prefixes in request:
            f, bits = int(f), int(bits)
            prefixes = np.asarray(prefixes, dtype=np.uint64)
            s = min(STEP_BITS, 64 - bits)
            keys = self.keys[f]
            pk = keys >> np.uint64(64 - bits)
            pos = np.searchsorted(prefixes, pk)
            pos_c = np.minimum(pos, prefixes.size - 1)
            hit = prefixes[pos_c] == pk
            sub = (keys[hit] >> np.uint64(64 - bits - s)) & np.uint64((1 << s) - 1)
            idx = pos_c[hit].astype(np.int64) * (1 << s) + sub.astype(np.int64)
            out.append(np.bincount(idx, minlength=prefixes.size << s))
        if not out:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(out).astype(np.int64)


class BinningServer:
    """The server's side: decides which cells to refine, then the edges.

    Parameters
    ----------
    first : ndarray
        The summed :meth:`ClientColumns.first_counts` of all clients.
    n_features, max_bins : int
    """

    def __init__(self, first, n_features, max_bins):
        self.F, self.max_bins = int(n_features), int(max_bins)
        cells = np.asarray(first[:self.F << FIRST_BITS]).reshape(self.F, -1)
        self.n_missing = np.asarray(first[self.F << FIRST_BITS:], dtype=np.int64)
        # Per column: the non-empty cells as (prefix, bits, count), in key order.
        self.cells = []
        for f in range(self.F):
            nz = np.flatnonzero(cells[f])
            self.cells.append([(int(p), FIRST_BITS, int(cells[f, p])) for p in nz])
        self.distinct = [len(c) <= self.max_bins for c in self.cells]
        self._pending = None

    def _quantile_cells(self, f):
        cells = self.cells[f]
        counts = np.array([c[2] for c in cells], dtype=np.int64)
        n = int(counts.sum())
        if n == 0:
            return []
        mb = self.max_bins
        # The order statistic (0-based) whose value numpy's averaged inverted
        # CDF takes (the lower one when it averages two).
        ranks = np.array([max(-(-i * n // mb) - 1, 0) for i in range(1, mb)], dtype=np.int64)
        where = np.searchsorted(np.cumsum(counts), ranks, side="right")
        return sorted(set(where.tolist()))

    def request(self):
        """The cells to refine next, ``[(feature, bits, prefixes)]``; [] when done."""
        req, pending = [], []
        for f in range(self.F):
            cells = self.cells[f]
            if self.distinct[f] and len(cells) > self.max_bins:
                self.distinct[f] = False
            if self.distinct[f]:
                idx = [i for i, c in enumerate(cells) if c[1] < 64]
            else:
                idx = [i for i in self._quantile_cells(f) if cells[i][1] < QUANTILE_BITS]
            if not idx:
                continue
            bits = cells[idx[0]][1]
            if any(cells[i][1] != bits for i in idx):
                raise AssertionError("cells of one request must share their level")
            req.append((f, bits, np.array([cells[i][0] for i in idx], dtype=np.uint64)))
            pending.append((f, bits, idx))
        self._pending = pending
        return req

    def size(self, request):
        return int(sum(len(p) << min(STEP_BITS, 64 - b) for _, b, p in request))

    def refine(self, counts):
        """Replace the requested cells by their non-empty sub-cells."""
        pos = 0
        for f, bits, idx in self._pending:
            s = min(STEP_BITS, 64 - bits)
            m = 1 << s
            sub = np.asarray(counts[pos:pos + len(idx) * m]).reshape(len(idx), m)
            pos += len(idx) * m
            cells = self.cells[f]
            new, chosen = [], dict(zip(idx, range(len(idx))))
            for i, c in enumerate(cells):
                if i not in chosen:
                    new.append(c)
                    continue
                row = sub[chosen[i]]
                if int(row.sum()) != c[2]:
                    raise ValueError(
                        f"the refined counts of column {f} do not add up to the cell's "
                        f"count ({int(row.sum())} != {c[2]}): a client changed its data "
                        "between rounds")
                for j in np.flatnonzero(row).tolist():
                    new.append(((c[0] << s) | j, bits + s, int(row[j])))
            self.cells[f] = new
        self._pending = None

    def edges(self):
        """Bin edges of every column (lists of increasing float arrays)."""
        out = []
        for f in range(self.F):
            cells = self.cells[f]
            if not cells:
                out.append(np.zeros(0))
                continue
            if self.distinct[f]:
                values = key_floats(np.array([c[0] for c in cells], dtype=np.uint64))
                out.append(bin_edges(values[:, None], self.max_bins)[0])
                continue
            tops = []
            last = len(cells) - 1
            for i in self._quantile_cells(f):
                if i == last:
                    continue  # an edge above every value: an empty bin
                p, bits, _ = cells[i]
                top = ((p + 1) << (64 - bits)) - 1
                tops.append(top)
            e = key_floats(np.array(sorted(set(tops)), dtype=np.uint64))
            out.append(np.unique(e.astype(np.float64)))
        return out
