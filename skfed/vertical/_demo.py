"""Cases for ``python -m skfed demo``: the vertical estimators at 2048-bit keys."""

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..topology import VerticalTopology
from .boosting import VerticalGradientBoostingClassifier
from .linear import VerticalLinearRegression
from .logistic import VerticalLogisticRegression


def demo_cases(quick=False):
    """Breast cancer split 10/20 (FATE's standard task) and diabetes split 5/5.

    The default solver (block-preconditioned conjugate gradients) for a
    handful of epochs on standardised columns (each party scales its own
    columns), secure 2048-bit keys.
    """
    cases = []
    X, y = load_breast_cancer(return_X_y=True)
    if quick:
        X, y = X[::2], y[::2]
    topo = VerticalTopology({"guest": list(range(10)), "host": list(range(10, 30))},
                            label_party="guest")
    clf = VerticalLogisticRegression(topo, max_iter=3, tol=None, random_state=0)
    cases.append({"name": "vertical logistic, breast cancer 10/20",
                  "estimator": make_pipeline(StandardScaler(), clf), "X": X, "y": y})
    X, y = load_diabetes(return_X_y=True)
    if quick:
        X, y = X[::2], y[::2]
    # The target is standardised up front (R^2 does not change); the party
    # holding it would do the same before training.
    y = (y - y.mean()) / y.std()
    topo = VerticalTopology({"guest": list(range(5)), "host": list(range(5, 10))},
                            label_party="guest")
    reg = VerticalLinearRegression(topo, max_iter=3 if quick else 4, tol=None,
                                   random_state=0)
    cases.append({"name": "vertical linear, diabetes 5/5",
                  "estimator": make_pipeline(StandardScaler(), reg), "X": X,
                  "y": np.asarray(y)})
    # SecureBoost: lossless, so federated and centralised scores coincide;
    # few shallow trees keep the 2048-bit run short.
    X, y = load_breast_cancer(return_X_y=True)
    if quick:
        X, y = X[::2], y[::2]
    topo = VerticalTopology({"guest": list(range(10)), "host": list(range(10, 30))},
                            label_party="guest")
    gb = VerticalGradientBoostingClassifier(topo, max_iter=3 if quick else 5, max_depth=2,
                                            max_bins=32, random_state=0)
    # A one-step pipeline like the other cases (trees need no scaling).
    cases.append({"name": "vertical SecureBoost, breast cancer 10/20",
                  "estimator": make_pipeline(gb), "X": X, "y": y})
    return cases
