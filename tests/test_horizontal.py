import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import (
    FederatedSGDClassifier,
    FederatedSGDRegressor,
    HorizontalTopology,
    compare_with_centralised,
)
from skfed.horizontal._losses import loss_and_dloss
from skfed.runtime import LocalRuntime

from .leaks import assert_no_leaks

ONE = HorizontalTopology(n_parties=1)


def _data(n=120, d=4, classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=d, n_informative=d, n_redundant=0,
                               n_classes=classes, n_clusters_per_class=1, random_state=seed)
    return StandardScaler().fit_transform(X), y


# -- (a) one client, no protection == scikit-learn's SGD ---------------------------
@settings(max_examples=40, deadline=None)
@given(
    loss=st.sampled_from(["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"]),
    penalty=st.sampled_from(["l2", "l1", "elasticnet", None]),
    learning_rate=st.sampled_from(["optimal", "constant", "invscaling"]),
    average=st.sampled_from([False, 4]),
    n_classes=st.sampled_from([2, 3]),
    n_rounds=st.integers(1, 4),
    local_epochs=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_one_client_matches_sklearn_partial_fit_sequence(loss, penalty, learning_rate, average,
                                                         n_classes, n_rounds, local_epochs,
                                                         seed):
    """The exact call sequence matched: SGDClassifier(**same, random_state=seed), then
    ``partial_fit(X, y, classes)`` n_rounds * local_epochs times."""
    X, y = _data(classes=n_classes, seed=seed)
    params = dict(loss=loss, penalty=penalty, learning_rate=learning_rate, average=average,
                  eta0=0.05, alpha=1e-3, random_state=seed)
    fed = FederatedSGDClassifier(topology=ONE, secure_aggregation=None, n_rounds=n_rounds,
                                 local_epochs=local_epochs, **params).fit(X, y)
    ref = SGDClassifier(**params)
    for _ in range(n_rounds * local_epochs):
        ref.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_allclose(fed.coef_, ref.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fed.intercept_, ref.intercept_, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(fed.predict(X), ref.predict(X))


@pytest.mark.parametrize("loss", ["squared_error", "huber", "epsilon_insensitive",
                                  "squared_epsilon_insensitive"])
def test_one_client_regressor_matches_sklearn(loss):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=80)
    fed = FederatedSGDRegressor(loss=loss, topology=ONE, secure_aggregation=None, n_rounds=3,
                                local_epochs=2, random_state=3).fit(X, y)
    ref = SGDRegressor(loss=loss, random_state=3)
    for _ in range(6):
        ref.partial_fit(X, y)
    np.testing.assert_allclose(fed.coef_, ref.coef_, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fed.intercept_, ref.intercept_, atol=1e-10, rtol=0)


# -- (b) protection changes nothing but fixed-point rounding -------------------------
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5),
       strategy=st.sampled_from(["fedavg", "fedprox", "fedadam"]))
def test_masking_equals_no_protection(seed, k, strategy):
    X, y = _data(seed=seed)
    kw = dict(topology=HorizontalTopology(n_parties=k, random_state=seed), n_rounds=3,
              strategy=strategy, random_state=seed, learning_rate="constant", eta0=0.05)
    plain = FederatedSGDClassifier(secure_aggregation=None, **kw).fit(X, y)
    masked = FederatedSGDClassifier(secure_aggregation="masking", **kw).fit(X, y)
    np.testing.assert_allclose(masked.coef_, plain.coef_, atol=1e-7)
    np.testing.assert_allclose(masked.intercept_, plain.intercept_, atol=1e-7)


def test_paillier_equals_no_protection():
    X, y = _data(n=90)
    kw = dict(topology=HorizontalTopology(n_parties=3, random_state=1), n_rounds=2,
              random_state=1, key_size=1024)
    plain = FederatedSGDClassifier(secure_aggregation=None, **kw).fit(X, y)
    enc = FederatedSGDClassifier(secure_aggregation="paillier", **kw).fit(X, y)
    np.testing.assert_allclose(enc.coef_, plain.coef_, atol=1e-7)
    updates = enc.transcript_.filter(tag="update")
    assert updates and {m.kind for m in updates} == {"ciphertext"}
    # the server relays the private key only sealed, never in the clear
    assert {m.kind for m in enc.transcript_.filter(tag="sealed_private_key")} == {"ciphertext"}


# -- (b') unequal partitions: sample-count-weighted FedAvg ---------------------------
def _fedavg_reference(X, y, groups, n_rounds, local_epochs, params, classes=None):
    """FedAvg from its definition: every client starts each round from the global model,
    runs scikit-learn's SGD on its own rows, and the server keeps sum_k (n_k / n) w_k."""
    from sklearn.base import clone

    base = SGDClassifier(**params) if classes is not None else SGDRegressor(**params)
    ests = [clone(base) for _ in groups]
    n = sum(len(g) for g in groups)
    coef = intercept = None
    for r in range(n_rounds):
        new_coef, new_icpt = 0.0, 0.0
        for est, rows in zip(ests, groups):
            if r:
                est.coef_ = coef.reshape(est.coef_.shape).copy()
                est.intercept_ = intercept.reshape(est.intercept_.shape).copy()
            for _ in range(local_epochs):
                kw = {"classes": classes} if classes is not None else {}
                est.partial_fit(X[rows], y[rows], **kw)
            new_coef = new_coef + len(rows) / n * est.coef_
            new_icpt = new_icpt + len(rows) / n * est.intercept_
        coef, intercept = new_coef, new_icpt
    return coef, intercept


@st.composite
def unequal_partitions(draw, n_max=90):
    """Client sizes: explicit (tiny ones included) or Dirichlet shares; never all equal."""
    k = draw(st.integers(2, 4))
    if draw(st.booleans()):
        sizes = draw(st.lists(st.integers(2, 40), min_size=k, max_size=k))
    else:
        alpha = draw(st.sampled_from([0.3, 1.0, 5.0]))
        seed = draw(st.integers(0, 2**31 - 1))
        shares = np.random.default_rng(seed).dirichlet([alpha] * k)
        sizes = [2 + int(s) for s in np.floor(shares * (n_max - 2 * k))]
    if len(set(sizes)) == 1:
        sizes[0] += 1
    return sizes


def _party_frame(X, sizes, seed):
    """Rows shuffled into clients of the given sizes, as a DataFrame with a party column."""
    order = np.random.default_rng(seed).permutation(sum(sizes))
    owner = np.empty(sum(sizes), dtype=object)
    groups, start = [], 0
    for i, s in enumerate(sizes):
        rows = np.sort(order[start:start + s])
        owner[rows] = f"c{i}"
        groups.append(rows)
        start += s
    df = pd.DataFrame(X[:sum(sizes)], columns=[f"x{j}" for j in range(X.shape[1])])
    df["party"] = owner
    return df, groups


@settings(max_examples=12, deadline=None)
@given(sizes=unequal_partitions(), seed=st.integers(0, 1000), n_rounds=st.integers(1, 3),
       local_epochs=st.integers(1, 2), task=st.sampled_from(["classification", "regression"]))
def test_unequal_partitions_match_sample_weighted_fedavg(sizes, seed, n_rounds, local_epochs,
                                                          task):
    n = sum(sizes)
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    params = dict(learning_rate="constant", eta0=0.05, alpha=1e-3, random_state=seed)
    if task == "classification":
        y = (X @ [1.0, -1.0, 0.5] + 0.3 * rng.normal(size=n) > 0).astype(int)
        y[:2] = [0, 1]  # both classes present
        Est, classes = FederatedSGDClassifier, np.array([0, 1])
    else:
        y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=n)
        Est, classes = FederatedSGDRegressor, None
    df, groups = _party_frame(X, sizes, seed)
    fed = Est(topology=HorizontalTopology(partition="party"), secure_aggregation=None,
              n_rounds=n_rounds, local_epochs=local_epochs, **params).fit(df, y)
    coef, intercept = _fedavg_reference(X, y, groups, n_rounds, local_epochs, params, classes)
    np.testing.assert_allclose(fed.coef_, coef, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fed.intercept_, intercept, rtol=1e-12, atol=1e-12)


def test_unequal_partition_masked_round_within_fixed_point_error():
    """One masked round: each of the k uploads is rounded to 2**-33 (scale 2**-32),
    so the aggregate is within k * 2**-33 of FedAvg's."""
    sizes = [30, 33, 58]
    rng = np.random.RandomState(0)
    X = rng.normal(size=(sum(sizes), 4))
    y = (X @ [1.0, -1.0, 0.5, 2.0] > 0).astype(int)
    params = dict(learning_rate="constant", eta0=0.05, alpha=1e-3, random_state=0)
    df, groups = _party_frame(X, sizes, 0)
    fed = FederatedSGDClassifier(topology=HorizontalTopology(partition="party"), n_rounds=1,
                                 **params).fit(df, y)
    coef, intercept = _fedavg_reference(X, y, groups, 1, 1, params, np.array([0, 1]))
    tol = len(sizes) * 2.0**-33
    np.testing.assert_allclose(fed.coef_, coef, rtol=0, atol=tol)
    np.testing.assert_allclose(fed.intercept_, intercept, rtol=0, atol=tol)
    # equal weights would be far outside this tolerance
    equal = sum(_fedavg_reference(X, y, [g], 1, 1, params, np.array([0, 1]))[0]
                for g in groups) / len(groups)
    assert np.max(np.abs(equal - coef)) > 1e3 * tol


# -- (c) full-batch FedSGD == centralised full-batch gradient descent ----------------
def _centralised_gd(X, y, classes, loss, alpha, eta, n_steps, fit_intercept=True):
    """Plain numpy full-batch GD on the pooled data, written independently."""
    outputs = [1] if len(classes) == 2 else range(len(classes))
    Y = np.column_stack([np.where(y == classes[c], 1.0, -1.0) for c in outputs])
    W = np.zeros((Y.shape[1], X.shape[1]))
    b = np.zeros(Y.shape[1])
    for _ in range(n_steps):
        P = X @ W.T + b
        _, D = loss_and_dloss(loss, P, Y)
        W = W - eta * (D.T @ X / len(X) + alpha * W)
        if fit_intercept:
            b = b - eta * D.mean(axis=0)
    return W, b


def test_losses_match_sklearn():
    from sklearn._loss.loss import HalfBinomialLoss, HalfSquaredError
    from sklearn.linear_model import _sgd_fast as f

    sgd = {"hinge": f.Hinge(1.0), "modified_huber": f.ModifiedHuber(),
           "squared_hinge": f.SquaredHinge(1.0), "perceptron": f.Hinge(0.0),
           "epsilon_insensitive": f.EpsilonInsensitive(0.1),
           "squared_epsilon_insensitive": f.SquaredEpsilonInsensitive(0.1)}
    rng = np.random.RandomState(0)
    p = rng.normal(scale=3, size=60)
    ys = rng.choice([-1.0, 1.0], size=60)
    for name, obj in sgd.items():
        for pi, yi in zip(p, ys):
            loss, dloss = loss_and_dloss(name, pi, yi, 0.1)
            assert np.isclose(dloss, obj.py_dloss(pi, yi)), name
            assert np.isclose(loss, obj.py_loss(pi, yi)), name
    # scikit-learn's log_loss is the half binomial loss on {0, 1} labels
    loss, dloss = loss_and_dloss("log_loss", p, ys)
    y01 = (ys > 0).astype(float)
    np.testing.assert_allclose(loss, HalfBinomialLoss().loss(y01, p))
    np.testing.assert_allclose(dloss, HalfBinomialLoss().gradient(y01, p))
    loss, dloss = loss_and_dloss("squared_error", p, ys)
    np.testing.assert_allclose(loss, HalfSquaredError().loss(ys, p))
    np.testing.assert_allclose(dloss, HalfSquaredError().gradient(ys, p))
    # huber: quadratic inside epsilon, linear outside, continuous at the joint
    loss, dloss = loss_and_dloss("huber", np.array([0.05, 2.0]), np.zeros(2), 0.1)
    np.testing.assert_allclose(loss, [0.5 * 0.05**2, 0.1 * 2.0 - 0.005])
    np.testing.assert_allclose(dloss, [0.05, 0.1])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), sizes=st.one_of(st.just([120]), unequal_partitions(120)),
       loss=st.sampled_from(["log_loss", "hinge", "modified_huber"]),
       n_classes=st.sampled_from([2, 3]))
def test_fedsgd_equals_centralised_gradient_descent(seed, sizes, loss, n_classes):
    X, y = _data(n=sum(sizes), seed=seed, classes=n_classes)
    kw = dict(loss=loss, strategy="fedsgd", learning_rate="constant", eta0=0.3, alpha=0.01,
              n_rounds=15, secure_aggregation=None)
    if len(sizes) == 1:
        fed = FederatedSGDClassifier(topology=ONE, **kw).fit(X, y)
    else:
        # unequal clients: the pooled mean gradient weights each by its size
        df, _ = _party_frame(X, sizes, seed)
        fed = FederatedSGDClassifier(topology=HorizontalTopology(partition="party"),
                                     **kw).fit(df, y)
    W, b = _centralised_gd(X, y, np.unique(y), loss, 0.01, 0.3, 15)
    np.testing.assert_allclose(fed.coef_, W, atol=1e-10)
    np.testing.assert_allclose(fed.intercept_, b, atol=1e-10)
    # the recorded objective decreases like gradient descent should
    objs = [h["objective"] for h in fed.history_]
    assert objs[-1] < objs[0]


# -- (d) utility --------------------------------------------------------------------
def test_iid_five_parties_within_one_point_of_centralised():
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0,
                                              stratify=y)
    sc = StandardScaler().fit(X_tr)
    X_tr, X_te = sc.transform(X_tr), sc.transform(X_te)
    kw = dict(loss="log_loss", alpha=1e-3, random_state=0)
    fed = FederatedSGDClassifier(topology=HorizontalTopology(n_parties=5, random_state=0),
                                 n_rounds=10, **kw).fit(X_tr, y_tr)
    cen = SGDClassifier(max_iter=10, tol=None, **kw).fit(X_tr, y_tr)
    assert fed.score(X_te, y_te) >= cen.score(X_te, y_te) - 0.01


def test_dirichlet_split_still_learns_digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    fed = FederatedSGDClassifier(
        loss="log_loss", alpha=1e-4, n_rounds=10, random_state=0,
        topology=HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.5,
                                    random_state=0)).fit(X_tr, y_tr)
    cen = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=10, tol=None,
                        random_state=0).fit(X_tr, y_tr)
    # documented gap (docs/horizontal.rst): non-IID costs a few points, not the model
    assert fed.score(X_te, y_te) > 0.8
    assert fed.score(X_te, y_te) > cen.score(X_te, y_te) - 0.1


# -- privacy -------------------------------------------------------------------------
def _fit_with_payloads(**kw):
    X, y = _data()
    clf = FederatedSGDClassifier(runtime=LocalRuntime(keep_payloads=True), n_rounds=4,
                                 random_state=0, **kw)
    return clf.fit(X, y), X, y


def test_no_update_leaves_a_client_in_plain():
    clf, X, y = _fit_with_payloads(topology=HorizontalTopology(n_parties=3, random_state=0))
    clients = {"client0", "client1", "client2"}
    for m in clf.transcript_:
        if m.sender in clients and m.kind == "plain":
            # only the declared metadata: the client's label set
            assert m.tag == "labels", m
    updates = clf.transcript_.filter(tag="update")
    assert len(updates) == 3 * 4 and {m.kind for m in updates} == {"masked"}
    # no row of any client (features or labels) appears in anything sent, at any offset
    topo = HorizontalTopology(n_parties=3, random_state=0)
    secrets = {}
    for name, rows in topo.split(X, y):
        secrets[f"{name} rows"], secrets[f"{name} labels"] = X[rows], y[rows]
    assert_no_leaks(clf.transcript_, secrets)


def test_masked_uploads_hide_the_updates_and_look_uniform():
    kw = dict(topology=HorizontalTopology(n_parties=2, random_state=0),
              learning_rate="constant", eta0=0.01)
    clf, X, y = _fit_with_payloads(**kw)
    plain, _, _ = _fit_with_payloads(secure_aggregation=None, **kw)
    from skfed.crypto.secagg import FixedPointRing

    ring = FixedPointRing(n_summands=2)
    masked = [m.decoded() for m in clf.transcript_.filter(sender="client0", tag="update")]
    clear = [ring.encode(m.decoded())
             for m in plain.transcript_.filter(sender="client0", tag="update")]
    assert len(masked) == len(clear) == 4
    assert all(mk.dtype == np.uint64 for mk in masked)
    # the same updates, masked: their high bytes agree with the clear encoding no
    # more often than chance (1/256), where an unmasked upload would agree always.
    # Pooled over the rounds: one update has only 16 values, and 2 chance
    # agreements among them (p ~ 0.2% per update) would fail a per-update check.
    agree = np.concatenate([(mk >> np.uint64(56)) == (cl >> np.uint64(56))
                            for mk, cl in zip(masked, clear)])
    assert agree.size == 64 and np.mean(agree) < 0.1
    # masks differ per round: the difference of two masked uploads is not the
    # difference of the updates
    d_masked = masked[1] - masked[0]
    d_clear = clear[1] - clear[0]
    assert not np.array_equal(d_masked, d_clear)
    # uniform over the ring: each top-4-bit bucket ~1/16 of values
    allv = np.concatenate([m.decoded() for m in clf.transcript_.filter(tag="update")])
    top = (allv >> np.uint64(60)).astype(int)
    counts = np.bincount(top, minlength=16)
    expected = len(top) / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50  # 15 dof: p < 1e-5 beyond this
    # the encoding of a real update clusters near 0 or 2**64; masked does not
    assert np.mean((top == 0) | (top == 15)) < 0.3


def test_server_learns_only_the_sum():
    clf, X, y = _fit_with_payloads(topology=HorizontalTopology(n_parties=3, random_state=0))
    r1 = [m.decoded() for m in clf.transcript_.filter(tag="update")][:3]
    s = r1[0] + r1[1] + r1[2]  # uint64 wraps: the masks cancel only in the full sum
    from skfed.crypto.secagg import FixedPointRing

    total = FixedPointRing(n_summands=3).decode(s)
    assert np.all(np.abs(total) < 1e3)      # the sum is a sensible model
    assert np.max(np.abs(FixedPointRing().decode(r1[0]))) > 1e6  # one upload is noise


# -- robustness: clear errors before any message ---------------------------------------
class _NoMessages(LocalRuntime):
    def run(self, roles, transcript=None):  # pragma: no cover - must not be reached
        raise AssertionError("a message was about to be sent")


@pytest.mark.parametrize("mutate, match", [
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y), "NaN"),
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y),
     "infinity"),
    (lambda X, y: (X, np.zeros_like(y)), "class"),
    (lambda X, y: (X[:4], np.array([0, 1, 2, 0])), "more parties than rows"),
])
def test_bad_input_fails_before_any_message(mutate, match):
    X, y = _data()
    X, y = mutate(X, y)
    clf = FederatedSGDClassifier(runtime=_NoMessages(),
                                 topology=HorizontalTopology(n_parties=5))
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_single_sample_party_and_party_column_errors():
    X, y = _data(n=20)
    col = np.array(["a"] * 19 + ["b"])
    Xc = np.column_stack([col, X.astype(object)])
    with pytest.raises(ValueError, match="holds 1 sample"):
        FederatedSGDClassifier(runtime=_NoMessages(),
                               topology=HorizontalTopology(partition=0)).fit(Xc, y)
    with pytest.raises(ValueError, match="single party"):
        FederatedSGDClassifier(runtime=_NoMessages(), topology=HorizontalTopology(
            partition=0)).fit(np.column_stack([["a"] * 20, X.astype(object)]), y)


def test_small_keys_refused_without_opt_in(monkeypatch):
    monkeypatch.delenv("SKFED_ALLOW_INSECURE_KEYS", raising=False)
    X, y = _data()
    with pytest.raises(ValueError, match="2048"):
        FederatedSGDClassifier(secure_aggregation="paillier", key_size=1024,
                               runtime=_NoMessages()).fit(X, y)


def test_secure_aggregation_needs_two_clients():
    X, y = _data()
    with pytest.raises(ValueError, match="at least two clients"):
        FederatedSGDClassifier(topology=ONE, runtime=_NoMessages()).fit(X, y)


def test_mismatched_features_and_unseen_class_at_predict():
    X, y = _data()
    clf = FederatedSGDClassifier(n_rounds=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :2])
    with pytest.raises(ValueError, match="seen by no party"):
        clf.score(X[:5], np.array([0, 1, 2, 7, 0]))


def test_unknown_class_weight_refused_before_any_message():
    X, y = _data()
    with pytest.raises(ValueError, match="class_weight names classes"):
        FederatedSGDClassifier(class_weight={0: 1.0, 9: 2.0}, runtime=_NoMessages()).fit(X, y)


def test_divergence_raises_instead_of_clipping():
    X, y = _data()
    clf = FederatedSGDClassifier(learning_rate="constant", eta0=1e12, n_rounds=3,
                                 penalty=None, random_state=0)
    with pytest.raises(Exception, match="exceeds the secure-aggregation range"):
        clf.fit(X * 1e6, y)


# -- labels, DataFrames, partition columns ------------------------------------------
def test_string_labels_kept_as_given():
    X, y = _data()
    names = np.array(["cat", "dog", "emu"])[y]
    clf = FederatedSGDClassifier(n_rounds=3, random_state=0, loss="log_loss").fit(X, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= set(names)
    assert clf.predict_proba(X).shape == (len(X), 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_dataframe_with_party_column_by_name():
    X, y = _data(n=150)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["region"] = np.array(["north", "south", "east"])[np.arange(150) % 3]
    clf = FederatedSGDClassifier(topology=HorizontalTopology(partition="region"),
                                 n_rounds=3, random_state=0).fit(df, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
    assert {m.sender for m in clf.transcript_.filter(tag="update")} == {
        "north", "south", "east"}
    np.testing.assert_array_equal(clf.predict(df), clf.predict(df.drop(columns="region")))


def test_class_weight_balanced_uses_global_counts():
    X, y = _data(n=200, classes=2)
    keep = (y == 1) | (np.arange(len(y)) % 4 == 0)
    X, y = X[keep], y[keep]
    a = FederatedSGDClassifier(class_weight="balanced", n_rounds=3, random_state=0,
                               secure_aggregation=None, topology=ONE).fit(X, y)
    counts = np.bincount(y)
    weights = {c: len(y) / (2 * counts[c]) for c in (0, 1)}
    b = FederatedSGDClassifier(class_weight=weights, n_rounds=3, random_state=0,
                               secure_aggregation=None, topology=ONE).fit(X, y)
    np.testing.assert_allclose(a.coef_, b.coef_)


# -- scikit-learn citizenship ---------------------------------------------------------
def test_pipeline_gridsearch_cross_val():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), FederatedSGDClassifier(n_rounds=3, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.9
    gs = GridSearchCV(pipe, {"federatedsgdclassifier__alpha": [1e-4, 1e-2]}, cv=3, n_jobs=2)
    gs.fit(X, y)
    assert gs.best_score_ > 0.9


def test_early_stopping_and_history():
    X, y = _data()
    clf = FederatedSGDClassifier(n_rounds=200, tol=1e-3, n_iter_no_change=3,
                                 learning_rate="constant", eta0=0.01, random_state=0).fit(X, y)
    assert clf.n_iter_ < 200
    assert len(clf.history_) == clf.n_iter_
    assert all(h["bytes"] > 0 for h in clf.history_)


def test_verbose_prints_progress(capsys):
    X, y = _data()
    FederatedSGDClassifier(n_rounds=2, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "round 1/2" in out and "round 2/2" in out


def test_compare_with_centralised_regressor():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 3))
    y = X @ [1.0, 2.0, -1.0] + 0.1 * rng.normal(size=150)
    res = compare_with_centralised(FederatedSGDRegressor(n_rounds=30, random_state=0), X, y,
                                   cv=3)
    assert abs(res["score_gap"]) < 0.05
    assert (res["federated"]["bytes_exchanged"] > 0).all()
    assert (res["centralised"]["bytes_exchanged"] == 0).all()
