"""The vertical models' default solver (block-preconditioned conjugate
gradients) and the rules that keep a diverged fit from passing for a model."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import scale

from skfed import (
    FitDiverged,
    VerticalLinearRegression,
    VerticalLogisticRegression,
    VerticalTopology,
)
from skfed.vertical import roles

SMALL_KEY = 512


def _split(n_features, n_hosts, rng):
    perm = rng.permutation(n_features)
    cuts = np.sort(rng.choice(np.arange(1, n_features), size=n_hosts, replace=False))
    parts = np.split(perm, cuts)
    parties = {"guest": parts[0].tolist()}
    parties.update({f"host{i}": p.tolist() for i, p in enumerate(parts[1:])})
    return VerticalTopology(parties, label_party="guest")


def _exact_minimiser(X, Y, *, task, alpha, fit_intercept):
    """Solve the normal equations of the protocol's quadratic objective.

    Linear: ``mean |u - y|^2 / 2 + alpha/2 |w|^2``; logistic, the Taylor
    log-loss ``mean(log 2 - y u / 2 + u^2 / 8) + alpha/2 |w|^2`` with y in
    {-1, 1}; the intercept (last) is not penalised. Written from the maths,
    independently of the protocol's code.
    """
    n = X.shape[0]
    Xb = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
    pen = np.ones(Xb.shape[1])
    if fit_intercept:
        pen[-1] = 0.0
    r, c = (0.25, 2.0) if task == "logistic" else (1.0, 1.0)
    H = r * Xb.T @ Xb / n + alpha * np.diag(pen)
    B = r * c * Xb.T @ Y / n
    W = np.linalg.solve(H, B)
    return W[:X.shape[1]].T, (W[-1] if fit_intercept else np.zeros(Y.shape[1]))


def _targets(task, y):
    if task == "linear":
        return y[:, None]
    classes = np.unique(y)
    if len(classes) == 2:
        return np.where(y == classes[1], 1.0, -1.0)[:, None]
    return np.where(y[:, None] == classes, 1.0, -1.0)


problems = st.fixed_dictionaries({
    "task": st.sampled_from(["linear", "logistic"]),
    "n_features": st.integers(2, 7),
    "n_hosts": st.integers(1, 3),
    "n_classes": st.integers(2, 3),
    "alpha": st.sampled_from([0.0, 0.05]),
    "fit_intercept": st.booleans(),
    "correlated": st.booleans(),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=problems)
def test_pcg_reaches_the_exact_minimiser(p):
    """Unencrypted PCG equals the centralised minimiser of the same objective."""
    rng = np.random.RandomState(p["seed"])
    n_hosts = min(p["n_hosts"], p["n_features"] - 1)
    n = 12 * p["n_features"]
    X = rng.normal(size=(n, p["n_features"])) * rng.uniform(0.1, 10, p["n_features"])
    if p["correlated"]:  # columns of different parties strongly correlated
        X[:, 1] = X[:, 0] + 0.05 * rng.normal(size=n)
    X = X + rng.normal(size=p["n_features"])
    if p["task"] == "linear":
        y = X @ rng.normal(size=p["n_features"]) + rng.normal(size=n)
        Est = VerticalLinearRegression
    else:
        y = rng.randint(p["n_classes"], size=n)
        y[:p["n_classes"]] = np.arange(p["n_classes"])
        Est = VerticalLogisticRegression
    topo = _split(p["n_features"], n_hosts, rng)
    n_params = p["n_features"] + 1
    # tol=None: conjugate gradients end at the minimiser after at most one
    # iteration per parameter (in exact arithmetic); a few more cost nothing.
    est = Est(topo, alpha=p["alpha"], fit_intercept=p["fit_intercept"], encryption=None,
              max_iter=n_params + 4, tol=None).fit(X, y)
    coef, intercept = _exact_minimiser(X, _targets(p["task"], y), task=p["task"],
                                       alpha=p["alpha"], fit_intercept=p["fit_intercept"])
    scale_ = max(1.0, np.abs(coef).max())
    np.testing.assert_allclose(np.atleast_2d(est.coef_), coef, atol=1e-8 * scale_)
    np.testing.assert_allclose(np.atleast_1d(est.intercept_), intercept,
                               atol=1e-8 * max(1.0, np.abs(intercept).max()))
    assert est.stop_reason_ == "max_iter"
    # the objective the arbiter tracks is the objective at the weights
    assert len(est.loss_curve_) == est.n_iter_ == n_params + 4
    assert np.all(np.diff(est.loss_curve_) <= 1e-12)


@pytest.mark.parametrize("task", ["linear", "logistic"])
def test_tol_stops_pcg_at_the_optimum(task):
    X, y = make_classification(n_samples=300, n_features=12, n_informative=6,
                               random_state=0)
    X = scale(X)
    if task == "linear":
        y = X @ np.arange(12.0) + 0.1 * np.random.RandomState(0).normal(size=300)
    Est = VerticalLinearRegression if task == "linear" else VerticalLogisticRegression
    exact = Est(encryption=None, max_iter=40, tol=None).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = Est(encryption=None, tol=1e-6).fit(X, y)
    assert est.stop_reason_ == "converged"
    assert est.n_iter_ < 15
    assert est.loss_curve_[-1] - exact.loss_curve_[-1] < 1e-5
    np.testing.assert_allclose(est.coef_, exact.coef_, atol=1e-2)


@pytest.mark.parametrize("task", ["linear", "logistic"])
def test_encrypted_pcg_equals_unencrypted(task):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(40, 5))
    y = X @ [1.0, -2.0, 0.5, 3.0, 0.0] + 1.0 + 0.1 * rng.normal(size=40)
    if task == "logistic":
        y = (y > 1).astype(int)
    topo = VerticalTopology({"guest": [0, 1], "host": [2, 3, 4]}, label_party="guest")
    Est = VerticalLinearRegression if task == "linear" else VerticalLogisticRegression
    kw = dict(max_iter=6, tol=None)
    plain = Est(topo, encryption=None, **kw).fit(X, y)
    enc = Est(topo, key_size=SMALL_KEY, **kw).fit(X, y)
    np.testing.assert_allclose(enc.coef_, plain.coef_, atol=1e-6)
    np.testing.assert_allclose(enc.intercept_, plain.intercept_, atol=1e-6)
    np.testing.assert_allclose(enc.loss_curve_, plain.loss_curve_, atol=1e-6)
    assert enc.n_iter_ == plain.n_iter_ == 6


def test_encrypted_pcg_two_hosts_one_vs_rest():
    # per-output scalars (K = 3) and two hosts' encrypted terms summed
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4, n_classes=3,
                               random_state=2)
    topo = VerticalTopology({"g": [0, 1], "h1": [2, 3], "h2": [4, 5]}, label_party="g")
    kw = dict(max_iter=4, tol=None, alpha=0.05)
    plain = VerticalLogisticRegression(topo, encryption=None, **kw).fit(X, y)
    enc = VerticalLogisticRegression(topo, key_size=SMALL_KEY, **kw).fit(X, y)
    np.testing.assert_allclose(enc.coef_, plain.coef_, atol=1e-6)
    np.testing.assert_allclose(enc.loss_curve_, plain.loss_curve_, atol=1e-6)
    # epoch 1 is the gradient pass; each later one a step to every data party
    assert len(enc.transcript_.filter(sender="arbiter", receiver="h2", tag="step")) == 3
    assert len(enc.transcript_.filter(receiver="g", tag="cg_term")) == 2 * 3


def test_encrypted_pcg_past_the_optimum_of_a_singular_problem():
    # make_classification's redundant columns are exact combinations of the
    # informative ones, across the parties: H is singular. Past the optimum the
    # encrypted gradient is numerical error, partly in H's null space; a step
    # along it would be huge. The solver must stay put, not "diverge".
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    plain = VerticalLogisticRegression(encryption=None, max_iter=8, tol=None).fit(X, y)
    enc = VerticalLogisticRegression(key_size=SMALL_KEY, max_iter=8, tol=None).fit(X, y)
    assert enc.stop_reason_ == "max_iter"
    np.testing.assert_allclose(enc.coef_, plain.coef_, atol=1e-6)
    np.testing.assert_allclose(enc.loss_curve_, plain.loss_curve_, atol=1e-6)


def test_pcg_does_not_care_how_each_party_scales_its_columns():
    X, y = load_breast_cancer(return_X_y=True)
    topo = VerticalTopology({"guest": list(range(10)), "host": list(range(10, 30))},
                            label_party="guest")
    # Each party's block preconditioner makes the iterates invariant to any
    # invertible change of a party's own columns, per-column scales included.
    std = X / X.std(axis=0)
    a = VerticalLogisticRegression(topo, encryption=None, max_iter=8, tol=None).fit(std, y)
    # raw breast cancer: columns from 1e-3 to 4e3
    b = VerticalLogisticRegression(topo, encryption=None, max_iter=8, tol=None).fit(X, y)
    np.testing.assert_allclose(b.decision_function(X), a.decision_function(std),
                               rtol=1e-6, atol=1e-6)
    assert b.score(X, y) > 0.95


def test_pcg_refuses_mini_batches():
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="solver='pcg' uses all rows"):
        VerticalLogisticRegression(batch_size=20, encryption=None).fit(X, y)


# -- divergence ----------------------------------------------------------------

@pytest.mark.parametrize("encryption", [None, "paillier"])
@pytest.mark.parametrize("Est", [VerticalLinearRegression, VerticalLogisticRegression])
def test_diverging_gradient_descent_raises(Est, encryption):
    X, y = load_breast_cancer(return_X_y=True)
    X = X[::4]  # unscaled: columns up to ~4e3
    y = y[::4] if Est is VerticalLogisticRegression else X[:, :3].sum(axis=1)
    est = Est(solver="gd", encryption=encryption, key_size=SMALL_KEY, max_iter=20)
    with pytest.raises(FitDiverged, match="StandardScaler") as info:
        est.fit(X, y)
    assert "learning_rate=0.1" in str(info.value)
    assert est.stop_reason_ == "diverged"
    # the default solver fits the same unscaled data
    ok = Est(encryption=None, max_iter=20).fit(X, y)
    assert ok.stop_reason_ in {"converged", "max_iter"}
    assert ok.score(X, y) > (0.9 if Est is VerticalLogisticRegression else 0.99)


def _monitor(**cfg):
    base = dict(tol=1e-4, max_iter=100)
    base.update(cfg)
    ctx = SimpleNamespace(bytes_sent=0, bytes_received=0)
    return roles._Monitor(SimpleNamespace(**base), None, ctx)


@pytest.mark.parametrize("curve, reason", [
    ([1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "converged"),         # a stall below the start
    ([1.0, 1.1, 1.2, 1.3, 1.4, 1.5], "diverged"),              # grows slowly: no stall
    ([1.0, 0.9, 2e3], "diverged"),                             # beyond the bound
    ([1.0, np.inf], "diverged"),
    ([1.0, np.nan], "diverged"),
    ([1.0, -3.0], "diverged"),                                 # an overflowed encoding
    ([1.0, 0.9, 0.8], "max_iter"),
])
def test_no_improvement_is_convergence_only_below_the_start(curve, reason):
    monitor = _monitor(max_iter=len(curve))
    got = [monitor.update(f) for f in curve]
    assert got[:-1] == [""] * (len(curve) - 1)
    assert got[-1] == reason
    if reason == "diverged":
        assert f"at epoch {len(curve)}" in monitor.detail


def test_pcg_stop_rule():
    monitor = _monitor(max_iter=10, tol=1e-3)
    assert monitor.update(1.0, decrease=np.inf) == ""
    assert monitor.update(0.5, decrease=0.5) == ""
    assert monitor.update(0.4995, decrease=5e-4) == "converged"
    bad = _monitor(max_iter=10)
    bad.update(1.0, decrease=np.inf)
    assert bad.update(0.9, decrease=0.1, invalid="negative") == "diverged"


def test_max_iter_warns_and_records_the_reason():
    X, y = make_classification(n_samples=60, n_features=6, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        est = VerticalLogisticRegression(encryption=None, max_iter=2).fit(X, y)
    assert est.stop_reason_ == "max_iter" and est.n_iter_ == 2


def test_progress_at_the_label_party(capsys):
    X, y = make_classification(n_samples=60, n_features=6, random_state=0)
    topo = VerticalTopology({"bank": [0, 1, 2], "shop": [3, 4, 5]}, label_party="bank")
    est = VerticalLogisticRegression(topo, key_size=SMALL_KEY, verbose=1).fit(X, y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[skfed]")]
    assert len(lines) == est.n_iter_          # one line per epoch, from one party
    assert all(ln.startswith("[skfed] bank epoch") for ln in lines)
    objectives = [float(ln.split("objective ")[1].split(",")[0]) for ln in lines]
    np.testing.assert_allclose(objectives, est.loss_curve_, atol=1e-6)
    # the bytes printed last are the label party's totals in the transcript
    # (the last line is printed before the final stop flag arrives)
    sent = sum(r["bytes"] for r in est.transcript_.summary() if r["sender"] == "bank")
    assert f"sent {sent / 1e6:.1f} MB" in lines[-1]


@pytest.mark.parametrize("secure_aggregation", ["masking", "paillier", None])
def test_horizontal_divergence_points_to_scaling(secure_aggregation):
    # the horizontal family: an update beyond the protected range, or (also
    # unprotected, where nothing overflows) an objective 1000x its start,
    # raises FitDiverged, naming the party that found it
    from skfed import FederatedSGDRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(loc=100.0, size=(60, 3))
    y = X.sum(axis=1)
    est = FederatedSGDRegressor(eta0=0.5, learning_rate="constant", n_rounds=20,
                                secure_aggregation=secure_aggregation, key_size=SMALL_KEY,
                                random_state=0)
    with pytest.raises(FitDiverged, match="standardise the features") as info:
        est.fit(X, y)
    assert "FederatedSGDRegressor" in str(info.value) and "found by" in str(info.value)
    # the same data standardised (and the target centred) fits
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    ok = FederatedSGDRegressor(secure_aggregation=secure_aggregation, key_size=SMALL_KEY,
                               random_state=0).fit(Xs, y - y.mean())
    assert ok.score(Xs, y - y.mean()) > 0.8  # a diverged model scores far below 0


def test_time_left_follows_the_shrinking_decrease():
    from skfed.vertical._report import EpochReport

    report = EpochReport("guest", max_iter=50, tol=1e-4, verbose=0)
    ctx = SimpleNamespace(bytes_sent=0, bytes_received=0)
    for f in [1.0, 0.5]:
        report.update(len(report.objectives) + 1, f, ctx)
    assert report.epochs_left() == (48, True)       # too early: only max_iter bounds it
    report.update(3, 0.45, ctx)                      # decreases 0.5, 0.05: rate 0.1
    assert report.epochs_left() == (3, False)        # 0.05 -> 5e-3, 5e-4, 5e-5 <= tol
    report.update(4, 0.46, ctx)                      # the objective rose: no estimate
    assert report.epochs_left() == (46, True)
