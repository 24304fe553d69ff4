"""One party per process, with a client that never starts: with ``min_clients``
the server starts the federation with the clients that sent their set-up
(horizontal boosting and federated SGD alike); without it, or with too few
present, the fit stops with a clear error."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from skfed import (
    FederatedHistGradientBoostingClassifier,
    FederatedSGDRegressor,
    HorizontalTopology,
)
from skfed.horizontal.dropout import TooFewClients
from skfed.runtime import LocalRuntime
from skfed.runtime.grpc import GrpcRuntime, PartyUnreachable, free_local_ports

from .test_horizontal_boosting import as_reference
from .threads import run_parties

CLIENTS = ["north", "south", "east"]
NAMES = ["server", *CLIENTS]
ABSENT = "east"


def _data(task):
    if task == "boosting":
        X, y = make_classification(n_samples=150, n_features=4, n_informative=3,
                                   n_redundant=0, random_state=1)
    else:
        X, y = make_regression(n_samples=150, n_features=4, noise=1.0, random_state=1)
    return X, y, np.asarray(CLIENTS)[np.arange(150) % 3]


def _estimator(task, **kw):
    topo = HorizontalTopology(n_parties=3, party_names=CLIENTS)
    if task == "boosting":
        return FederatedHistGradientBoostingClassifier(
            topology=topo, max_iter=3, max_leaf_nodes=4, min_samples_leaf=5, max_bins=16,
            early_stopping=False, random_state=0, **kw)
    return FederatedSGDRegressor(topology=topo, n_rounds=4, random_state=0, **kw)


def _run_without(task, absent, **kw):
    """Every party but ``absent`` runs, in threads of this process, over gRPC."""
    X, y, site = _data(task)
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(NAMES, free_local_ports(4))}
    ests = {p: _estimator(task, runtime=GrpcRuntime(p, addresses, insecure=True, timeout=60,
                                                    connect_timeout=1.5), **kw)
            for p in NAMES if p not in absent}

    def party(p):
        return ests[p].fit(None) if p == "server" else ests[p].fit(X[site == p], y[site == p])

    _, errors = run_parties(party, list(ests), [e.runtime for e in ests.values()])
    return ests, errors


def _same_model(task, a, b):
    if task == "boosting":
        assert as_reference(a) == as_reference(b)
    else:
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("secure_aggregation", ["masking", None])
@pytest.mark.parametrize("task", ["boosting", "sgd"])
def test_a_client_that_never_starts_is_left_out_with_min_clients(task, secure_aggregation):
    ests, errors = _run_without(task, {ABSENT}, min_clients=2,
                                secure_aggregation=secure_aggregation)
    assert not errors, errors
    (drop,) = ests["server"].dropouts_
    assert drop["client"] == ABSENT and drop["sum"] == 1
    # The in-process fit in which it drops before its first upload: the same model.
    X, y, site = _data(task)
    ref = _estimator(task, min_clients=2, secure_aggregation=secure_aggregation,
                     runtime=LocalRuntime(drops={ABSENT: (drop["stage"], 1)}))
    ref.fit(X, y, parties=site)
    assert ref.dropouts_ == [drop]
    for p in ("server", "north", "south"):
        _same_model(task, ests[p], ref)
    # (the absent client's rows would have changed it)
    full = _estimator(task, min_clients=2, secure_aggregation=secure_aggregation)
    with pytest.raises(AssertionError):
        _same_model(task, full.fit(X, y, parties=site), ref)


@pytest.mark.parametrize("task", ["boosting", "sgd"])
def test_without_min_clients_every_client_must_start(task):
    _, errors = _run_without(task, {ABSENT})
    assert isinstance(errors.get("server"), PartyUnreachable), errors
    assert ABSENT in str(errors["server"])


def test_too_few_present_clients_stop_the_federation():
    # (the set-up exchange is the same function for every horizontal estimator)
    _, errors = _run_without("boosting", {"south", ABSENT}, min_clients=2,
                             secure_aggregation=None)
    err = errors.get("server")
    assert isinstance(getattr(err, "error", err), TooFewClients), errors
    assert "1 of 3 clients sent their set-up" in str(err)
