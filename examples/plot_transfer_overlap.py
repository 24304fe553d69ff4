"""
AUC against overlap size: federated transfer learning vs "B alone"
==================================================================

Binary digits; the source holds the top half of each image and the labels,
the target the bottom half. For growing overlaps we compare the target's AUC
on its held-out rows for FTL and for a logistic regression trained only on the
labelled overlap rows ("B alone"). Runs unencrypted (the same messages; see
``docs/transfer.rst`` for the encrypted cost). The estimator keeps its
default parameters: the size of its random-feature layer follows from the
overlap, so that no party's gradient determines the other's representations
(see "What each side learns" in ``docs/transfer.rst``).
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from skfed import FederatedTransferClassifier
from skfed.transfer._demo import transfer_split

try:
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - optional dependency
    raise SystemExit("this example needs matplotlib: pip install matplotlib") from None

X, y = load_digits(return_X_y=True)
X, y = StandardScaler().fit_transform(X), (y >= 5).astype(int)
cut = X.shape[1] // 2
overlaps, seeds = [50, 100, 200, 400], range(3)
ftl_auc, b_auc = [], []
for n_ov in overlaps:
    f, b = [], []
    for seed in seeds:
        X_fed, topo, b_only, overlap = transfer_split(X, y, n_ov, seed=seed)
        rng = np.random.RandomState(seed)
        test = np.sort(rng.choice(b_only, size=len(b_only) // 2, replace=False))
        train = np.setdiff1d(np.arange(len(X)), test)
        y_fit = y.copy()
        y_fit[b_only] = -1
        clf = FederatedTransferClassifier(topo, encryption=None,
                                          random_state=seed).fit(X_fed[train], y_fit[train])
        f.append(roc_auc_score(y[test], clf.decision_function(X_fed[test])))
        lr = LogisticRegression(max_iter=1000).fit(X[overlap, cut:], y[overlap])
        b.append(roc_auc_score(y[test], lr.decision_function(X[test, cut:])))
    ftl_auc.append(np.mean(f))
    b_auc.append(np.mean(b))
    print(f"overlap {n_ov:>4}: FTL AUC {ftl_auc[-1]:.3f}   B alone {b_auc[-1]:.3f}")

plt.plot(overlaps, ftl_auc, "o-", label="federated transfer (FTL)")
plt.plot(overlaps, b_auc, "s--", label="B alone (overlap rows only)")
plt.xscale("log")
plt.xlabel("overlap rows")
plt.ylabel("AUC on the target's held-out rows")
plt.legend()
plt.title("FTL vs B alone on binary digits")
plt.show()
