"""Horizontal FL cost against centralised SGD, measured in the same run.

50,000 x 50 synthetic 3-class data, 5 clients, 10 rounds of FedAvg with
pairwise-mask secure aggregation, against scikit-learn's SGDClassifier for 10
epochs on the pooled data. Prints the time ratio and the accuracy gap.
Targets: at most 2x the centralised time, within 1 accuracy point.

``--dropout`` adds the cost of dropout-tolerant masking (``min_clients``, the
Bonawitz et al. recovery with Shamir shares) against today's masking and the
centralised fit, at 5, 20 and 50 clients (``--clients``), with no client
dropping and with one client dropping in round 3. Target: the 5-client
dropout-tolerant fit within 2x the centralised time.

    python benchmarks/bench_horizontal.py [--quick] [--paillier] [--dropout]
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
from skfed.runtime import LocalRuntime

try:
    from _machine import load
except ImportError:  # run from elsewhere than benchmarks/
    from benchmarks._machine import load


def _median_time(fn, repeats, cpu=False):
    times, cpus, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    if cpu:
        # CPU seconds of every thread of this process: on a loaded, shared
        # machine less noisy than wall time (every party runs in this process).
        return float(np.median(times)), float(np.median(cpus)), result
    return float(np.median(times)), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 50,000")
    parser.add_argument("--paillier", action="store_true",
                        help="also time Paillier aggregation (2048-bit keys)")
    parser.add_argument("--dropout", action="store_true",
                        help="also time dropout-tolerant masking at several client counts")
    parser.add_argument("--clients", type=int, nargs="+", default=[5, 20, 50])
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
    print(load())
    if args.dropout:
        _dropout_table(X_tr, y_tr, X_te, y_te, params, t_cen, cen.score(X_te, y_te), args)


def _dropout_table(X_tr, y_tr, X_te, y_te, params, t_cen, acc_cen, args):
    """Dropout-tolerant masking against today's masking, by number of clients."""
    import logging

    logging.getLogger("skfed.horizontal").setLevel(logging.ERROR)  # the injected drops
    c_cen = _median_time(lambda: SGDClassifier(max_iter=10, tol=None, **params).fit(
        X_tr, y_tr), args.repeats, cpu=True)[1]
    print(f"\ndropout tolerance: 10 rounds, threshold min_clients = n // 2 + 1; "
          f"centralised {t_cen:.3f} s wall, {c_cen:.3f} s CPU; medians of {args.repeats} runs")
    print(f"{'clients':>7} {'setting':<27} {'time s':>7} {'x central':>9} {'x masking':>9} "
          f"{'CPU s':>6} {'x central':>9} {'x masking':>9} {'accuracy':>8} {'MB sent':>8}")
    for n in args.clients:
        topo = HorizontalTopology(n_parties=n, random_state=0)
        t_mask = c_mask = None
        drop = {f"client{n // 2}": ("before_upload", 4)}  # round 3
        for name, kw, drops in [
            ("masking (today)", {}, None),
            ("dropout-tolerant", {"min_clients": n // 2 + 1}, None),
            ("dropout-tolerant, 1 drops", {"min_clients": n // 2 + 1}, drop),
        ]:
            t, c, fed = _median_time(lambda k=kw, d=drops, tp=topo: FederatedSGDClassifier(
                topology=tp, n_rounds=10, runtime=LocalRuntime(drops=d), **params,
                **k).fit(X_tr, y_tr), args.repeats, cpu=True)
            t_mask = t if t_mask is None else t_mask
            c_mask = c if c_mask is None else c_mask
            print(f"{n:>7} {name:<27} {t:>7.3f} {t / t_cen:>9.2f} {t / t_mask:>9.2f} "
                  f"{c:>6.2f} {c / c_cen:>9.2f} {c / c_mask:>9.2f} "
                  f"{fed.score(X_te, y_te):>8.4f} {fed.transcript_.total_bytes() / 1e6:>8.3f}",
                  flush=True)
    print(f"(centralised accuracy {acc_cen:.4f}) {load()}")


if __name__ == "__main__":
    main()
