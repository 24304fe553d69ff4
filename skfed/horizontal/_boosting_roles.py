"""Role functions of horizontal histogram gradient boosting.

Every client holds all the columns of its own rows; the server holds no
data. For histogram boosting federation is exact: the sum of the clients'
gradient histograms is the histogram of the pooled rows. The clients upload
their histograms protected by secure aggregation (pairwise masks over
Z_{2**64}, :mod:`skfed.horizontal.aggregation`), the server learns only
their sum and takes every decision scikit-learn's grower would take from
it. Gradients and hessians are the fixed-point integers of
:mod:`skfed.trees.gbdt`, so every sum is exact and independent of the order
of the additions: the federated trees are those of a centralised histogram
GBDT with the same bin edges, masked or not.

The protocol (``K`` outputs: 1, or one tree per class, grown together)::

    set-up
    clients <-> server  key agreement of secure aggregation          public_key
    (regression only)
    client -> server    one-hot of its largest |y|'s exponent        masked
    server -> clients   the federation's exponent                    plain
    client -> server    [rows, held-out rows, class counts | sum y]  masked
    client -> server    counts on the 12-bit float grid per column   masked
    server -> clients   cells to refine (8 more bits), or restart    plain
    client -> server    counts on their sub-cells                    masked
    ...                 (until the edges are known; at most 8 sums)
    server -> clients   bin edges, baseline                          plain
    client -> server    training and held-out loss sums              masked

    per iteration
    (regression only)
    server -> clients   cmd exponent                                 plain
    client -> server    one-hot of its largest |gradient|'s exponent masked
    server -> clients   cmd iteration {fixed-point exponents}        plain
    per round, until every tree of the iteration is grown:
    server -> clients   cmd expand {splits to apply, nodes to sum}   plain
                        (int64 arrays (n, 7) and (n, 2))
    client -> server    [sum g | sum h | count] per (node, column,
                        bin) of every requested node, one vector     masked
    server              sums; siblings by subtraction; best splits
    server -> clients   cmd leaves {node: value}                     plain
    client -> server    training and held-out loss sums              masked

    server -> clients   cmd done {model}                             plain

A round expands, in every tree of the iteration at once, the nodes certain
to be split: the best node of each frontier (with ``max_leaf_nodes``), or
the whole frontier (without a leaf budget every node with a positive gain is
split). Each expanded node's split is applied by every client to its own
rows; only the smaller child is summed, the larger is the parent's histogram
minus the smaller's. The server then splits nodes in scikit-learn's order
(largest gain first, ties to the older node) for as long as their children
are known. (``_SPECULATE = True`` also expands the runners-up that may be
split before the leaf budget runs out: fewer rounds, more bytes; a node
expanded but never split costs bytes, not correctness.)

What the server learns: the sums over all clients (per column and bin of
every expanded node, the row counts, the grid counts of the bin edges, the
loss sums, and how many clients have their largest gradient in each binade),
and so the model. What it does not learn: any client's histogram, count,
gradient, row or label. The model (trees, edges, baseline) is public to the
clients, as the global model of federated SGD is.

Dropouts (``min_clients``): every sum runs the dropout-tolerant protocol of
:mod:`.dropout`. A sibling is its parent minus the other child, so every
histogram sum of an iteration must hold the same clients: when the clients
of a sum differ from those of the iteration's first sum, the server grows
that iteration's trees again from the root over the survivors (the clients
keep nothing of the abandoned trees). Likewise the set-up sums (the targets'
exponent, the row and class counts, the bin counts) must hold the same
clients: when one of them differs from the first, the server answers the
next ``bins`` request with ``restart`` and the set-up runs again over the
survivors, so the edges and the baseline are those of their rows. Loss sums
carry their row counts. The
differences between sums before and after a dropout show the server the
dropped client's part of them (see docs/horizontal_boosting.rst).
"""

import heapq
import math
import time
from dataclasses import dataclass

import numpy as np

from ..runtime.layout import check_array
from ..trees import _kernels
from ..trees import gbdt as _trees
from ..trees.binning import MISSING_BIN, apply_bins
from ._fed_binning import FIRST_BITS, BinningServer, ClientColumns
from .dropout import client_aggregation, server_aggregation

__all__ = ["BoostingConfig", "client", "server", "predict_raw"]

# frexp exponents of finite doubles: -1073..1024.
_EXP_MIN, _EXP_LEN = -1074, 2100
# With a leaf budget, expand only the best node of each tree's frontier (the
# one certain to be split); True also expands the runners-up that may be
# split before the budget runs out: fewer rounds, about a quarter more bytes,
# and in-process fits measured 1.5-2x slower (bytes, not rounds, dominate).
_SPECULATE = False
# The server's answer to a set-up sum whose clients differ from the first's.
_RESTART = "restart"


@dataclass(frozen=True)
class BoostingConfig:
    """Hyper-parameters every party agreed on before the run (all public)."""

    task: str                      # "classification" or "regression"
    server: str
    clients: tuple
    n_classes: int                 # 0 for regression
    n_features: int
    learning_rate: float
    max_iter: int
    max_leaf_nodes: int | None
    max_depth: int | None
    min_samples_leaf: int
    l2_regularization: float
    max_bins: int
    early_stopping: bool
    validation_fraction: float | None
    n_iter_no_change: int
    tol: float
    secure_aggregation: str | None
    verbose: int
    min_clients: int | None = None


def pack_bits(n_train):
    """Where the row count goes in the word it shares with the gradient sum, or
    0 when the sums of ``n_train`` rows do not fit one 64-bit word together.

    A gradient sum needs ``PRECISION_BITS + bitlen(n) + 1`` bits (signed), a
    count ``bitlen(n)``; packed, a histogram is two words per bin, not three.
    """
    k = _trees.PRECISION_BITS + int(n_train).bit_length() + 2
    return k if k + int(n_train).bit_length() + 1 <= 64 else 0


def _pack(hist, k, constant_hessian=False):
    """(n, 3, T) [g, h, count] -> (n, 2, T) [g + count * 2**k, h] (mod 2**64);
    (n, 1, T) without h when every hessian is the same (squared error: h is
    the count times the fixed-point 1).

    The rule the clients' kernel follows row by row (``g + 2**k`` per row:
    the sum of those is the packed sum); kept as its reference.
    """
    if not k:
        return hist
    out = np.empty((hist.shape[0], 1 if constant_hessian else 2, hist.shape[2]),
                   dtype=np.int64)
    word = out[:, 0].view(np.uint64)
    np.left_shift(hist[:, 2].view(np.uint64), np.uint64(k), out=word)
    word += hist[:, 0].view(np.uint64)
    if not constant_hessian:
        out[:, 1] = hist[:, 1]
    return out


def _unpack(packed, k, constant_hessian=False):
    """Sums of :func:`_pack`'s words back to (n, 3, T) [g, h, count]."""
    if not k:
        return packed
    word = packed[:, 0].view(np.uint64)
    low = word & np.uint64((1 << k) - 1)
    g = low.astype(np.int64) - np.where(low >= np.uint64(1 << (k - 1)), 1 << k, 0)
    count = ((word - g.view(np.uint64)) >> np.uint64(k)).astype(np.int64)
    h = count << _trees.PRECISION_BITS if constant_hessian else packed[:, 1]
    return np.stack([g, h, count], axis=1)


def _words(k, task):
    """Ring elements per bin of an uploaded histogram."""
    return 3 if not k else 1 if task == "regression" else 2


def _n_outputs(cfg):
    return 1 if cfg.task == "regression" or cfg.n_classes == 2 else cfg.n_classes


def _layout(n_bins):
    """Compact histogram layout: per column its bins then one missing slot."""
    n_bins = np.asarray(n_bins, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_bins + 1)[:-1]]).astype(np.int64)
    return offsets, int(np.sum(n_bins + 1))


# -- client -------------------------------------------------------------------------

def _validation_split(y, task, fraction, seed):
    n = y.shape[0]
    train = np.ones(n, dtype=bool)
    if fraction is None:
        return train
    from sklearn.model_selection import train_test_split

    n_val = int(math.ceil(fraction * n))
    if n_val < 1 or n - n_val < 1:
        return train
    stratify = None
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_val >= counts.size and n - n_val >= counts.size:
            stratify = y
    tr, _ = train_test_split(np.arange(n), test_size=n_val, stratify=stratify,
                             random_state=seed)
    train[:] = False
    train[tr] = True
    return train


def client(ctx, X, y, cfg, seed):
    """A client: its own rows ``X`` (NaN for missing values) and targets ``y``
    (values, or class indices ``0..n_classes-1`` of the federation's classes).

    ``seed`` draws its held-out rows when early stopping is on. Returns the
    model the server sends at the end (public to every client).
    """
    cpu_start = time.thread_time()
    srv = cfg.server
    agg = client_aggregation(ctx, cfg.server, cfg.clients, cfg.secure_aggregation,
                             cfg.min_clients)
    n, F = X.shape
    train = _validation_split(y, cfg.task, cfg.validation_fraction, seed) \
        if cfg.early_stopping else np.ones(n, dtype=bool)
    tr_rows, va_rows = np.flatnonzero(train), np.flatnonzero(~train)
    cols = ClientColumns(X[tr_rows])
    while True:
        # The set-up starts again (same uploads, fewer clients) when the server
        # finds that a client dropped out of it (see _setup).
        y_exp = _client_setup(ctx, agg, cfg, y, tr_rows, va_rows, cols)
        if y_exp is not None:
            break
    del cols
    # Loss sums travel in the ring's fixed point (2**-32), relative to the
    # scale of the initial loss so that large targets do not overflow it.
    loss_scale = 2.0 ** -_loss_shift(y_exp) if cfg.task == "regression" else 1.0
    setup = ctx.recv(srv, "edges")
    edges = [np.asarray(e, dtype=np.float64) for e in setup["edges"]]
    n_bins = np.array([e.size + 1 for e in edges], dtype=np.int64)
    offsets, T = _layout(n_bins)
    packing = int(setup["pack_bits"])
    hists = _ClientHistograms(apply_bins(X, edges), n_bins, offsets, T, train, packing,
                              cfg.task)
    loss = _trees.loss_for(cfg.task, y, cfg.n_classes)
    K = loss.n_outputs
    raw = np.tile(np.asarray(setup["baseline"], dtype=np.float64), (n, 1))

    def upload_scores():
        # The next iteration's gradients come from the same raw predictions:
        # computed with the losses (one softmax normaliser for both).
        nonlocal g, h
        (g, h), (t, v) = loss.gradients_and_losses(raw, [tr_rows, va_rows])
        t = t * tr_rows.size if t is not None else 0.0
        v = v * va_rows.size if v is not None else 0.0
        # With the row counts: after a dropout the server divides by the
        # survivors' counts, summed with their losses.
        agg.upload(np.concatenate([np.array([t, v]) * loss_scale,
                                   [tr_rows.size, va_rows.size]]), "score")

    g = h = gq = hq = None
    upload_scores()
    rows_of = None
    while True:
        cmd = ctx.recv(srv, "cmd")
        op = cmd["op"]
        if op == "done":
            # CPU seconds of this party's thread: what it would need of its
            # own core in a deployment (the simulation shares the machine's).
            return dict(cmd["model"], cpu_seconds=time.thread_time() - cpu_start)
        if op == "exponent":
            if g is None:
                g, h = loss.gradients(raw)
            agg.upload_ring(_exponent_onehot(g[tr_rows]), "exponent")
        elif op == "iteration":
            if g is None:
                g, h = loss.gradients(raw)
            eg, eh = int(cmd["exps"][0]), int(cmd["exps"][1])
            gq, hq = _trees.quantise(g, eg), _trees.quantise(h, eh)
            g = h = None
            rows_of = [{0: np.arange(n)} for _ in range(K)]
        elif op == "expand":
            splits = check_array(cmd["splits"], sender=srv, tag="cmd", shape=(None, 7),
                                 dtype="i")
            nodes = check_array(cmd["nodes"], sender=srv, tag="cmd", shape=(None, 2), dtype="i")
            for k, v, f, b, ml, left, right in splits.tolist():
                rows_of[k][left], rows_of[k][right] = hists.partition(rows_of[k][v], f, b, ml)
            # Written in the upload's layout (packed words), masked in place.
            agg.upload_ring(hists.histograms(rows_of, gq, hq, nodes.tolist()), "hist")
        elif op == "leaves":
            for k, nodes, values in cmd["leaves"]:
                # Every row is in exactly one leaf of a tree: one update per tree.
                rows = [rows_of[int(k)][int(v)] for v in nodes]
                if rows:
                    raw[np.concatenate(rows), int(k)] += np.repeat(
                        np.asarray(values, dtype=np.float64), [r.size for r in rows])
            rows_of = None
            upload_scores()
        else:
            raise ValueError(f"unknown command {op!r} from the server")


def _client_setup(ctx, agg, cfg, y, tr_rows, va_rows, cols):
    """A client's set-up sums; the targets' exponent, or None when the server
    restarts the set-up (a client dropped out of it)."""
    srv = cfg.server
    y_exp = 0
    if cfg.task == "regression":
        # The sum of the targets travels as fixed-point integers (exact sums) at
        # the exponent of the federation's largest |y|, learnt first.
        agg.upload_ring(_exponent_onehot(y[tr_rows]), "yexp")
        y_exp = int(ctx.recv(srv, "yexp"))
        stats = [int(np.sum(_trees.quantise(y[tr_rows], y_exp)))]
    else:
        stats = np.bincount(y[tr_rows].astype(np.int64), minlength=cfg.n_classes)
    agg.upload_ring(np.concatenate([[tr_rows.size, va_rows.size], stats]), "setup")
    agg.upload_ring(cols.first_counts(), "bins")
    while True:
        req = ctx.recv(srv, "bins")
        if req is None:
            return y_exp
        if isinstance(req, str):
            if req != _RESTART:
                raise ValueError(f"unknown set-up command {req!r} from the server")
            return None
        agg.upload_ring(cols.refine_counts([(r["feature"], r["bits"], r["prefixes"])
                                              for r in req]), "bins")


def _exponent_onehot(values):
    """A one-hot of the exponent of ``max |values|`` (all zeros for none): summed
    over the clients, the largest non-zero entry is the federation's exponent,
    and the server learns only how many clients have their maximum in each binade."""
    onehot = np.zeros(_EXP_LEN, dtype=np.int64)
    e = _trees.scale_exponent(values) if np.size(values) and np.any(values) else None
    if e is not None:
        onehot[e - _EXP_MIN] = 1
    return onehot


def _loss_shift(y_exp):
    # Squared errors scale as y**2; kept within float64's exponent range.
    return int(np.clip(2 * y_exp, -1000, 1000))


def _max_exponent(onehot):
    nz = np.flatnonzero(onehot)
    return int(nz[-1] + _EXP_MIN) if nz.size else 0


class _ClientHistograms:
    """A client's binned rows: node histograms summed by a compiled kernel
    straight into the words it uploads (:func:`skfed.trees._kernels.node_histograms`),
    and splits applied to a node's rows."""

    def __init__(self, Xb, n_bins, offsets, T, train, packing, task):
        # Column-major uint8 (the kernels read one column of a node's rows):
        # the slot within the column's histogram, n_bins[f] for a missing
        # value (n_bins <= 255, so 255 stays the missing slot where it was).
        n_bins = np.asarray(n_bins, dtype=np.int64)
        self.codes = np.asfortranarray(np.where(Xb == MISSING_BIN, n_bins[None, :].astype(np.uint8),
                                                Xb).astype(np.uint8))
        self.n_bins = n_bins
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.train = np.ascontiguousarray(train, dtype=np.bool_)
        self.T = T
        self.words = _words(packing, task)
        self.pack = int(packing)

    def partition(self, rows, f, b, missing_left):
        """The rows of a node split by ``bin <= b`` in column ``f``: (left, right)."""
        return _kernels.partition(rows, self.codes[:, int(f)], int(b), bool(missing_left),
                                  int(self.n_bins[int(f)]))

    def histograms(self, rows_of, gq, hq, nodes):
        """The upload of the requested nodes: int64 of shape (n_nodes, words, T)."""
        rows = [rows_of[int(k)][int(v)] for k, v in nodes]
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([r.size for r in rows], out=starts[1:])
        outputs = np.array([int(k) for k, _ in nodes], dtype=np.int64)
        out = np.zeros((len(nodes), self.words, self.T), dtype=np.int64)
        return _kernels.node_histograms(
            self.codes, self.offsets, self.train,
            np.concatenate(rows).astype(np.int64, copy=False), starts, outputs, gq, hq,
            self.words, self.pack, out)


# -- server ---------------------------------------------------------------------------

class _Node:
    __slots__ = ("hist", "G", "H", "n", "depth", "best", "split", "children", "parent",
                 "final")

    def __init__(self, depth, parent):
        self.depth, self.parent = depth, parent
        self.hist = None
        self.best = self.split = self.children = self.final = None


class _Tree:
    """One tree as the server grows it: internal node ids (creation order,
    speculative ones included) and final ids (scikit-learn's order)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.nodes = [_Node(0, None)]
        self.nodes[0].final = 0
        self.order = [0]          # internal id of each final id
        self.heap = []
        self.n_leaves = 1
        self.max_leaves = cfg.max_leaf_nodes if cfg.max_leaf_nodes is not None else math.inf

    def splittable(self, v, h_exp):
        cfg, node = self.cfg, self.nodes[v]
        if cfg.max_depth is not None and node.depth >= cfg.max_depth:
            return False
        return (node.n >= 2 * cfg.min_samples_leaf
                and _trees.dequantise(node.H, h_exp) >= 2 * _trees.MIN_HESSIAN)

    def push(self, v):
        best = self.nodes[v].best
        if best is not None and best[0] > 0:
            heapq.heappush(self.heap, (-best[0], self.nodes[v].final, v))

    def advance(self):
        """Split, best first, every node whose children are known; return the
        nodes to expand next (empty when the tree is grown)."""
        while self.heap and self.n_leaves < self.max_leaves:
            _, _, v = self.heap[0]
            node = self.nodes[v]
            if node.children is None:
                break
            heapq.heappop(self.heap)
            node.split = True
            self.n_leaves += 1
            for c in node.children:
                self.nodes[c].final = len(self.order)
                self.order.append(c)
            for c in node.children:
                self.push(c)
        if not self.heap or self.n_leaves >= self.max_leaves:
            return []
        budget = self.max_leaves - self.n_leaves
        if budget != math.inf and not _SPECULATE:
            # Without a budget every node of the frontier will be split: all
            # are expanded at once, with nothing wasted.
            budget = 1
        ranked = sorted(self.heap)
        ranked = ranked if budget == math.inf else ranked[:int(budget)]
        return [v for _, _, v in ranked if self.nodes[v].children is None]


class _Histograms:
    """Compact histograms to the padded (feature, 256-bin) layout of best_splits."""

    def __init__(self, n_bins):
        self.n_bins = np.asarray(n_bins, dtype=np.int64)
        self.offsets, self.T = _layout(self.n_bins)
        F = self.n_bins.size
        f_of, b_of = [], []
        for f in range(F):
            f_of += [f] * (int(self.n_bins[f]) + 1)
            b_of += list(range(int(self.n_bins[f]))) + [MISSING_BIN]
        self.f_of, self.b_of = np.array(f_of), np.array(b_of)

    def padded(self, hists):
        """hists (n, 3, T) -> counts (n, F, 256), GH (n, 2, F, 256)."""
        n = hists.shape[0]
        F = self.n_bins.size
        out = np.zeros((n, 3, F, _trees.N_BIN_SLOTS), dtype=np.int64)
        out[:, :, self.f_of, self.b_of] = hists
        return out[:, 2], out[:, :2]

    def totals(self, hist):
        """G, H, n of a node: every column's slots add up to them (column 0's)."""
        s = hist[:, :int(self.n_bins[0]) + 1].sum(axis=1)
        return int(s[0]), int(s[1]), int(s[2])


def server(ctx, cfg, progress=None):
    """The server: secure sums, bin edges, every split decision, the model.

    Returns a dict with ``trees`` (per iteration, one dict of node arrays per
    output), ``baseline``, ``edges``, ``n_iter``, ``train_score``,
    ``validation_score``, ``stats`` (rounds and bytes) and ``timings``.
    """
    cpu_start = time.thread_time()
    agg = server_aggregation(ctx, cfg.clients, cfg.secure_aggregation, cfg.min_clients)
    K = _n_outputs(cfg)
    t0 = time.perf_counter()
    timings = {"binning": 0.0, "grow": 0.0, "best_splits": 0.0}
    n_rounds = {"binning": 0, "histograms": 0}
    while True:
        # Every set-up sum must hold the same clients' rows (the edges, the
        # baseline and the row counts describe one set of rows): when the set
        # shrinks, the set-up starts again over the survivors.
        s = _setup(agg, cfg, n_rounds)
        if s is not None:
            break
        n_rounds["setup_restarts"] = n_rounds.get("setup_restarts", 0) + 1
    y_exp, n_train, n_val, baseline, edges, has_missing = s
    loss_scale = 2.0 ** _loss_shift(y_exp) if cfg.task == "regression" else 1.0
    n_bins = np.array([e.size + 1 for e in edges], dtype=np.int64)
    packing = pack_bits(n_train)
    agg.broadcast("edges", {"edges": edges, "baseline": baseline, "pack_bits": packing})
    timings["binning"] = time.perf_counter() - t0
    layout = _Histograms(n_bins)
    T = layout.T

    train_score, validation_score = [], []
    stop_scores = validation_score if n_val else train_score

    def scores():
        s = agg.secure_sum("score", 4)
        # The counts summed with the losses: the same clients' rows.
        n_t, n_v = int(round(s[2])), int(round(s[3]))
        t = -float(s[0]) * loss_scale / max(n_t, 1)
        if cfg.early_stopping:
            train_score.append(t)
            if n_val:
                validation_score.append(-float(s[1]) * loss_scale / max(n_v, 1))
        return -t

    scores()
    trees = []
    g_exp_fixed = 0
    h_exp = 0 if cfg.task == "regression" else -2
    for it in range(cfg.max_iter):
        t1 = time.perf_counter()
        while True:
            # Every sum of an iteration must hold the same clients' rows (a
            # sibling is its parent minus the other child): when the set
            # shrinks, the iteration starts again over the survivors.
            grown, g_exp = _grow(agg, cfg, K, T, packing, n_bins, has_missing, layout,
                                 h_exp, g_exp_fixed, n_rounds, timings)
            if grown is not None:
                break
            n_rounds["restarts"] = n_rounds.get("restarts", 0) + 1
        iteration, leaves = [], []
        for k, tree in enumerate(grown):
            t, lv = _final_tree(tree, edges, cfg, g_exp, h_exp)
            iteration.append(t)
            leaves.append([k, lv[0], lv[1]])
        trees.append(iteration)
        agg.broadcast("cmd", {"op": "leaves", "leaves": leaves})
        objective = scores()
        timings["grow"] += time.perf_counter() - t1
        asked = progress is not None and progress.update(
            it + 1, objective=objective, nbytes=ctx.bytes_sent + ctx.bytes_received)
        if asked or (cfg.early_stopping and _trees.should_stop(
                stop_scores, cfg.n_iter_no_change, cfg.tol)):
            break
    model = {"trees": trees, "baseline": baseline, "edges": edges}
    agg.broadcast("cmd", {"op": "done", "model": model})
    if progress is not None:
        progress.close()
    return {"trees": trees, "baseline": baseline, "edges": edges, "n_iter": len(trees),
            "train_score": np.asarray(train_score),
            "validation_score": np.asarray(validation_score),
            "n_train": n_train, "n_validation": n_val,
            "rounds": n_rounds, "timings": timings,
            "dropouts": list(getattr(agg, "dropouts", ())),
            "cpu_seconds": time.thread_time() - cpu_start}


def _same_clients(agg):
    """A check that the last sum of ``agg`` held the clients of the first one it
    was called after: the sums of a set-up, or of an iteration, must describe
    one set of rows (a dropout changes the set)."""
    members = None

    def same():
        nonlocal members
        if members is None:
            members = agg.contributors
        return agg.contributors == members

    return same


def _setup(agg, cfg, n_rounds):
    """The set-up sums: ``(y_exp, n_train, n_val, baseline, edges, has_missing)``,
    or None (the clients told to restart) when the clients of a set-up sum
    differ from those of the first (a dropout)."""
    same_clients = _same_clients(agg)

    n_stats = 1 if cfg.task == "regression" else cfg.n_classes
    y_exp = 0
    if cfg.task == "regression":
        y_exp = _max_exponent(agg.secure_sum_ring("yexp", _EXP_LEN))
        same_clients()
        agg.broadcast("yexp", y_exp)
    setup = agg.secure_sum_ring("setup", 2 + n_stats)
    # No decision on these sums before the first bin counts: the clients
    # upload both without waiting for the server.
    consistent = same_clients()
    F = cfg.n_features
    first = agg.secure_sum_ring("bins", F * ((1 << FIRST_BITS) + 1))
    n_rounds["binning"] += 1
    if not (same_clients() and consistent):
        agg.broadcast("bins", _RESTART)
        return None
    n_train, n_val = int(setup[0]), int(setup[1])
    if n_train < 2 * cfg.min_samples_leaf:
        # Checked by the estimator before any message where it can be.
        raise ValueError(f"{n_train} training rows are too few for min_samples_leaf="
                         f"{cfg.min_samples_leaf}")
    if cfg.task == "regression":
        stats = _trees.dequantise(setup[2:], y_exp)
    else:
        stats = setup[2:]
        if np.count_nonzero(stats) < 2:
            raise ValueError("the training rows of the federation hold a single class")
    baseline = _trees.baseline_from_sums(cfg.task, cfg.n_classes, n_train, stats)
    binner = BinningServer(first, F, cfg.max_bins)
    while True:
        req = binner.request()
        if not req:
            agg.broadcast("bins", None)
            break
        agg.broadcast("bins", [{"feature": int(f), "bits": int(b), "prefixes": p}
                                 for f, b, p in req])
        counts = agg.secure_sum_ring("bins", binner.size(req))
        n_rounds["binning"] += 1
        if not same_clients():
            agg.broadcast("bins", _RESTART)
            return None
        binner.refine(counts)
    return y_exp, n_train, n_val, baseline, binner.edges(), binner.n_missing > 0


def _grow(agg, cfg, K, T, packing, n_bins, has_missing, layout, h_exp, g_exp_fixed,
          n_rounds, timings):
    """Grow the trees of one iteration; ``(None, None)`` when the clients of a
    sum differ from those of the iteration's first sum (a dropout)."""
    same_clients = _same_clients(agg)

    if cfg.task == "regression":
        agg.broadcast("cmd", {"op": "exponent"})
        g_exp = _max_exponent(agg.secure_sum_ring("exponent", _EXP_LEN))
        same_clients()
    else:
        g_exp = g_exp_fixed
    agg.broadcast("cmd", {"op": "iteration", "exps": [g_exp, h_exp]})
    grown = [_Tree(cfg) for _ in range(K)]
    splits, nodes = [], [(k, 0) for k in range(K)]
    while nodes:
        # Integer arrays: every client decodes them every round (as lists of
        # Python ints they cost each client 45 us of the interpreter lock).
        agg.broadcast("cmd", {"op": "expand",
                              "splits": np.array(splits, dtype=np.int64).reshape(-1, 7),
                              "nodes": np.array(nodes, dtype=np.int64).reshape(-1, 2)})
        words = _words(packing, cfg.task)
        hists = agg.secure_sum_ring("hist", len(nodes) * words * T).reshape(len(nodes), words, T)
        if packing:
            # _unpack, compiled (one pass).
            hists = _kernels.unpack_histograms(hists, packing, words, _trees.PRECISION_BITS)
        n_rounds["histograms"] += 1
        if not same_clients():
            return None, None
        t2 = time.perf_counter()
        new = []  # (k, v) of nodes whose histogram is now known
        for (k, v), hist in zip(nodes, hists):
            tree = grown[k]
            tree.nodes[v].hist = hist
            new.append((k, v))
            p = tree.nodes[v].parent
            if p is not None:
                sib = [c for c in tree.nodes[p].children if c != v][0]
                tree.nodes[sib].hist = tree.nodes[p].hist - hist
                new.append((k, sib))
        evaluate = []
        for k, v in new:
            node = grown[k].nodes[v]
            node.G, node.H, node.n = layout.totals(node.hist)
            if grown[k].splittable(v, h_exp):
                evaluate.append((k, v))
        if evaluate:
            # The decision of _trees.best_splits (its reference), compiled,
            # from the compact layout.
            best = _kernels.best_splits_compact(
                [grown[k].nodes[v].hist for k, v in evaluate], layout.offsets, n_bins,
                has_missing,
                [grown[k].nodes[v].G for k, v in evaluate],
                [grown[k].nodes[v].H for k, v in evaluate],
                cfg.min_samples_leaf, cfg.l2_regularization, g_exp, h_exp)
            for (k, v), b in zip(evaluate, best):
                grown[k].nodes[v].best = b
        for k, v in new:
            if grown[k].nodes[v].parent is None:
                grown[k].push(v)
        timings["best_splits"] += time.perf_counter() - t2
        splits, nodes = [], []
        for k, tree in enumerate(grown):
            for v in tree.advance():
                node = tree.nodes[v]
                _, f, b, ml = node.best
                counts = node.hist[2, layout.offsets[f]:layout.offsets[f] + n_bins[f] + 1]
                n_left = int(counts[:b + 1].sum()) + (int(counts[-1]) if ml else 0)
                if not has_missing[f]:
                    # No missing values in training: at prediction they
                    # follow the larger child (scikit-learn's rule).
                    ml = n_left >= node.n - n_left
                node.split = None
                node.best = (node.best[0], f, b, bool(ml))
                left, right = len(tree.nodes), len(tree.nodes) + 1
                tree.nodes.append(_Node(node.depth + 1, v))
                tree.nodes.append(_Node(node.depth + 1, v))
                node.children = (left, right)
                splits.append([k, v, int(f), int(b), bool(ml), left, right])
                nodes.append((k, left if n_left <= node.n - n_left else right))
    return grown, g_exp


def _final_tree(tree, edges, cfg, g_exp, h_exp):
    """The tree in scikit-learn's node order, and the leaves' values by internal id."""
    m = len(tree.order)
    out = {"left": np.full(m, -1), "right": np.full(m, -1), "feature": np.full(m, -1),
           "bin": np.full(m, -1), "threshold": np.full(m, np.nan),
           "missing_left": np.zeros(m, dtype=bool), "value": np.zeros(m),
           "n_samples": np.zeros(m, dtype=np.int64), "gain": np.zeros(m)}
    leaf_ids, leaf_values = [], []
    for fid, v in enumerate(tree.order):
        node = tree.nodes[v]
        out["n_samples"][fid] = node.n
        if node.split:
            gain, f, b, ml = node.best
            left, right = node.children
            out["left"][fid] = tree.nodes[left].final
            out["right"][fid] = tree.nodes[right].final
            out["feature"][fid], out["bin"][fid] = f, b
            e = edges[f]
            out["threshold"][fid] = float(e[b]) if b < e.size else math.inf
            out["missing_left"][fid] = ml
            out["gain"][fid] = gain
        else:
            value = float(_trees.leaf_value(_trees.dequantise(node.G, g_exp),
                                            _trees.dequantise(node.H, h_exp),
                                            cfg.l2_regularization, cfg.learning_rate))
            out["value"][fid] = value
            leaf_ids.append(v)
            leaf_values.append(value)
    return out, (np.array(leaf_ids, dtype=np.int64), np.array(leaf_values))


# -- prediction (local: the model is public to every party) ----------------------------

def predict_raw(trees, baseline, X, staged=False):
    """Raw predictions of the model; with ``staged``, one array per iteration."""
    n = X.shape[0]
    raw = np.tile(np.asarray(baseline, dtype=np.float64), (n, 1))
    out = []
    for iteration in trees:
        for k, t in enumerate(iteration):
            raw[:, k] += _apply(t, X)
        if staged:
            out.append(raw.copy())
    return out if staged else raw


def _apply(t, X):
    """Leaf values of the rows of X in one tree (vectorised over rows)."""
    n = X.shape[0]
    node = np.zeros(n, dtype=np.int64)
    left, right, feature = t["left"], t["right"], t["feature"]
    thr, ml = t["threshold"], t["missing_left"]
    active = np.flatnonzero(left[node] >= 0)
    while active.size:
        v = node[active]
        x = X[active, feature[v]]
        with np.errstate(invalid="ignore"):
            go = np.where(np.isnan(x), ml[v], x <= thr[v])
        node[active] = np.where(go, left[v], right[v])
        active = active[left[node[active]] >= 0]
    return t["value"][node]


def check_tree(t, n_features=None, sender="server", tag="model"):
    """Refuse a tree with inconsistent arrays (from a deployment's server, or a
    saved model): arrays of one length, integer child and feature indices, every
    child after its parent (prediction walks down and always ends), features
    within ``n_features``, finite leaf values."""
    from ..runtime.layout import LayoutMismatch

    if not isinstance(t, dict) or any(k not in t for k in _TREE_KEYS):
        raise LayoutMismatch(f"{tag!r} from {sender!r}: a tree needs the arrays "
                             f"{list(_TREE_KEYS)}")
    left = check_array(t["left"], sender=sender, tag=tag, shape=(None,), dtype="i")
    m = left.size
    if m < 1:
        raise LayoutMismatch(f"{tag!r} from {sender!r}: a tree without nodes")
    right = check_array(t["right"], sender=sender, tag=tag, shape=(m,), dtype="i")
    feature = check_array(t["feature"], sender=sender, tag=tag, shape=(m,), dtype="i")
    check_array(t["threshold"], sender=sender, tag=tag, shape=(m,))
    check_array(t["missing_left"], sender=sender, tag=tag, shape=(m,), dtype="bi")
    value = check_array(t["value"], sender=sender, tag=tag, shape=(m,))
    problem = _trees.tree_structure_error(left, right)
    if problem is not None:
        raise LayoutMismatch(f"{tag!r} from {sender!r}: a tree with {problem}")
    split = left >= 0
    if n_features is not None and np.any(split & ((feature < 0) | (feature >= n_features))):
        raise LayoutMismatch(f"{tag!r} from {sender!r}: a split on a column outside "
                             f"0..{n_features - 1}")
    if not np.all(np.isfinite(value[~split])):
        raise LayoutMismatch(f"{tag!r} from {sender!r}: a leaf value is not finite")
    return t


def check_model(trees, baseline, n_features, sender="server", tag="model"):
    """Refuse a model (trees and baseline) whose parts do not fit together."""
    from ..runtime.layout import LayoutMismatch

    baseline = check_array(baseline, sender=sender, tag=tag, shape=(None,), finite=True)
    if baseline.size < 1 or not isinstance(trees, (list, tuple)):
        raise LayoutMismatch(f"{tag!r} from {sender!r}: a model needs a baseline and a "
                             "list of iterations")
    for iteration in trees:
        if not isinstance(iteration, (list, tuple)) or len(iteration) != baseline.size:
            raise LayoutMismatch(f"{tag!r} from {sender!r}: every iteration needs one "
                                 f"tree per output ({baseline.size})")
        for t in iteration:
            check_tree(t, n_features, sender=sender, tag=tag)
    return trees, baseline


_TREE_KEYS = ("left", "right", "feature", "threshold", "missing_left", "value")
