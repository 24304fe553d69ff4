"""
Two hospitals, their files as they come (FATE's breast_homo data)
=================================================================

FATE's horizontal benchmark ships the breast cancer data already split by
party: ``breast_homo_guest.csv`` and ``breast_homo_host.csv`` hold different
patients with the same columns (``id``, the label ``y``, features ``x0`` ...
``x29``), and ``breast_homo_test.csv`` holds patients neither has seen.

We read the files as they are, stack them, and tell the federated estimator
whose each row is with ``parties=`` (a sample-aligned fit parameter, so the
party never becomes a feature). Then we compare, on the held-out file, with
the same SGD trained on the pooled rows and with scikit-learn's default
``LogisticRegression``; and we cross-validate with
:func:`~skfed.compare_with_centralised`, which slices ``parties`` with the
folds. FATE's features are already standardised, so no scaler is needed
(see :ref:`horizontal-split-by-party` on scaling in a federation).
"""

import pathlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, SGDClassifier

from skfed import FederatedSGDClassifier, compare_with_centralised


def fate_data_dir():
    """FATE's example files sit next to the repository, in ../shared/data/fate."""
    here = pathlib.Path(__file__).resolve() if "__file__" in globals() else pathlib.Path.cwd()
    for root in (here, *here.parents):
        candidate = root.parent / "shared" / "data" / "fate"
        if (candidate / "breast_homo_guest.csv").exists():
            return candidate
    raise SystemExit("FATE's example data was not found: expected "
                     "<repository>/../shared/data/fate/breast_homo_guest.csv")


data_dir = fate_data_dir()
guest = pd.read_csv(data_dir / "breast_homo_guest.csv")
host = pd.read_csv(data_dir / "breast_homo_host.csv")
test = pd.read_csv(data_dir / "breast_homo_test.csv")
print(f"guest {guest.shape}, host {host.shape}, test {test.shape}")

# %%
# Stack the two parties' rows; ``parties`` says whose each row is.
rows = pd.concat([guest, host], ignore_index=True)
X, y = rows.drop(columns=["id", "y"]), rows["y"].to_numpy()
parties = np.repeat(["guest", "host"], [len(guest), len(host)])
X_test, y_test = test.drop(columns=["id", "y"]), test["y"].to_numpy()

params = dict(loss="log_loss", alpha=1e-3, random_state=0)
fed = FederatedSGDClassifier(n_rounds=20, secure_aggregation="masking", **params)
fed.fit(X, y, parties=parties)
print(fed.transcript_.summary())

pooled = SGDClassifier(max_iter=20, tol=None, **params).fit(X, y)
default = LogisticRegression().fit(X, y)
scores = {
    "federated SGD\n(guest + host)": fed.score(X_test, y_test),
    "same SGD,\npooled rows": pooled.score(X_test, y_test),
    "LogisticRegression()\npooled rows": default.score(X_test, y_test),
    "guest alone\n(SGD)": SGDClassifier(max_iter=20, tol=None, **params)
    .fit(X[parties == "guest"], y[parties == "guest"]).score(X_test, y_test),
}
for name, score in scores.items():
    print(f"{name.replace(chr(10), ' '):<38} test accuracy {score:.4f}")

# %%
# Cross-validation on the two files: each fold's training rows keep their party.
res = compare_with_centralised(fed, X, y, cv=5, parties=parties)
print(f"5-fold: federated {res['federated']['test_score'].mean():.4f}, "
      f"centralised twin {res['centralised']['test_score'].mean():.4f}, "
      f"scikit-learn defaults {res['sklearn_default']['test_score'].mean():.4f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(list(scores), list(scores.values()), color=["C0", "C1", "C2", "C7"])
ax.set_ylim(0.8, 1.0)
ax.set_ylabel("accuracy on breast_homo_test.csv")
ax.set_title("Two hospitals, federated vs pooled")
fig.tight_layout()
plt.show()
