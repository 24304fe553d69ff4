"""
SecureBoost on FATE's default-credit data: AUC against the number of trees
==========================================================================

A bank (FATE's *guest*: 13 columns and the default label) and a partner (the
*host*: 10 other columns) hold different columns of the same credit-card
customers, in FATE's default-credit files. They find their shared customers
by private set intersection (:func:`skfed.align_dataframes`), then train
:class:`skfed.VerticalGradientBoostingClassifier` with 2048-bit Paillier
keys. We plot the test AUC after each tree against scikit-learn's
``HistGradientBoostingClassifier`` fitted on the pooled table with the same
hyper-parameters: the curves coincide, because SecureBoost is lossless.

To run in about a minute, each party keeps a sample of its file (about 3,000
customers, 2,500 of them shared); the benchmark
``benchmarks/bench_secureboost.py`` trains on all 30,000.
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skfed import VerticalGradientBoostingClassifier, VerticalTopology, align_dataframes

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # run by sphinx-gallery from the examples folder
    HERE = Path.cwd()
DATA = HERE.parent.parent / "shared" / "data" / "fate"
if not (DATA / "default_credit_hetero_guest.csv").exists():
    sys.exit(f"FATE's default-credit files are not in {DATA}: this example needs "
             "shared/data/fate beside the repository")

guest = pd.read_csv(DATA / "default_credit_hetero_guest.csv")
host = pd.read_csv(DATA / "default_credit_hetero_host.csv")
host.columns = ["id"] + [f"h{c}" for c in host.columns[1:]]  # both files name x0..x9
rng = np.random.RandomState(0)
shared = rng.choice(guest["id"], 2500, replace=False)
only_guest = rng.choice(np.setdiff1d(guest["id"], shared), 500, replace=False)
only_host = rng.choice(np.setdiff1d(host["id"], np.r_[shared, only_guest]), 500,
                       replace=False)
bank = guest[guest["id"].isin(np.r_[shared, only_guest])].sample(frac=1, random_state=1)
partner = host[host["id"].isin(np.r_[shared, only_host])].sample(frac=1, random_state=2)

joined, ids = align_dataframes({"bank": bank, "partner": partner}, id_column="id",
                               random_state=0)
y = joined.pop("y").to_numpy()
print(f"bank {len(bank)} rows, partner {len(partner)} rows, {len(joined)} shared customers")

topo = VerticalTopology({"bank": [c for c in guest.columns if c not in ("id", "y")],
                         "partner": list(host.columns[1:])}, label_party="bank")
X_tr, X_te, y_tr, y_te = train_test_split(joined, y, test_size=0.3, stratify=y,
                                          random_state=0)
params = dict(max_iter=15, max_depth=3, learning_rate=0.3, max_bins=32, early_stopping=False)
fed = VerticalGradientBoostingClassifier(topo, n_jobs=2, **params).fit(X_tr, y_tr)
cen = HistGradientBoostingClassifier(**params).fit(X_tr, y_tr)

auc_fed = [roc_auc_score(y_te, p[:, 1]) for p in fed.staged_predict_proba(X_te)]
auc_cen = [roc_auc_score(y_te, p[:, 1]) for p in cen.staged_predict_proba(X_te)]
print(f"test AUC after {params['max_iter']} trees: SecureBoost {auc_fed[-1]:.4f}, "
      f"HistGradientBoosting {auc_cen[-1]:.4f}")
print(f"{len(fed.transcript_)} messages, {fed.transcript_.total_bytes() / 1e6:.1f} MB")
print(pd.DataFrame(fed.transcript_.summary()).to_string(index=False))

trees = np.arange(1, params["max_iter"] + 1)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(trees, auc_cen, "o-", label="HistGradientBoostingClassifier (pooled)")
ax.plot(trees, auc_fed, "x--", label="SecureBoost (bank + partner, Paillier)")
ax.set_xlabel("number of trees")
ax.set_ylabel("test AUC")
ax.set_title("Default credit: federated trees equal the pooled ones")
ax.legend()
fig.tight_layout()
plt.show()
