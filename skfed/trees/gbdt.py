"""The histogram-GBDT arithmetic every party of a federated boosting protocol shares.

Both families use it: vertical SecureBoost and horizontal histogram boosting
over secure aggregation (it lives below the families so neither imports the
other).

Gradients and hessians are fixed-point integers: ``round(g * 2**(P - e))``
with ``|g| <= 2**e``, so every sum a party or the protocol forms (histogram
bins, cumulative bins, a sibling by subtraction, a sum under encryption) is
exact and independent of the order of the additions. The encrypted and the
plaintext protocol therefore see the same integers, and every split decision
is made from the same numbers by the same formula: their trees are identical,
not merely close. ``P`` is ``PRECISION_BITS`` (26): a relative resolution of
1.5e-8 of the largest gradient, far below what changes a split in practice.

Split candidates of one feature, in the canonical order that also breaks ties
(earlier wins): thresholds ``b`` ascending with missing values to the right,
then, for a feature that had missing values in training, thresholds
ascending with missing values to the left. A candidate is dropped when a side
would hold fewer than ``min_samples_leaf`` training rows, or when it sends
the same rows left as the previous kept candidate of its kind (an empty bin):
the feature's owner, who alone knows the counts, does this filtering.
"""

import math

import numpy as np
from scipy.special import expit, logsumexp

from .binning import MISSING_BIN

__all__ = [
    "PRECISION_BITS", "MIN_HESSIAN", "N_BIN_SLOTS", "quantise", "scale_exponent",
    "loss_for", "enumerate_candidates", "split_gains", "leaf_value", "left_mask",
    "new_tree", "tree_apply", "best_splits", "should_stop",
    "baseline_from_sums",
]

PRECISION_BITS = 26
# scikit-learn's min_hessian_to_split.
MIN_HESSIAN = 1e-3
# Histograms are indexed by bin 0..255 (255: missing).
N_BIN_SLOTS = 256


def scale_exponent(values):
    """Smallest ``e`` with ``|values| <= 2**e`` (0 for all zeros)."""
    m = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if m == 0.0 or not np.isfinite(m):
        return 0
    return math.frexp(m)[1]


def quantise(values, exponent):
    """Fixed-point integers ``round(values * 2**(P - exponent))`` (int64)."""
    return np.rint(np.ldexp(np.asarray(values, dtype=np.float64),
                            PRECISION_BITS - int(exponent))).astype(np.int64)


def dequantise(ints, exponent):
    """Exact float of fixed-point integer sums (they stay below 2**53)."""
    return np.ldexp(np.asarray(ints, dtype=np.float64), int(exponent) - PRECISION_BITS)


# -- losses -------------------------------------------------------------------

class _Loss:
    def gradients_and_losses(self, raw, row_sets):
        """``gradients(raw)`` and ``loss(raw, rows)`` of each non-empty ``rows`` of
        ``row_sets`` (``None`` for an empty one), the same floats as apart."""
        return self.gradients(raw), [self.loss(raw, rows) if len(rows) else None
                                     for rows in row_sets]


class _SquaredError(_Loss):
    """Half squared error, as HistGradientBoostingRegressor: g = p - y, h = 1."""

    n_outputs = 1
    hessian_exponent = 0

    def __init__(self, y):
        self.y = np.asarray(y, dtype=np.float64)[:, None]

    def baseline(self, rows):
        return np.array([np.mean(self.y[rows, 0])])

    def gradients(self, raw):
        return raw - self.y, np.ones_like(raw)

    def gradient_exponent(self, g):
        return scale_exponent(g)

    def loss(self, raw, rows):
        return float(np.mean(0.5 * (raw[rows, 0] - self.y[rows, 0]) ** 2))


class _BinaryLogLoss(_Loss):
    """Log-loss on the logit: g = p - y in [-1, 1], h = p (1 - p) <= 1/4."""

    n_outputs = 1
    hessian_exponent = -2

    def __init__(self, y):
        self.y = np.asarray(y, dtype=np.float64)[:, None]

    def baseline(self, rows):
        p = np.clip(np.mean(self.y[rows, 0]), 1e-12, 1 - 1e-12)
        return np.array([math.log(p / (1 - p))])

    def gradients(self, raw):
        p = expit(raw)
        return p - self.y, p * (1 - p)

    def gradient_exponent(self, g):
        return 0

    def loss(self, raw, rows):
        r, y = raw[rows, 0], self.y[rows, 0]
        return float(np.mean(np.logaddexp(0, r) - y * r))


class _MultinomialLoss(_Loss):
    """Softmax cross-entropy, one tree per class per iteration (as scikit-learn)."""

    hessian_exponent = -2

    def __init__(self, y, n_classes):
        self.n_outputs = n_classes
        self.Y = (np.asarray(y)[:, None] == np.arange(n_classes)).astype(np.float64)

    def baseline(self, rows):
        p = np.clip(self.Y[rows].mean(axis=0), 1e-12, None)
        logp = np.log(p)
        return logp - logp.mean()

    def gradients(self, raw):
        p = np.exp(raw - logsumexp(raw, axis=1, keepdims=True))
        return p - self.Y, p * (1 - p)

    def gradient_exponent(self, g):
        return 0

    def loss(self, raw, rows):
        r = raw[rows]
        return float(np.mean(logsumexp(r, axis=1) - np.sum(self.Y[rows] * r, axis=1)))

    def gradients_and_losses(self, raw, row_sets):
        # One log-normaliser for the gradients and the losses: logsumexp works
        # row by row, so its rows are those of logsumexp(raw[rows]) to the bit.
        lse = logsumexp(raw, axis=1, keepdims=True)
        p = np.exp(raw - lse)
        losses = [float(np.mean(lse[rows, 0] - np.sum(self.Y[rows] * raw[rows], axis=1)))
                  if len(rows) else None for rows in row_sets]
        return (p - self.Y, p * (1 - p)), losses


def loss_for(task, y, n_classes):
    """The loss of a task: ``y`` are values (regression) or class indices."""
    if task == "regression":
        return _SquaredError(y)
    if n_classes == 2:
        return _BinaryLogLoss(y)
    return _MultinomialLoss(y, n_classes)


# -- split candidates and gains -------------------------------------------------

def enumerate_candidates(counts, n_bins, has_missing, min_samples_leaf):
    """The split candidates of a node, in canonical order, from bin counts.

    Parameters
    ----------
    counts : ndarray of shape (n_features, N_BIN_SLOTS)
        Training rows of the node per (feature, bin); column ``MISSING_BIN``
        counts missing values.
    n_bins : sequence of int
        Non-missing bins of each feature.
    has_missing : sequence of bool
        Whether the feature had missing values in training.
    min_samples_leaf : int

    Returns
    -------
    feature, bin, missing_left : ndarray of shape (n_candidates,)
        The candidate sends rows with ``bin <= b`` left, and missing values
        left when ``missing_left``.
    """
    feats, bins, lefts = [], [], []
    for f in range(counts.shape[0]):
        nb = int(n_bins[f])
        c = counts[f, :nb]
        miss = int(counts[f, MISSING_BIN])
        total = int(c.sum()) + miss
        cum = np.cumsum(c)
        variants = [(False, nb if has_missing[f] else nb - 1, 0)]
        if has_missing[f] and miss > 0:
            variants.append((True, nb - 1, miss))
        for missing_left, stop, extra in variants:
            n_left = cum[:stop] + extra
            ok = (n_left >= min_samples_leaf) & (total - n_left >= min_samples_leaf)
            # Same left count as the previous threshold of its kind: the same
            # rows go left (an empty bin), so the same split.
            new = np.ones(stop, dtype=bool)
            new[1:] = n_left[1:] != n_left[:-1]
            b = np.flatnonzero(ok & new)
            feats.append(np.full(b.size, f))
            bins.append(b)
            lefts.append(np.full(b.size, missing_left))
    if not feats:
        return (np.zeros(0, dtype=np.int64),) * 2 + (np.zeros(0, dtype=bool),)
    return (np.concatenate(feats).astype(np.int64), np.concatenate(bins).astype(np.int64),
            np.concatenate(lefts).astype(bool))


def split_gains(GL, HL, G, H, l2):
    """Gains of candidates from exact left sums and the node's sums (floats).

    ``GL**2 / (HL + l2) + GR**2 / (HR + l2) - G**2 / (H + l2)``, the loss
    decrease scikit-learn's splitter uses. Candidates whose children have a
    hessian sum below ``MIN_HESSIAN`` get ``-inf``.
    """
    GL = np.asarray(GL, dtype=np.float64)
    HL = np.asarray(HL, dtype=np.float64)
    GR, HR = G - GL, H - HL
    valid = (HL >= MIN_HESSIAN) & (HR >= MIN_HESSIAN)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = GL * GL / (HL + l2) + GR * GR / (HR + l2) - G * G / (H + l2)
    return np.where(valid, gain, -np.inf)


def leaf_value(G, H, l2, learning_rate):
    """The shrunk Newton step of a leaf."""
    return -learning_rate * G / (H + l2)


def left_mask(binned_col, b, missing_left):
    """Which rows (bins of one feature) a split sends left."""
    return np.where(binned_col == MISSING_BIN, bool(missing_left), binned_col <= b)


# -- trees as the label party holds them ------------------------------------------

def new_tree():
    """An empty tree: parallel lists of node fields (node 0 is the root)."""
    return {"left": [], "right": [], "owner": [], "feature": [], "threshold": [],
            "missing_left": [], "record": [], "value": [], "n_samples": [], "gain": []}


def tree_structure_error(left, right):
    """Why the child arrays of a tree do not describe a tree (None if they do).

    A node is a leaf (``left == right == -1``) or has two distinct children
    numbered after it: walking down from node 0 always ends at a leaf. Both
    families' trees are numbered that way; a model read from a file or a
    message is checked before anything walks it.
    """
    left, right = np.asarray(left), np.asarray(right)
    if left.ndim != 1 or left.shape != right.shape or left.size < 1:
        return "child arrays of different lengths (or none)"
    if left.dtype.kind not in "iu" or right.dtype.kind not in "iu":
        return "child indices that are not integers"
    ids = np.arange(left.size)
    split = left >= 0
    leaf_ok = (left == -1) & (right == -1)
    child_ok = ((left > ids) & (left < left.size) & (right > ids) & (right < left.size)
                & (left != right))
    if not np.all(np.where(split, child_ok, leaf_ok)):
        return "child indices that do not form a tree (every child must come after its parent)"
    return None


def tree_apply(tree, go_left_own, host_bits, n_rows):
    """Leaf values of ``n_rows`` rows.

    ``go_left_own(node, rows)`` answers for the label party's own splits;
    ``host_bits[owner][record]`` is the boolean row vector a feature party
    sent for its split ``record``.
    """
    out = np.empty(n_rows)
    stack = [(0, np.arange(n_rows))]
    left, right, owner = tree["left"], tree["right"], tree["owner"]
    while stack:
        node, rows = stack.pop()
        if left[node] < 0:
            out[rows] = tree["value"][node]
            continue
        if owner[node] == "":
            go = go_left_own(node, rows)
        else:
            go = host_bits[owner[node]][tree["record"][node]][rows]
        stack.append((left[node], rows[go]))
        stack.append((right[node], rows[~go]))
    return out


# -- best splits from full histograms (horizontal boosting) --------------------------

_CHUNK = 1 << 15


def best_splits(counts, GH, node_G, node_H, n_bins, has_missing, min_samples_leaf, l2,
                g_exp, h_exp):
    """The best split of each of several nodes whose whole histograms are known.

    The same decision as :func:`enumerate_candidates`, :func:`split_gains`
    and a first-maximum ``argmax`` over the candidates in canonical order,
    vectorised over nodes, features and thresholds (whoever holds a node's
    histograms in full, e.g. the server of horizontal boosting, decides this
    way).

    Parameters
    ----------
    counts : ndarray of shape (n_nodes, n_features, N_BIN_SLOTS)
        Training rows per (feature, bin); column ``MISSING_BIN`` counts
        missing values.
    GH : ndarray of shape (n_nodes, 2, n_features, N_BIN_SLOTS)
        Fixed-point sums of the gradients and the hessians in the same bins.
    node_G, node_H : ndarray of shape (n_nodes,)
        Fixed-point sums of the nodes.
    n_bins, has_missing, min_samples_leaf, l2
        As in :func:`enumerate_candidates` and :func:`split_gains`.
    g_exp, h_exp : int
        Fixed-point exponents of the gradients and the hessians.

    Returns
    -------
    list of (gain, feature, bin, missing_left) or None, one per node.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_nodes, F, _ = counts.shape
    if n_nodes == 0:
        return []
    # A few nodes at a time: the temporaries stay in cache (several times faster
    # than one pass over all nodes for wide histograms).
    step = max(1, _CHUNK // max(1, F * N_BIN_SLOTS))
    if n_nodes > step:
        out = []
        for i in range(0, n_nodes, step):
            out += best_splits(counts[i:i + step], GH[i:i + step], node_G[i:i + step],
                               node_H[i:i + step], n_bins, has_missing, min_samples_leaf,
                               l2, g_exp, h_exp)
        return out
    nb = np.asarray(n_bins, dtype=np.int64)
    hm = np.asarray(has_missing, dtype=bool)
    # Thresholds beyond the widest column's bins are never candidates.
    B = int(min(MISSING_BIN, max(int(nb.max()), 1)))
    G = dequantise(np.asarray(node_G, dtype=np.int64), g_exp)[:, None, None]
    H = dequantise(np.asarray(node_H, dtype=np.int64), h_exp)[:, None, None]
    miss_n = counts[:, :, MISSING_BIN]
    cum_n = np.cumsum(counts[:, :, :B], axis=2)
    total = cum_n[:, :, -1] + miss_n
    b = np.arange(B)

    g_scale, h_scale = 2.0 ** (g_exp - PRECISION_BITS), 2.0 ** (h_exp - PRECISION_BITS)
    C = G * G / (H + l2)

    def variant(feats, stop, missing_left):
        """Best (gain, bin) per (node, feature) of one missing-value direction.

        :func:`split_gains`'s arithmetic, operation for operation (so the
        same floats), without its temporaries: fixed-point sums are cumulated
        as floats (exact: integers below 2**53) and scaled by a power of two
        (exact), which is :func:`dequantise` of the integer sums.
        """
        sel = slice(None) if feats is None else feats
        nl = cum_n[:, sel]
        GL = np.cumsum(GH[:, 0, sel, :B], axis=2, dtype=np.float64)
        HL = np.cumsum(GH[:, 1, sel, :B], axis=2, dtype=np.float64)
        if missing_left:
            nl = nl + miss_n[:, sel, None]
            GL += GH[:, 0, sel, MISSING_BIN][:, :, None]
            HL += GH[:, 1, sel, MISSING_BIN][:, :, None]
        GL *= g_scale
        HL *= h_scale
        tot = total[:, sel, None]
        ok = (b[None, None, :] < stop[:, :, None]) & (nl >= min_samples_leaf) \
            & (tot - nl >= min_samples_leaf)
        # A threshold sending the same rows left as the previous one (an empty bin).
        ok[:, :, 1:] &= nl[:, :, 1:] != nl[:, :, :-1]
        GR = G - GL
        HR = H - HL
        ok &= HL >= MIN_HESSIAN
        ok &= HR >= MIN_HESSIAN
        with np.errstate(divide="ignore", invalid="ignore"):
            HL += l2
            np.multiply(GL, GL, out=GL)
            np.divide(GL, HL, out=GL)
            HR += l2
            np.multiply(GR, GR, out=GR)
            np.divide(GR, HR, out=GR)
            GL += GR
            GL -= C
        np.copyto(GL, -np.inf, where=~ok)
        arg = np.argmax(GL, axis=2)
        return np.take_along_axis(GL, arg[:, :, None], axis=2)[:, :, 0], arg

    # Missing values right: thresholds b < nb (nb - 1 without missing values).
    stop0 = np.broadcast_to(np.where(hm, nb, nb - 1), (n_nodes, F))
    best = np.full((n_nodes, F, 2), -np.inf)
    arg = np.zeros((n_nodes, F, 2), dtype=np.int64)
    best[:, :, 0], arg[:, :, 0] = variant(None, stop0, False)
    # Missing values left: only for columns with missing values in this node.
    mf = np.flatnonzero(hm & (miss_n > 0).any(axis=0))
    if mf.size:
        stop1 = np.where(miss_n[:, mf] > 0, nb[mf][None, :] - 1, 0)
        best[:, mf, 1], arg[:, mf, 1] = variant(mf, stop1, True)
    # Canonical order: feature, then direction, then threshold (first max wins).
    flat = best.reshape(n_nodes, -1)
    top = np.argmax(flat, axis=1)
    out = []
    for i, j in enumerate(top.tolist()):
        gain = float(flat[i, j])
        if not np.isfinite(gain):
            out.append(None)
            continue
        f, direction = divmod(j, 2)
        out.append((gain, int(f), int(arg[i, f, direction]), bool(direction)))
    return out


def should_stop(scores, n_iter_no_change, tol):
    """scikit-learn's early-stopping rule: no score of the last ``n_iter_no_change``
    beats the one before them by more than ``tol``."""
    ref = n_iter_no_change + 1
    if len(scores) < ref:
        return False
    reference = scores[-ref] + tol
    return not any(s > reference for s in scores[-ref + 1:])


def baseline_from_sums(task, n_classes, n, sums):
    """A loss's initial raw prediction from sums over the training rows: the
    class counts (classification) or the sum of the targets (regression)."""
    sums = np.asarray(sums, dtype=np.float64)
    if task == "regression":
        return np.array([sums[0] / n])
    if n_classes == 2:
        p = np.clip(sums[1] / n, 1e-12, 1 - 1e-12)
        return np.array([math.log(p / (1 - p))])
    logp = np.log(np.clip(sums / n, 1e-12, None))
    return logp - logp.mean()
