"""A client process killed with SIGKILL mid-training; the federation finishes without it.

Real processes (``python -m skfed party`` and a deployment file, mutual TLS),
as in :mod:`tests.test_grpc`. The server records at which step the dead client
stopped answering; the in-process run with that drop injected must give the
same model.
"""


import numpy as np
import pytest
from sklearn.datasets import make_regression

from skfed import HorizontalTopology
from skfed.horizontal import FederatedSGDRegressor
from skfed.runtime import LocalRuntime
from skfed.runtime.certs import make_test_pki

from .test_grpc import _load, _write_config, _write_csv, run_and_kill

CLIENTS = [f"client{i}" for i in range(5)]
VICTIM = "client3"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"), ["server", *CLIENTS])


@pytest.mark.slow
def test_sigkilled_client_leaves_the_others_to_finish(pki, tmp_path):
    X, y = make_regression(n_samples=400, n_features=4, noise=1.0, random_state=0)
    site = np.asarray(CLIENTS)[np.random.RandomState(0).randint(0, 5, size=len(y))]
    header = ["f0", "f1", "f2", "f3", "y"]
    for c in CLIENTS:
        rows = site == c
        _write_csv(tmp_path / f"{c}.csv", header, [*X[rows].T, y[rows]])
    # Enough rounds that the kill surely lands mid-training; the server
    # prints a line per round, which tells when training is under way.
    params = {"n_rounds": 30, "random_state": 3, "min_clients": 3, "verbose": 1}
    config = _write_config(tmp_path / "federation.toml", "FederatedSGDRegressor", params,
                           {"target": "y"}, {"server": {}, **{c: {} for c in CLIENTS}}, pki)
    run_and_kill(config, tmp_path, CLIENTS, VICTIM, 'round 3/')

    server = _load(tmp_path, "server")
    assert server["n_iter_"] == 30
    (drop,) = server["dropouts_"]
    assert drop["client"] == VICTIM and drop["sum"] >= 4     # after round 3 began
    # What an operator sees: the server names the client and the round.
    text = (tmp_path / "server.log").read_text()
    assert f"{VICTIM} dropped out (round {drop['sum'] - 1}" in text

    import pandas as pd

    df = pd.DataFrame(X, columns=header[:4]).assign(site=site)
    ref = FederatedSGDRegressor(
        topology=HorizontalTopology(partition="site"),
        runtime=LocalRuntime(drops={VICTIM: (drop["stage"], drop["sum"])}),
        **{k: v for k, v in params.items() if k != "verbose"}).fit(df, y)
    assert ref.dropouts_ == [drop]
    for party in ["server", *[c for c in CLIENTS if c != VICTIM]]:
        got = _load(tmp_path, party)
        np.testing.assert_allclose(got["coef_"], ref.coef_, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["intercept_"], ref.intercept_, rtol=1e-12, atol=1e-12)
        assert got["n_iter_"] == ref.n_iter_
    assert not (tmp_path / f"{VICTIM}.json").exists()
