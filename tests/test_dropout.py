"""Horizontal training that survives clients dropping out (``min_clients``)."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from skfed import HorizontalTopology
from skfed.horizontal import FederatedSGDClassifier, FederatedSGDRegressor
from skfed.horizontal.dropout import STAGES, TooFewClients
from skfed.runtime import LocalRuntime, RoleError

TOPO = HorizontalTopology(n_parties=5, random_state=0)
NAMES = [f"client{i}" for i in range(5)]


def _regression(n=250):
    return make_regression(n_samples=n, n_features=4, noise=1.0, random_state=0)


def _fit(drops=None, X=None, y=None, est=FederatedSGDRegressor, **kw):
    if X is None:
        X, y = _regression()
    params = dict(topology=TOPO, n_rounds=4, random_state=0, min_clients=3)
    params.update(kw)
    return est(runtime=LocalRuntime(drops=drops), **params).fit(X, y)


def _assert_same_model(a, b):
    # Fixed-point precision: each upload rounds to 2**-33 and the survivors'
    # weights sum to 1 only up to that rounding.
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("drops", [
    {"client2": 3},                      # one client, in training round 2
    {"client0": 2, "client4": 4},        # two clients, in different rounds
    {"client1": 3, "client3": 3},        # two clients in the same round
])
def test_masked_fit_equals_fedavg_over_the_survivors(stage, drops):
    drops = {c: (stage, n) for c, n in drops.items()}
    masked = _fit(drops)
    plain = _fit(drops, secure_aggregation=None)
    _assert_same_model(masked, plain)
    assert sorted(d["client"] for d in masked.dropouts_) == sorted(drops)
    for d in masked.dropouts_:
        assert (d["stage"], d["sum"]) == drops[d["client"]]
    # the drops changed the model: survivors' average, not everyone's
    full = _fit()
    assert np.abs(masked.coef_ - full.coef_).max() > 1e-3


def test_a_drop_during_set_up_equals_a_federation_without_that_client():
    X, y = _regression()
    rng = np.random.default_rng(0)
    owner = rng.integers(0, 5, size=len(y)).astype(float)
    Xc = np.column_stack([owner, X])
    topo = HorizontalTopology(partition=0)
    # The names of a partition column come from its values; take the third client.
    parts = topo.split(X, y, party_column=owner)
    third = parts[2][0]
    with_drop = _fit({third: ("before_upload", 1)}, Xc, y, topology=topo)
    keep = owner != owner[np.asarray(parts[2][1])[0]]
    without = FederatedSGDRegressor(topology=topo, n_rounds=4, random_state=0,
                                    secure_aggregation=None).fit(Xc[keep], y[keep])
    _assert_same_model(with_drop, without)
    assert with_drop.dropouts_ == [{"client": third, "sum": 1, "stage": "before_upload"}]


@pytest.mark.parametrize("stage", STAGES)
def test_three_dropping_fails_that_round_with_a_clear_error(stage):
    drops = {c: (stage, 3) for c in ("client0", "client2", "client4")}
    with pytest.raises(RoleError, match=r"round 2: only 2 of 5 clients are left") as info:
        _fit(drops)
    assert info.value.party == "server"
    assert isinstance(info.value.error, TooFewClients)
    assert "min_clients=3" in str(info.value)


def test_no_dropout_gives_the_plain_masking_model_exactly():
    a = _fit()
    b = _fit(min_clients=None)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.dropouts_ == [] and b.dropouts_ == []


@pytest.mark.parametrize("strategy", ["fedsgd", "fedadam"])
def test_other_strategies_average_over_survivors(strategy):
    kw = dict(strategy=strategy, learning_rate="constant", eta0=0.01)
    drops = {"client1": ("after_upload", 2), "client3": ("before_upload", 4)}
    _assert_same_model(_fit(drops, **kw), _fit(drops, secure_aggregation=None, **kw))


def test_classifier_survives_a_dropout():
    X, y = make_classification(n_samples=300, n_features=5, n_classes=3, n_informative=3,
                               random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    drops = {"client3": ("before_upload", 2)}
    # A constant step: scikit-learn's "optimal" schedule starts with steps so
    # large that rounding differences of 1e-10 grow a thousandfold per round.
    kw = dict(est=FederatedSGDClassifier, loss="log_loss", learning_rate="constant",
              eta0=0.05)
    masked = _fit(drops, X, y, **kw)
    plain = _fit(drops, X, y, secure_aggregation=None, **kw)
    _assert_same_model(masked, plain)
    np.testing.assert_array_equal(masked.classes_, [0, 1, 2])
    assert masked.score(X, y) > 0.6


def test_bad_thresholds_are_refused_before_any_message():
    X, y = _regression()
    for kw, match in [
        (dict(min_clients=2), "more than half"),
        (dict(min_clients=6), "exceeds the number of clients"),
        (dict(min_clients=3, secure_aggregation="paillier", key_size=512),
         "Paillier mode does not tolerate dropouts"),
    ]:
        with pytest.raises(ValueError, match=match):
            FederatedSGDRegressor(topology=TOPO, **kw).fit(X, y)
    with pytest.raises(ValueError, match="min_clients"):
        FederatedSGDRegressor(topology=TOPO, min_clients=0).fit(X, y)
    # Without masks a lower threshold is only a statement about the average.
    FederatedSGDRegressor(topology=TOPO, min_clients=1, n_rounds=1,
                          secure_aggregation=None).fit(X, y)


def test_injected_drops_are_validated():
    X, y = _regression()
    with pytest.raises(ValueError, match="not a party of this run"):
        _fit({"nobody": ("before_upload", 1)}, X, y)
    with pytest.raises(ValueError, match=r"\(stage, n\)"):
        _fit({"client0": ("before_upload", 0)}, X, y)


def test_a_dropped_role_leaves_without_failing_the_run():
    def alice(ctx):
        ctx.checkpoint("hello")
        ctx.send("bob", "x", 1)

    def bob(ctx):
        from skfed.runtime import PartyDropped

        with pytest.raises(PartyDropped, match="dropped out"):
            ctx.recv("alice", "x")
        return "ok"

    results, transcript = LocalRuntime(drops={"alice": "hello"}).run(
        {"alice": alice, "bob": bob})
    assert results == {"bob": "ok"} and len(transcript) == 0
    results, _ = LocalRuntime(drops={"alice": ("hello", 2)}).run(
        {"alice": alice, "bob": lambda ctx: ctx.recv("alice", "x")})
    assert results == {"alice": None, "bob": 1}
