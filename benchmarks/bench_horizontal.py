"""Horizontal FL cost against centralised SGD, measured in the same run.

50,000 x 50 synthetic 3-class data, 5 clients, 10 rounds of FedAvg with
pairwise-mask secure aggregation, against scikit-learn's SGDClassifier for 10
epochs on the pooled data. Prints the time ratio and the accuracy gap.
Targets: at most 2x the centralised time, within 1 accuracy point.

    python benchmarks/bench_horizontal.py [--quick] [--paillier]
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfed import FederatedSGDClassifier, HorizontalTopology


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
    parser.add_argument("--paillier", action="store_true",
                        help="also time Paillier aggregation (2048-bit keys)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = 10_000 if args.quick else 50_000
    X, y = make_classification(n_samples=n, n_features=50, n_informative=20, n_classes=3,
                               random_state=0)
    X = StandardScaler().fit_transform(X)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    params = dict(loss="log_loss", alpha=1e-4, random_state=0)

    t_cen, cen = _median_time(
        lambda: SGDClassifier(max_iter=10, tol=None, **params).fit(X_tr, y_tr), args.repeats)
    topo = HorizontalTopology(n_parties=5, random_state=0)
    rows = [("centralised SGDClassifier, 10 epochs", t_cen, cen.score(X_te, y_te), 0)]
    modes = [("masking", {}), (None, {})]
    if args.paillier:
        os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "0")
        modes.append(("paillier", {"key_size": 2048}))
    for mode, extra in modes:
        t, fed = _median_time(lambda m=mode, e=extra: FederatedSGDClassifier(
            topology=topo, n_rounds=10, secure_aggregation=m, **params, **e).fit(X_tr, y_tr),
            args.repeats if mode != "paillier" else 1)
        rows.append((f"federated 5 clients x 10 rounds, {mode}", t, fed.score(X_te, y_te),
                     fed.transcript_.total_bytes()))

    print(f"data: {len(X_tr)} x {X.shape[1]} train, 3 classes; medians of {args.repeats} runs")
    print(f"{'setting':<44} {'time s':>8} {'x central':>9} {'accuracy':>9} {'gap pts':>8} "
          f"{'MB sent':>8}")
    for name, t, acc, nbytes in rows:
        print(f"{name:<44} {t:>8.3f} {t / t_cen:>9.2f} {acc:>9.4f} "
              f"{100 * (acc - rows[0][2]):>+8.2f} {nbytes / 1e6:>8.3f}")


if __name__ == "__main__":
    main()
