"""Accuracy cost of non-IID clients on digits: IID vs Dirichlet label skew.

5 clients, FedAvg with masking, logistic loss, against SGDClassifier on the
pooled data for the same number of epochs; mean and spread over seeds.

    python benchmarks/bench_noniid.py [--quick]
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfed import FederatedSGDClassifier, HorizontalTopology


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds = range(2 if args.quick else 5)
    X, y = load_digits(return_X_y=True)
    settings = [("iid", {}), ("dirichlet alpha=1.0", {"alpha": 1.0}),
                ("dirichlet alpha=0.5", {"alpha": 0.5}), ("dirichlet alpha=0.1", {"alpha": 0.1})]
    print(f"{'split':<22} {'rounds':>6} {'federated':>10} {'centralised':>12} {'gap pts':>8}")
    for rounds in (10, 30):
        for name, kw in settings:
            fed_acc, cen_acc = [], []
            for seed in seeds:
                X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3,
                                                          random_state=seed, stratify=y)
                sc = StandardScaler().fit(X_tr)
                X_tr, X_te = sc.transform(X_tr), sc.transform(X_te)
                part = "iid" if name == "iid" else "dirichlet"
                topo = HorizontalTopology(n_parties=5, partition=part, random_state=seed, **kw)
                params = dict(loss="log_loss", alpha=1e-3, random_state=seed)
                fed = FederatedSGDClassifier(topology=topo, n_rounds=rounds,
                                             **params).fit(X_tr, y_tr)
                cen = SGDClassifier(max_iter=rounds, tol=None, **params).fit(X_tr, y_tr)
                fed_acc.append(fed.score(X_te, y_te))
                cen_acc.append(cen.score(X_te, y_te))
            gap = 100 * (np.mean(fed_acc) - np.mean(cen_acc))
            print(f"{name:<22} {rounds:>6} {np.mean(fed_acc):>10.4f} {np.mean(cen_acc):>12.4f} "
                  f"{gap:>+8.2f}")


if __name__ == "__main__":
    main()
