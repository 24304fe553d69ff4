"""Horizontal histogram boosting against scikit-learn's, measured in the same run.

Speed: 50,000 x 50 synthetic 3-class data, 5 clients, pairwise-mask secure
aggregation, 50 iterations (150 trees) with ``max_leaf_nodes=31``, against
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` with the same
hyper-parameters on the pooled rows. Prints both times, the ratio (target:
at most 5x), the secure sums (rounds) and the bytes a client sent.

Accuracy (``--accuracy``): test accuracy of the federated model and of
scikit-learn's on the pooled rows, same hyper-parameters (100 iterations, no
early stopping), 5 clients IID and Dirichlet(0.5) label skew, on breast
cancer and digits (scikit-learn) and FATE's vehicle_scale and default_credit
homo files (``<repo>/../shared/data/fate``, their train files pooled; the
default_credit test file held out, and a stratified quarter of vehicle_scale,
whose test file repeats training rows).

    python benchmarks/bench_horizontal_boosting.py [--quick] [--accuracy] [--only-accuracy]
        [--only NAME] [--max-bins 255]
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from skfed import FederatedHistGradientBoostingClassifier, HorizontalTopology

try:
    from _machine import load
except ImportError:  # run from elsewhere than benchmarks/
    from benchmarks._machine import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "fate")


def speed(n, iterations, repeats, max_bins=255):
    X, y = make_classification(n_samples=n, n_features=50, n_informative=20, n_classes=3,
                               random_state=0)
    params = dict(max_iter=iterations, max_leaf_nodes=31, early_stopping=False,
                  max_bins=max_bins)
    topo = HorizontalTopology(n_parties=5, random_state=0)
    rows = []
    for r in range(repeats):
        # Alternate the order so that a load change hits both sides alike.
        sides = ("skl", "skl1", "fed")
        for side in (sides if r % 2 == 0 else sides[::-1]):
            start = time.perf_counter()
            if side == "skl":
                HistGradientBoostingClassifier(**params).fit(X, y)
            elif side == "skl1":
                with threadpool_limits(1):
                    HistGradientBoostingClassifier(**params).fit(X, y)
            else:
                fed = FederatedHistGradientBoostingClassifier(topo, **params).fit(X, y)
            rows.append((side, time.perf_counter() - start))
    t_omp = float(np.median([t for s, t in rows if s == "skl"]))
    t_one = float(np.median([t for s, t in rows if s == "skl1"]))
    # On a loaded machine OpenMP's threads can make scikit-learn many times
    # slower than one thread: the ratio is taken against its faster run.
    t_skl = min(t_omp, t_one)
    t_fed = float(np.median([t for s, t in rows if s == "fed"]))
    sent = sum(m.nbytes for m in fed.transcript_ if m.sender == "client0")
    print(f"speed: {n:,} x 50, 3 classes, 5 clients, masking, {iterations} iterations "
          f"({3 * iterations} trees), max_leaf_nodes=31, max_bins={max_bins}, "
          f"median of {repeats}")
    print(f"  HistGradientBoostingClassifier  {t_omp:7.2f} s (OpenMP threads), "
          f"{t_one:.2f} s (one thread)")
    print(f"  federated (masked)              {t_fed:7.2f} s   ratio {t_fed / t_skl:.2f}x "
          f"(target <= 5x)")
    print(f"  secure sums: {fed.n_rounds_['binning']} for the bin edges, "
          f"{fed.n_rounds_['histograms']} for histograms "
          f"({fed.n_rounds_['histograms'] / fed.n_iter_:.1f} per iteration of 3 trees); "
          f"client0 sent {sent / 1e6:.1f} MB")
    cpu = fed.cpu_seconds_
    busiest = max(v for p, v in cpu.items() if p != "server")
    print(f"  CPU seconds per party: server {cpu['server']:.1f}, clients "
          + ", ".join(f"{v:.1f}" for p, v in sorted(cpu.items()) if p != "server")
          + f"; with a core per party (a deployment, network aside): about "
          f"{cpu['server'] + busiest:.1f} s, {(cpu['server'] + busiest) / t_skl:.2f}x")
    print(f"  server: {fed.fit_timings_}")
    print(f"  {load()}")


def _fate(name, files, test):
    import pandas as pd

    if not os.path.isdir(DATA):
        raise SystemExit(f"the accuracy table needs FATE's data in {os.path.abspath(DATA)} "
                         "(shared/data/fate beside the repository); it is absent")
    train = pd.concat([pd.read_csv(os.path.join(DATA, f)) for f in files])
    cols = [c for c in train.columns if c not in ("id", "y")]
    if test is None:
        return _split(train[cols].to_numpy(float), train["y"].to_numpy())
    te = pd.read_csv(os.path.join(DATA, test))
    return (train[cols].to_numpy(float), train["y"].to_numpy(), te[cols].to_numpy(float),
            te["y"].to_numpy())


def datasets():
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast cancer", *_split(X, y)
    X, y = load_digits(return_X_y=True)
    yield "digits", *_split(X, y)
    # vehicle_scale_homo_test.csv repeats training rows (all its ids are in the
    # guest and host files): a stratified quarter of the pooled rows is held out.
    yield "FATE vehicle_scale", *_fate("vehicle", ["vehicle_scale_homo_guest.csv",
                                                   "vehicle_scale_homo_host.csv"], None)
    yield "FATE default_credit", *_fate("credit", [
        "default_credit_homo_guest.csv", "default_credit_homo_host_1.csv",
        "default_credit_homo_host_2.csv"], "default_credit_homo_test.csv")


def _split(X, y):
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    return Xtr, ytr, Xte, yte


def accuracy(only=None):
    params = dict(max_iter=100, early_stopping=False)
    print("accuracy: test accuracy, 100 iterations, no early stopping, 5 clients, masking")
    print(f"  {'data set':22s} {'sklearn':>8s} {'IID':>8s} {'gap':>7s} {'Dir(0.5)':>9s} "
          f"{'gap':>7s} {'fed s':>7s} {'skl s':>6s}  (skl: one thread)")
    for name, Xtr, ytr, Xte, yte in datasets():
        if only and only not in name:
            continue
        start = time.perf_counter()
        with threadpool_limits(1):  # OpenMP threads are erratic on a loaded machine
            ref = HistGradientBoostingClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
        t_skl = time.perf_counter() - start
        scores = []
        start = time.perf_counter()
        for partition in ("iid", "dirichlet"):
            topo = HorizontalTopology(n_parties=5, partition=partition, alpha=0.5,
                                      random_state=0)
            fed = FederatedHistGradientBoostingClassifier(topo, **params).fit(Xtr, ytr)
            scores.append(fed.score(Xte, yte))
        t_fed = (time.perf_counter() - start) / 2
        print(f"  {name:22s} {ref:8.4f} {scores[0]:8.4f} {100 * (scores[0] - ref):+6.2f}p "
              f"{scores[1]:9.4f} {100 * (scores[1] - ref):+6.2f}p {t_fed:7.1f} {t_skl:6.1f}")
    print(f"  {load()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="10,000 rows and 10 iterations instead of 50,000 and 50")
    parser.add_argument("--accuracy", action="store_true", help="also the accuracy table")
    parser.add_argument("--only-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", help="accuracy rows whose data set name contains this")
    parser.add_argument("--max-bins", type=int, default=255,
                        help="max_bins of both sides in the speed run (bytes scale with it)")
    args = parser.parse_args()
    if not args.only_accuracy:
        speed(10_000 if args.quick else 50_000, 10 if args.quick else 50, args.repeats,
              args.max_bins)
    if args.accuracy or args.only_accuracy:
        accuracy(args.only)


if __name__ == "__main__":
    main()
