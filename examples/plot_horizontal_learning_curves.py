"""
Federated vs centralised learning curves (IID and non-IID clients)
==================================================================

Five clients hold the digits data, split IID or with Dirichlet label skew.
We train :class:`skfed.FederatedSGDClassifier` with pairwise-mask secure
aggregation and compare test accuracy per round with scikit-learn's
``SGDClassifier`` trained on the pooled data for the same number of epochs.
The features are standardised with :class:`skfed.FederatedStandardScaler`:
the clients' pooled mean and variance, computed by secure aggregation, as a
real federation would (the statistics are exact, so they are the same for
every split and the centralised run uses them too).
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

from skfed import FederatedSGDClassifier, FederatedStandardScaler, HorizontalTopology

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = FederatedStandardScaler(HorizontalTopology(n_parties=5, random_state=0)).fit(X_tr)
X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
params = dict(loss="log_loss", alpha=1e-3, random_state=0)
rounds = np.arange(1, 16)

curves = {}
for name, topo in [
    ("IID", HorizontalTopology(n_parties=5, random_state=0)),
    ("Dirichlet(0.5)", HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.5,
                                          random_state=0)),
    ("Dirichlet(0.1)", HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.1,
                                          random_state=0)),
]:
    curves[name] = [FederatedSGDClassifier(topology=topo, n_rounds=r, **params)
                    .fit(X_tr, y_tr).score(X_te, y_te) for r in rounds]
curves["centralised"] = [SGDClassifier(max_iter=r, tol=None, **params)
                         .fit(X_tr, y_tr).score(X_te, y_te) for r in rounds]

for name, acc in curves.items():
    print(f"{name:<16} " + " ".join(f"{a:.3f}" for a in acc))

clf = FederatedSGDClassifier(topology=HorizontalTopology(n_parties=5, random_state=0),
                             n_rounds=5, **params).fit(X_tr, y_tr)
print("\nWhat left each party during one fit:")
for row in clf.transcript_.summary():
    print(f"  {row['sender']:>8} -> {row['receiver']:<8} {row['messages']:>4} messages "
          f"{row['bytes']:>8} bytes  ({row['kinds']})")

try:
    import matplotlib.pyplot as plt
except ImportError:  # the plot is optional; the numbers above are the result
    print("\n(matplotlib is not installed: pip install matplotlib to see the plot)")
else:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, acc in curves.items():
        ax.plot(rounds, acc, marker="o", ms=3, label=name,
                ls="--" if name == "centralised" else "-")
    ax.set_xlabel("rounds (centralised: epochs)")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits, 5 clients, FedAvg with secure aggregation")
    ax.legend()
    fig.tight_layout()
    plt.show()
