"""Compiled kernels of histogram boosting (numba).

Three loops a party of horizontal boosting runs every round, too branchy or
too scattered for numpy to run at memory speed:

* :func:`node_histograms`: a client's exact integer sums of the fixed-point
  gradients, hessians and row counts per (node, bin slot), straight from its
  binned rows, written into the layout of the upload (packed words included);
* :func:`partition`: a split applied to a node's rows;
* :func:`best_splits_compact`: the server's best split per node from compact
  histograms, the same floats and the same tie-breaking as
  :func:`skfed.trees.gbdt.best_splits` (which stays the reference).

They are compiled with ``nogil=True`` so that the parties of an in-process
run, which are threads, run them in parallel, and with ``cache=True`` so that
later processes load the machine code instead of compiling it again (about
2 s in a fresh environment, 0.1 s from the cache). Numba caches beside this
file, or, when the installed package is read-only, under the user's cache
directory; ``NUMBA_CACHE_DIR`` chooses another place. Where none is
writable the kernels are compiled in every process. No ``fastmath``: the
split gains must be the IEEE operations of the reference, in the same order.
"""

import numpy as np
from numba import njit

from .gbdt import MIN_HESSIAN, PRECISION_BITS, dequantise

__all__ = ["node_histograms", "partition", "unpack_histograms", "best_splits_compact"]



def _jit(fn=None, *, nogil=True, **options):
    """``njit(nogil=nogil, cache=True, **options)``, or without the disk cache
    when numba finds no writable place for it (a read-only install and no
    writable ``NUMBA_CACHE_DIR`` or home directory): numba refuses such a
    function outright, and every process then compiles the kernels on first use."""
    if fn is None:
        return lambda f: _jit(f, nogil=nogil, **options)
    try:
        return njit(nogil=nogil, cache=True, **options)(fn)
    except RuntimeError:
        return njit(nogil=nogil, **options)(fn)



@_jit
def node_histograms(codes, offsets, train, rows_list, starts, outputs, gq, hq, words, pack,
                    out):
    """Sum the rows of several nodes into ``out`` (int64, ``(n_nodes, words, T)``).

    Column by column, as scikit-learn's histogram builder: one column's
    histogram (a few KB) stays in the L1 cache while the node's rows are
    read, with their gradients gathered once per node.

    Parameters
    ----------
    codes : ndarray of shape (n_rows, F), uint8, column-major
        Every row's slot within its column's histogram: its bin, or
        ``n_bins[f]`` for a missing value.
    offsets : ndarray of shape (F,), int64
        Where each column's slots start in the compact layout.
    train : ndarray of shape (n_rows,), bool
        Rows that count (held-out rows do not).
    rows_list : ndarray of int64
        The nodes' rows, concatenated; node ``j`` owns
        ``rows_list[starts[j]:starts[j + 1]]``.
    starts : ndarray of shape (n_nodes + 1,), int64
    outputs : ndarray of shape (n_nodes,), int64
        The output (tree of the iteration) of each node: the column of ``gq``, ``hq``.
    gq, hq : ndarray of shape (n_rows, K), int64
        Fixed-point gradients and hessians.
    words : int
        3: ``[g, h, count]``; 2: ``[g + count * 2**pack, h]``; 1:
        ``[g + count * 2**pack]`` (constant hessians, rebuilt from the count).
    pack : int
        The count's shift in packed words (unused when ``words == 3``). A
        row adds ``g + 2**pack``: the sum of those is the packed sum.
    out : ndarray of shape (n_nodes, words, T), int64
        Zeroed by the caller. Exact: every partial sum fits (see ``pack_bits``).
    """
    n_nodes = starts.shape[0] - 1
    F = codes.shape[1]
    one = (np.int64(1) << np.int64(pack)) if words < 3 else np.int64(0)
    m_max = 0
    for j in range(n_nodes):
        m_max = max(m_max, starts[j + 1] - starts[j])
    rows = np.empty(m_max, dtype=np.int64)
    og = np.empty(m_max, dtype=np.int64)
    oh = np.empty(m_max, dtype=np.int64)
    for j in range(n_nodes):
        k = outputs[j]
        m = 0
        for i in range(starts[j], starts[j + 1]):
            r = rows_list[i]
            if train[r]:
                rows[m] = r
                og[m] = gq[r, k] + one
                oh[m] = hq[r, k]
                m += 1
        for f in range(F):
            col = codes[:, f]
            base = offsets[f]
            o0 = out[j, 0, base:]
            if words == 1:
                for i in range(m):
                    o0[col[rows[i]]] += og[i]
            elif words == 2:
                o1 = out[j, 1, base:]
                for i in range(m):
                    s = col[rows[i]]
                    o0[s] += og[i]
                    o1[s] += oh[i]
            else:
                o1 = out[j, 1, base:]
                o2 = out[j, 2, base:]
                for i in range(m):
                    s = col[rows[i]]
                    o0[s] += og[i]
                    o1[s] += oh[i]
                    o2[s] += 1
    return out


# Microseconds of work: keeping the GIL costs less than taking it back from
# the other parties' threads afterwards.
@_jit(nogil=False)
def partition(rows, column, b, missing_left, missing_code):
    """``(left, right)``: the rows whose bin in ``column`` is ``<= b`` (values
    ``missing_code``: left when ``missing_left``), and the others, both in
    their order."""
    n = rows.shape[0]
    left = np.empty(n, dtype=rows.dtype)
    right = np.empty(n, dtype=rows.dtype)
    nl = nr = 0
    for i in range(n):
        r = rows[i]
        x = column[r]
        go = missing_left if x == missing_code else x <= b
        if go:
            left[nl] = r
            nl += 1
        else:
            right[nr] = r
            nr += 1
    return left[:nl].copy(), right[:nr].copy()


def best_splits_compact(hists, offsets, n_bins, has_missing, node_G, node_H,
                        min_samples_leaf, l2, g_exp, h_exp):
    """The best split of each node from its compact histograms.

    The decision of :func:`skfed.trees.gbdt.best_splits` (the same gains, to
    the bit, and the same ties), without the padded ``(feature, 256)``
    scatter that it needs.

    Parameters
    ----------
    hists : sequence of n_nodes ndarrays of shape (3, T), int64
        ``[sum g, sum h, count]`` per bin slot: per column its ``n_bins``
        bins, then its missing-value slot, from ``offsets[f]``.
    offsets, n_bins : ndarray of shape (n_features,), int64
    has_missing : ndarray of shape (n_features,), bool
    node_G, node_H : sequence of int
        Fixed-point sums of the nodes.
    min_samples_leaf, l2, g_exp, h_exp
        As in :func:`~skfed.trees.gbdt.best_splits`.

    Returns
    -------
    list of (gain, feature, bin, missing_left) or None, one per node.
    """
    n = len(hists)
    if n == 0:
        return []
    G = dequantise(np.asarray(node_G, dtype=np.int64), g_exp)
    H = dequantise(np.asarray(node_H, dtype=np.int64), h_exp)
    l2 = float(l2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Only nodes with H >= 2 * MIN_HESSIAN are split; others get no candidate.
        C = G * G / (H + l2)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_bins = np.asarray(n_bins, dtype=np.int64)
    has_missing = np.asarray(has_missing, dtype=np.bool_)
    g_scale, h_scale = 2.0 ** (g_exp - PRECISION_BITS), 2.0 ** (h_exp - PRECISION_BITS)
    out = []
    # One node per call: the nodes' histograms are separate arrays (stacking
    # them would copy every histogram once more per round).
    for i in range(n):
        gain, f, b, ml = _best_split(np.ascontiguousarray(hists[i], dtype=np.int64), offsets,
                                     n_bins, has_missing, G[i], H[i], C[i],
                                     int(min_samples_leaf), l2, g_scale, h_scale)
        out.append((float(gain), int(f), int(b), bool(ml)) if np.isfinite(gain) else None)
    return out


# error_model="numpy": the branch-free gain loop divides for invalid
# candidates too (then discarded), which must not raise.
@_jit(error_model="numpy")
def _best_split(hist, offsets, n_bins, has_missing, Gi, Hi, Ci, min_samples_leaf, l2, g_scale,
                h_scale):
    """Best split of one node from its compact histogram (``(3, T)`` int64:
    per column its bins then the missing slot).

    ``Gi``, ``Hi`` are the node's dequantised sums, ``Ci = Gi * Gi / (Hi + l2)``,
    ``g_scale``, ``h_scale`` the powers of two of :func:`~skfed.trees.gbdt.dequantise`.
    Returns ``(gain, feature, bin, missing_left)``, gain ``-inf`` when no
    candidate is valid.

    :func:`skfed.trees.gbdt.best_splits` operation for operation: cumulative
    sums as float64 additions in bin order, the missing slot added after
    them, the scale applied last, the gain as
    ``(GL*GL/(HL+l2) + GR*GR/(HR+l2)) - C``, and the first maximum in the
    canonical order (feature; missing right, then left; threshold).
    """
    F = n_bins.shape[0]
    best = -np.inf
    best_f = 0
    best_b = 0
    best_ml = False
    B = 0
    for f in range(F):
        B = max(B, n_bins[f])
    GL = np.empty(B)
    HL = np.empty(B)
    ok = np.empty(B, dtype=np.bool_)
    gain = np.empty(B)
    for f in range(F):
        o = offsets[f]
        nb = n_bins[f]
        miss_n = hist[2, o + nb]
        total = miss_n
        for b in range(nb):
            total += hist[2, o + b]
        for direction in range(2):
            if direction == 0:
                stop = nb if has_missing[f] else nb - 1
                extra_n = 0
                extra_g = 0.0
                extra_h = 0.0
            else:
                if not (has_missing[f] and miss_n > 0):
                    continue
                stop = nb - 1
                extra_n = miss_n
                extra_g = float(hist[0, o + nb])
                extra_h = float(hist[1, o + nb])
            # Serial: the cumulative sums, in bin order.
            cum_n = 0
            cum_g = 0.0
            cum_h = 0.0
            prev_nl = 0
            for b in range(stop):
                cum_n += hist[2, o + b]
                cum_g += float(hist[0, o + b])
                cum_h += float(hist[1, o + b])
                nl = cum_n + extra_n
                ok[b] = not (b > 0 and nl == prev_nl) and nl >= min_samples_leaf \
                    and total - nl >= min_samples_leaf
                prev_nl = nl
                if direction == 1:
                    GL[b] = (cum_g + extra_g) * g_scale
                    HL[b] = (cum_h + extra_h) * h_scale
                else:
                    GL[b] = cum_g * g_scale
                    HL[b] = cum_h * h_scale
            # Branch-free, so the compiler vectorises it (IEEE division is
            # correctly rounded: the same floats as one at a time).
            for b in range(stop):
                gl = GL[b]
                hl = HL[b]
                gr = Gi - gl
                hr = Hi - hl
                g = gl * gl / (hl + l2) + gr * gr / (hr + l2)
                g = g - Ci
                valid = ok[b] and hl >= MIN_HESSIAN and hr >= MIN_HESSIAN
                gain[b] = g if valid else -np.inf
            for b in range(stop):
                if gain[b] > best:
                    best = gain[b]
                    best_f = f
                    best_b = b
                    best_ml = direction == 1
    return best, best_f, best_b, best_ml


@_jit
def unpack_histograms(packed, pack, words, h_shift):
    """Summed upload words ``(n, words, T)`` back to ``[g, h, count]`` (int64,
    ``(n, 3, T)``) in one pass: the inverse of the packing rule of
    ``node_histograms`` (``g`` is the low ``pack`` bits, signed; the count
    the rest; with one word the hessian is the count ``<< h_shift``)."""
    n, _, T = packed.shape
    out = np.empty((n, 3, T), dtype=np.int64)
    mask = (np.int64(1) << np.int64(pack)) - 1
    half = np.int64(1) << np.int64(pack - 1)
    full = np.int64(1) << np.int64(pack)
    for i in range(n):
        for t in range(T):
            w = packed[i, 0, t]
            low = w & mask
            g = low - full if low >= half else low
            count = (w - g) >> np.int64(pack)
            out[i, 0, t] = g
            out[i, 2, t] = count
            out[i, 1, t] = count << np.int64(h_shift) if words == 1 else packed[i, 1, t]
    return out
