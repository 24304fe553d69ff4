"""Vertical SecureBoost: fidelity to a centralised histogram GBDT, encryption, privacy."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import (
    VerticalGradientBoostingClassifier,
    VerticalGradientBoostingRegressor,
    VerticalTopology,
)
from skfed.runtime import LocalRuntime
from skfed.trees.binning import bin_edges
from skfed.vertical import boosting

from . import leaks
from .gbdt_reference import reference_fit
from .threads import run_parties

KEY = 512


def federated_trees(est):
    """The fitted trees in the reference's format (global column indices)."""
    cols = est._columns
    guest = est.topology_.label_party
    out = []
    for it in est.trees_:
        trees = []
        for t in it:
            nodes = []
            for v in range(len(t["left"])):
                if t["left"][v] < 0:
                    nodes.append(("leaf", float(t["value"][v])))
                    continue
                owner = str(t["owner"][v])
                if owner == "":
                    f, thr, ml = int(t["feature"][v]), float(t["threshold"][v]), \
                        bool(t["missing_left"][v])
                    g = int(cols[guest][f])
                else:
                    f, thr, ml = est._records[owner][int(t["record"][v])]
                    g = int(cols[owner][f])
                nodes.append(("split", g, float(thr), bool(ml), int(t["left"][v]),
                              int(t["right"][v])))
            trees.append(nodes)
        out.append(trees)
    return out


def _reference_for(est, X, y, task, n_classes):
    """Run the reference on the pooled columns: the label party's first, then each
    feature party's (the order in which equal gains are decided)."""
    cols = est._columns
    topo = est.topology_
    order = np.concatenate([cols[p] for p in [topo.label_party, *topo.feature_parties]])
    edges_by_col = {}
    for c in cols.values():
        for j, e in zip(c, bin_edges(X[:, c], est.max_bins)):
            edges_by_col[int(j)] = e
    Xo = X[:, order]
    trees, base = reference_fit(
        Xo, y, [edges_by_col[int(j)] for j in order], task, n_classes, est.learning_rate,
        est.max_iter, est.max_leaf_nodes, est.max_depth, est.min_samples_leaf,
        est.l2_regularization)
    # Back to the original column indices.
    mapped = [[[(n[0], int(order[n[1]]), *n[2:]) if n[0] == "split" else n for n in t]
               for t in it] for it in trees]
    return mapped, base


def _same_trees(a, b):
    assert len(a) == len(b)
    for ia, ib in zip(a, b):
        for ta, tb in zip(ia, ib):
            assert ta == tb


# -- fidelity -------------------------------------------------------------------

@st.composite
def problems(draw):
    n = draw(st.integers(12, 60))
    F = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    task = draw(st.sampled_from(["binary", "multiclass", "regression"]))
    X = rng.normal(size=(n, F))
    # Few distinct values in some columns: ties, empty bins, duplicate partitions.
    for j in range(F):
        if draw(st.booleans()):
            X[:, j] = np.round(X[:, j] * 2)
    if draw(st.booleans()):
        X[rng.random((n, F)) < 0.15] = np.nan
        X[0] = np.where(np.isnan(X[0]), 0.0, X[0])  # no all-NaN column
    if task == "regression":
        y = np.nan_to_num(X[:, 0]) * 2 + rng.normal(size=n)
    else:
        k = 2 if task == "binary" else 3
        y = rng.integers(0, k, size=n)
        y[:k] = np.arange(k)
    n_parties = draw(st.integers(2, min(3, F)))
    owner = rng.permutation(np.arange(F) % n_parties)
    parties = {f"p{i}": np.flatnonzero(owner == i).tolist() for i in range(n_parties)}
    topo = VerticalTopology(parties, label_party=f"p{draw(st.integers(0, n_parties - 1))}")
    params = dict(
        max_iter=draw(st.integers(1, 3)),
        max_depth=draw(st.sampled_from([None, 1, 2, 3])),
        max_leaf_nodes=draw(st.sampled_from([None, 2, 3, 5, 31])),
        min_samples_leaf=draw(st.integers(1, 5)),
        max_bins=draw(st.sampled_from([2, 3, 8, 255])),
        l2_regularization=draw(st.sampled_from([0.0, 0.5])),
        learning_rate=draw(st.sampled_from([0.1, 1.0])),
    )
    return X, y, task, topo, params


@settings(max_examples=40, deadline=None)
@given(problems())
def test_plaintext_trees_equal_the_centralised_reference(problem):
    X, y, task, topo, params = problem
    cls = VerticalGradientBoostingRegressor if task == "regression" else \
        VerticalGradientBoostingClassifier
    est = cls(topo, encryption=None, early_stopping=False, **params).fit(X, y)
    n_classes = 0 if task == "regression" else len(np.unique(y))
    ref, base = _reference_for(est, X, y.astype(float) if task == "regression" else y, task
                               if task == "regression" else "classification", n_classes)
    np.testing.assert_array_equal(est._baseline, base)
    _same_trees(federated_trees(est), ref)


def _three_party_data(n=120, seed=0, classes=2, nan=True):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4,
                               n_classes=classes, random_state=seed)
    if nan:
        rng = np.random.default_rng(seed)
        X[rng.random(X.shape) < 0.1] = np.nan
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3], "telco": [4, 5]},
                            label_party="bank")
    return X, y, topo


@pytest.mark.parametrize("classes", [2, 3])
def test_encrypted_fit_equals_plaintext_fit(classes):
    X, y, topo = _three_party_data(classes=classes)
    params = dict(max_iter=3, max_depth=2, min_samples_leaf=5, max_bins=16,
                  early_stopping=False, key_size=KEY)
    plain = VerticalGradientBoostingClassifier(topo, encryption=None, **params).fit(X, y)
    enc = VerticalGradientBoostingClassifier(topo, **params).fit(X, y)
    _same_trees(federated_trees(enc), federated_trees(plain))
    np.testing.assert_allclose(enc.predict_proba(X), plain.predict_proba(X), rtol=0,
                               atol=1e-9)
    assert enc.transcript_.filter(tag="gh")[0].kind == "ciphertext"


def test_encrypted_regression_equals_plaintext():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:150], y[:150]
    topo = VerticalTopology({"guest": [0, 1, 2, 3, 4], "host": [5, 6, 7, 8, 9]},
                            label_party="guest")
    params = dict(max_iter=2, max_depth=2, max_bins=8, key_size=KEY)
    plain = VerticalGradientBoostingRegressor(topo, encryption=None, **params).fit(X, y)
    enc = VerticalGradientBoostingRegressor(topo, **params).fit(X, y)
    _same_trees(federated_trees(enc), federated_trees(plain))
    np.testing.assert_allclose(enc.predict(X), plain.predict(X), rtol=0, atol=1e-9)


def test_matches_sklearn_hist_gradient_boosting():
    """Same bins, same rule: the predictions of scikit-learn's own GBDT, up to
    the fixed-point resolution of the gradients."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_breast_cancer(return_X_y=True)
    est = VerticalGradientBoostingClassifier(max_iter=5, max_depth=3, encryption=None)
    twin = est.make_centralised_twin()
    assert isinstance(twin, HistGradientBoostingClassifier)
    est.fit(X, y)
    twin.fit(X, y)
    np.testing.assert_allclose(est.decision_function(X), twin.decision_function(X),
                               atol=1e-6)


# -- prediction -----------------------------------------------------------------

def test_prediction_is_one_round_per_feature_party(monkeypatch):
    X, y, topo = _three_party_data()
    est = VerticalGradientBoostingClassifier(topo, max_iter=3, max_depth=2, min_samples_leaf=5,
                                             encryption=None).fit(X, y)
    runs = []

    class Recording(LocalRuntime):
        def run(self, roles, transcript=None):
            results, t = super().run(roles, transcript)
            runs.append(t)
            return results, t

    monkeypatch.setattr(boosting, "_make_runtime", Recording)
    stages = list(est.staged_predict_proba(X))
    assert len(runs) == 1
    t = runs[0]
    assert sorted((m.sender, m.receiver, m.tag) for m in t) == [
        ("shop", "bank", "left"), ("telco", "bank", "left")]
    assert len(stages) == est.n_iter_
    np.testing.assert_allclose(stages[-1], est.predict_proba(X))


def test_missing_values_at_prediction_follow_the_learnt_direction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 1] > 0).astype(int)
    X[y == 1, 1] = np.where(rng.random((y == 1).sum()) < 0.3, np.nan, X[y == 1, 1])
    est = VerticalGradientBoostingClassifier(max_iter=5, max_depth=1, encryption=None).fit(X, y)
    probe = np.array([[0.0, np.nan]])
    assert est.predict(probe)[0] == 1


# -- privacy --------------------------------------------------------------------

def _recorded_fit(monkeypatch, est, X, y):
    monkeypatch.setattr(boosting, "_make_runtime", lambda: LocalRuntime(keep_payloads=True))
    return est.fit(X, y)


def test_every_message_has_its_true_kind(monkeypatch):
    X, y, topo = _three_party_data()
    est = _recorded_fit(monkeypatch, VerticalGradientBoostingClassifier(
        topo, max_iter=2, max_depth=2, min_samples_leaf=5, max_bins=8, key_size=KEY), X, y)
    kinds = {}
    for m in est.transcript_:
        kinds.setdefault(m.tag, set()).add(m.kind)
    assert kinds == {"public_key": {"public_key"}, "setup": {"plain"}, "cmd": {"plain"},
                     "gh": {"ciphertext"}, "candidates": {"ciphertext"},
                     "partition": {"plain"}}
    # What travels in the clear is structure: commands, node ids, candidate
    # ids and row partitions (booleans), never a float.
    for m in est.transcript_.filter(kind="plain"):
        _assert_no_floats(m.decoded(), m.tag)
    # Feature parties never send to each other, and nothing reaches the arbiter.
    assert {(m.sender, m.receiver) for m in est.transcript_} <= {
        ("bank", "shop"), ("bank", "telco"), ("shop", "bank"), ("telco", "bank")}


def _assert_no_floats(obj, tag):
    if isinstance(obj, dict):
        for v in obj.values():
            _assert_no_floats(v, tag)
    elif isinstance(obj, list):
        for v in obj:
            _assert_no_floats(v, tag)
    elif isinstance(obj, np.ndarray):
        assert obj.dtype.kind in "biu", f"{tag} carries a {obj.dtype} array"
    else:
        assert not isinstance(obj, float), f"{tag} carries a float"


def test_transcript_leaks_no_gradient_label_feature_or_leaf(monkeypatch):
    X, y, topo = _three_party_data(n=150, nan=False)
    est = _recorded_fit(monkeypatch, VerticalGradientBoostingClassifier(
        topo, max_iter=2, max_depth=2, min_samples_leaf=5, max_bins=8, key_size=KEY,
        early_stopping=False), X, y)
    # Reconstruct what the label party held at each iteration.
    raw = np.tile(est._baseline, (X.shape[0], 1))
    secrets = {"labels": y.astype(float)}
    for it, trees in enumerate(est.trees_):
        p = expit(raw[:, 0])
        secrets[f"g iteration {it}"] = p - y
        secrets[f"h iteration {it}"] = p * (1 - p)
        stage = est._raw_stages(X)[it]
        raw = raw + stage
        secrets[f"leaf values iteration {it}"] = np.asarray(trees[0]["value"])[
            np.asarray(trees[0]["left"]) < 0]
    for party, cols in est._columns.items():
        secrets[f"{party} features"] = X[:, cols]
    scales = sorted(set(leaks.DEFAULT_SCALES) | {26, 28})
    leaks.assert_no_leaks(est.transcript_, secrets, scales=scales)
    # Prediction sends split outcomes (booleans, disclosed by design), never
    # a feature value, a threshold or a leaf value.
    with leaks.record_transcripts() as t:
        est.predict_proba(X)
    assert len(t) == 2
    leaks.assert_no_leaks(t, secrets, scales=scales)


# -- scikit-learn citizenship and bad input -------------------------------------

def test_pipeline_gridsearch_cross_val():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[::3], y[::3]
    est = VerticalGradientBoostingClassifier(max_iter=5, max_depth=2, encryption=None)
    pipe = make_pipeline(StandardScaler(), est)
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.85
    grid = GridSearchCV(pipe, {"verticalgradientboostingclassifier__max_depth": [1, 2]},
                        cv=2).fit(X, y)
    assert grid.best_score_ > 0.85


def test_early_stopping_scores_and_verbose(capsys):
    X, y = make_classification(n_samples=300, random_state=0)
    est = VerticalGradientBoostingClassifier(max_iter=200, early_stopping=True,
                                             n_iter_no_change=3, encryption=None,
                                             random_state=0, verbose=1).fit(X, y)
    assert est.n_iter_ < 200
    assert est.train_score_.shape == est.validation_score_.shape == (est.n_iter_ + 1,)
    out = capsys.readouterr().out
    assert "[skfed] iteration 1/200" in out
    assert VerticalGradientBoostingClassifier(encryption=None, max_iter=3).fit(
        X, y).train_score_.size == 0


def test_early_stopping_matches_sklearn():
    """The validation split is HistGradientBoosting's (stratified, same seed) and
    each party bins only its training rows, as scikit-learn's binner does.

    Not bit for bit: in the first trees every row of a node has the same
    gradient per class, so partitions with the same class counts tie exactly;
    the exact sums here break such ties in the canonical order, scikit-learn's
    float sums by rounding noise.
    """
    X, y = make_classification(n_samples=400, random_state=1)
    kw = dict(max_iter=200, early_stopping=True, n_iter_no_change=2, random_state=2)
    est = VerticalGradientBoostingClassifier(encryption=None, **kw).fit(X, y)
    twin = est.make_centralised_twin().fit(X, y)
    assert abs(est.n_iter_ - twin.n_iter_) <= 2 and est.n_iter_ < 200
    n = min(est.n_iter_, twin.n_iter_) + 1
    assert est.validation_score_[0] == twin.validation_score_[0]
    np.testing.assert_allclose(est.validation_score_[:n], twin.validation_score_[:n],
                               atol=2e-3)


@pytest.mark.parametrize("make, match", [
    (lambda: (np.ones((40, 4)), np.zeros(40)), "only one class"),
    (lambda: (np.column_stack([np.ones(40), np.full(40, np.nan), np.ones((40, 2))]),
              np.arange(40) % 2), "only missing values"),
    (lambda: (np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 2),
     "too few for min_samples_leaf"),
])
def test_bad_input_fails_before_any_message(monkeypatch, make, match):
    def no_runtime():
        raise AssertionError("a message would have been sent")

    monkeypatch.setattr(boosting, "_make_runtime", no_runtime)
    X, y = make()
    with pytest.raises(ValueError, match=match):
        VerticalGradientBoostingClassifier(encryption=None).fit(X, y)


def test_bad_parameters():
    X, y = make_classification(n_samples=60, random_state=0)
    with pytest.raises(ValueError, match="max_bins"):
        VerticalGradientBoostingClassifier(max_bins=256).fit(X, y)
    with pytest.raises(ValueError, match="categorical"):
        VerticalGradientBoostingClassifier(categorical_features=[0]).fit(X, y)


# -- accuracy against scikit-learn (slow) -------------------------------------------

@pytest.mark.slow
def test_breast_cancer_auc_matches_hist_gradient_boosting():
    from sklearn.metrics import roc_auc_score

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    topo = VerticalTopology({"guest": list(range(10)), "host": list(range(10, 30))},
                            label_party="guest")
    est = VerticalGradientBoostingClassifier(topo, max_iter=10, max_depth=3, key_size=1024,
                                             random_state=0).fit(Xtr, ytr)
    twin = est.make_centralised_twin().fit(Xtr, ytr)
    auc = roc_auc_score(yte, est.predict_proba(Xte)[:, 1])
    assert abs(auc - roc_auc_score(yte, twin.predict_proba(Xte)[:, 1])) < 0.005


@pytest.mark.slow
def test_diabetes_r2_matches_hist_gradient_boosting():
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    est = VerticalGradientBoostingRegressor(max_iter=10, max_depth=3, key_size=1024,
                                            random_state=0).fit(Xtr, ytr)
    twin = est.make_centralised_twin().fit(Xtr, ytr)
    assert abs(est.score(Xte, yte) - twin.score(Xte, yte)) < 0.005


# -- one party per process (gRPC) ----------------------------------------------------

def test_parties_over_grpc_match_in_process(tmp_path):
    from skfed.runtime.certs import make_test_pki
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    pki = make_test_pki(tmp_path, ["bank", "shop"])
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    X[::7, 2] = np.nan
    y = np.where(y == 1, "yes", "no")
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    params = dict(topology=topo, max_iter=3, max_depth=2, min_samples_leaf=5, max_bins=16,
                  key_size=KEY, random_state=0)
    ref = VerticalGradientBoostingClassifier(**params).fit(X, y)
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(["bank", "shop"],
                                                            free_local_ports(2))}
    ests = {p: VerticalGradientBoostingClassifier(**params, runtime=GrpcRuntime(
        p, addresses, certfile=pki[p]["certfile"], keyfile=pki[p]["keyfile"],
        cafile=pki["cafile"], timeout=60)) for p in addresses}
    data = {"bank": (X[:, :2], y), "shop": (X[:, 2:], None)}
    new = np.random.RandomState(1).randn(9, 4)

    def party(p):
        ests[p].fit(*data[p])
        return ests[p].predict_proba(new[:, slice(0, 2) if p == "bank" else slice(2, 4)])

    out, errors = run_parties(party, list(ests), [e.runtime for e in ests.values()])
    assert not errors, errors
    np.testing.assert_allclose(out["bank"], ref.predict_proba(new), rtol=0, atol=1e-12)
    assert out["shop"] is None
    assert ests["shop"].n_iter_ == ref.n_iter_
    assert not hasattr(ests["shop"], "classes_")


def test_parties_with_different_row_counts_are_refused(tmp_path):
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(["bank", "shop"],
                                                            free_local_ports(2))}
    ests = {p: VerticalGradientBoostingClassifier(
        topo, max_iter=2, encryption=None, min_samples_leaf=5,
        runtime=GrpcRuntime(p, addresses, insecure=True, timeout=60)) for p in addresses}
    data = {"bank": (X[:, :2], y), "shop": (X[:70, 2:], None)}
    _, errors = run_parties(lambda p: ests[p].fit(*data[p]), list(ests),
                            [e.runtime for e in ests.values()])
    assert "different numbers of rows" in str(errors["bank"])
    assert "shop" in errors


def test_party_command_with_a_deployment_file(tmp_path):
    """``python -m skfed party``: alignment, then SecureBoost, one process per party."""
    from skfed import align_samples
    from skfed.runtime.certs import make_test_pki
    from tests.test_grpc import _check_ok, _finish, _load, _spawn, _write_config, _write_csv

    pki = make_test_pki(tmp_path, ["bank", "shop"])
    rng = np.random.RandomState(0)
    X, y = make_classification(n_samples=70, n_features=4, random_state=0)
    ids = rng.permutation(1000)[:70]
    bank_rows, shop_rows = rng.permutation(70)[:64], rng.permutation(70)[:66]
    _write_csv(tmp_path / "bank.csv", ["customer", "age", "income", "target"],
               [ids[bank_rows], X[bank_rows, 0], X[bank_rows, 1], y[bank_rows]])
    _write_csv(tmp_path / "shop.csv", ["visits", "customer", "spend"],
               [X[shop_rows, 2], ids[shop_rows], X[shop_rows, 3]])
    params = {"max_iter": 3, "max_depth": 2, "min_samples_leaf": 5, "key_size": KEY}
    config = _write_config(
        tmp_path / "federation.toml", "VerticalGradientBoostingClassifier", params,
        {"label_party": "bank", "target": "target", "id_column": "customer"},
        {"bank": {"columns": ["age", "income"]}, "shop": {"columns": ["visits", "spend"]}},
        pki)
    procs = {"shop": _spawn(config, "shop", tmp_path, tmp_path / "shop.csv"),
             "bank": _spawn(config, "bank", tmp_path, tmp_path / "bank.csv")}
    _check_ok(_finish(procs))
    idx = align_samples({"bank": ids[bank_rows], "shop": ids[shop_rows]})
    joint = np.hstack([X[bank_rows][idx["bank"], :2], X[shop_rows][idx["shop"], 2:]])
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    ref = VerticalGradientBoostingClassifier(topo, **params).fit(joint, y[bank_rows][idx["bank"]])
    bank, shop = _load(tmp_path, "bank"), _load(tmp_path, "shop")
    assert bank["n_iter_"] == shop["n_iter_"] == ref.n_iter_
    assert bank["classes_"] == ref.classes_.tolist() and "classes_" not in shop
    assert shop["bytes_sent"] > 0


def test_callbacks_see_every_iteration_and_can_stop_the_fit():
    pytest.importorskip("sklearn.callback")
    from tests.test_progress import Recorder

    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    rec = Recorder(stop_after=2)
    est = VerticalGradientBoostingClassifier(encryption=None, max_iter=10, min_samples_leaf=5)
    est.set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 2 and len(rec.ends) == 2
    assert rec.setup_called and rec.teardown_called


def test_many_classes_take_several_plaintexts_per_row():
    """Nine classes do not fit one 512-bit plaintext: two per row, same trees."""
    from skfed.vertical._boosting_roles import layout

    X, y = make_classification(n_samples=180, n_features=6, n_informative=4,
                               n_clusters_per_class=1, n_classes=9, random_state=0)
    assert layout(len(y), 9, KEY)[2] == 2
    params = dict(max_iter=1, max_depth=2, min_samples_leaf=5, max_bins=8,
                  early_stopping=False, key_size=KEY)
    plain = VerticalGradientBoostingClassifier(encryption=None, **params).fit(X, y)
    enc = VerticalGradientBoostingClassifier(**params).fit(X, y)
    _same_trees(federated_trees(enc), federated_trees(plain))
    ref, _ = _reference_for(plain, X, y, "classification", 9)
    _same_trees(federated_trees(plain), ref)


def test_validation_fraction_as_a_number_of_rows():
    X, y = make_classification(n_samples=200, random_state=0)
    est = VerticalGradientBoostingClassifier(encryption=None, max_iter=3, early_stopping=True,
                                             validation_fraction=40, random_state=0).fit(X, y)
    assert est.validation_score_.shape == (4,)
    with pytest.raises(ValueError, match="too few for min_samples_leaf"):
        VerticalGradientBoostingClassifier(encryption=None, early_stopping=True,
                                           validation_fraction=170).fit(X, y)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 150), st.lists(st.integers(1, 9), min_size=1, max_size=16),
       st.sampled_from([0.0, 0.7, 5.0]), st.integers(0, 2**32 - 1))
def test_joint_histograms_equal_separate_ones(m, n_groups, max_ratio, seed):
    # The host's joint-cell histograms must give the very same integers as one
    # group product per feature, whichever groupings get merged.
    import gmpy2

    from skfed.crypto import slotsum

    rng = np.random.default_rng(seed)
    nsq = gmpy2.mpz(2**127 - 1) ** 2
    cts = [gmpy2.mpz(int(v)) for v in rng.integers(1, 2**62, size=m)]
    base = rng.integers(0, 9, size=m)
    # Correlated columns (functions of one variable), so that merges happen.
    groups = np.stack([(base * (j + 1) + rng.integers(0, 2, size=m) * (j % 2)) % g
                       for j, g in enumerate(n_groups)], axis=1).reshape(m, len(n_groups))
    want = [slotsum.group_products(cts, groups[:, j], g, nsq) for j, g in enumerate(n_groups)]
    got = slotsum.multi_group_products(cts, groups, n_groups, nsq, max_ratio=max_ratio)
    assert got == want


def test_label_party_computes_randomisers_for_the_next_iteration_only(monkeypatch):
    # From each encryption on, the label party's pool refills for the next
    # iteration (randomisers do not depend on the gradients); before the last
    # encryption it stops, so none is computed for an iteration that never comes.
    from skfed.crypto.paillier import ObfuscatorPool
    from skfed.crypto.paillier.tables import _OwnerKeyContext
    from skfed.vertical import _boosting_roles

    events = []
    reserve, take = ObfuscatorPool.reserve, ObfuscatorPool.take

    def mine(pool):
        return isinstance(pool._ctx, _OwnerKeyContext)

    def record_reserve(self, count):
        if mine(self):
            events.append(("reserve", count))
        reserve(self, count)

    def record_take(self, count):
        if mine(self):
            events.append(("take", count))
        return take(self, count)

    def record_start(self):
        if mine(self):
            events.append(("start", self.target))

    monkeypatch.setattr(ObfuscatorPool, "reserve", record_reserve)
    monkeypatch.setattr(ObfuscatorPool, "take", record_take)
    monkeypatch.setattr(ObfuscatorPool, "start_refill", record_start)
    monkeypatch.setattr(_boosting_roles, "_start_workers", lambda n_jobs: None)
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    topo = VerticalTopology({"guest": [0, 1], "host": [2, 3]}, label_party="guest")
    VerticalGradientBoostingClassifier(topo, max_iter=3, max_depth=1, key_size=KEY, n_jobs=2,
                                       early_stopping=False).fit(X, y)
    n = 60
    assert events == [("reserve", n), ("start", n),
                      ("reserve", n), ("start", n), ("take", n),
                      ("reserve", n), ("start", n), ("take", n),
                      ("reserve", 0), ("take", n)]
