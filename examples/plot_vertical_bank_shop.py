"""
Vertical logistic regression: a bank and a shop align customers, then train
===========================================================================

A bank holds 10 columns of the breast-cancer data and the label, a shop holds
the other 20, for overlapping but different sets of customer IDs in different
orders. They find their shared customers by private set intersection
(:func:`skfed.align_dataframes`), then train
:class:`skfed.VerticalLogisticRegression` with 2048-bit Paillier keys, and we
compare with scikit-learn's ``LogisticRegression`` on the pooled table.
"""

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import VerticalLogisticRegression, VerticalTopology, align_dataframes

data = load_breast_cancer(as_frame=True)
X, y = data.data, data.target
rng = np.random.RandomState(0)
ids = rng.choice(10**6, size=len(X), replace=False)

# Each party knows ~90% of the customers, in its own order.
bank_rows = rng.permutation(np.flatnonzero(rng.rand(len(X)) < 0.9))
shop_rows = rng.permutation(np.flatnonzero(rng.rand(len(X)) < 0.9))
bank = X.iloc[bank_rows, :10].assign(customer=ids[bank_rows], label=y.values[bank_rows])
shop = X.iloc[shop_rows, 10:].assign(customer=ids[shop_rows])

joined, shared_ids = align_dataframes({"bank": bank, "shop": shop}, id_column="customer",
                                      random_state=0)
labels = joined.pop("label").to_numpy()
print(f"bank {len(bank)} rows, shop {len(shop)} rows, {len(joined)} shared customers")

topo = VerticalTopology({"bank": list(X.columns[:10]), "shop": list(X.columns[10:])},
                        label_party="bank")
X_tr, X_te, y_tr, y_te = train_test_split(joined, labels, test_size=0.3, stratify=labels,
                                          random_state=0)
fed = make_pipeline(StandardScaler(), VerticalLogisticRegression(
    topo, random_state=0))
fed.set_output(transform="pandas")  # keep the column names the topology refers to
fed.fit(X_tr, y_tr)
cen = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_tr, y_tr)

clf = fed[-1]
print(f"federated:   accuracy {fed.score(X_te, y_te):.3f}, "
      f"AUC {roc_auc_score(y_te, fed.decision_function(X_te)):.3f}")
print(f"centralised: accuracy {cen.score(X_te, y_te):.3f}, "
      f"AUC {roc_auc_score(y_te, cen.decision_function(X_te)):.3f}")
print("each party's coefficients:",
      {p: np.round(c[0, :3], 3).tolist() + ["..."] for p, c in clf.coef_by_party_.items()})
print(pd.DataFrame(clf.transcript_.summary()).to_string(index=False))
