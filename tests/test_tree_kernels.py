"""The compiled kernels of histogram boosting against their numpy references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skfed.horizontal import _boosting_roles as roles
from skfed.trees import _kernels, gbdt
from skfed.trees.binning import MISSING_BIN


@st.composite
def node_sets(draw):
    """Several nodes' compact histograms built from rows, as a client would."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    F = draw(st.integers(1, 5))
    n_bins = np.array([draw(st.sampled_from([1, 2, 3, 7, 40, 255])) for _ in range(F)])
    has_missing = np.array([draw(st.booleans()) for _ in range(F)])
    n_nodes = draw(st.integers(1, 6))
    offsets, T = roles._layout(n_bins)
    hists = np.zeros((n_nodes, 3, T), dtype=np.int64)
    G, H = [], []
    # Tiny hessians put children below MIN_HESSIAN; few rows and few used bins
    # leave bins empty (repeated left counts) and trip min_samples_leaf.
    h_kind = draw(st.sampled_from(["tiny", "mixed", "large"]))
    g_exp = draw(st.integers(-3, 3))
    h_exp = draw(st.sampled_from([-2, 0]))
    for i in range(n_nodes):
        n = int(rng.integers(0, 60))
        used = [rng.choice(n_bins[f], size=min(n_bins[f], int(rng.integers(1, 5))),
                           replace=False) for f in range(F)]
        codes = np.stack([rng.choice(used[f], size=n) for f in range(F)], axis=1) \
            if n else np.zeros((0, F), dtype=np.int64)
        miss = (rng.random((n, F)) < rng.choice([0.0, 0.3, 1.0])) & has_missing[None, :]
        codes = np.where(miss, n_bins[None, :], codes) + offsets[None, :]
        g = rng.integers(-2**26, 2**26 + 1, size=n)
        if h_kind == "tiny":
            h = rng.integers(0, 2**8, size=n)
        elif h_kind == "mixed":
            h = rng.integers(0, 2**26, size=n) * (rng.random(n) < 0.5)
        else:
            h = rng.integers(2**20, 2**26, size=n)
        for f in range(F):
            hists[i, 0] += np.bincount(codes[:, f], weights=g, minlength=T).astype(np.int64)
            hists[i, 1] += np.bincount(codes[:, f], weights=h, minlength=T).astype(np.int64)
            hists[i, 2] += np.bincount(codes[:, f], minlength=T)
        G.append(int(g.sum()))
        H.append(int(h.sum()))
    msl = draw(st.integers(1, 6))
    l2 = draw(st.sampled_from([0.0, 1e-3, 0.5, 3.0]))
    return hists, offsets, n_bins, has_missing, G, H, msl, l2, g_exp, h_exp


def _bits(result):
    return [None if r is None else (float(r[0]).hex(),) + tuple(r[1:]) for r in result]


@settings(max_examples=200, deadline=None)
@given(node_sets())
def test_compiled_best_splits_equal_the_reference_to_the_bit(case):
    hists, offsets, n_bins, has_missing, G, H, msl, l2, g_exp, h_exp = case
    counts, GH = roles._Histograms(n_bins).padded(hists)
    with np.errstate(divide="ignore", invalid="ignore"):  # H == l2 == 0: never split in a fit
        expected = gbdt.best_splits(counts, GH, G, H, n_bins, has_missing, msl, l2, g_exp,
                                    h_exp)
    got = _kernels.best_splits_compact(hists, offsets, n_bins, has_missing, G, H, msl, l2,
                                       g_exp, h_exp)
    assert _bits(got) == _bits(expected)


def test_the_reference_cases_include_splits_and_no_splits():
    # Guards the strategy above: it must reach both outcomes and both directions.
    outcomes = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(node_sets())
    def collect(case):
        hists, offsets, n_bins, has_missing, G, H, msl, l2, g_exp, h_exp = case
        for r in _kernels.best_splits_compact(hists, offsets, n_bins, has_missing, G, H, msl,
                                              l2, g_exp, h_exp):
            outcomes.add("none" if r is None else "left" if r[3] else "right")

    collect()
    assert outcomes == {"none", "left", "right"}


def _numpy_histograms(local, offsets, train, rows_of, gq, hq, nodes, T):
    codes = local.astype(np.int64) + offsets  # slots in the compact layout
    out = np.zeros((len(nodes), 3, T), dtype=np.int64)
    for j, (k, v) in enumerate(nodes):
        rows = rows_of[k][v]
        rows = rows[train[rows]]
        idx = codes[rows].ravel()
        F = codes.shape[1]
        np.add.at(out[j, 0], idx, np.repeat(gq[rows, k], F))
        np.add.at(out[j, 1], idx, np.repeat(hq[rows, k], F))
        np.add.at(out[j, 2], idx, 1)
    return out


def _histograms_case(n_rows, seed):
    rng = np.random.default_rng(seed)
    n_bins = np.array([5, 17, 3, 255])
    offsets, T = roles._layout(n_bins)
    # Each column's slot: its bin, or n_bins (the missing slot).
    local = np.asfortranarray(np.stack([rng.integers(0, b + 1, size=n_rows) for b in n_bins],
                                       axis=1).astype(np.uint8))
    train = rng.random(n_rows) < 0.8
    rows_of = [{0: np.arange(n_rows), 1: np.sort(rng.choice(n_rows, n_rows // 3,
                                                            replace=False))},
               {0: np.arange(n_rows), 4: np.arange(0, n_rows, 2)}]
    gq = rng.integers(-2**26, 2**26, size=(n_rows, 2))
    hq = rng.integers(0, 2**26, size=(n_rows, 2))
    nodes = [(0, 0), (0, 1), (1, 4)]
    return local, offsets, train, rows_of, gq, hq, nodes, T


def _kernel_histograms(local, offsets, train, rows_of, gq, hq, nodes, T, words, pack):
    rows = [rows_of[k][v] for k, v in nodes]
    starts = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    out = np.zeros((len(nodes), words, T), dtype=np.int64)
    return _kernels.node_histograms(local, offsets, train, np.concatenate(rows), starts,
                                    np.array([k for k, _ in nodes], dtype=np.int64), gq, hq,
                                    words, pack, out)


def test_node_histograms_equal_numpy_sums():
    case = _histograms_case(3000, 0)
    expected = _numpy_histograms(*case)
    assert expected[:, 2].sum() > 0
    np.testing.assert_array_equal(_kernel_histograms(*case, 3, 0), expected)


def test_node_histograms_write_the_packed_upload():
    """Packed per row (g + 2**k, h) is the packed sum: the server unpacks the
    same integers as from three words."""
    case = _histograms_case(3000, 1)
    expected = _numpy_histograms(*case)
    k = roles.pack_bits(3000)
    assert k
    packed = _kernel_histograms(*case, 2, k)
    np.testing.assert_array_equal(packed, roles._pack(expected, k))
    np.testing.assert_array_equal(roles._unpack(packed, k), expected)
    np.testing.assert_array_equal(
        _kernels.unpack_histograms(packed, k, 2, gbdt.PRECISION_BITS), expected)
    # Constant hessians (squared error): one word, the hessian rebuilt from the count.
    local, offsets, train, rows_of, gq, hq, nodes, T = case
    hq = np.full_like(hq, 1 << gbdt.PRECISION_BITS)
    expected = _numpy_histograms(local, offsets, train, rows_of, gq, hq, nodes, T)
    one = _kernel_histograms(local, offsets, train, rows_of, gq, hq, nodes, T, 1, k)
    np.testing.assert_array_equal(roles._unpack(one, k, constant_hessian=True), expected)
    np.testing.assert_array_equal(
        _kernels.unpack_histograms(one, k, 1, gbdt.PRECISION_BITS), expected)


def test_client_histograms_from_binned_rows():
    """The client's object: MISSING_BIN becomes each column's missing slot."""
    rng = np.random.default_rng(3)
    n_bins = np.array([4, 255, 2])
    offsets, T = roles._layout(n_bins)
    Xb = np.stack([rng.integers(0, b, size=200) for b in n_bins], axis=1).astype(np.uint8)
    Xb[rng.random(Xb.shape) < 0.2] = MISSING_BIN
    train = rng.random(200) < 0.9
    hists = roles._ClientHistograms(Xb, n_bins, offsets, T, train, 0, "classification")
    gq = rng.integers(-2**26, 2**26, size=(200, 1))
    hq = rng.integers(0, 2**26, size=(200, 1))
    rows_of = [{0: np.arange(200)}]
    local = np.where(Xb == MISSING_BIN, n_bins, Xb)
    np.testing.assert_array_equal(
        hists.histograms(rows_of, gq, hq, [(0, 0)]),
        _numpy_histograms(local, offsets, train, rows_of, gq, hq, [(0, 0)], T))
    for f in range(3):
        for ml in (False, True):
            left, right = hists.partition(np.arange(200), f, 0, ml)
            go = gbdt.left_mask(Xb[:, f], 0, ml)
            np.testing.assert_array_equal(left, np.flatnonzero(go))
            np.testing.assert_array_equal(right, np.flatnonzero(~go))


def test_partition_equals_left_mask():
    rng = np.random.default_rng(2)
    column = rng.integers(0, 6, size=500).astype(np.uint8)
    column[rng.random(500) < 0.2] = MISSING_BIN
    rows = np.sort(rng.choice(500, 300, replace=False))
    for b in range(6):
        for ml in (False, True):
            go = gbdt.left_mask(column[rows], b, ml)
            left, right = _kernels.partition(rows, column, b, ml, MISSING_BIN)
            np.testing.assert_array_equal(left, rows[go])
            np.testing.assert_array_equal(right, rows[~go])


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    """numba refuses cache=True where no cache directory is writable (a read-only
    install, no home): the kernels then compile without the cache."""
    from numba.core import caching

    def twice(x):
        return 2 * x

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    with pytest.raises(RuntimeError, match="no locator"):
        from numba import njit

        njit(cache=True)(twice)
    assert _kernels._jit(twice)(21) == 42


def test_gradients_and_losses_together_equal_apart():
    rng = np.random.default_rng(4)
    n = 500
    for task, k in (("classification", 3), ("classification", 2), ("regression", 0)):
        y = rng.integers(0, k, size=n) if k else rng.normal(size=n)
        loss = gbdt.loss_for(task, y, k)
        raw = rng.normal(size=(n, loss.n_outputs)) * 3
        raw[:20] = raw[:1]  # repeated rows, ties within rows
        rows = [np.sort(rng.choice(n, 300, replace=False)), np.arange(0), np.arange(n)]
        (g, h), losses = loss.gradients_and_losses(raw, rows)
        g0, h0 = loss.gradients(raw)
        assert np.array_equal(g.view(np.int64), g0.view(np.int64))
        assert np.array_equal(h.view(np.int64), h0.view(np.int64))
        assert losses[1] is None
        for r, got in zip(rows, losses):
            if len(r):
                assert float(got).hex() == float(loss.loss(raw, r)).hex()
