"""Horizontal histogram boosting: fidelity to a centralised histogram GBDT,
secure aggregation, federated bin edges, privacy, scikit-learn citizenship."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import HorizontalTopology
from skfed.horizontal import _boosting_roles as roles
from skfed.horizontal import _fed_binning
from skfed.horizontal.boosting import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
)
from skfed.runtime import LocalRuntime
from skfed.trees import gbdt
from skfed.trees.binning import MISSING_BIN, bin_edges

from .gbdt_reference import reference_fit
from .threads import run_parties

Clf, Reg = FederatedHistGradientBoostingClassifier, FederatedHistGradientBoostingRegressor


def as_reference(est):
    """The fitted trees in the reference's format."""
    out = []
    for it in est.trees_:
        trees = []
        for t in it:
            nodes = []
            for v in range(len(t["left"])):
                if t["left"][v] < 0:
                    nodes.append(("leaf", float(t["value"][v])))
                else:
                    nodes.append(("split", int(t["feature"][v]), float(t["threshold"][v]),
                                  bool(t["missing_left"][v]), int(t["left"][v]),
                                  int(t["right"][v])))
            trees.append(nodes)
        out.append(trees)
    return out


def reference_for(est, X, y, task):
    n_classes = 0 if task == "regression" else len(est.classes_)
    yy = y.astype(float) if task == "regression" else np.unique(y, return_inverse=True)[1]
    trees, _ = reference_fit(
        X, yy, est.bin_edges_, task, n_classes, est.learning_rate, est.n_iter_,
        est.max_leaf_nodes, est.max_depth, est.min_samples_leaf, est.l2_regularization,
        baseline=est._baseline)
    return trees


# -- fidelity -----------------------------------------------------------------------

@st.composite
def problems(draw):
    n = draw(st.integers(12, 80))
    F = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    task = draw(st.sampled_from(["binary", "multiclass", "regression"]))
    X = rng.normal(size=(n, F)) * draw(st.sampled_from([1e-3, 1.0, 1e4]))
    # Few distinct values in some columns: ties, empty bins, duplicate partitions.
    for j in range(F):
        if draw(st.booleans()):
            X[:, j] = np.round(X[:, j] * 2 / np.abs(X[:, j]).max())
    if draw(st.booleans()):
        X[rng.random((n, F)) < 0.15] = np.nan
    if task == "regression":
        y = np.nan_to_num(X[:, 0]) * 2 + rng.normal(size=n)
    else:
        k = 2 if task == "binary" else 3
        y = rng.integers(0, k, size=n)
        y[:k] = np.arange(k)
    topo = HorizontalTopology(n_parties=draw(st.integers(2, 4)),
                              partition=draw(st.sampled_from(["iid", "dirichlet"])),
                              alpha=0.5, random_state=seed % 1000)
    params = dict(
        max_iter=draw(st.integers(1, 3)),
        max_depth=draw(st.sampled_from([None, 1, 2, 3])),
        max_leaf_nodes=draw(st.sampled_from([None, 2, 3, 5, 31])),
        min_samples_leaf=draw(st.integers(1, 5)),
        max_bins=draw(st.sampled_from([2, 3, 8, 255])),
        l2_regularization=draw(st.sampled_from([0.0, 0.5])),
        learning_rate=draw(st.sampled_from([0.1, 1.0])),
        secure_aggregation=draw(st.sampled_from([None, "masking"])),
    )
    return X, y, task, topo, params, draw(st.booleans())


def _fit_or_skip_split(cls, topo, params, X, y):
    try:
        topo.split(X, y)
    except ValueError:
        return None
    if any(len(idx) == 0 for _, idx in topo.split(X, y)):
        return None  # a Dirichlet draw left a client empty: refused, tested elsewhere
    return cls(topo, early_stopping=False, **params).fit(X, y)


@settings(max_examples=30, deadline=None)
@given(problems())
def test_trees_equal_the_centralised_reference(problem):
    X, y, task, topo, params, speculate = problem
    cls = Reg if task == "regression" else Clf
    # Expanding runners-up ahead of time changes the rounds, never the trees.
    roles._SPECULATE, before = speculate, roles._SPECULATE
    try:
        est = _fit_or_skip_split(cls, topo, params, X, y)
    finally:
        roles._SPECULATE = before
    if est is None:
        return
    assert as_reference(est) == reference_for(
        est, X, y, "regression" if task == "regression" else "classification")


def test_masked_model_equals_unprotected_model():
    X, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    X[::5, 1] = np.nan
    topo = HorizontalTopology(n_parties=4, partition="dirichlet", alpha=0.5, random_state=0)
    kw = dict(max_iter=5, early_stopping=False, random_state=0)
    masked = Clf(topo, **kw).fit(X, y)
    plain = Clf(topo, secure_aggregation=None, **kw).fit(X, y)
    assert as_reference(masked) == as_reference(plain)
    np.testing.assert_array_equal(masked._baseline, plain._baseline)
    for a, b in zip(masked.bin_edges_, plain.bin_edges_):
        np.testing.assert_array_equal(a, b)
    kinds = {m.tag: m.kind for m in masked.transcript_ if m.sender != "server"}
    assert kinds["hist"] == kinds["bins"] == kinds["setup"] == "masked"


def test_regression_masked_equals_unprotected():
    X, y = make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)
    y = y * 1e6  # large targets: fixed-point sums at the federation's exponent
    topo = HorizontalTopology(n_parties=3, random_state=0)
    kw = dict(max_iter=5, early_stopping=True, validation_fraction=0.2, random_state=0)
    masked = Reg(topo, **kw).fit(X, y)
    plain = Reg(topo, secure_aggregation=None, **kw).fit(X, y)
    assert as_reference(masked) == as_reference(plain)
    np.testing.assert_array_equal(masked._baseline, plain._baseline)
    assert abs(masked._baseline[0] - y.mean()) < 0.1 * y.std()  # training rows only
    # Loss sums are fixed point relative to the targets' scale.
    np.testing.assert_allclose(masked.validation_score_, plain.validation_score_, rtol=1e-6)


def test_the_model_does_not_depend_on_the_split():
    X, y = make_classification(n_samples=300, n_features=5, random_state=1)
    kw = dict(max_iter=4, early_stopping=False, secure_aggregation=None)
    a = Clf(HorizontalTopology(n_parties=2, random_state=0), **kw).fit(X, y)
    b = Clf(HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.3,
                               random_state=3), **kw).fit(X, y)
    assert as_reference(a) == as_reference(b)


# -- bin edges ------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_float_keys_preserve_order_and_invert(values):
    x = np.array(values)
    k = _fed_binning.float_keys(x)
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(k[order].astype(object)) >= 0)
    np.testing.assert_array_equal(_fed_binning.key_floats(k), x + 0.0)


def _federated_edges(X, max_bins, n_clients=3):
    parts = np.array_split(np.arange(X.shape[0]), n_clients)
    cols = [_fed_binning.ClientColumns(X[p]) for p in parts]
    srv = _fed_binning.BinningServer(sum(c.first_counts() for c in cols), X.shape[1], max_bins)
    rounds = 1
    while req := srv.request():
        srv.refine(sum(c.refine_counts(req) for c in cols))
        rounds += 1
    return srv.edges(), rounds


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([2, 5, 16, 255]),
       st.sampled_from([1e-300, 1e-3, 1.0, 1e200]))
def test_few_distinct_values_get_scikit_learns_edges(seed, max_bins, scale):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=max_bins) * scale
    X = rng.choice(values, size=(200, 2))
    X[rng.random(X.shape) < 0.1] = np.nan
    edges, rounds = _federated_edges(X, max_bins)
    for e, ref in zip(edges, bin_edges(X, max_bins)):
        np.testing.assert_array_equal(e, ref)
    assert rounds <= 8


def test_quantile_edges_are_within_grid_resolution():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=5000), rng.lognormal(size=5000) * 1e6,
                         rng.uniform(-1e-5, 1e-5, size=5000)])
    edges, rounds = _federated_edges(X, 255)
    assert rounds == 2
    for j, e in enumerate(edges):
        col = np.sort(X[:, j])
        assert 240 <= e.size <= 254 and np.all(np.diff(e) > 0)
        # Each edge is the top of the 2**-8-wide cell of its quantile's order
        # statistic: the share of values below it is the quantile's, within the
        # values of one cell.
        below = np.searchsorted(col, e, side="right") / col.size
        expected = np.searchsorted(col, e * (1 - np.sign(e) * 2.0**-7), side="right") / col.size
        assert np.all(below >= expected)
        ref = bin_edges(X[:, [j]], 255)[0]
        rel = np.abs(np.interp(np.linspace(0, 1, e.size), np.linspace(0, 1, ref.size), ref) - e)
        assert np.median(rel / np.abs(ref).max()) < 0.01


def test_best_splits_equal_candidate_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(30):
        F = rng.integers(1, 4)
        n_bins = rng.integers(1, 6, size=F)
        has_missing = rng.random(F) < 0.5
        counts = np.zeros((1, F, gbdt.N_BIN_SLOTS), dtype=np.int64)
        GH = np.zeros((1, 2, F, gbdt.N_BIN_SLOTS), dtype=np.int64)
        for f in range(F):
            slots = list(range(n_bins[f])) + ([MISSING_BIN] if has_missing[f] else [])
            counts[0, f, slots] = rng.integers(0, 4, size=len(slots))
            GH[0, 0, f, slots] = rng.integers(-2**20, 2**20, size=len(slots)) * counts[0, f, slots]
            GH[0, 1, f, slots] = rng.integers(1, 2**20, size=len(slots)) * counts[0, f, slots]
        # every column holds the same rows: make column 0's totals the node's
        G, H = int(GH[0, 0, 0].sum()), int(GH[0, 1, 0].sum())
        got = gbdt.best_splits(counts, GH, [G], [H], n_bins, has_missing, 1, 0.1, 0, -2)[0]
        feats, bins, lefts = gbdt.enumerate_candidates(counts[0], n_bins, has_missing, 1)
        if feats.size == 0:
            assert got is None
            continue
        cum = np.cumsum(GH[0][:, :, :gbdt.N_BIN_SLOTS - 1], axis=2)
        GL = cum[0, feats, bins] + np.where(lefts, GH[0, 0, feats, MISSING_BIN], 0)
        HL = cum[1, feats, bins] + np.where(lefts, GH[0, 1, feats, MISSING_BIN], 0)
        gains = gbdt.split_gains(gbdt.dequantise(GL, 0), gbdt.dequantise(HL, -2),
                                 gbdt.dequantise(G, 0), gbdt.dequantise(H, -2), 0.1)
        i = int(np.argmax(gains))
        if not np.isfinite(gains[i]):
            assert got is None
        else:
            assert got == (float(gains[i]), int(feats[i]), int(bins[i]), bool(lefts[i]))


# -- accuracy against scikit-learn -------------------------------------------------------

@pytest.mark.slow
def test_close_to_hist_gradient_boosting_on_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    fed = Clf(HorizontalTopology(n_parties=5, random_state=0), max_iter=50,
              random_state=0).fit(Xtr, ytr)
    ref = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(Xtr, ytr)
    assert abs(fed.score(Xte, yte) - ref.score(Xte, yte)) <= 0.02


def test_regression_close_to_hist_gradient_boosting():
    X, y = make_regression(n_samples=400, n_features=4, noise=10, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    fed = Reg(HorizontalTopology(n_parties=3, random_state=0), max_iter=30).fit(Xtr, ytr)
    ref = HistGradientBoostingRegressor(max_iter=30).fit(Xtr, ytr)
    assert abs(fed.score(Xte, yte) - ref.score(Xte, yte)) <= 0.01


# -- scikit-learn citizenship ------------------------------------------------------------

def test_pipeline_and_grid_search():
    X, y = make_classification(n_samples=240, n_features=5, random_state=0)
    pipe = make_pipeline(StandardScaler(), Clf(max_iter=5, min_samples_leaf=5,
                                              random_state=0))
    gs = GridSearchCV(pipe, {"federatedhistgradientboostingclassifier__max_depth": [1, 3]},
                      cv=2).fit(X, y)
    assert gs.best_score_ > 0.8


def test_staged_predict_and_early_stopping(capsys):
    X, y = make_classification(n_samples=400, n_features=5, random_state=0)
    est = Clf(HorizontalTopology(n_parties=3, random_state=0), max_iter=200,
              early_stopping=True, n_iter_no_change=3, random_state=0, verbose=1).fit(X, y)
    assert est.n_iter_ < 200
    assert len(est.validation_score_) == len(est.train_score_) == est.n_iter_ + 1
    stages = list(est.staged_predict_proba(X))
    assert len(stages) == est.n_iter_
    np.testing.assert_allclose(stages[-1], est.predict_proba(X))
    assert "iteration 1/200" in capsys.readouterr().out


def test_missing_values_at_prediction_follow_the_learnt_direction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] > 0).astype(int)
    X[y == 1, 1] = np.nan  # missingness alone predicts the class
    est = Clf(HorizontalTopology(n_parties=3, random_state=0), max_iter=3,
              early_stopping=False).fit(np.column_stack([np.zeros(300), X[:, 1]]), y)
    assert est.score(np.column_stack([np.zeros(300), X[:, 1]]), y) == 1.0


@pytest.mark.parametrize("make, match", [
    (lambda: (Clf(max_bins=300), None), "max_bins"),
    (lambda: (Clf(), np.zeros(50, dtype=int)), "at least 2 classes"),
    (lambda: (Clf(min_samples_leaf=30), None), "too few for min_samples_leaf"),
    (lambda: (Clf(HorizontalTopology(n_parties=1)), None), "at least two clients"),
    (lambda: (Clf(categorical_features=[0]), None), "categorical_features"),
])
def test_bad_input_fails_before_any_message(monkeypatch, make, match):
    def no_run(self, roles, transcript=None):
        raise AssertionError("a message was about to be sent")

    monkeypatch.setattr(LocalRuntime, "run", no_run)
    est, y = make()
    X = np.random.default_rng(0).normal(size=(50, 3))
    y = np.arange(50) % 2 if y is None else y
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_twin_and_rounds():
    X, y = make_classification(n_samples=300, n_features=5, random_state=0)
    est = Clf(max_iter=3, early_stopping=False).fit(X, y)
    assert isinstance(est.make_centralised_twin(), HistGradientBoostingClassifier)
    # All the trees of an iteration grow together, several nodes per round.
    assert est.n_rounds_["histograms"] < 3 * 30


def test_parties_name_the_clients():
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    parties = np.where(np.arange(200) < 80, "hospital_a", "hospital_b")
    est = Clf(max_iter=2, early_stopping=False).fit(X, y, parties=parties)
    senders = {m.sender for m in est.transcript_}
    assert senders == {"server", "hospital_a", "hospital_b"}
    same = Clf(HorizontalTopology(n_parties=4, random_state=0), max_iter=2,
               early_stopping=False).fit(X, y)
    assert as_reference(est) == as_reference(same)


def test_best_splits_in_chunks_equal_one_node_at_a_time(monkeypatch):
    rng = np.random.default_rng(1)
    n, F = 40, 3
    counts = rng.integers(0, 4, size=(n, F, gbdt.N_BIN_SLOTS))
    GH = np.stack([rng.integers(-2**20, 2**20, size=counts.shape),
                   rng.integers(1, 2**20, size=counts.shape)], axis=1) * counts[:, None]
    G, H = GH[:, 0, 0].sum(axis=1), GH[:, 1, 0].sum(axis=1)
    args = ([8, 255, 3], [True, False, True], 2, 0.0, 0, -2)
    monkeypatch.setattr(gbdt, "_CHUNK", 3 * gbdt.N_BIN_SLOTS * 7)
    batch = gbdt.best_splits(counts, GH, G, H, *args)
    single = [gbdt.best_splits(counts[i:i + 1], GH[i:i + 1], G[i:i + 1], H[i:i + 1], *args)[0]
              for i in range(n)]
    assert batch == single and any(b is not None for b in batch)


# -- one party per process ------------------------------------------------------------------

def test_parties_over_grpc_match_in_process(tmp_path):
    from skfed.runtime.certs import make_test_pki
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    names = ["server", "north", "south"]
    pki = make_test_pki(tmp_path, names)
    X, y = make_classification(n_samples=120, n_features=4, n_classes=3, n_informative=3,
                               n_redundant=0, random_state=0)
    X[::7, 2] = np.nan
    y = np.array(["a", "b", "c"])[y]
    topo = HorizontalTopology(n_parties=2, party_names=["north", "south"])
    params = dict(topology=topo, max_iter=3, min_samples_leaf=5, max_bins=16,
                  early_stopping=False, random_state=0)
    rows = {"north": np.arange(50), "south": np.arange(50, 120)}
    ref = Clf(**params).fit(X, y, parties=np.where(np.arange(120) < 50, "north", "south"))
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(3))}
    ests = {p: Clf(**params, runtime=GrpcRuntime(
        p, addresses, certfile=pki[p]["certfile"], keyfile=pki[p]["keyfile"],
        cafile=pki["cafile"], timeout=60)) for p in names}

    def party(p):
        ests[p].fit(None) if p == "server" else ests[p].fit(X[rows[p]], y[rows[p]])
        return ests[p].predict_proba(X)

    out, errors = run_parties(party, names, [e.runtime for e in ests.values()])
    assert not errors, errors
    for p in names:
        np.testing.assert_array_equal(out[p], ref.predict_proba(X))
        assert as_reference(ests[p]) == as_reference(ref)
        assert ests[p].classes_.tolist() == ["a", "b", "c"]


@pytest.mark.slow
def test_party_command_with_a_deployment_file(tmp_path):
    """``python -m skfed party``: a server and two clients, one process each."""
    from skfed.runtime.certs import make_test_pki
    from tests.test_grpc import _check_ok, _finish, _load, _spawn, _write_config, _write_csv

    names = ["server", "north", "south"]
    pki = make_test_pki(tmp_path, names)
    X, y = make_classification(n_samples=90, n_features=3, n_redundant=0, random_state=0)
    for p, rows in (("north", slice(0, 40)), ("south", slice(40, 90))):
        _write_csv(tmp_path / f"{p}.csv", ["a", "b", "c", "target"],
                   [X[rows, 0], X[rows, 1], X[rows, 2], y[rows]])
    params = {"max_iter": 3, "min_samples_leaf": 5, "early_stopping": False}
    config = _write_config(tmp_path / "federation.toml", "FederatedHistGradientBoostingClassifier",
                           params, {"target": "target"}, {"server": {}, "north": {}, "south": {}},
                           pki)
    procs = {p: _spawn(config, p, tmp_path, None if p == "server" else tmp_path / f"{p}.csv")
             for p in names}
    _check_ok(_finish(procs))
    ref = Clf(**params).fit(X, y, parties=np.where(np.arange(90) < 40, "north", "south"))
    for p in names:
        assert _load(tmp_path, p)["n_iter_"] == ref.n_iter_
