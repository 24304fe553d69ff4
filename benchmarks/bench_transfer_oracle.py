"""Centralised oracle for the transfer utility suite: what does each loss allow?

The federated protocols can only carry the second-order Taylor (least-squares)
form of the logistic loss for the target's scores. This script fits, in one
process and to the optimum (L-BFGS, no early stopping), the *same model class*
the defaults train (each party's output layer on ``[x, random features, 1]``,
scores ``Phi u^B``) on the same rows as ``bench_transfer_utility.py``, with:

* ``B LR``: "B alone" (logistic regression on the target's overlap rows);
* ``B LS``: the same rows and columns, least squares on +-1 targets (the
  Taylor loss with nothing transferred): what the quadratic loss costs alone;
* ``FTL taylor`` / ``FTL logistic``: the FTL objective (alignment, L2 per
  overlap row) with the target's classification term in Taylor or exact
  logistic form;
* ``+src`` variants: the same plus the source's own classification loss on
  all of its labelled rows (a term the source computes locally, in the clear).

    python benchmarks/bench_transfer_oracle.py --quick
"""

import argparse
import time
import warnings

import bench_transfer_utility as bu
import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skfed.transfer import roles
from skfed.transfer.estimator import _auto_hidden, _source_targets

LOG2 = np.log(2.0)


def _scores(S):
    """AUC inputs: the score (binary) or the estimator's normalised logistic."""
    if S.shape[1] == 1:
        return S[:, 0]
    P = expit(S)
    return P / P.sum(axis=1, keepdims=True)


def _loss(kind, Y, S):
    """Per-entry loss and its derivative in the score."""
    if kind == "taylor":
        return LOG2 - 0.5 * Y * S + S ** 2 / 8, -0.5 * Y + 0.25 * S
    return -log_expit(Y * S), -Y * expit(-Y * S)


def ftl_objective(theta, FA, FB, lab, Y, ov_a, ov_b, w, Yo, d, gamma, alpha, kind, lam_src):
    """The defaults' objective on output-layer inputs (bias column included)."""
    qa = FA.shape[1] * d
    TA, TB = theta[:qa].reshape(FA.shape[1], d), theta[qa:].reshape(FB.shape[1], d)
    UA, UB = FA @ TA, FB[ov_b] @ TB
    nL, n, nc = len(lab), len(ov_a), w.sum()
    Phi = Y.T @ UA[lab] / nL
    S = UB @ Phi.T
    ell, dl = _loss(kind, Yo, S)
    loss = np.sum(w[:, None] * ell) / nc
    C = w[:, None] * dl / nc
    dUB = C @ Phi
    dPhi = C.T @ UB
    dUA = np.zeros_like(UA)
    if lam_src:
        SA = UA[lab] @ Phi.T
        ell_a, dl_a = _loss("logistic", Y, SA)
        loss += lam_src * ell_a.sum() / nL
        Ca = lam_src * dl_a / nL
        dUA[lab] += Ca @ Phi
        dPhi += Ca.T @ UA[lab]
    dUA[lab] += Y @ dPhi / nL
    diff = UA[ov_a] - UB
    g = gamma / (n * d)
    loss += g * np.sum(diff ** 2)
    dUA[ov_a] += 2 * g * diff
    dUB -= 2 * g * diff
    a = alpha / n
    loss += 0.5 * a * (np.sum(TA[:-1] ** 2) + np.sum(TB[:-1] ** 2))
    gA = FA.T @ dUA
    gA[:-1] += a * TA[:-1]
    gB = FB[ov_b].T @ dUB
    gB[:-1] += a * TB[:-1]
    return loss, np.concatenate([gA.ravel(), gB.ravel()])


WIDTH = None     # None: the defaults' width; an int caps it (0: linear)


def _features(X, n_overlap, p, seed, d=8):
    hidden = _auto_hidden(n_overlap, "auto", p)
    if WIDTH is not None:
        hidden = [min(WIDTH, *hidden)] if hidden and WIDTH else []
    cfg = {"hidden_layer_sizes": hidden, "activation": "tanh",
           "train_hidden": False, "representation_dim": d}
    net = roles._net(X.shape[1], cfg, seed)
    F = net.forward(X)[1][-2]
    return np.hstack([F, np.ones((len(F), 1))]), net


def run(data, n_overlap, seed, variants, gamma, alpha, d=8):
    X, y, src, tgt = data
    ov, s_only, t_train, t_test = bu.split(len(X), n_overlap, seed)
    X = StandardScaler().fit_transform(X)
    classes = np.unique(y)
    res = {}
    b = LogisticRegression(max_iter=1000).fit(X[np.ix_(ov, tgt)], y[ov])
    res["B LR"] = bu._auc(y[t_test], bu._proba_scores(b, X[np.ix_(t_test, tgt)]), classes)
    rows_a = np.sort(np.concatenate([ov, s_only]))
    rows_b = np.sort(np.concatenate([ov, t_train, t_test]))
    p = [len(src), len(tgt)]
    FA, net_a = _features(X[np.ix_(rows_a, src)], n_overlap, p, 1000 + seed, d)
    FB, net_b = _features(X[np.ix_(rows_b, tgt)], n_overlap, p, 2000 + seed, d)
    ov_a, ov_b = np.searchsorted(rows_a, ov), np.searchsorted(rows_b, ov)
    test_b = np.searchsorted(rows_b, t_test)
    _, K, Y = _source_targets(y[rows_a])
    Yo = Y[ov_a]
    # B LS: least squares on +-1 targets (ridge, per-row L2 as the FTL term).
    Fo = FB[ov_b]
    reg = alpha * np.eye(Fo.shape[1])
    reg[-1, -1] = 0
    beta = np.linalg.solve(Fo.T @ Fo + reg, Fo.T @ Yo)
    St = FB[test_b] @ beta
    res["B LS"] = bu._auc(y[t_test], _scores(St), classes)
    theta0 = np.concatenate([np.vstack([net_a.coefs[-1], net_a.intercepts[-1]]).ravel(),
                             np.vstack([net_b.coefs[-1], net_b.intercepts[-1]]).ravel()])
    lab = np.arange(len(rows_a))
    w = np.ones(len(ov))
    for name, kind, lam in variants:
        args = (FA, FB, lab, Y, ov_a, ov_b, w, Yo, d, gamma, alpha, kind, lam)
        r = minimize(ftl_objective, theta0, args=args, jac=True, method="L-BFGS-B",
                     options={"maxiter": 2000})
        qa = FA.shape[1] * d
        TA, TB = r.x[:qa].reshape(-1, d), r.x[qa:].reshape(-1, d)
        Phi = Y.T @ (FA @ TA) / len(lab)
        S = FB[test_b] @ TB @ Phi.T
        res[name] = bu._auc(y[t_test], _scores(S), classes)
    return res


VARIANTS = [("FTL taylor", "taylor", 0.0), ("FTL logistic", "logistic", 0.0),
            ("taylor+src", "taylor", 1.0), ("logistic+src", "logistic", 1.0)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--overlaps", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--gamma", type=float, default=0.3)
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--width", type=int, default=None, help="at most this many random features")
    ap.add_argument("--lam", type=float, default=3.0, help="weight of the source's own loss")
    args = ap.parse_args(argv)
    threadpool_limits(1)
    global WIDTH
    WIDTH = args.width
    seeds = range(3 if args.quick else args.seeds)
    variants = [(n, k, args.lam if lam else 0.0) for n, k, lam in VARIANTS]
    tasks = [t for t in bu.TASKS if args.tasks is None or any(s in t for s in args.tasks)]
    names = ["B LR", "B LS"] + [v[0] for v in variants]
    print(f"{'task':<26}{'ov':>4} " + " ".join(f"{n:>13}" for n in names))
    wins = {n: [] for n in names[1:]}
    t0 = time.perf_counter()
    for task in tasks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = bu.TASKS[task]()
        for n_ov in args.overlaps:
            rs = [run(data, n_ov, s, variants, args.gamma, args.alpha, args.dim) for s in seeds]
            m = {n: np.mean([r[n] for r in rs]) for n in names}
            for n in names[1:]:
                wins[n].extend(r[n] > r["B LR"] for r in rs)
            print(f"{task:<26}{n_ov:>4} " + " ".join(f"{m[n]:>13.4f}" for n in names),
                  flush=True)
    print("win rate over B LR: " + ", ".join(f"{n} {np.mean(v):.0%}" for n, v in wins.items())
          + f"; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
