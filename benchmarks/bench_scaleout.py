"""Vertical epoch time when each party spreads its encryption over a dask cluster.

Usage::

    python benchmarks/bench_scaleout.py            # 2048-bit keys, N=2,000
    python benchmarks/bench_scaleout.py --quick    # 1024-bit keys, N=1,000

One party per thread (``GrpcRuntime`` on loopback, plaintext transport: the
transport is not what is measured here), each inside
``joblib.parallel_backend("dask")`` connected to a
``dask.distributed.LocalCluster`` of 1 and then 2 single-threaded worker
processes, ``n_jobs=-1``: the Paillier engine's chunks (encryption,
``X^T [[d]]``, decryption) run on the cluster. The baseline is the same run
with ``n_jobs=1`` and no cluster, in the same script.

Seconds per epoch are ``(fit(max_iter=3) - fit(max_iter=1)) / 2`` at the
guest (key generation and worker warm-up excluded). This machine has 2
cores shared with other users, so 2 workers can at best halve the time; a
party with a real cluster adds workers the same way (``Client("scheduler:8786")``).
"""

import argparse
import os
import sys
import threading
import time

import joblib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.preprocessing import scale  # noqa: E402

from skfed import VerticalLogisticRegression, VerticalTopology  # noqa: E402
from skfed.runtime.grpc import GrpcRuntime, free_local_ports  # noqa: E402

PARTIES = ("arbiter", "guest", "host")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import load  # noqa: E402


def fit_parties(X, y, topo, params, use_dask):
    """Fit with one thread per party; returns the guest's fit seconds."""
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(PARTIES, free_local_ports(3))}
    data = {"arbiter": (None, None), "guest": (X[:, :10], y), "host": (X[:, 10:], None)}
    seconds, errors = {}, {}

    def party(name):
        est = VerticalLogisticRegression(
            topo, **params, runtime=GrpcRuntime(name, addresses, insecure=True))
        try:
            with est.runtime:
                # joblib's backend is per thread: each party enters it itself,
                # as each party's own process would.
                ctx = joblib.parallel_backend("dask") if use_dask else _null()
                with ctx:
                    t = time.perf_counter()
                    est.fit(*data[name])
                    seconds[name] = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - reported below
            errors[name] = exc

    threads = [threading.Thread(target=party, args=(p,)) for p in PARTIES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"a party failed: {errors}")
    return seconds["guest"]


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def per_epoch(X, y, topo, params, use_dask):
    t1 = fit_parties(X, y, topo, dict(params, max_iter=1), use_dask)
    t3 = fit_parties(X, y, topo, dict(params, max_iter=3), use_dask)
    return (t3 - t1) / 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    bits, N = (1024, 1000) if args.quick else (2048, 2000)
    os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1" if bits < 2048 else "0")
    from distributed import Client, LocalCluster

    X, y = make_classification(n_samples=N, n_features=20, n_informative=10, random_state=0)
    X = scale(X)
    topo = VerticalTopology({"guest": list(range(10)), "host": list(range(10, 20))},
                            label_party="guest")
    params = {"tol": None, "key_size": bits, "random_state": 0}
    print(f"skfed scale-out benchmark: vertical logistic regression, N={N:,}, 10 + 10 "
          f"features, {bits}-bit keys, {os.cpu_count()} cores, {load()}")
    base = per_epoch(X, y, topo, dict(params, n_jobs=1), use_dask=False)
    print(f"   no cluster, n_jobs=1:          {base:7.2f} s per epoch")
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster):
            t = per_epoch(X, y, topo, dict(params, n_jobs=-1), use_dask=True)
        print(f"   dask LocalCluster, {workers} worker(s): {t:7.2f} s per epoch "
              f"({base / t:.2f}x the no-cluster speed), {load()}")


if __name__ == "__main__":
    main()
