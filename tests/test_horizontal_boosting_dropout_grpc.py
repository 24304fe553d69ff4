"""Horizontal boosting in party mode: a client process killed with SIGKILL
mid-fit; the federation finishes without it.

Real processes (``python -m skfed party`` and a deployment file, mutual TLS),
as :mod:`tests.test_dropout_grpc` does for federated SGD. The server records
at which secure sum and step the dead client stopped answering; the
in-process fit with that drop injected must give the same trees.
"""


import numpy as np
import pytest
from sklearn.datasets import make_classification

from skfed import FederatedHistGradientBoostingClassifier
from skfed.runtime import LocalRuntime
from skfed.runtime.certs import make_test_pki

from .leaks import assert_no_leaks
from .test_grpc import _write_config, _write_csv, run_and_kill
from .test_horizontal_boosting import as_reference

CLIENTS = [f"client{i}" for i in range(5)]
VICTIM = "client3"
PARAMS = {"max_iter": 25, "max_leaf_nodes": 8, "min_samples_leaf": 5, "max_bins": 32,
          "early_stopping": False, "random_state": 3, "min_clients": 3}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"), ["server", *CLIENTS])


@pytest.mark.slow
def test_sigkilled_client_leaves_the_others_to_finish_the_trees(pki, tmp_path):
    import skfed

    X, y = make_classification(n_samples=500, n_features=5, n_informative=3,
                               n_redundant=0, random_state=0)
    X[::17, 2] = np.nan
    site = np.asarray(CLIENTS)[np.random.RandomState(0).randint(0, 5, size=len(y))]
    header = ["f0", "f1", "f2", "f3", "f4", "y"]
    for c in CLIENTS:
        rows = site == c
        _write_csv(tmp_path / f"{c}.csv", header, [*X[rows].T, y[rows]])
    # The server prints a line per iteration, which tells when training is under way.
    config = _write_config(tmp_path / "federation.toml",
                           "FederatedHistGradientBoostingClassifier",
                           dict(PARAMS, verbose=1), {"target": "y"},
                           {"server": {}, **{c: {} for c in CLIENTS}}, pki)
    run_and_kill(config, tmp_path, CLIENTS, VICTIM, 'iteration 3/')

    server = skfed.load(tmp_path / "server.json")
    assert server.n_iter_ == PARAMS["max_iter"]
    (drop,) = server.dropouts_
    assert drop["client"] == VICTIM
    text = (tmp_path / "server.log").read_text()
    assert f"{VICTIM} dropped out (round {drop['sum'] - 1}" in text
    # The in-process fit with the same drop: the same trees, at every survivor.
    ref = FederatedHistGradientBoostingClassifier(
        runtime=LocalRuntime(drops={VICTIM: (drop["stage"], drop["sum"])}),
        **PARAMS).fit(X, y, parties=site)
    assert ref.dropouts_ == [drop]
    # the drop mattered: without it the trees differ (the test can fail)
    full = FederatedHistGradientBoostingClassifier(**PARAMS).fit(X, y, parties=site)
    assert as_reference(full) != as_reference(ref)
    for party in ["server", *[c for c in CLIENTS if c != VICTIM]]:
        got = skfed.load(tmp_path / f"{party}.json")
        assert as_reference(got) == as_reference(ref), party
        np.testing.assert_array_equal(got.predict_proba(X), ref.predict_proba(X))
    assert not (tmp_path / f"{VICTIM}.json").exists()


# -- the same path, fast: parties in threads, one vanishing at a chosen step ---------------

def _vanish_at(monkeypatch, runtime, stage, n):
    """Make ``runtime``'s party vanish the ``n``-th time its role reaches ``stage``:
    its gRPC server stops and it tells nobody (as a killed process would), so its
    peers find it unreachable after ``connect_timeout``."""
    from skfed.runtime import grpc as grpc_runtime

    hits = {}

    def checkpoint(ctx, where):
        if ctx._rt is not runtime:
            return
        hits[where] = hits.get(where, 0) + 1
        if (where, hits[where]) == (stage, n):
            runtime.close(grace=0)
            raise _Vanished()

    monkeypatch.setattr(grpc_runtime._Context, "checkpoint", checkpoint)
    monkeypatch.setattr(runtime, "_broadcast_abort", lambda *a, **k: None)


class _Vanished(Exception):
    pass


@pytest.mark.parametrize("stage, n, restart", [("before_upload", 3, "setup_restarts"),
                                               ("after_upload", 2, "setup_restarts"),
                                               ("before_upload", 11, "restarts")])
def test_a_client_vanishing_over_grpc_equals_the_in_process_drop(monkeypatch, tmp_path,
                                                                  stage, n, restart):
    """Sums 2-3: bin counts of the set-up (restarted over the survivors);
    sum 11: the second histogram of iteration 2 (regrown over the survivors)."""
    from skfed import HorizontalTopology
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    from .threads import run_parties

    clients = ["north", "south", "east"]
    names = ["server", *clients]
    pki = make_test_pki(tmp_path, names)
    X, y = make_classification(n_samples=150, n_features=4, n_informative=3,
                               n_redundant=0, random_state=1)
    site = np.asarray(clients)[np.arange(150) % 3]
    params = dict(topology=HorizontalTopology(n_parties=3, party_names=clients),
                  max_iter=3, max_leaf_nodes=4, min_samples_leaf=5, max_bins=16,
                  early_stopping=False, random_state=0, min_clients=2)
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(4))}
    ests = {p: FederatedHistGradientBoostingClassifier(**params, runtime=GrpcRuntime(
        p, addresses, certfile=pki[p]["certfile"], keyfile=pki[p]["keyfile"],
        cafile=pki["cafile"], timeout=60, connect_timeout=1.5, keep_payloads=True))
        for p in names}
    _vanish_at(monkeypatch, ests["east"].runtime, stage, n)

    def party(p):
        return ests[p].fit(None) if p == "server" else ests[p].fit(X[site == p], y[site == p])

    _, errors = run_parties(party, names, [e.runtime for e in ests.values()])
    assert set(errors) == {"east"} and isinstance(errors["east"].error, _Vanished), errors
    ref = FederatedHistGradientBoostingClassifier(
        **params, runtime=LocalRuntime(drops={"east": (stage, n)})).fit(X, y, parties=site)
    assert [d["client"] for d in ref.dropouts_] == ["east"]
    assert ests["server"].dropouts_ == ref.dropouts_
    for p in ("server", "north", "south"):
        assert as_reference(ests[p]) == as_reference(ref), p
    assert ests["server"].n_rounds_ == ref.n_rounds_
    assert ref.n_rounds_[restart] == 1
    # the drop mattered (the test can fail)
    full = FederatedHistGradientBoostingClassifier(**params).fit(X, y, parties=site)
    assert as_reference(full) != as_reference(ref)
    # What reached the server over the network: nothing of any client's rows.
    secrets = {f"{c} rows": X[site == c] for c in clients}
    secrets.update({f"{c} labels": y[site == c].astype(float) for c in clients})
    transcript = ests["server"].transcript_
    assert all(m.payload is not None for m in transcript)      # every payload searched
    assert_no_leaks(transcript, secrets)
