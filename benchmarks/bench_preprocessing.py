"""Federated scaling cost against scikit-learn's scalers, measured in the same run.

50,000 x 50 Gaussian data (a few NaN), split IID over 2, 5 and 20 clients
(``--clients``), pairwise-mask secure aggregation. Times
``FederatedStandardScaler.fit`` against ``StandardScaler.fit`` and
``FederatedMinMaxScaler.fit`` against ``MinMaxScaler.fit`` on the pooled rows,
reports the ratios, the bytes each client sends and the largest difference in
the statistics (the federated ones are exact; scikit-learn's carry its own
rounding). Every party runs in this process, so the federated time is the sum
of every client's work plus the protocol, not the time one client waits.

    python benchmarks/bench_preprocessing.py [--quick] [--clients 2 5 20]
"""

import argparse
import time

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skfed import FederatedMinMaxScaler, FederatedStandardScaler, HorizontalTopology

try:
    from _machine import load
except ImportError:  # run from elsewhere than benchmarks/
    from benchmarks._machine import load


def _median_time(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 50,000")
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 5, 20])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, d = (10_000 if args.quick else 50_000), 50
    rng = np.random.RandomState(0)
    X = rng.normal(3.0, 2.0, size=(n, d)) * np.logspace(-3, 3, d)
    X[rng.rand(n, d) < 0.01] = np.nan
    print(f"{n} x {d}, 1% NaN; {load()}")
    pairs = [("standard", StandardScaler, FederatedStandardScaler, ("mean_", "var_")),
             ("minmax", MinMaxScaler, FederatedMinMaxScaler, ("data_min_", "data_max_"))]
    for name, Central, Federated, attrs in pairs:
        for k in args.clients:
            topo = HorizontalTopology(n_parties=k, random_state=0)
            # the baseline is re-measured beside every federated run: the load drifts
            t_central, ref = _median_time(lambda C=Central: C().fit(X), args.repeats)
            t_fed, fed = _median_time(lambda F=Federated, t=topo: F(t).fit(X), args.repeats)
            sent = fed.transcript_.total_bytes(sender="client0")
            diff = max(float(np.max(np.abs(getattr(fed, a) - getattr(ref, a))
                                    / np.maximum(np.abs(getattr(ref, a)), 1e-300)))
                       for a in attrs)
            print(f"{name:8s} {k:3d} clients: federated {t_fed:7.3f} s, scikit-learn "
                  f"{t_central:6.3f} s, ratio {t_fed / t_central:6.1f}x; client0 sends "
                  f"{sent / 1e3:7.1f} kB; max relative difference {diff:.1e}")
    print(load())


if __name__ == "__main__":
    main()
