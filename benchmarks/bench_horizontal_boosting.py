"""Horizontal histogram boosting against scikit-learn's, measured in the same run.

Speed: 50,000 x 50 synthetic 3-class data, 5 clients, pairwise-mask secure
aggregation, 50 iterations (150 trees) with ``max_leaf_nodes=31``, against
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` with the same
hyper-parameters on the pooled rows. Prints both times, the ratio (target:
at most 5x), the secure sums (rounds) and the bytes a client sent.

Accuracy (``--accuracy``): mean test score of the federated model and of
scikit-learn's on the pooled rows over ``--seeds`` random 75/25 splits, same
hyper-parameters (100 iterations, no early stopping), 5 clients IID (and
Dirichlet(0.5) label skew on the first split). Classification (accuracy):
breast cancer and digits (scikit-learn), FATE's vehicle_scale and
default_credit homo files (``<repo>/../shared/data/fate``, every file pooled;
default_credit's duplicated rows dropped). Regression (R2): diabetes,
Friedman #1 and FATE's motor and student hetero files (their columns joined
on the id). One split's test set of a few hundred rows moves the accuracy by
0.3-0.5 points per row: the mean over splits is the figure.

    python benchmarks/bench_horizontal_boosting.py [--quick] [--accuracy] [--only-accuracy]
        [--only NAME] [--seeds 5] [--max-bins 255]
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
    make_friedman1,
)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from skfed import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
    HorizontalTopology,
)

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


def _fate_table(files, target="y", id_columns=("id", "idx")):
    """FATE files pooled: rows stacked (homo) or columns joined on the id (hetero)."""
    import pandas as pd

    if not os.path.isdir(DATA):
        raise SystemExit(f"the accuracy tables need FATE's data in {os.path.abspath(DATA)} "
                         "(shared/data/fate beside the repository); it is absent")
    frames = [pd.read_csv(os.path.join(DATA, f)) for f in files]
    if all(set(f.columns) == set(frames[0].columns) for f in frames):
        table = pd.concat(frames)
    else:
        key = next(c for c in id_columns if c in frames[0].columns)
        table = frames[0]
        for i, f in enumerate(frames[1:]):
            table = table.merge(f, on=key, suffixes=("", f"_h{i}"))
    cols = [c for c in table.columns if c not in (*id_columns, target)]
    return table[cols].to_numpy(float), table[target].to_numpy()


def classification_sets():
    yield "breast cancer", load_breast_cancer(return_X_y=True)
    yield "digits", load_digits(return_X_y=True)
    # The homo test files repeat training rows (vehicle_scale) or are one fixed
    # split (default_credit): every file is pooled and split per seed instead.
    yield "FATE vehicle_scale", _fate_table([
        "vehicle_scale_homo_guest.csv", "vehicle_scale_homo_host.csv"])
    X, y = _fate_table(["default_credit_homo_guest.csv", "default_credit_homo_host_1.csv",
                        "default_credit_homo_host_2.csv", "default_credit_homo_test.csv"])
    # The test file shares ids with the training files: keep distinct rows only.
    _, first = np.unique(np.column_stack([X, y]), axis=0, return_index=True)
    first.sort()
    yield "FATE default_credit", (X[first], y[first])


def regression_sets():
    yield "diabetes", load_diabetes(return_X_y=True)
    yield "friedman1 (2,000)", make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    yield "FATE motor", _fate_table(["motor_hetero_guest.csv", "motor_hetero_host.csv"],
                                    target="motor_speed")
    yield "FATE student", _fate_table(["student_hetero_guest.csv",
                                       "student_hetero_host.csv"])


def _table(kind, sets, seeds, only):
    """Mean test score of scikit-learn's and the federation's boosting over
    ``seeds`` random 75/25 splits (stratified for classification), the mean
    gap and its spread; Dir(0.5) label skew on the first seed (an exact
    federation gives the same model whatever the partition)."""
    params = dict(max_iter=100, early_stopping=False)
    classify = kind == "classification"
    Sk = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
    Fed = FederatedHistGradientBoostingClassifier if classify else \
        FederatedHistGradientBoostingRegressor
    unit, scale, target = ("accuracy", 100, "0.5 points") if classify else ("R2", 1, "0.005")
    d = 2 if classify else 4  # decimals of the gaps: points, or R2
    print(f"{kind}: test {unit}, 100 iterations, no early stopping, 5 clients, masking, "
          f"mean of {len(seeds)} random splits (target: |gap| <= {target})")
    print(f"  {'data set':22s} {'rows':>6s} {'sklearn':>8s} {'IID':>8s} {'gap':>8s} "
          f"{'gaps min..max':>17s} {'Dir(0.5)':>8s} {'fed s':>6s} {'skl s':>6s}")
    for name, (X, y) in sets:
        if only and only not in name:
            continue
        ref, fed, dirichlet, t_fed, t_skl = [], [], None, 0.0, 0.0
        for seed in seeds:
            Xtr, Xte, ytr, yte = train_test_split(
                X, y, test_size=0.25, random_state=seed, stratify=y if classify else None)
            start = time.perf_counter()
            with threadpool_limits(1):  # OpenMP threads are erratic on a loaded machine
                ref.append(Sk(**params).fit(Xtr, ytr).score(Xte, yte))
            t_skl += time.perf_counter() - start
            start = time.perf_counter()
            topo = HorizontalTopology(n_parties=5, random_state=seed)
            fed.append(Fed(topo, **params).fit(Xtr, ytr).score(Xte, yte))
            t_fed += time.perf_counter() - start
            if dirichlet is None and classify:
                topo = HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.5,
                                          random_state=seed)
                dirichlet = Fed(topo, **params).fit(Xtr, ytr).score(Xte, yte) - ref[0]
        gaps = scale * (np.array(fed) - np.array(ref))
        skew = "" if dirichlet is None else f"{scale * dirichlet:+8.{d}f}"
        print(f"  {name:22s} {len(y):6d} {np.mean(ref):8.4f} {np.mean(fed):8.4f} "
              f"{np.mean(gaps):+8.{d}f} {gaps.min():+8.{d}f}..{gaps.max():+7.{d}f} {skew:>8s} "
              f"{t_fed / len(seeds):6.1f} {t_skl / len(seeds):6.1f}")
    print(f"  {load()}")


def accuracy(only=None, n_seeds=5):
    seeds = range(n_seeds)
    _table("classification", classification_sets(), seeds, only)
    _table("regression", regression_sets(), seeds, only)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="10,000 rows and 10 iterations instead of 50,000 and 50")
    parser.add_argument("--accuracy", action="store_true", help="also the accuracy table")
    parser.add_argument("--only-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", help="accuracy rows whose data set name contains this")
    parser.add_argument("--seeds", type=int, default=5,
                        help="random train/test splits per accuracy row")
    parser.add_argument("--max-bins", type=int, default=255,
                        help="max_bins of both sides in the speed run (bytes scale with it)")
    args = parser.parse_args()
    if not args.only_accuracy:
        speed(10_000 if args.quick else 50_000, 10 if args.quick else 50, args.repeats,
              args.max_bins)
    if args.accuracy or args.only_accuracy:
        accuracy(args.only, args.seeds)


if __name__ == "__main__":
    main()
