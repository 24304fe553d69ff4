"""An independent, centralised histogram GBDT: the reference the federated
boosting protocols (vertical SecureBoost, horizontal boosting) must equal.

Pooled columns, given bin edges and hyper-parameters; plain loops, no
histogram subtraction, no candidate filtering beyond the rules' definition.
Gradients and hessians are fixed-point integers at 2**-(26 - e) (the
protocols' definition of the learning rule: exact sums).
"""

import heapq
import math

import numpy as np
from scipy.special import expit, logsumexp

P = 26
MIN_HESS = 1e-3


def _q(v, e):
    return np.rint(np.ldexp(v, P - e)).astype(np.int64)


def _dq(i, e):
    return np.ldexp(np.asarray(i, dtype=np.float64), e - P)


def reference_fit(X, y, edges, task, n_classes, lr, max_iter, max_leaf_nodes, max_depth,
                  msl, l2, baseline=None, raw=None):
    """Trees (per iteration, per output: a list of ("leaf", value) or ("split",
    feature, threshold, missing_left, left, right)) and the baseline.

    ``baseline`` replaces the initial raw prediction (a federation computes a
    mean from a fixed-point secure sum); ``raw`` (n, K) the initial raw
    predictions of every row (to continue a model, e.g. after a dropout).
    """
    n, F = X.shape
    # A reference that quietly accepts what the protocols refuse would agree
    # with them for the wrong reason: its own preconditions, checked.
    assert len(edges) == F, f"{len(edges)} edge arrays for {F} columns"
    for f, e in enumerate(edges):
        assert np.all(np.diff(e) > 0) and np.isfinite(e).all(), f"column {f}: bad edges"
    assert y.shape == (n,) and not np.isnan(y).any()
    if task != "regression":
        assert set(np.unique(y)) <= set(range(n_classes)), "labels must be 0..n_classes-1"
    miss = np.isnan(X)
    B = np.stack([np.searchsorted(edges[f], np.where(miss[:, f], 0, X[:, f]), side="left")
                  for f in range(F)], axis=1)
    has_missing = miss.any(axis=0)
    if task == "regression":
        K, base = 1, np.array([y.mean()])
    elif n_classes == 2:
        K = 1
        p = np.clip(y.mean(), 1e-12, 1 - 1e-12)
        base = np.array([math.log(p / (1 - p))])
    else:
        K = n_classes
        Y = (y[:, None] == np.arange(K)).astype(float)
        lp = np.log(np.clip(Y.mean(axis=0), 1e-12, None))
        base = lp - lp.mean()
    if baseline is not None:
        base = np.asarray(baseline, dtype=np.float64)
    raw = np.tile(base, (n, 1)) if raw is None else np.array(raw, dtype=np.float64)
    trees = []
    for _ in range(max_iter):
        if task == "regression":
            g, h = raw - y[:, None], np.ones_like(raw)
            m = np.abs(g).max()
            eg, eh = (0 if m == 0 else math.frexp(m)[1]), 0
        elif K == 1:
            p = expit(raw)
            g, h, eg, eh = p - y[:, None], p * (1 - p), 0, -2
        else:
            p = np.exp(raw - logsumexp(raw, axis=1, keepdims=True))
            g, h, eg, eh = p - Y, p * (1 - p), 0, -2
        gq, hq = _q(g, eg), _q(h, eh)
        # Sums of n fixed-point values convert to floats exactly below 2**53.
        assert n * max(int(np.abs(gq).max()), int(np.abs(hq).max())) < 2**53
        it = []
        for k in range(K):
            tree = _ref_tree(X, B, miss, has_missing, edges, gq[:, k], hq[:, k], eg, eh,
                             lr, max_leaf_nodes, max_depth, msl, l2)
            for rows, node in tree["leaves"]:
                raw[rows, k] += node
            it.append(tree["nodes"])
        trees.append(it)
    return trees, base


def _ref_best(rows, X, B, miss, has_missing, edges, gq, hq, eg, eh, msl, l2):
    G, H = _dq(gq[rows].sum(), eg), _dq(hq[rows].sum(), eh)
    best = None
    for f in range(X.shape[1]):
        nb = len(edges[f]) + 1
        for missing_left in (False, True):
            if missing_left and not has_missing[f]:
                continue
            stop = nb if (has_missing[f] and not missing_left) else nb - 1
            for b in range(stop):
                left = np.where(miss[rows, f], missing_left, B[rows, f] <= b)
                nl = int(left.sum())
                if nl < msl or rows.size - nl < msl:
                    continue
                GL, HL = _dq(gq[rows][left].sum(), eg), _dq(hq[rows][left].sum(), eh)
                GR, HR = G - GL, H - HL
                if HL < MIN_HESS or HR < MIN_HESS:
                    continue
                gain = GL * GL / (HL + l2) + GR * GR / (HR + l2) - G * G / (H + l2)
                if best is None or gain > best[0]:
                    best = (gain, f, b, missing_left)
    return best


def _ref_tree(X, B, miss, has_missing, edges, gq, hq, eg, eh, lr, max_leaf_nodes, max_depth,
              msl, l2):
    nodes = []  # [rows, depth, split]
    heap = []

    def add(rows, depth):
        nodes.append([rows, depth, None])
        v = len(nodes) - 1
        H = _dq(hq[rows].sum(), eh)
        if ((max_depth is None or depth < max_depth) and rows.size >= 2 * msl
                and H >= 2 * MIN_HESS):
            best = _ref_best(rows, X, B, miss, has_missing, edges, gq, hq, eg, eh, msl,
                             l2)
            if best is not None and best[0] > 0:
                heapq.heappush(heap, (-best[0], v, best))
        return v

    add(np.arange(X.shape[0]), 0)
    n_leaves, limit = 1, max_leaf_nodes or math.inf
    while heap and n_leaves < limit:
        _, v, (gain, f, b, ml) = heapq.heappop(heap)
        rows, depth, _ = nodes[v]
        if not has_missing[f]:
            nl = int((B[rows, f] <= b).sum())
            ml = nl >= rows.size - nl
        left = np.where(miss[rows, f], ml, B[rows, f] <= b)
        thr = float(edges[f][b]) if b < len(edges[f]) else math.inf
        nodes[v][2] = (f, thr, bool(ml), len(nodes), len(nodes) + 1)
        n_leaves += 1
        # Children are numbered in creation order, as in the protocol.
        add(rows[left], depth + 1)
        add(rows[~left], depth + 1)
    out, leaves = [], []
    # The grown tree partitions the rows into its leaves, within its limits.
    leaf_rows = [rows for rows, _, split in nodes if split is None]
    assert n_leaves == len(leaf_rows) <= limit
    assert np.array_equal(np.sort(np.concatenate(leaf_rows)), np.arange(X.shape[0]))
    assert all(rows.size >= msl for rows in leaf_rows) or len(leaf_rows) == 1
    assert max_depth is None or all(d <= max_depth for _, d, _ in nodes)
    for rows, _, split in nodes:
        if split is None:
            value = -lr * _dq(gq[rows].sum(), eg) / (_dq(hq[rows].sum(), eh) + l2)
            out.append(("leaf", float(value)))
            leaves.append((rows, float(value)))
        else:
            out.append(("split",) + split)
    return {"nodes": out, "leaves": leaves}


def reference_predict(trees, base, X):
    """Raw predictions (n, K) of ``reference_fit``'s trees on raw feature values."""
    raw = np.tile(np.asarray(base, dtype=np.float64), (X.shape[0], 1))
    for iteration in trees:
        for k, nodes in enumerate(iteration):
            for i, x in enumerate(X):
                v = 0
                while nodes[v][0] == "split":
                    _, f, thr, missing_left, left, right = nodes[v]
                    go_left = missing_left if np.isnan(x[f]) else x[f] <= thr
                    v = left if go_left else right
                raw[i, k] += nodes[v][1]
    return raw
