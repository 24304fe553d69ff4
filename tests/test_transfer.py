"""FederatedTransferClassifier: objective, protocol fidelity, privacy, errors."""

import threading
from functools import partial

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import FederatedTransferClassifier, VerticalTopology, compare_with_centralised
from skfed.compare import centralised_twin
from skfed.runtime import LocalRuntime
from skfed.runtime.local import RoleError
from skfed.transfer import OverlapBaseline, roles
from skfed.transfer import estimator as ftl_estimator
from skfed.transfer.networks import DenseNet, flatten_blocks

KEY = 512
TOPO = VerticalTopology({"bank": [0, 1, 2], "shop": [3, 4, 5]}, label_party="bank")


def _data(n=90, n_classes=2, seed=0):
    """Rows 0..n/3: source only; n/3..2n/3: overlap; rest: target only (unlabelled)."""
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4,
                               n_classes=n_classes, random_state=seed)
    third = n // 3
    X[:third, 3:] = np.nan
    X[2 * third:, :3] = np.nan
    y_fit = y.copy()
    y_fit[2 * third:] = -1
    return X, y, y_fit, 2 * third


# -- the objective ----------------------------------------------------------------
@pytest.mark.parametrize("source_weight", [0.0, 2.0])
@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_objective_gradients_match_finite_differences(K, activation, source_weight):
    rng = np.random.RandomState(0)
    net_a = DenseNet([3, 4, 5], activation, rng)
    net_b = DenseNet([2, 3, 5], activation, rng)
    XA, XB = rng.randn(12, 3), rng.randn(9, 2)
    labelled = np.array([0, 1, 2, 3, 5, 7, 8])
    Y = np.where(rng.rand(len(labelled), K) > 0.5, 1.0, -1.0)
    overlap_a, overlap_b = np.array([5, 6, 7, 8]), np.array([0, 2, 3, 4])
    w = np.array([1.0, 0.0, 1.0, 1.0])
    args = (XA, XB, labelled, Y, overlap_a, overlap_b, w, 0.7, 0.01, source_weight)
    _, grad_a, grad_b = roles.objective(net_a, net_b, *args)
    for net, grad in ((net_a, grad_a), (net_b, grad_b)):
        theta = net.get_flat()
        num = np.empty_like(theta)
        for j in range(len(theta)):
            vals = []
            for step in (1e-6, -1e-6):
                t = theta.copy()
                t[j] += step
                net.set_flat(t)
                vals.append(roles.objective(net_a, net_b, *args)[0])
            num[j] = (vals[0] - vals[1]) / 2e-6
        net.set_flat(theta)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)


def _cfg(**kw):
    cfg = {"source_name": "A", "target_name": "B", "hidden_layer_sizes": [4],
           "activation": "tanh", "representation_dim": 3, "gamma": 0.5, "alpha": 0.01,
           "solver": "sgd", "learning_rate_init": 0.1, "momentum": 0.0, "max_iter": 1,
           "tol": 0.0, "n_iter_no_change": 10, "batch_size": None, "batch_seed": 0,
           "encryption": None, "key_size": KEY,
           "n_jobs": None, "verbose": 0}
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("hidden, train_hidden", [([2], True), ([], True), ([3], False)],
                         ids=["hidden", "linear", "random-features"])
@pytest.mark.parametrize("encryption, source_weight",
                         [(None, 0.0), ("paillier", 0.0), (None, 1.5), ("paillier", 1.5)])
def test_one_protocol_step_is_one_gradient_step_on_the_objective(encryption, source_weight,
                                                                 hidden, train_hidden):
    """Both protocols: unpacked ciphertexts through trained hidden layers, and
    cross moments for representations linear in what is trained (no hidden
    layer, or fixed random hidden layers: their parameters do not move)."""
    rng = np.random.RandomState(3)
    XA, XB = rng.randn(14, 3), rng.randn(12, 2)
    labelled = np.array([0, 2, 3, 4, 6, 8, 9, 11, 13])
    Y = np.where(rng.rand(len(labelled), 1) > 0.5, 1.0, -1.0)
    overlap_a = np.array([2, 3, 5, 6, 7, 8, 9, 10, 12])
    overlap_b = np.array([1, 2, 4, 5, 6, 7, 9, 10, 11])
    w = np.isin(overlap_a, labelled).astype(float)
    # Networks small enough for 9 overlap rows (roles.check_batches).
    cfg = _cfg(encryption=encryption, hidden_layer_sizes=hidden, train_hidden=train_hidden,
               source_weight=source_weight)
    results, _ = LocalRuntime().run({
        "A": partial(roles.source, X=XA, labelled=labelled, Y=Y, overlap=overlap_a,
                     cfg={**cfg, "network_seed": 1}),
        "B": partial(roles.target, X=XB, overlap=overlap_b,
                     cfg={**cfg, "network_seed": 2}),
    })
    net_a = roles._net(3, cfg, 1)
    net_b = roles._net(2, cfg, 2)
    loss, grad_a, grad_b = roles.objective(net_a, net_b, XA, XB, labelled, Y, overlap_a,
                                           overlap_b, w, cfg["gamma"], cfg["alpha"],
                                           source_weight)
    after_a = roles._net(3, cfg, 0)
    after_a.coefs, after_a.intercepts = results["A"]["coefs"], results["A"]["intercepts"]
    after_b = roles._net(2, cfg, 0)
    after_b.coefs, after_b.intercepts = results["B"]["coefs"], results["B"]["intercepts"]
    lr = cfg["learning_rate_init"]
    mask_a, mask_b = roles._trained_mask(net_a, cfg), roles._trained_mask(net_b, cfg)
    assert mask_a.all() == train_hidden and mask_a[-4:].all()
    np.testing.assert_allclose(after_a.get_flat(), net_a.get_flat() - lr * mask_a * grad_a,
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(after_b.get_flat(), net_b.get_flat() - lr * mask_b * grad_b,
                               rtol=0, atol=1e-8)
    assert results["A"]["loss_curve"][0] == pytest.approx(loss, abs=1e-8)


# -- fidelity of the encrypted protocol ------------------------------------------------
@pytest.mark.parametrize("hidden, train_hidden", [((4,), True), ((), True), ((6,), False)],
                         ids=["hidden", "linear", "random-features"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_encrypted_equals_unencrypted(n_classes, hidden, train_hidden):
    X, y, y_fit, cut = _data(n_classes=n_classes)
    # Two batches of 15 overlap rows: small networks (roles.check_batches).
    kw = dict(max_iter=3, key_size=KEY, random_state=0, batch_size=15,
              hidden_layer_sizes=hidden, representation_dim=4,
              train_hidden_layers=train_hidden)
    plain = FederatedTransferClassifier(TOPO, encryption=None, **kw).fit(X, y_fit)
    enc = FederatedTransferClassifier(TOPO, **kw).fit(X, y_fit)
    np.testing.assert_allclose(enc.loss_curve_, plain.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(enc.decision_function(X[cut:]),
                               plain.decision_function(X[cut:]), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(enc.predict(X[cut:]), plain.predict(X[cut:]))
    # The same messages from each party, in the same order (threads interleave).
    for party in ("bank", "shop"):
        tags = [m.tag for m in plain.transcript_.filter(sender=party)]
        assert tags == [m.tag for m in enc.transcript_.filter(sender=party)
                        if m.kind != "public_key"]


@pytest.mark.parametrize("hidden, train_hidden", [((4,), True), ((6,), False)],
                         ids=["hidden", "random-features"])
def test_source_own_loss_sends_nothing_new(hidden, train_hidden):
    """The source's own classification term is A's plaintext: with or without
    it the same messages, of the same sizes, cross; only the models differ."""
    X, y, y_fit, cut = _data()
    # In the clear the sizes are exact (the encrypted mode sends the same
    # messages: test_encrypted_equals_unencrypted).
    kw = dict(max_iter=3, encryption=None, random_state=0, batch_size=15,
              hidden_layer_sizes=hidden, representation_dim=4,
              train_hidden_layers=train_hidden)
    fits = [FederatedTransferClassifier(TOPO, source_weight=sw, **kw).fit(X, y_fit)
            for sw in (0.0, 3.0)]
    layouts = [[(m.sender, m.tag, m.kind, m.nbytes) for m in f.transcript_] for f in fits]
    assert sorted(layouts[0]) == sorted(layouts[1])
    assert not np.allclose(fits[0].source_model_["phi"], fits[1].source_model_["phi"])


def test_random_features_keep_the_hidden_layer_and_run_the_fast_protocol():
    X, y, y_fit, cut = _data(n=150)
    kw = dict(hidden_layer_sizes=(8,), representation_dim=4, key_size=KEY, random_state=0)
    one = FederatedTransferClassifier(TOPO, train_hidden_layers=False, max_iter=1, **kw)
    three = FederatedTransferClassifier(TOPO, train_hidden_layers=False, max_iter=3, **kw)
    trained = FederatedTransferClassifier(TOPO, train_hidden_layers=True, max_iter=3,
                                          **kw).fit(X, y_fit)
    one.fit(X, y_fit)
    three.fit(X, y_fit)
    for side in ("source_model_", "target_model_"):
        a, b, t = (getattr(e, side) for e in (one, three, trained))
        np.testing.assert_array_equal(a["coefs"][0], b["coefs"][0])     # fixed
        np.testing.assert_array_equal(a["intercepts"][0], b["intercepts"][0])
        assert not np.allclose(a["coefs"][1], b["coefs"][1])            # trained
        assert not np.allclose(a["coefs"][0], t["coefs"][0])            # other init
    tags = {m.tag for m in three.transcript_}
    assert {"features", "d", "grad_target"} <= tags                  # cross moments
    assert "features" not in {m.tag for m in trained.transcript_}
    assert three.transcript_.total_bytes() < trained.transcript_.total_bytes() / 2.5


def test_linear_protocol_with_an_unlabelled_batch():
    """A batch without labelled rows takes the protocol's other loss branch."""
    X, y, y_fit, cut = _data(n=150)
    y_fit[53:cut] = -1                          # 3 labelled overlap rows: one batch
    kw = dict(max_iter=2, key_size=KEY, random_state=0, batch_size=25,
              hidden_layer_sizes=(), representation_dim=4)
    plain = FederatedTransferClassifier(TOPO, encryption=None, **kw).fit(X, y_fit)
    enc = FederatedTransferClassifier(TOPO, **kw).fit(X, y_fit)
    w = np.isin(np.arange(50, 100), np.arange(50, 53))
    batches = roles._batches(w, 25, 1, 4, 0)
    assert sorted(int(w[b].sum()) for b in batches) == [0, 3]
    np.testing.assert_allclose(enc.loss_curve_, plain.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(enc.decision_function(X[cut:]),
                               plain.decision_function(X[cut:]), rtol=1e-6, atol=1e-8)


def test_learns_something_and_api():
    X, y, y_fit, cut = _data(n=150)
    clf = FederatedTransferClassifier(TOPO, encryption=None, random_state=0,
                                      max_iter=200).fit(X, y_fit)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X[cut:], y[cut:]) > 0.6
    proba = clf.predict_proba(X[cut:])
    assert proba.shape == (len(X) - cut, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(X[cut:])) <= set(clf.classes_)


def test_multiclass_string_labels_and_dataframe():
    pd = pytest.importorskip("pandas")
    X, y, y_fit, cut = _data(n=120, n_classes=3)
    # String labels have no "-1": labels on rows the source does not hold
    # (here the target-only rows) are simply not used by fit.
    names = np.array(["red", "green", "blue"])
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    topo = VerticalTopology({"bank": ["f0", "f1", "f2"], "shop": ["f3", "f4", "f5"]},
                            label_party="bank")
    clf = FederatedTransferClassifier(topo, encryption=None, random_state=0, max_iter=20)
    clf.fit(df, names[y])
    assert sorted(clf.classes_) == sorted(names)
    assert clf.source_model_["phi"].shape == (3, clf.representation_dim)
    proba = clf.predict_proba(df.iloc[cut:])
    assert proba.shape == (len(df) - cut, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(df.iloc[cut:])) <= set(names)


def test_pipeline_gridsearch_and_compare():
    X, y, y_fit, cut = _data(n=90)
    pipe = make_pipeline(StandardScaler(), FederatedTransferClassifier(
        TOPO, encryption=None, max_iter=5, random_state=0))
    # Fit on everything but score only on target rows: a custom split.
    cv = [(np.r_[0:cut, cut + 10:len(X)], np.arange(cut, cut + 10)),
          (np.r_[0:cut + 10, cut + 20:len(X)], np.arange(cut + 10, cut + 20))]
    y_cv = y.copy()
    y_cv[:cut] = y_fit[:cut]
    grid = [0.1, 1.0]
    gs = GridSearchCV(pipe, {"federatedtransferclassifier__gamma": grid}, cv=cv)
    gs.fit(X, y_cv)
    # each candidate's score is what fitting it on each split gives, and the
    # search keeps the better one (the first on a tie, as scikit-learn does)
    manual, decisions = [], []
    for gamma in grid:
        scores = []
        for train, test in cv:
            est = clone(pipe).set_params(federatedtransferclassifier__gamma=gamma)
            est.fit(X[train], y_cv[train])
            scores.append(est.score(X[test], y_cv[test]))
        manual.append(np.mean(scores))
        decisions.append(est.decision_function(X[cut:]))
    assert not np.allclose(decisions[0], decisions[1])  # gamma changes the model
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"], manual, rtol=0, atol=1e-12)
    assert gs.best_params_["federatedtransferclassifier__gamma"] == grid[int(np.argmax(manual))]
    res = compare_with_centralised(pipe, X, y_cv, cv=cv, scoring="roc_auc")
    for label, proto in (("federated", pipe), ("centralised", centralised_twin(pipe))):
        expected = [roc_auc_score(y_cv[test], clone(proto).fit(X[train], y_cv[train])
                                  .decision_function(X[test])) for train, test in cv]
        np.testing.assert_allclose(res[label]["test_score"], expected, rtol=0, atol=1e-12)
    assert (res["federated"]["bytes_exchanged"] > 0).all()
    assert res["score_gap"] == pytest.approx(
        res["federated"]["test_score"].mean() - res["centralised"]["test_score"].mean())


def test_centralised_twins():
    X, y, y_fit, cut = _data()
    clf = FederatedTransferClassifier(TOPO)
    twin = clf.make_centralised_twin()
    assert isinstance(twin, OverlapBaseline) and twin.features == "target"
    twin.fit(X, y_fit)
    assert twin.estimator_.coef_.shape == (1, 3)
    joined = clf.make_centralised_twin("joined").fit(X, y_fit)
    assert joined.estimator_.coef_.shape == (1, 6)
    with pytest.raises(ValueError, match="reference"):
        clf.make_centralised_twin("other")


# -- privacy --------------------------------------------------------------------------
def _raw_chunks(a):
    """Byte patterns of every float of ``a`` (as the wire format would carry them)."""
    a = np.asarray(a, dtype="<f8")
    return [v.tobytes() for v in a.ravel() if np.isfinite(v) and v != 0]


@pytest.mark.parametrize("hidden", [(16,), ()], ids=["hidden", "linear"])
def test_transcript_carries_nothing_private(monkeypatch, hidden):
    monkeypatch.setattr(ftl_estimator, "_make_runtime",
                        lambda: LocalRuntime(keep_payloads=True))
    X, y, y_fit, cut = _data(n=90)
    clf = FederatedTransferClassifier(TOPO, max_iter=2, key_size=KEY, random_state=0,
                                      hidden_layer_sizes=hidden, train_hidden_layers=True)
    clf.fit(X, y_fit)
    scores, predict_transcript = clf._collaborative_scores(X[cut:, 3:])
    np.testing.assert_allclose(scores[:, 0], clf.decision_function(X[cut:]), atol=1e-8)
    private = (_raw_chunks(X[~np.isnan(X)]) + _raw_chunks(clf.source_model_["phi"])
               + _raw_chunks(clf.source_model_["coefs"][0])
               + _raw_chunks(clf.target_model_["coefs"][0]))
    public = {"labelled_overlap", "continue", "n_params"} | ({"n_outputs"} if not hidden
                                                              else set())
    for transcript in (clf.transcript_, predict_transcript):
        assert len(transcript) > 0
        for m in transcript:
            if m.kind == "plain":
                # Public by protocol: which overlap rows are labelled, the stop
                # flag, each network's number of parameters (and the number of
                # outputs, which [[Phi]]'s shape shows anyway).
                assert m.tag in public, m
                value = np.asarray(m.decoded())
                assert value.dtype == (bool if m.tag in {"labelled_overlap", "continue"}
                                       else int)
            elif m.kind == "masked":
                assert np.asarray(m.decoded()).dtype == object  # masked big integers
            elif m.kind == "ciphertext":
                obj = m.decoded()
                if obj.get("kind") == "packed-rows":        # several values per ciphertext
                    obj = obj["ciphertexts"]
                assert obj["scheme"] == "paillier"
            for chunk in private:
                assert chunk not in m.payload
    # The labels themselves (as +-1 floats, or the classes) never travel in plain.
    plain_tags = {m.tag for m in clf.transcript_ if m.kind == "plain"}
    assert plain_tags == public


@pytest.mark.parametrize("hidden", [(3,), ()], ids=["hidden", "linear"])
def test_values_derived_from_the_peers_ciphertexts_are_rerandomised(monkeypatch, hidden):
    """What a party computes from the other's ciphertexts (products with its own
    plaintexts) goes back to the key owner, who could otherwise search for those
    plaintexts: every such ciphertext must come out of a fresh obfuscation."""
    from skfed.crypto.paillier import EncryptedArray

    fresh = set()
    real = EncryptedArray.obfuscate

    def spy(self, *args, **kw):
        out = real(self, *args, **kw)
        blob = out.to_wire()["ciphertexts"]
        fresh.update(blob[i:i + 128] for i in range(0, len(blob), 128))
        return out

    monkeypatch.setattr(EncryptedArray, "obfuscate", spy)
    monkeypatch.setattr(ftl_estimator, "_make_runtime",
                        lambda: LocalRuntime(keep_payloads=True))
    X, y, y_fit, cut = _data(n=90)
    clf = FederatedTransferClassifier(TOPO, max_iter=1, key_size=KEY, random_state=0,
                                      hidden_layer_sizes=hidden, representation_dim=2)
    clf.fit(X, y_fit)
    derived = {"grad_target", "g_phi", "loss_target", "d", "z"}
    checked = 0
    for m in clf.transcript_:
        if m.tag not in derived:
            continue
        obj = m.decoded()
        blob = obj["ciphertexts"]["ciphertexts"] if obj.get("kind") == "packed-rows" \
            else obj["ciphertexts"]
        # 512-bit keys: 128-byte ciphertexts
        for i in range(0, len(blob), 128):
            assert blob[i:i + 128] in fresh, f"{m.tag!r} sent without re-randomising"
            checked += 1
    assert checked > 0


def test_unencrypted_mode_marks_everything_plain(monkeypatch):
    X, y, y_fit, cut = _data(n=90)
    clf = FederatedTransferClassifier(TOPO, encryption=None, max_iter=1).fit(X, y_fit)
    assert {m.kind for m in clf.transcript_} == {"plain"}


# -- bad input ------------------------------------------------------------------------
def _fails(X, y, match, topology=TOPO):
    with pytest.raises(ValueError, match=match):
        FederatedTransferClassifier(topology, encryption=None).fit(X, y)


def test_bad_input():
    X, y, y_fit, cut = _data()
    three = VerticalTopology({"a": [0, 1], "b": [2, 3], "c": [4, 5]}, label_party="a")
    _fails(X, y_fit, "exactly two parties", three)
    no_overlap = X.copy()
    no_overlap[30:60, 3:] = np.nan
    _fails(no_overlap, y_fit, "no overlap rows")
    _fails(X, np.full(len(y), -1), "no labelled rows")
    only_target = np.full(len(y), -1)
    only_target[cut:] = y[cut:]
    _fails(X, only_target, "only on rows the target")
    partial_nan = X.copy()
    partial_nan[0, 1] = np.nan
    _fails(partial_nan, y_fit, "NaN inside its present columns")
    neither = X.copy()
    neither[0, :] = np.nan
    _fails(neither, y_fit, "neither party")
    one_class = y_fit.copy()
    one_class[one_class != -1] = 1
    _fails(X, one_class, "1 class")
    clf = FederatedTransferClassifier(TOPO, encryption=None, max_iter=1).fit(X, y_fit)
    with pytest.raises(ValueError, match="target 'shop'"):
        clf.predict(X[:5])
    with pytest.raises(ValueError, match="insecure"):
        import os
        os.environ.pop("SKFED_ALLOW_INSECURE_KEYS", None)
        try:
            FederatedTransferClassifier(TOPO, key_size=512).fit(X, y_fit)
        finally:
            os.environ["SKFED_ALLOW_INSECURE_KEYS"] = "1"


def test_unscaled_features_are_refused_for_linear_representations():
    X, y, y_fit, cut = _data(n=90)
    X[40, 4] = 3e6                                   # an overlap row of the target
    with pytest.raises(ValueError, match="'shop' has feature values.*standardise"):
        FederatedTransferClassifier(TOPO, hidden_layer_sizes=(), key_size=KEY).fit(X, y_fit)
    clf = FederatedTransferClassifier(TOPO, hidden_layer_sizes=(), key_size=KEY, max_iter=2,
                                      random_state=0)
    clf.fit(np.where(np.isnan(X), X, X / 1e6), y_fit)   # scaled: accepted
    assert clf.n_iter_ == 2


def test_no_message_before_validation(monkeypatch):
    calls = []
    monkeypatch.setattr(ftl_estimator, "_make_runtime", lambda: calls.append(1))
    X, y, y_fit, cut = _data()
    with pytest.raises(ValueError):
        FederatedTransferClassifier(TOPO, encryption=None).fit(X, np.full(len(y), -1))
    assert calls == []


def test_each_role_receives_only_its_own_network_seed(monkeypatch):
    seen = {}

    def spy(role):
        def wrapped(ctx, **kw):
            seen[ctx.party] = kw["cfg"]
            return role(ctx, **kw)
        return wrapped

    monkeypatch.setattr(roles, "source", spy(roles.source))
    monkeypatch.setattr(roles, "target", spy(roles.target))
    X, y, y_fit, cut = _data()
    clf = FederatedTransferClassifier(TOPO, encryption=None, max_iter=1,
                                      random_state=0).fit(X, y_fit)
    bank, shop = seen["bank"], seen["shop"]
    assert bank["network_seed"] != shop["network_seed"]
    # No key and no value of one party's configuration is the other's seed;
    # the batch seed is the only shared randomness.
    for mine, other in ((bank, shop), (shop, bank)):
        assert not any("seed" in k and k not in ("network_seed", "batch_seed")
                       for k in mine)
        assert other["network_seed"] not in mine.values()
    assert bank["batch_seed"] == shop["batch_seed"]
    assert set(bank) == set(shop)
    assert "network_seed" not in clf._cfg  # prediction runs without either seed


@pytest.mark.parametrize("batch_size", [None, 7, 10, 29])
@pytest.mark.parametrize("n_labelled", [0, 2, 5, 30])
def test_batches_have_no_small_remainder_and_enough_labels(batch_size, n_labelled):
    n, K, d = 30, 1, 4
    w = np.zeros(n, dtype=bool)
    w[np.random.RandomState(1).permutation(n)[:n_labelled]] = True
    need = roles.min_labelled_per_batch(K, d)
    shapes = None
    for epoch in range(3):
        batches = roles._batches(w, batch_size, K, d, 5 + epoch)
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
        assert min(len(b) for b in batches) >= min(batch_size or n, n)
        assert all(w[b].sum() == 0 or w[b].sum() >= need for b in batches)
        # What check_batches checks once: the same sizes and labelled counts.
        epoch_shapes = (sorted(map(len, batches)), sorted(int(w[b].sum()) for b in batches))
        assert shapes in (None, epoch_shapes)
        shapes = epoch_shapes


# -- the reviewer's attack: A solves its alignment gradient for U^B -------------------
def _alignment_jacobian(net, X, rows):
    """A's own linear map G -> parameter gradient on the batch rows (J^T)."""
    _, acts = net.forward(X)
    acts = [a[rows] for a in acts]
    d = net.layer_sizes[-1]
    return np.column_stack([flatten_blocks(net.backward(acts, e.reshape(len(rows), d)))
                            for e in np.eye(len(rows) * d)])


def _solve_for_target_representations(net, X, rows, gamma, g_align):
    """From A's view only: g_align = J^T vec(2 gamma / n_b (U^A - U^B))."""
    JT = _alignment_jacobian(net, X, rows)
    UA = net.forward(X)[0][rows]
    rhs = JT @ UA.ravel() - len(rows) / (2 * gamma) * g_align
    return np.linalg.lstsq(JT, rhs, rcond=None)[0].reshape(UA.shape), JT


def _attack_setting(n, seed=0):
    rng = np.random.RandomState(seed)
    XA, XB = rng.randn(n, 3), rng.randn(n, 3)
    Y = np.where(rng.rand(n, 1) > 0.5, 1.0, -1.0)
    cfg = _cfg(hidden_layer_sizes=[4], representation_dim=2, gamma=1.0)
    return XA, XB, Y, cfg


def test_attack_recovers_representations_of_a_small_batch_which_is_refused(monkeypatch):
    # 8 rows x d=2 = 16 unknowns against A's 26 parameters: the gradient A
    # would decrypt (as before check_batches) determines U^B exactly.
    XA, XB, Y, cfg = _attack_setting(8)
    net_a, net_b = roles._net(3, cfg, 1), roles._net(3, cfg, 2)
    rows = np.arange(8)
    UA, UB = net_a.forward(XA)[0], net_b.forward(XB)[0]
    _, acts = net_a.forward(XA)
    g_align = flatten_blocks(net_a.backward(acts, 2 * cfg["gamma"] / 8 * (UA - UB)))
    UB_hat, JT = _solve_for_target_representations(net_a, XA, rows, cfg["gamma"], g_align)
    assert np.linalg.matrix_rank(JT) == UB.size
    np.testing.assert_allclose(UB_hat, UB, atol=1e-9)
    # Refused: by the check both roles run, and by fit before any message.
    w = np.ones(8, dtype=bool)
    with pytest.raises(ValueError, match="source 'A' solve for the target's"):
        roles.check_batches(w, None, 1, 2, net_a.n_params, net_b.n_params, "A", "B")
    with pytest.raises(RoleError, match="solve for the target's"):
        LocalRuntime().run({
            "A": partial(roles.source, X=XA, labelled=rows, Y=Y, overlap=rows,
                         cfg={**cfg, "network_seed": 1}),
            "B": partial(roles.target, X=XB, overlap=rows, cfg={**cfg, "network_seed": 2}),
        })
    calls = []
    monkeypatch.setattr(ftl_estimator, "_make_runtime", lambda: calls.append(1))
    X, y, y_fit, cut = _data()              # 30 overlap rows in 3 batches of 10
    with pytest.raises(ValueError, match="batch of 10 overlap rows.*need at least 15 rows"):
        FederatedTransferClassifier(TOPO, hidden_layer_sizes=(4,), representation_dim=2,
                                    train_hidden_layers=True, batch_size=10,
                                    encryption=None).fit(X, y_fit)
    assert calls == []


def test_attack_fails_on_an_accepted_batch(monkeypatch):
    # 16 rows x d=2 = 32 unknowns against 26 parameters + dL/dPhi + loss.
    n = 16
    XA, XB, Y, cfg = _attack_setting(n)
    cfg["encryption"] = "paillier"
    decrypted = {}
    recv_unmasked = roles._Channel.recv_unmasked

    def spy(self, tag, state):
        decrypted[tag] = recv_unmasked(self, tag, state)
        return decrypted[tag]

    monkeypatch.setattr(roles._Channel, "recv_unmasked", spy)
    rows = np.arange(n)
    LocalRuntime().run({
        "A": partial(roles.source, X=XA, labelled=rows, Y=Y, overlap=rows,
                     cfg={**cfg, "network_seed": 1}),
        "B": partial(roles.target, X=XB, overlap=rows, cfg={**cfg, "network_seed": 2}),
    })
    net_a, net_b = roles._net(3, cfg, 1), roles._net(3, cfg, 2)
    UA, UB = net_a.forward(XA)[0], net_b.forward(XB)[0]
    # What A decrypted is the alignment gradient the attack assumes...
    _, acts = net_a.forward(XA)
    expected = flatten_blocks(net_a.backward(acts, 2 * cfg["gamma"] / n * (UA - UB)))
    np.testing.assert_allclose(decrypted["grad_source"], expected, atol=1e-7)
    # ...but it has fewer equations than B's representations have values.
    UB_hat, JT = _solve_for_target_representations(net_a, XA, rows, cfg["gamma"],
                                                   decrypted["grad_source"])
    assert np.linalg.matrix_rank(JT) < UB.size
    # (1e-9 on the refused batch above; what remains is A's view of U^B
    # projected on its gradient's row space, see docs/transfer.rst.)
    assert np.linalg.norm(UB_hat - UB) > 0.1 * np.linalg.norm(UB)


def test_symmetric_attack_by_the_target_is_refused(monkeypatch):
    # B's gradient is J_B^T vec(T + 2 gamma/n_b U^B), T = -2 gamma/n_b U^A on
    # unlabelled rows: 12 rows x d=2 = 24 unknowns against B's 46 parameters
    # (A's 18 parameters + dL/dPhi + loss give 21 equations: A's side is fine).
    n, gamma = 12, 1.0
    rng = np.random.RandomState(0)
    XA, XB = rng.randn(n, 1), rng.randn(n, 8)
    cfg = _cfg(hidden_layer_sizes=[4], representation_dim=2, gamma=gamma)
    net_a, net_b = roles._net(1, cfg, 1), roles._net(8, cfg, 2)
    UA, UB = net_a.forward(XA)[0], net_b.forward(XB)[0]
    _, acts = net_b.forward(XB)
    g_b = flatten_blocks(net_b.backward(acts, 2 * gamma / n * (UB - UA)))
    JT = _alignment_jacobian(net_b, XB, np.arange(n))
    rhs = JT @ UB.ravel() - n / (2 * gamma) * g_b
    UA_hat = np.linalg.lstsq(JT, rhs, rcond=None)[0].reshape(UA.shape)
    np.testing.assert_allclose(UA_hat, UA, atol=1e-9)
    w = np.zeros(n, dtype=bool)
    roles.check_batches(w, None, 1, 2, net_a.n_params, 23, "A", "B")
    with pytest.raises(ValueError, match="target 'B' solve for the source's"):
        roles.check_batches(w, None, 1, 2, net_a.n_params, net_b.n_params, "A", "B")


def test_guard_protects_the_source_and_single_labelled_rows():
    # B's gradient is linear in T = -2 gamma / n_b U^A on unlabelled rows.
    w = np.zeros(20, dtype=bool)
    w[:4] = True
    with pytest.raises(ValueError, match="target 'B' solve for the source's"):
        roles.check_batches(w, None, 1, 2, 10, 40, "A", "B")
    roles.check_batches(w, None, 1, 2, 10, 39, "A", "B")
    # dL/dPhi from a single labelled row is (c (-y/2 + phi.u/4)) u: refuse it.
    one = np.zeros(20, dtype=bool)
    one[3] = True
    with pytest.raises(ValueError, match="1 labelled overlap row"):
        roles.check_batches(one, None, 1, 2, 10, 10, "A", "B")
    # Two labelled rows are enough with K = 1 (spread so no batch holds one).
    two = one.copy()
    two[7] = True
    roles.check_batches(two, 10, 1, 2, 10, 10, "A", "B")


# -- the cross-moment protocol against a dishonest or diverging party ----------------
def test_a_party_that_understates_its_network_is_refused(monkeypatch):
    """B claims fewer parameters than the features it then sends (identity rows
    in place of features would let it read A's values): A refuses the layout."""
    real = roles._trained_mask

    def understated(net, cfg):
        mask = real(net, cfg)
        if threading.current_thread().name == "skfed-shop":
            mask[:cfg["representation_dim"]] = 0.0         # one input row fewer
        return mask

    monkeypatch.setattr(roles, "_trained_mask", understated)
    X, y, y_fit, cut = _data(n=150)
    for encryption in (None, "paillier"):
        with pytest.raises(RoleError, match="'features'.*public layout"):
            FederatedTransferClassifier(TOPO, hidden_layer_sizes=(), key_size=KEY,
                                        encryption=encryption, max_iter=1).fit(X, y_fit)


def test_wire_scales_and_bounds_do_not_depend_on_magnitudes(monkeypatch):
    monkeypatch.setattr(ftl_estimator, "_make_runtime",
                        lambda: LocalRuntime(keep_payloads=True))
    X, y, y_fit, cut = _data(n=150)
    layouts = []
    for factor in (1.0, 2.0 ** -6):
        Xs = X.copy()
        Xs[:, 3:] *= factor                            # the target's columns
        clf = FederatedTransferClassifier(TOPO, hidden_layer_sizes=(), key_size=KEY,
                                          max_iter=2, random_state=0).fit(Xs, y_fit)
        layouts.append(sorted((m.sender, m.tag, m.decoded()["ciphertexts"]["scale_bits"],
                               m.decoded()["value_bits"], m.decoded()["slot_bits"])
                              for m in clf.transcript_
                              if m.tag in {"d", "grad_target", "p", "phi", "features"}))
    assert layouts[0] == layouts[1]


def test_diverging_training_fails_alike_with_and_without_encryption():
    X, y, y_fit, cut = _data(n=150)
    for encryption in (None, "paillier"):
        with pytest.raises(RoleError, match="diverged"):
            FederatedTransferClassifier(TOPO, hidden_layer_sizes=(), key_size=KEY,
                                        encryption=encryption, learning_rate_init=1e4,
                                        solver="sgd", max_iter=30, random_state=0
                                        ).fit(X, y_fit)


def test_string_labels_mark_unlabelled_rows_with_minus_one():
    """As a CSV column reads: "-1" among string labels is an unlabelled row."""
    X, y, y_fit, cut = _data(n=90)
    y_str = np.where(y_fit == 1, "yes", np.where(y_fit == 0, "no", "-1")).astype(object)
    clf = FederatedTransferClassifier(TOPO, encryption=None, max_iter=2,
                                      random_state=0).fit(X, y_str)
    assert list(clf.classes_) == ["no", "yes"]
    y_mixed = y_str.copy()
    y_mixed[y_fit == -1] = -1                              # an integer marker, too
    clf2 = FederatedTransferClassifier(TOPO, encryption=None, max_iter=2,
                                       random_state=0).fit(X, y_mixed)
    np.testing.assert_allclose(clf2.loss_curve_, clf.loss_curve_)


def test_batches_are_never_empty():
    w = np.ones(50, dtype=bool)                            # no unlabelled rows to spread
    batches = roles._batches(w, 1, 1, 4, 0)
    assert min(len(b) for b in batches) >= roles.min_labelled_per_batch(1, 4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(50))


def test_network_seeds_need_the_partys_own_rows():
    """A peer sharing an integer random_state cannot rebuild a party's initial
    network: the seed also hashes the party's rows (in any order)."""
    X = np.random.RandomState(0).randn(20, 3)
    s = ftl_estimator._network_seed(1234, "bank", X)
    assert s == ftl_estimator._network_seed(1234, "bank", X[::-1])    # order-free
    assert s != ftl_estimator._network_seed(1234, "bank", X + 1e-9)
    assert s != ftl_estimator._network_seed(1234, "shop", X)
    assert s != 1234


def test_random_features_too_large_are_refused_before_any_message(monkeypatch):
    sent = []
    monkeypatch.setattr(ftl_estimator, "_make_runtime", lambda: sent.append(1))
    X, y, y_fit, cut = _data(n=90)
    X[40:60, :3] *= 1e8
    with pytest.raises(ValueError, match="random features of magnitude"):
        FederatedTransferClassifier(TOPO, hidden_layer_sizes=(8,), train_hidden_layers=False,
                                    activation="relu").fit(X, y_fit)
    assert not sent


def _spy_network_seeds(monkeypatch):
    seen = {}

    def spy(role):
        def wrapped(ctx, **kw):
            seen[ctx.party] = kw["cfg"]["network_seed"]
            return role(ctx, **kw)
        return wrapped

    monkeypatch.setattr(roles, "source", spy(roles.source))
    monkeypatch.setattr(roles, "target", spy(roles.target))
    return seen


def test_private_network_seeds_have_at_least_128_bits(monkeypatch):
    """A peer must not be able to try every initial network: the seeds are
    not truncated, and without a random_state they come from fresh entropy
    (not numpy's global generator, which a process may have seeded)."""
    seen = _spy_network_seeds(monkeypatch)
    X, y, y_fit, cut = _data()
    runs = []
    for _ in range(2):
        np.random.seed(0)
        FederatedTransferClassifier(TOPO, encryption=None, max_iter=1).fit(X, y_fit)
        runs.append(dict(seen))
    assert runs[0]["bank"] != runs[1]["bank"] and runs[0]["shop"] != runs[1]["shop"]
    FederatedTransferClassifier(TOPO, encryption=None, max_iter=1, random_state=0).fit(X, y_fit)
    for seed in [*runs[0].values(), *runs[1].values(), *seen.values()]:
        assert seed.bit_length() > 128       # 256-bit digests; <= 128 has probability 2**-128
    # Every bit of the seed reaches the network: seeds that differ only far
    # above 2**31 give different initial networks.
    cfg = _cfg(hidden_layer_sizes=[4], representation_dim=2)
    s = seen["bank"]
    nets = [roles._net(3, cfg, s ^ (1 << k)).get_flat() for k in (0, 100, 200)]
    assert not np.allclose(nets[0], nets[1]) and not np.allclose(nets[1], nets[2])


def test_hidden_layer_protocol_scales_do_not_depend_on_magnitudes(monkeypatch):
    """What the source decrypts in the general protocol (dL/dPhi, the target's
    loss term) travels at public absolute scales, as in the cross-moment one."""
    monkeypatch.setattr(ftl_estimator, "_make_runtime",
                        lambda: LocalRuntime(keep_payloads=True))
    X, y, y_fit, cut = _data(n=150)
    scales = []
    for factor in (1.0, 2.0 ** -6):
        Xs = X.copy()
        Xs[:, 3:] *= factor                            # the target's columns
        clf = FederatedTransferClassifier(TOPO, hidden_layer_sizes=(2,), key_size=KEY,
                                          train_hidden_layers=True,
                                          representation_dim=4, max_iter=2,
                                          random_state=0).fit(Xs, y_fit)
        got = sorted((m.tag, m.decoded()["scale_bits"]) for m in clf.transcript_
                     if m.tag in {"g_phi", "loss_target"})
        assert len(got) == 4
        scales.append(got)
    assert scales[0] == scales[1]


def _two_view_digits(n_overlap, seed):
    """Binary digits, top half of the image at the source, bottom at the target."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X), (y >= 5).astype(int)
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(X))
    rest = perm[n_overlap:]                 # the first n_overlap rows: the overlap
    source_only, target_only = rest[:len(rest) // 2], rest[len(rest) // 2:]
    X_fed = X.copy()
    X_fed[source_only, 32:] = np.nan
    X_fed[target_only, :32] = np.nan
    y_fit = y.copy()
    y_fit[target_only] = -1
    topo = VerticalTopology({"A": list(range(32)), "B": list(range(32, 64))},
                            label_party="A")
    return X_fed, y, y_fit, topo, np.sort(target_only)


def test_defaults_beat_the_target_alone_baseline():
    """The defaults must help out of the box (issue 12: they once gave AUC 0.64
    where the target alone had 0.84)."""
    from sklearn.metrics import roc_auc_score

    gains = []
    for seed in range(2):
        X_fed, y, y_fit, topo, test = _two_view_digits(200, seed)
        train = np.setdiff1d(np.arange(len(y)), test)
        ftl = FederatedTransferClassifier(topo, encryption=None, random_state=seed)
        ftl.fit(X_fed[train], y_fit[train])
        base = ftl.make_centralised_twin().fit(X_fed[train], y_fit[train])
        gains.append(roc_auc_score(y[test], ftl.decision_function(X_fed[test]))
                     - roc_auc_score(y[test], base.decision_function(X_fed[test])))
    assert min(gains) > 0


def test_default_network_follows_the_public_sizes():
    """The default (fast) network fits small overlaps: random features beside
    the features, as many as leave the output layer's inputs below half the
    overlap, none when there is no room (the linear model)."""
    for n_overlap, width in ((50, []), (100, [17]), (200, [32])):
        X_fed, y, y_fit, topo, test = _two_view_digits(n_overlap, 0)
        clf = FederatedTransferClassifier(topo, encryption=None, max_iter=2,
                                          random_state=0).fit(X_fed, y_fit)
        assert clf._cfg["hidden_layer_sizes"] == width
        assert not clf._cfg["train_hidden"]
        assert "features" in {m.tag for m in clf.transcript_}     # cross moments
        inputs = clf.target_model_["coefs"][-1].shape[0]
        assert inputs == 32 + sum(width)
        assert not width or inputs + 1 <= n_overlap // 2
