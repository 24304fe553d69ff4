"""
Vertical linear regression from two DataFrames to GridSearchCV
==============================================================

A bank and a shop hold different columns of the diabetes data for
overlapping sets of customers, keyed by a customer ID, in their own orders;
the bank also holds the target. They align their shared customers by private
set intersection (:func:`skfed.align_samples`), and a ``GridSearchCV`` tunes
the L2 penalty of :class:`skfed.VerticalLinearRegression` with 2048-bit
Paillier keys. The pipeline's ``StandardScaler`` is column-wise, so each party
scales its own columns. We compare with scikit-learn's ``Ridge`` on the
pooled table, and plot the cross-validated R^2 of both against the penalty.
"""

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import VerticalLinearRegression, VerticalTopology, align_samples

data = load_diabetes(as_frame=True)
X, y = data.data, data.target
rng = np.random.RandomState(0)
ids = np.array([f"C{i:05d}" for i in rng.choice(10**5, size=len(X), replace=False)])
bank_cols, shop_cols = ["age", "sex", "bmi", "bp"], ["s1", "s2", "s3", "s4", "s5", "s6"]

# Each organisation's own table: ~90% of the customers, in its own order.
bank_rows = rng.permutation(np.flatnonzero(rng.rand(len(X)) < 0.9))
shop_rows = rng.permutation(np.flatnonzero(rng.rand(len(X)) < 0.9))
bank = X.iloc[bank_rows][bank_cols].assign(customer=ids[bank_rows],
                                           target=y.values[bank_rows])
shop = X.iloc[shop_rows][shop_cols].assign(customer=ids[shop_rows])

# Private set intersection: each party learns only the shared IDs.
idx = align_samples({"bank": bank["customer"].to_numpy(),
                     "shop": shop["customer"].to_numpy()}, random_state=0)
bank_aligned = bank.iloc[idx["bank"]].reset_index(drop=True)
shop_aligned = shop.iloc[idx["shop"]].reset_index(drop=True)
assert (bank_aligned["customer"] == shop_aligned["customer"]).all()
joined = pd.concat([bank_aligned[bank_cols], shop_aligned[shop_cols]], axis=1)
target = bank_aligned["target"].to_numpy()
print(f"bank {len(bank)} rows, shop {len(shop)} rows, {len(joined)} shared customers")

topo = VerticalTopology({"bank": bank_cols, "shop": shop_cols}, label_party="bank")
X_tr, X_te, y_tr, y_te = train_test_split(joined, target, test_size=0.25, random_state=0)
model = make_pipeline(StandardScaler(), VerticalLinearRegression(
    topo, random_state=0))
model.set_output(transform="pandas")  # keep the column names the topology refers to
alphas = [0.0, 0.01, 0.1]
search = GridSearchCV(model, {"verticallinearregression__alpha": alphas}, cv=2)
search.fit(X_tr, y_tr)

ridge = GridSearchCV(make_pipeline(StandardScaler(), Ridge()),
                     {"ridge__alpha": [a * len(X_tr) / 2 for a in alphas]}, cv=2)
ridge.fit(X_tr, y_tr)
print(f"federated:   best alpha {search.best_params_['verticallinearregression__alpha']}, "
      f"test R^2 {search.score(X_te, y_te):.3f}")
print(f"centralised: best Ridge alpha {ridge.best_params_['ridge__alpha']:.1f}, "
      f"test R^2 {ridge.score(X_te, y_te):.3f}")
fitted = search.best_estimator_[-1]
print("the bank's coefficients:", np.round(fitted.coef_by_party_["bank"], 2).ravel().tolist())
print("the shop's coefficients:", np.round(fitted.coef_by_party_["shop"], 2).ravel().tolist())
print(fitted.transcript_.summary())

try:
    import matplotlib.pyplot as plt
except ImportError:  # the numbers above are the result; the plot is optional
    print("(matplotlib is not installed: pip install matplotlib to see the plot)")
else:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(alphas, search.cv_results_["mean_test_score"], "o-", label="vertical, Paillier")
    ax.plot(alphas, ridge.cv_results_["mean_test_score"], "s--", label="Ridge, pooled")
    ax.set_xlabel("alpha (skfed's scale; Ridge uses n * alpha)")
    ax.set_ylabel("cross-validated R^2")
    ax.legend()
    fig.tight_layout()
    plt.show()
