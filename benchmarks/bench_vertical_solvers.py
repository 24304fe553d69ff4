"""Which solver for the vertical linear models: a plain-numpy comparison.

Usage::

    python benchmarks/bench_vertical_solvers.py     # a few seconds; needs FATE's data

The vertical protocol can only evaluate quadratic objectives (least squares,
the Taylor log-loss), whose Hessian ``H`` does not depend on the weights; each
party knows its own diagonal block of ``H``. This compares, on the objective
of ``VerticalLogisticRegression`` and FATE's two binary tasks (default credit,
24,000 training rows, 13 + 10 columns; breast cancer, 10 + 20 columns whose
columns are strongly correlated across the parties), in epochs (passes of
the protocol over the rows):

* plain gradient descent, the previous default (``learning_rate=0.1``);
* block-preconditioned gradient descent with Nesterov momentum (each party
  preconditions its own block; no new cross-party scalar), step 0.5;
* block-preconditioned conjugate gradients, skfed's default (one gradient
  pass, then one pass per iteration; needs the sums ``rz`` and ``p^T H p``
  per iteration), stopped by ``tol`` on the exact decrease of a step.

No encryption is involved: the epochs are what differ between the solvers,
and each encrypted epoch costs about the same (see ``bench_vertical.py
--time-to-model`` for the encrypted fit).
"""

import os
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

FATE_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                         "data", "fate")


def load(name):
    paths = [os.path.join(FATE_DATA, f"{name}_hetero_{r}.csv") for r in ("guest", "host")]
    if not all(os.path.exists(p) for p in paths):
        raise SystemExit(f"needs FATE's benchmark data in <repo>/../shared/data/fate: {paths}")
    guest, host = (pd.read_csv(p) for p in paths)
    joined = guest.merge(host, on="id", suffixes=("_g", "_h"))
    n_guest = guest.shape[1] - 2
    y = joined["y"].to_numpy()
    X = joined.drop(columns=["id", "y"]).to_numpy(dtype=float)
    return X[:, :n_guest], X[:, n_guest:], y


def taylor_problem(Xg, Xh, y):
    """H, b and the objective of the Taylor log-loss; guest block first (with intercept)."""
    n = len(y)
    Xb = np.hstack([Xg, np.ones((n, 1)), Xh])
    Y = np.where(y == 1, 1.0, -1.0)
    H = 0.25 * Xb.T @ Xb / n
    b = 0.5 * Xb.T @ Y / n

    def f(w):
        return np.log(2) - 0.5 + np.sum((Xb @ w - 2 * Y) ** 2) / (8 * n)

    blocks = [slice(0, Xg.shape[1] + 1), slice(Xg.shape[1] + 1, Xb.shape[1])]
    inv = [np.linalg.pinv(H[s, s], hermitian=True) for s in blocks]

    def precondition(g):
        return np.concatenate([m @ g[s] for m, s in zip(inv, blocks)])

    return H, b, f, precondition


def gd(H, b, f, epochs, lr=0.1):
    w, out = np.zeros(len(b)), []
    for _ in range(epochs):
        w = w - lr * (H @ w - b)
        out.append(f(w))
    return w, out


def nesterov(H, b, f, precondition, epochs, lr=0.5, momentum=0.7):
    w, v, out = np.zeros(len(b)), np.zeros(len(b)), []
    for _ in range(epochs):
        g = H @ (w + momentum * v) - b
        v = momentum * v - lr * precondition(g)
        w = w + v
        out.append(f(w))
    return w, out


def pcg(H, b, f, precondition, max_epochs, tol=1e-4):
    """Epoch 1: the gradient at 0; every later epoch one iteration (one H p)."""
    w = np.zeros(len(b))
    g = -b
    out = [f(w)]
    p = np.zeros_like(w)
    rz_old = None
    for _ in range(max_epochs - 1):
        z = precondition(g)
        rz = g @ z
        p = -z + (0.0 if rz_old is None else rz / rz_old) * p
        Hp = H @ p
        a = rz / (p @ Hp)
        w, g = w + a * p, g + a * Hp
        out.append(f(w))
        rz_old = rz
        if a * rz / 2 <= tol:
            break
    return w, out


def epochs_within(curve, f_opt, gap):
    """Epochs until the model is within ``gap``; ``curve[i]`` is the objective of
    the model after epoch ``i + 1``."""
    hits = np.flatnonzero(np.asarray(curve) - f_opt <= gap)
    return int(hits[0]) + 1 if len(hits) else None


def main():
    for name in ("default_credit", "breast"):
        Xg, Xh, y = load(name)
        tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y,
                                  random_state=0)
        sg, sh = StandardScaler().fit(Xg[tr]), StandardScaler().fit(Xh[tr])
        Xg, Xh = sg.transform(Xg), sh.transform(Xh)
        H, b, f, precondition = taylor_problem(Xg[tr], Xh[tr], y[tr])
        w_opt = np.linalg.solve(H, b)
        f_opt = f(w_opt)
        X_te = np.hstack([Xg[te], np.ones((len(te), 1)), Xh[te]])

        def auc(w, X_te=X_te, y_te=y[te]):
            return roc_auc_score(y_te, X_te @ w)

        print(f"\n{name}: {len(tr)} training rows, {Xg.shape[1]} + {Xh.shape[1]} columns, "
              f"optimal objective {f_opt:.6f}, test AUC at the optimum {auc(w_opt):.4f}")
        print("  epochs to come within 1e-4 of the optimal objective (None: not in the budget)")
        _, curve = gd(H, b, f, 1000)
        print(f"    gradient descent, learning_rate=0.1:      "
              f"{epochs_within(curve, f_opt, 1e-4)} (of 1000)")
        for momentum in (0.5, 0.7, 0.8, 0.9):
            _, curve = nesterov(H, b, f, precondition, 30, momentum=momentum)
            print(f"    preconditioned Nesterov, momentum {momentum}: "
                  f"{epochs_within(curve, f_opt, 1e-4)} (of 30)")
        _, curve = pcg(H, b, f, precondition, 30, tol=0.0)
        print(f"    preconditioned conjugate gradients:       "
              f"{epochs_within(curve, f_opt, 1e-4)} (of 30)")
        for tol in (1e-4, 1e-6):
            w, curve = pcg(H, b, f, precondition, 100, tol=tol)
            print(f"  PCG stopped by tol={tol:g} after {len(curve)} epochs: "
                  f"{curve[-1] - f_opt:.1e} above the optimum, "
                  f"test AUC {auc(w) - auc(w_opt):+.5f} from the optimum's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
