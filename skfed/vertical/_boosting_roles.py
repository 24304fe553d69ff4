"""Role functions of vertical SecureBoost (Cheng et al., 2019).

Two kinds of party, no arbiter:

* the **label party** holds some columns, the labels, the Paillier key pair,
  every tree's structure and every leaf value;
* each **feature party** holds other columns and, for each split it won, a
  lookup-table record (feature, threshold, missing direction) that only it
  can read.

One boosting iteration (``K`` outputs: 1, or one tree per class)::

    label -> features  cmd iteration                               plain
    label -> features  [[g_i | h_i]] per training row, all K classes
                       packed in one plaintext (fixed point)       ciphertext
    per tree, per round of nodes to evaluate:
    label -> features  cmd evaluate {node ids}                     plain
    feature -> label   per node, its split candidates' [[sum g | sum h]] of
                       the left side, shuffled, many per ciphertext,
                       re-randomised                                ciphertext
    label              decrypts, scores with the same gain formula as its own
                       candidates, picks the best split of the node
    per split, best first (largest gain), until the leaf budget is spent:
    label -> winner    cmd won {node, candidate ids}               plain
    winner -> label    record id, rows of the node going left      plain
    label -> others    cmd partition {node, rows going left}       plain

A feature party builds its encrypted histograms by ciphertext additions
only: for the smaller child of a split directly, for the larger one as the
parent's minus the smaller's; the cumulative sums over bins are the left
sides of the candidates. It drops candidates that leave fewer than
``min_samples_leaf`` rows on a side and those repeating the previous
threshold's partition (it alone knows the counts), and breaks ties between
its own equal-gain candidates in the canonical order of :mod:`skfed.trees.gbdt`.

Prediction is one round per ``predict`` call::

    feature -> label   for each of its records, which rows go left  plain

What crosses in the clear is the structure SecureBoost discloses: the row
partitions of the nodes (to the label party and to every feature party), the
number of classes, and which rows are held out for early stopping. Gradients,
hessians, labels, leaf values, features and thresholds never leave their
party unprotected. With ``encryption=None`` the same messages carry the
fixed-point integers in the clear (kind ``plain``).
"""

import contextlib
import heapq
import math
import secrets
import time
from dataclasses import dataclass

import numpy as np

from ..crypto.packing import slots_per_ciphertext
from ..runtime.local import PartyContext as LocalPartyContext
from ..trees import gbdt as _trees
from ..trees.binning import MISSING_BIN, bin_party

__all__ = ["BoostingConfig", "label_fit", "feature_fit", "label_predict", "feature_predict",
           "layout"]


@dataclass(frozen=True)
class BoostingConfig:
    """Hyper-parameters every party agreed on before the run (all public)."""

    task: str                      # "classification" or "regression"
    label_party: str
    hosts: tuple
    n_samples: int
    learning_rate: float
    max_iter: int
    max_leaf_nodes: int | None
    max_depth: int | None
    min_samples_leaf: int
    l2_regularization: float
    max_bins: int
    early_stopping: bool
    validation_fraction: float | int | None
    n_iter_no_change: int
    tol: float
    encryption: str | None
    key_size: int
    n_jobs: int | None
    verbose: int


def layout(n_train, n_outputs, key_size):
    """Public packing layout: slot width, classes per plaintext, plaintexts per row.

    A slot holds a sum of at most ``n_train`` values of ``PRECISION_BITS``
    bits (signed), with a bit of margin for the balanced digits.
    """
    slot_bits = _trees.PRECISION_BITS + math.ceil(math.log2(n_train + 1)) + 3
    n_slots = slots_per_ciphertext(key_size, slot_bits)
    per_chunk = max(1, n_slots // 2)
    return slot_bits, per_chunk, -(-n_outputs // per_chunk)


# -- protection codecs -----------------------------------------------------------

class _PlainLabel:
    kind = "plain"

    def public_key_message(self):
        return None

    def encrypt(self, blocks, slot_bits):
        return np.hstack(blocks).astype(np.int64)

    def decrypt_items(self, payload, item_slots, slot_bits, per):
        return np.asarray(payload["items"], dtype=np.int64).reshape(-1, item_slots)

    def idle(self):
        return contextlib.nullcontext()

    def reserve(self, count):
        pass

    def close(self):
        pass


class _PaillierLabel:
    """The key owner: encrypts with CRT randomisers computed ahead, while the trees grow."""

    kind = "ciphertext"

    def __init__(self, key_size, n_jobs, background):
        from ..crypto import paillier

        self._p = paillier
        # Starting joblib's workers (a few seconds of imports each) while the
        # key is generated: they compute the first iteration's randomisers.
        warm = _start_workers(n_jobs)
        self.public_key, self._sk = paillier.generate_keypair(n_length=key_size)
        if warm is not None:
            warm.join()
        self.n_jobs = n_jobs
        self.pool = paillier.ObfuscatorPool(self.public_key, n_jobs=n_jobs,
                                            background=background, private_key=self._sk)

    def public_key_message(self):
        return self._p.public_key_to_wire(self.public_key)

    def encrypt(self, blocks, slot_bits):
        from ..crypto import slotsum

        parts = [slotsum.encrypt_rows(self.public_key, b, slot_bits, pool=self.pool)
                 for b in blocks]
        enc = parts[0] if len(parts) == 1 else \
            self._p.EncryptedArray.concatenate(parts, axis=1)
        return enc.to_wire()

    def decrypt_items(self, payload, item_slots, slot_bits, per):
        from ..crypto import slotsum

        enc = self._p.EncryptedArray.from_wire(self.public_key, payload["ct"],
                                               n_jobs=self.n_jobs)
        ints = enc.decrypt_encoded(self._sk, n_jobs=self.n_jobs).ravel().tolist()
        return slotsum.unpack(ints, int(payload["n"]), item_slots, slot_bits,
                              int(self.public_key.n).bit_length(), per)

    def idle(self):
        return self.pool.idle()

    def reserve(self, count):
        from joblib import effective_n_jobs

        self.pool.reserve(count)
        # The next iteration's randomisers do not depend on its gradients:
        # compute them while the trees grow, not only while this party waits.
        # In-process (one worker) they would fight the roles for the GIL.
        if count and effective_n_jobs(self.n_jobs) > 1:
            self.pool.start_refill()

    def close(self):
        self.pool.close()


class _PlainHost:
    """Histograms of fixed-point integers in the clear (``encryption=None``)."""

    kind = "plain"

    def load(self, payload):
        self.gh = np.asarray(payload, dtype=np.int64)

    def column(self, chunk, start, width):
        return self.gh[:, start:start + width]

    def histogram(self, col, pos, hb, n_slots):
        vals = col[pos]
        out = []
        for f in range(hb.shape[1]):
            h = np.zeros((n_slots[f], vals.shape[1]), dtype=np.int64)
            np.add.at(h, hb[:, f], vals)
            out.append(h)
        return out

    def subtract(self, parent, child):
        return [p - c for p, c in zip(parent, child)]

    def items(self, hist, feats, bins, lefts):
        out = []
        cum = {}
        for f, b, ml in zip(feats.tolist(), bins.tolist(), lefts.tolist()):
            if f not in cum:
                cum[f] = np.cumsum(hist[f][:-1], axis=0)
            item = cum[f][b] + (hist[f][-1] if ml else 0)
            out.append(item)
        return out

    def pack(self, items, item_slots, slot_bits):
        arr = (np.asarray(items, dtype=np.int64).reshape(-1, item_slots) if items
               else np.zeros((0, item_slots), dtype=np.int64))
        return {"n": len(items), "items": arr}

    def idle(self):
        return contextlib.nullcontext()

    def close(self):
        pass


class _PaillierHost:
    """Encrypted histograms by ciphertext additions; sums packed before sending."""

    kind = "ciphertext"

    def __init__(self, public_key, n_jobs, background):
        from ..crypto import paillier

        self._p = paillier
        self.public_key = public_key
        self.n_bits = int(public_key.n).bit_length()
        self.nsq = paillier._context(public_key.n).nsquare
        self.n_jobs = n_jobs
        # Re-randomises what goes back to the key owner, refilled while waiting.
        self.pool = paillier.ObfuscatorPool(public_key, n_jobs=n_jobs, background=background)

    def load(self, payload):
        enc = self._p.EncryptedArray.from_wire(self.public_key, payload, n_jobs=self.n_jobs)
        self.cts = enc._c

    def column(self, chunk, start, width):
        return self.cts[:, chunk].tolist()

    def histogram(self, col, pos, hb, n_slots):
        from ..crypto import slotsum

        cts = [col[i] for i in pos.tolist()]
        # All features at once: correlated features share joint cells, which
        # saves most of the multiplications and gives the same integers.
        return slotsum.multi_group_products(cts, hb, n_slots, self.nsq)

    def subtract(self, parent, child):
        from ..crypto import slotsum

        return [slotsum.divide(p, c, self.nsq) for p, c in zip(parent, child)]

    def items(self, hist, feats, bins, lefts):
        nsq = self.nsq
        out = []
        cum = {}
        for f, b, ml in zip(feats.tolist(), bins.tolist(), lefts.tolist()):
            run = cum.setdefault(f, [hist[f][0]])
            while len(run) <= b:
                run.append(run[-1] * hist[f][len(run)] % nsq)
            out.append(run[b] * hist[f][-1] % nsq if ml else run[b])
        return out

    def pack(self, items, item_slots, slot_bits):
        from ..crypto import slotsum

        packed, per = slotsum.repack(items, item_slots, slot_bits, self.n_bits, self.nsq)
        rho = self.pool.take(len(packed))
        # Fresh randomness: without it the key owner, who knows every row's
        # randomiser, could test which rows a sum is made of.
        packed = [c * r % self.nsq for c, r in zip(packed, rho.tolist())]
        enc = self._p.EncryptedArray(self.public_key, np.asarray(packed, dtype=object).reshape(-1),
                                     0)
        return {"n": len(items), "per": per, "ct": enc.to_wire()}

    def idle(self):
        return self.pool.idle()

    def close(self):
        self.pool.close()


def _worker_ready():
    return True


def _start_workers(n_jobs):
    """A thread that starts joblib's workers, or None without workers."""
    import threading

    from joblib import effective_n_jobs
    from sklearn.utils.parallel import Parallel, delayed

    k = effective_n_jobs(n_jobs)
    if k <= 1:
        return None

    def run():
        Parallel(n_jobs=n_jobs)(delayed(_worker_ready)() for _ in range(k))

    thread = threading.Thread(target=run, name="skfed-start-workers", daemon=True)
    thread.start()
    return thread


def _background(ctx):
    # Every role of a LocalRuntime shares this process: refill only on workers.
    return "workers" if isinstance(ctx, LocalPartyContext) else True


def _bits(mask):
    return {"n": int(mask.size), "bits": np.packbits(mask)}


def _unbits(msg):
    n = int(msg["n"])
    return np.unpackbits(np.asarray(msg["bits"], dtype=np.uint8), count=n).astype(bool)


def _should_stop(scores, n_iter_no_change, tol):
    """scikit-learn's rule: no score of the last ``n_iter_no_change`` beats the
    one before them by more than ``tol``."""
    ref = n_iter_no_change + 1
    if len(scores) < ref:
        return False
    reference = scores[-ref] + tol
    return not any(s > reference for s in scores[-ref + 1:])


# -- fit: label party -----------------------------------------------------------

class _Node:
    """A node as the label party tracks it: its rows (training and held out),
    and the exact fixed-point sums of its training rows' g and h."""

    __slots__ = ("rows", "depth", "G", "H", "n_train")

    def __init__(self, rows, depth, G, H, n_train):
        self.rows, self.depth, self.G, self.H = rows, depth, G, H
        self.n_train = n_train


def label_fit(ctx, X, y, n_classes, cfg, seed, progress=None):
    """Label party: gradients, split decisions, trees and leaf values.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_own_features)
        Its own columns (NaN for missing values); it bins them itself on its
        training rows, and the edges never leave it.
    y : ndarray of shape (n_samples,)
        Targets: values, or class indices ``0..n_classes-1``.
    seed : int
        Private randomness for the validation split.

    Returns
    -------
    dict with ``trees`` (list per iteration of a tree per output),
    ``baseline``, ``n_iter``, ``train_score``, ``validation_score``.
    """
    hosts = cfg.hosts
    n = cfg.n_samples
    if cfg.encryption is None:
        codec = _PlainLabel()
    else:
        codec = _PaillierLabel(cfg.key_size, cfg.n_jobs, _background(ctx))
    ctx.broadcast(hosts, "public_key", codec.public_key_message(),
                  kind="plain" if cfg.encryption is None else "public_key")
    loss = _trees.loss_for(cfg.task, y, n_classes)
    K = loss.n_outputs
    train = np.ones(n, dtype=bool)
    if cfg.early_stopping and cfg.validation_fraction is not None:
        from sklearn.model_selection import train_test_split

        stratify = y if cfg.task == "classification" else None
        tr, _ = train_test_split(np.arange(n), test_size=cfg.validation_fraction,
                                 stratify=stratify, random_state=seed)
        train[:] = False
        train[tr] = True
    train_rows = np.flatnonzero(train)
    valid_rows = np.flatnonzero(~train)
    n_train = train_rows.size
    b = bin_party(X, train, cfg.max_bins)
    slot_bits, per_chunk, n_chunks = layout(n_train, K, cfg.key_size)
    ctx.broadcast(hosts, "setup", {"n_outputs": K, "held_out": None if train.all() else
                                   _bits(~train)})
    baseline = loss.baseline(train_rows)
    raw = np.tile(baseline, (n, 1))
    trees, train_score, validation_score = [], [], []
    stop_scores = validation_score if valid_rows.size else train_score
    if cfg.early_stopping:
        train_score.append(-loss.loss(raw, train_rows))
        if valid_rows.size:
            validation_score.append(-loss.loss(raw, valid_rows))
    timings = {"encrypt": 0.0}
    own = _OwnSplits(b["Xb"], b["n_bins"], b["has_missing"], b["edges"], cfg)
    grower = _Grower(ctx, codec, own, cfg, train, slot_bits)
    codec.reserve(n_train * n_chunks)
    for it in range(cfg.max_iter):
        g, h = loss.gradients(raw)
        hq = _trees.quantise(h, loss.hessian_exponent)
        exps = (loss.gradient_exponent(g[train_rows]), loss.hessian_exponent)
        gq = _trees.quantise(g, exps[0])
        inter = np.empty((n_train, 2 * K), dtype=np.int64)
        inter[:, 0::2], inter[:, 1::2] = gq[train_rows], hq[train_rows]
        ctx.broadcast(hosts, "cmd", {"op": "iteration"})
        # The next iteration's randomisers, computed from now on (also while
        # the trees grow); none after the last, so that its encryption does
        # not share the workers with randomisers nobody will use.
        codec.reserve(n_train * n_chunks if it + 1 < cfg.max_iter else 0)
        if hosts:
            t0 = time.perf_counter()
            payload = codec.encrypt([inter[:, 2 * per_chunk * c:2 * per_chunk * (c + 1)]
                                     for c in range(n_chunks)], slot_bits)
            timings["encrypt"] += time.perf_counter() - t0
            ctx.broadcast(hosts, "gh", payload, kind=codec.kind)
        iteration = []
        for k in range(K):
            chunk, offset = divmod(k, per_chunk)
            width = 2 * min(per_chunk, K - chunk * per_chunk)
            tree, leaves = grower.grow(gq[:, k], hq[:, k], exps, chunk,
                                       2 * per_chunk * chunk, width, 2 * offset)
            for value, rows in leaves:
                raw[rows, k] += value
            iteration.append(tree)
        trees.append(iteration)
        objective = loss.loss(raw, train_rows)
        if cfg.early_stopping:
            train_score.append(-objective)
            if valid_rows.size:
                validation_score.append(-loss.loss(raw, valid_rows))
        asked = progress is not None and progress.update(
            it + 1, objective=objective, nbytes=ctx.bytes_sent + ctx.bytes_received)
        if asked or (cfg.early_stopping and _should_stop(stop_scores, cfg.n_iter_no_change,
                                                         cfg.tol)):
            break
    ctx.broadcast(hosts, "cmd", {"op": "done"})
    pool = getattr(codec, "pool", None)
    if pool is not None:
        # How many randomisers were ready when needed (the rest were computed
        # on the spot, inside "encrypt").
        timings["randomisers"] = pool.n_taken
        timings["randomisers_on_the_spot"] = pool.n_missed
    codec.close()
    if progress is not None:
        progress.close()
    timings.update(grower.timings)
    return {"trees": trees, "baseline": baseline, "n_iter": len(trees),
            "train_score": np.asarray(train_score), "validation_score":
            np.asarray(validation_score), "timings": timings}


class _OwnSplits:
    """The label party's own candidates, in the clear."""

    def __init__(self, Xb, n_bins, has_missing, edges, cfg):
        self.Xb = Xb
        self.n_bins = np.asarray(n_bins, dtype=int)
        self.has_missing = np.asarray(has_missing, dtype=bool)
        self.edges = edges
        self.hb = np.where(Xb == MISSING_BIN, self.n_bins[None, :], Xb).astype(np.intp) \
            if Xb.size else np.zeros(Xb.shape, dtype=np.intp)
        self.cfg = cfg

    def best(self, train_rows, gq, hq, node, sg, sh):
        """(gain, feature, bin, missing_left) of the best own split, or None."""
        F = self.Xb.shape[1]
        if F == 0:
            return None
        hb = self.hb[train_rows]
        nb1 = self.n_bins + 1
        counts = np.zeros((F, _trees.N_BIN_SLOTS), dtype=np.int64)
        hist_g, hist_h = [], []
        for f in range(F):
            c = np.bincount(hb[:, f], minlength=nb1[f])
            counts[f, :self.n_bins[f]] = c[:-1]
            counts[f, MISSING_BIN] = c[-1]
            hist_g.append(_int_bincount(hb[:, f], gq[train_rows], nb1[f]))
            hist_h.append(_int_bincount(hb[:, f], hq[train_rows], nb1[f]))
        feats, bins, lefts = _trees.enumerate_candidates(
            counts, self.n_bins, self.has_missing, self.cfg.min_samples_leaf)
        if feats.size == 0:
            return None
        GL = np.empty(feats.size, dtype=np.int64)
        HL = np.empty(feats.size, dtype=np.int64)
        cumg = [np.cumsum(x[:-1]) for x in hist_g]
        cumh = [np.cumsum(x[:-1]) for x in hist_h]
        for i, (f, b, ml) in enumerate(zip(feats.tolist(), bins.tolist(), lefts.tolist())):
            GL[i] = cumg[f][b] + (hist_g[f][-1] if ml else 0)
            HL[i] = cumh[f][b] + (hist_h[f][-1] if ml else 0)
        gains = _trees.split_gains(_trees.dequantise(GL, sg), _trees.dequantise(HL, sh),
                                   _trees.dequantise(node.G, sg), _trees.dequantise(node.H, sh),
                                   self.cfg.l2_regularization)
        i = int(np.argmax(gains))
        if not np.isfinite(gains[i]):
            return None
        return float(gains[i]), int(feats[i]), int(bins[i]), bool(lefts[i])

    def split(self, rows, train, f, b, missing_left):
        """Rows of the node going left, and the split as the label party records it."""
        col = self.Xb[rows, f]
        if not self.has_missing[f]:
            # No missing values in training: at prediction they follow the
            # larger child (scikit-learn's rule).
            tr = col[train[rows]]
            n_left = int(np.count_nonzero(tr <= b))
            missing_left = n_left >= tr.size - n_left
        go = _trees.left_mask(col, b, missing_left)
        e = self.edges[f]
        threshold = float(e[b]) if b < e.size else math.inf
        return go, threshold, bool(missing_left)


def _int_bincount(idx, values, length):
    # Exact: every partial sum of the fixed-point integers is below 2**53.
    return np.rint(np.bincount(idx, weights=values.astype(np.float64),
                               minlength=length)).astype(np.int64)


class _Grower:
    """Grows one tree best-first at the label party, asking the feature parties."""

    def __init__(self, ctx, codec, own, cfg, train, slot_bits):
        self.ctx, self.codec, self.own, self.cfg = ctx, codec, own, cfg
        self.train = train
        self.slot_bits = slot_bits
        self.timings = {"decrypt": 0.0, "wait_hosts": 0.0}

    def _splittable(self, node):
        cfg = self.cfg
        if cfg.max_depth is not None and node.depth >= cfg.max_depth:
            return False
        sh = self._exps[1]
        return (node.n_train >= 2 * cfg.min_samples_leaf
                and _trees.dequantise(node.H, sh) >= 2 * _trees.MIN_HESSIAN)

    def _new_node(self, rows, depth):
        tr = rows[self.train[rows]]
        node = _Node(rows, depth, int(self.gq[tr].sum()), int(self.hq[tr].sum()), tr.size)
        self.nodes.append(node)
        t = self.tree
        for key, v in (("left", -1), ("right", -1), ("owner", ""), ("feature", -1),
                       ("threshold", math.nan), ("missing_left", False), ("record", -1),
                       ("value", 0.0), ("n_samples", int(tr.size)), ("gain", 0.0)):
            t[key].append(v)
        return len(self.nodes) - 1

    def grow(self, gq, hq, exps, chunk, start, width, offset):
        ctx, cfg, hosts = self.ctx, self.cfg, self.cfg.hosts
        self.gq, self.hq, self._exps = gq, hq, exps
        self.width, self.offset = width, offset
        self.tree = _trees.new_tree()
        self.nodes = []
        self.best = {}
        ctx.broadcast(hosts, "cmd", {"op": "tree", "chunk": chunk, "start": start,
                                     "width": width})
        root = self._new_node(np.arange(cfg.n_samples), 0)
        heap = []
        for v in self._evaluate([root] if self._splittable(self.nodes[root]) else []):
            heapq.heappush(heap, v)
        n_leaves = 1
        max_leaves = cfg.max_leaf_nodes if cfg.max_leaf_nodes is not None else math.inf
        while heap and n_leaves < max_leaves:
            _, v = heapq.heappop(heap)
            children = self._split(v)
            n_leaves += 1
            todo = [c for c in children if self._splittable(self.nodes[c])] \
                if n_leaves < max_leaves else []
            for item in self._evaluate(todo):
                heapq.heappush(heap, item)
        leaves = []
        sg, sh = exps
        for v, node in enumerate(self.nodes):
            if self.tree["left"][v] < 0:
                value = _trees.leaf_value(_trees.dequantise(node.G, sg),
                                          _trees.dequantise(node.H, sh),
                                          cfg.l2_regularization, cfg.learning_rate)
                self.tree["value"][v] = float(value)
                leaves.append((float(value), node.rows))
        tree = {k: np.asarray(v) for k, v in self.tree.items()}
        return tree, leaves

    def _evaluate(self, todo):
        """Best split of each node in ``todo``; heap items for those worth splitting."""
        if not todo:
            return []
        ctx, cfg = self.ctx, self.cfg
        sg, sh = self._exps
        if cfg.hosts:
            ctx.broadcast(cfg.hosts, "cmd", {"op": "evaluate", "nodes": [int(v) for v in todo]})
        best = {}
        for v in todo:
            node = self.nodes[v]
            tr = node.rows[self.train[node.rows]]
            b = self.own.best(tr, self.gq, self.hq, node, sg, sh)
            if b is not None:
                best[v] = (b[0], "", b[1:])
        for h in cfg.hosts:
            t0 = time.perf_counter()
            with self.codec.idle():
                msg = ctx.recv(h, "candidates")
            t1 = time.perf_counter()
            self.timings["wait_hosts"] += t1 - t0
            for v, payload in zip(todo, msg):
                node = self.nodes[v]
                if int(payload["n"]) == 0:
                    continue
                per = int(payload.get("per", 1))
                items = self.codec.decrypt_items(payload, self.width, self.slot_bits, per)
                GL = np.asarray(items[:, self.offset], dtype=np.int64)
                HL = np.asarray(items[:, self.offset + 1], dtype=np.int64)
                gains = _trees.split_gains(
                    _trees.dequantise(GL, sg), _trees.dequantise(HL, sh),
                    _trees.dequantise(node.G, sg), _trees.dequantise(node.H, sh),
                    cfg.l2_regularization)
                top = float(np.max(gains))
                if not np.isfinite(top):
                    continue
                if v not in best or top > best[v][0]:
                    # Every candidate of that party with the same gain: it
                    # breaks the tie in its own canonical order.
                    best[v] = (top, h, np.flatnonzero(gains == top).tolist())
            self.timings["decrypt"] += time.perf_counter() - t1
        out = []
        for v in todo:
            if v in best and best[v][0] > 0:
                self.best[v] = best[v]
                out.append((-best[v][0], v))
        return out

    def _split(self, v):
        ctx, cfg = self.ctx, self.cfg
        gain, owner, info = self.best.pop(v)
        node = self.nodes[v]
        l_id, r_id = len(self.nodes), len(self.nodes) + 1
        t = self.tree
        if owner == "":
            f, b, ml = info
            go, threshold, ml = self.own.split(node.rows, self.train, f, b, ml)
            t["feature"][v], t["threshold"][v], t["missing_left"][v] = f, threshold, ml
            others = cfg.hosts
        else:
            ctx.send(owner, "cmd", {"op": "won", "node": int(v), "ids": info,
                                    "left": l_id, "right": r_id})
            with self.codec.idle():
                reply = ctx.recv(owner, "partition")
            go = _unbits(reply)
            if go.size != node.rows.size:
                raise ValueError(f"party {owner!r} sent a partition of {go.size} rows for a "
                                 f"node of {node.rows.size}")
            t["record"][v] = int(reply["record"])
            others = [h for h in cfg.hosts if h != owner]
        t["owner"][v] = owner
        t["gain"][v] = gain
        msg = {"op": "partition", "node": int(v), "left": l_id, "right": r_id, **_bits(go)}
        ctx.broadcast(others, "cmd", msg)
        t["left"][v], t["right"][v] = l_id, r_id
        self._new_node(node.rows[go], node.depth + 1)
        self._new_node(node.rows[~go], node.depth + 1)
        return l_id, r_id


# -- fit: feature party -------------------------------------------------------

def feature_fit(ctx, X, cfg):
    """Feature party: encrypted histograms and its own lookup table.

    ``X`` holds its own columns (NaN for missing values); it bins them
    itself on the training rows (all but those the label party holds out for
    early stopping), and the edges never leave it.

    Returns
    -------
    dict with ``records``, a list of (feature, threshold, missing_left): its
    splits by record id, which only this party can read; and ``timings``.
    """
    label = cfg.label_party
    key = ctx.recv(label, "public_key")
    if cfg.encryption is None:
        codec = _PlainHost()
    else:
        from ..crypto import paillier

        codec = _PaillierHost(paillier.public_key_from_wire(key), cfg.n_jobs, _background(ctx))
    setup = ctx.recv(label, "setup")
    n = cfg.n_samples
    train = np.ones(n, dtype=bool)
    if setup["held_out"] is not None:
        train &= ~_unbits(setup["held_out"])
    n_train = int(train.sum())
    train_pos = np.cumsum(train) - 1
    b = bin_party(X, train, cfg.max_bins)
    Xb, edges = b["Xb"], b["edges"]
    n_bins, has_missing = b["n_bins"], b["has_missing"]
    K = int(setup["n_outputs"])
    slot_bits, per_chunk, n_chunks = layout(n_train, K, cfg.key_size)
    n_bins = np.asarray(n_bins, dtype=int)
    has_missing = np.asarray(has_missing, dtype=bool)
    hb = np.where(Xb == MISSING_BIN, n_bins[None, :], Xb).astype(np.intp)
    n_slots = n_bins + 1
    records = []
    timings = {"histogram": 0.0, "pack": 0.0}
    rng = np.random.default_rng(secrets.randbits(128))
    while True:
        with codec.idle():
            cmd = ctx.recv(label, "cmd")
        op = cmd["op"]
        if op == "done":
            break
        if op == "iteration":
            with codec.idle():
                payload = ctx.recv(label, "gh")
            codec.load(payload)
        elif op == "tree":
            width = int(cmd["width"])
            col = codec.column(int(cmd["chunk"]), int(cmd["start"]), width)
            rows = {0: np.arange(n)}
            parent_of, children_of, hists, cands = {}, {}, {}, {}
        elif op == "partition" or op == "won":
            v, l_id, r_id = int(cmd["node"]), int(cmd["left"]), int(cmd["right"])
            if op == "won":
                feats, bins, lefts, order = cands[v]
                # Equal gains: the earliest candidate in canonical order wins.
                pick = min((int(i) for i in cmd["ids"]), key=lambda i: order[i])
                f, b = int(feats[pick]), int(bins[pick])
                go, threshold, ml = _host_split(Xb[rows[v], f], train[rows[v]], f, b,
                                                bool(lefts[pick]), has_missing, edges)
                records.append((f, threshold, ml))
                ctx.send(label, "partition", {"record": len(records) - 1, **_bits(go)})
            else:
                go = _unbits(cmd)
                if go.size != rows[v].size:
                    raise ValueError("the label party sent a partition of the wrong size")
            rows[l_id], rows[r_id] = rows[v][go], rows[v][~go]
            parent_of[l_id] = parent_of[r_id] = v
            children_of[v] = (l_id, r_id)
            cands.pop(v, None)
        elif op == "evaluate":
            todo = [int(v) for v in cmd["nodes"]]
            out = []
            for v in todo:
                t0 = time.perf_counter()
                hist = _node_histogram(codec, v, todo, rows, train, train_pos, hb, n_slots,
                                       col, parent_of, children_of, hists)
                hists[v] = hist
                timings["histogram"] += time.perf_counter() - t0
                tr = rows[v][train[rows[v]]]
                counts = np.zeros((Xb.shape[1], _trees.N_BIN_SLOTS), dtype=np.int64)
                for f in range(Xb.shape[1]):
                    c = np.bincount(hb[tr, f], minlength=n_slots[f])
                    counts[f, :n_bins[f]] = c[:-1]
                    counts[f, MISSING_BIN] = c[-1]
                feats, bins, lefts = _trees.enumerate_candidates(
                    counts, n_bins, has_missing, cfg.min_samples_leaf)
                # Shuffled: a candidate's position says nothing of its feature
                # or threshold; ``order[i]`` maps position i back.
                order = rng.permutation(feats.size)
                cands[v] = (feats[order], bins[order], lefts[order], order)
                t0 = time.perf_counter()
                if feats.size == 0:
                    out.append({"n": 0})
                    continue
                items = codec.items(hist, feats[order], bins[order], lefts[order])
                out.append(codec.pack(items, width, slot_bits))
                timings["pack"] += time.perf_counter() - t0
            ctx.send(label, "candidates", out, kind=codec.kind)
            # A node evaluated before its sibling's parent is split again keeps
            # its histogram; a split node's is no longer needed.
            for v in todo:
                p = parent_of.get(v)
                if p is not None and all(c in hists for c in children_of[p]):
                    hists.pop(p, None)
    codec.close()
    return {"records": records, "timings": timings}


def _host_split(col, train_mask, f, b, missing_left, has_missing, edges):
    if not has_missing[f]:
        tr = col[train_mask]
        n_left = int(np.count_nonzero(tr <= b))
        missing_left = n_left >= tr.size - n_left
    go = _trees.left_mask(col, b, missing_left)
    e = edges[f]
    threshold = float(e[b]) if b < e.size else math.inf
    return go, threshold, bool(missing_left)


def _node_histogram(codec, v, todo, rows, train, train_pos, hb, n_slots, col, parent_of,
                    children_of, hists):
    """Histogram of node ``v``: directly, or as its parent's minus its sibling's."""
    def direct(u):
        tr = rows[u][train[rows[u]]]
        return codec.histogram(col, train_pos[tr], hb[tr], n_slots)

    if v in hists:  # summed directly as the smaller sibling of an earlier node
        return hists[v]
    p = parent_of.get(v)
    if p is None or p not in hists:
        return direct(v)
    sib = [c for c in children_of[p] if c != v][0]
    n_v = int(train[rows[v]].sum())
    n_sib = int(train[rows[sib]].sum())
    if sib in hists:
        return codec.subtract(hists[p], hists[sib])
    if n_v <= n_sib and sib in todo:
        return direct(v)
    if n_sib < n_v:
        # Cheaper to sum the smaller sibling and subtract it from the parent.
        h_sib = direct(sib)
        if sib in todo:
            hists[sib] = h_sib
        return codec.subtract(hists[p], h_sib)
    return direct(v)


# -- predict ------------------------------------------------------------------------

def feature_predict(ctx, X, records, label_party):
    """Feature party at prediction: for each of its records, which rows go left.

    One message per ``predict`` call. It discloses, for every row, the
    outcome of each of this party's split tests (not the features or
    thresholds); that is what routing the rows through the trees needs.
    """
    n = X.shape[0]
    bits = np.zeros((len(records), n), dtype=bool)
    for r, (f, threshold, missing_left) in enumerate(records):
        x = X[:, int(f)]
        with np.errstate(invalid="ignore"):
            bits[r] = np.where(np.isnan(x), bool(missing_left), x <= threshold)
    ctx.send(label_party, "left", {"n": n, "records": len(records),
                                   "bits": np.packbits(bits, axis=1)})


def label_predict(ctx, X, trees, hosts):
    """Label party at prediction: routes every row through every tree.

    Returns
    -------
    ndarray of shape (n_iter, n_samples, n_outputs)
        Each iteration's contribution to the raw predictions.
    """
    n = X.shape[0]
    host_bits = {}
    for h in hosts:
        msg = ctx.recv(h, "left")
        if int(msg["n"]) != n:
            raise ValueError(f"party {h!r} answered for {msg['n']} rows, expected {n}")
        host_bits[h] = np.unpackbits(np.asarray(msg["bits"], dtype=np.uint8), axis=1,
                                     count=n).astype(bool)
    K = len(trees[0]) if trees else 1
    out = np.zeros((len(trees), n, K))
    for i, iteration in enumerate(trees):
        for k, tree in enumerate(iteration):
            def own(node, rows, tree=tree):
                x = X[rows, int(tree["feature"][node])]
                with np.errstate(invalid="ignore"):
                    return np.where(np.isnan(x), bool(tree["missing_left"][node]),
                                    x <= tree["threshold"][node])
            out[i, :, k] = _trees.tree_apply(tree, own, host_bits, n)
    return out


# -- one party per process ----------------------------------------------------------
#
# Before the protocol, every feature party sends the label party its row count
# and the public settings it was configured with; the label party refuses to
# start (ProtocolMismatch, which names only public values) if they disagree::
#
#     feature -> label   setup   {n_samples, params}   plain

PRIVATE_CONFIG_KEYS = ("n_jobs", "verbose", "n_samples")


def _public(cfg):
    from dataclasses import asdict

    from ..runtime.party import public_params

    return public_params({k: v for k, v in asdict(cfg).items()
                          if k not in PRIVATE_CONFIG_KEYS})


def feature_party(ctx, cfg, **kwargs):
    """A feature party of a deployment: announce the set-up, then run its role."""
    ctx.send(cfg.label_party, "setup_check", {"n_samples": int(cfg.n_samples),
                                              "params": _public(cfg)})
    return feature_fit(ctx, cfg=cfg, **kwargs)


def label_party(ctx, cfg, **kwargs):
    """The label party of a deployment: check every feature party's set-up first."""
    from ..runtime.party import ProtocolMismatch, check_agreement

    mine = _public(cfg)
    sizes = {cfg.label_party: int(cfg.n_samples)}
    for h in cfg.hosts:
        s = ctx.recv(h, "setup_check")
        check_agreement(mine, s.get("params") if isinstance(s, dict) else None,
                        me=ctx.party, them=h)
        sizes[h] = int(s["n_samples"])
    if len(set(sizes.values())) != 1:
        raise ProtocolMismatch(
            f"the parties hold different numbers of rows {sizes}; align the samples first "
            "(skfed.align_samples) and pass the aligned rows")
    return label_fit(ctx, cfg=cfg, **kwargs)
