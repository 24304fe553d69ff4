"""
Federated gradient boosting against centralised boosting and federated SGD
==========================================================================

Five hospitals hold different patients of the breast cancer data, with a
label skew (Dirichlet(0.5) shares of each class). We train:

* :class:`~skfed.FederatedHistGradientBoostingClassifier`: histogram
  gradient boosting whose gradient histograms are summed by secure
  aggregation (the server sees only the sums);
* scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`
  on the pooled rows, with the same hyper-parameters (what the hospitals
  would get if they could pool their data);
* :class:`~skfed.FederatedSGDClassifier`, a federated logistic regression,
  and its centralised twin.

The boosting models are compared after every iteration with
``staged_predict`` (one fit each), on patients none of the hospitals holds.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import (
    FederatedHistGradientBoostingClassifier,
    FederatedSGDClassifier,
    HorizontalTopology,
)

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                    stratify=y)
hospitals = HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.5, random_state=0)
for name, rows in hospitals.split(X_train, y_train):
    print(f"{name}: {len(rows)} patients, {np.bincount(y_train[rows], minlength=2)} per class")

# %%
# Boosting: federated (masked) and centralised, the same hyper-parameters.
params = dict(max_iter=60, learning_rate=0.1, early_stopping=False)
fed = FederatedHistGradientBoostingClassifier(hospitals, **params).fit(X_train, y_train)
central = HistGradientBoostingClassifier(**params).fit(X_train, y_train)
fed_curve = [np.mean(p == y_test) for p in fed.staged_predict(X_test)]
central_curve = [np.mean(p == y_test) for p in central.staged_predict(X_test)]
sent = sum(m.nbytes for m in fed.transcript_ if m.sender != "server") / 1e6
print(f"federated boosting: accuracy {fed.score(X_test, y_test):.4f} "
      f"({fed.n_rounds_['histograms']} secure sums of histograms, clients sent {sent:.0f} MB)")
print(f"centralised boosting: accuracy {central.score(X_test, y_test):.4f}")

# %%
# Federated SGD (logistic regression) and its centralised twin, for scale.
sgd = make_pipeline(StandardScaler(), FederatedSGDClassifier(
    topology=hospitals, loss="log_loss", alpha=1e-3, n_rounds=20, random_state=0))
sgd.fit(X_train, y_train)
sgd_twin = make_pipeline(StandardScaler(), sgd[-1].make_centralised_twin()).fit(X_train, y_train)
print(f"federated SGD: accuracy {sgd.score(X_test, y_test):.4f}; "
      f"centralised SGD: {sgd_twin.score(X_test, y_test):.4f}")

# %%
# Test accuracy after each boosting iteration.
fig, ax = plt.subplots(figsize=(7, 4))
its = np.arange(1, len(fed_curve) + 1)
ax.plot(its, central_curve, label="HistGradientBoosting, pooled rows", lw=3, alpha=0.5)
ax.plot(its, fed_curve, label="federated boosting, 5 hospitals (masked)", ls="--")
ax.axhline(sgd.score(X_test, y_test), color="gray", ls=":", label="federated SGD")
ax.set_xlabel("boosting iteration")
ax.set_ylabel("test accuracy")
ax.set_ylim(0.85, 1.0)
ax.legend(loc="lower right")
ax.set_title("Breast cancer, Dirichlet(0.5) label skew over 5 clients")
fig.tight_layout()
plt.show()
