"""A party spreads its encrypted arithmetic over a dask cluster through joblib.

The Paillier engine dispatches its chunks with joblib, so inside
``joblib.parallel_backend("dask")`` they run on the cluster's workers. dask
is imported unconditionally: CI installs the ``test`` extra.
"""

import threading

import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from sklearn.datasets import make_regression

from skfed import VerticalLinearRegression, VerticalTopology
from skfed.crypto import paillier
from skfed.runtime.grpc import GrpcRuntime, free_local_ports


@pytest.fixture(scope="module")
def dask_client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture
def always_parallel(monkeypatch):
    # Small test arrays would otherwise stay in-process (below the work threshold).
    monkeypatch.setattr(paillier, "PARALLEL_MIN_SECONDS", 0.0)


def test_engine_runs_on_dask_workers(dask_client, always_parallel):
    pk, sk = paillier.generate_keypair(512)
    rng = np.random.RandomState(0)
    X, v = rng.randn(30, 4), rng.randn(30)
    serial = paillier.EncryptedArray.encrypt(pk, v).rmatmul(X.T).decrypt(sk)
    with get_task_stream(dask_client) as tasks, joblib.parallel_backend("dask"):
        enc = paillier.EncryptedArray.encrypt(pk, v, n_jobs=-1)
        out = enc.rmatmul(X.T, n_jobs=-1).decrypt(sk, n_jobs=-1)
    np.testing.assert_array_equal(out, serial)
    workers = {t["worker"] for t in tasks.data}
    assert len(tasks.data) >= 3 and len(workers) == 2


def test_party_on_a_cluster_gets_the_same_model(dask_client, always_parallel):
    """The shop of a deployment encrypts on the cluster; nothing else changes."""
    X, y = make_regression(n_samples=40, n_features=4, noise=1.0, random_state=0)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    params = dict(topology=topo, learning_rate=0.5, max_iter=3, key_size=512, n_jobs=-1,
                  random_state=0)
    ref = VerticalLinearRegression(**params).fit(X, y)
    names = ["arbiter", "bank", "shop"]
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(3))}
    data = {"arbiter": (None, None), "bank": (X[:, :2], y), "shop": (X[:, 2:], None)}
    fitted, errors, tasks = {}, {}, []

    def party(name):
        est = VerticalLinearRegression(
            **params, runtime=GrpcRuntime(name, addresses, insecure=True, timeout=60))
        try:
            with est.runtime:
                if name == "shop":  # the backend applies to the thread that runs the party
                    with get_task_stream(dask_client) as ts, joblib.parallel_backend("dask"):
                        fitted[name] = est.fit(*data[name])
                    tasks.extend(ts.data)
                else:
                    fitted[name] = est.fit(*data[name])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors[name] = exc

    threads = [threading.Thread(target=party, args=(p,)) for p in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    np.testing.assert_array_equal(fitted["shop"].coef_by_party_["shop"],
                                  ref.coef_by_party_["shop"])
    np.testing.assert_array_equal(fitted["bank"].coef_by_party_["bank"],
                                  ref.coef_by_party_["bank"])
    assert len(tasks) > 0
