"""Roles of horizontal federated SGD: one function per kind of party.

``client`` runs at each data holder with only its own rows; ``server`` runs
the aggregation. They exchange messages only through the context; the
configuration dict holds public hyper-parameters that every party agreed
beforehand.

Round structure (``cfg["strategy"]`` in fedavg/fedprox/fedadam)::

    server -> clients : model (plain: the global model is public to clients)
    client            : objective terms at the model, then local SGD epochs
    client -> server  : protected (n_k/N) * [local model, loss at global model]
    server            : learns only the sum; updates the global model

With ``"fedsgd"`` each client uploads its full-batch gradient instead and the
server takes one gradient step: exactly centralised full-batch descent.
"""

import warnings

import numpy as np

from ..exceptions import DIVERGENCE_FACTOR, FitDiverged
from ..runtime.layout import check_array, check_dict, check_scalar
from ._losses import loss_and_dloss, penalty_grad, penalty_value
from .dropout import client_aggregation, server_aggregation

__all__ = ["client", "server", "model_layout"]

_STATE = ("coef_", "intercept_", "_standard_coef", "_standard_intercept",
          "_average_coef", "_average_intercept")


def model_layout(n_features, n_outputs, average):
    """Names and shapes of the flattened model vector (same for all parties)."""
    coef_shape = (n_outputs, n_features) if n_outputs else (n_features,)
    icpt_shape = (max(n_outputs, 1),)
    names = _STATE if average else _STATE[:2]
    return [(name, coef_shape if "coef" in name else icpt_shape) for name in names]


def _flatten(parts, layout):
    return np.concatenate([np.asarray(parts[n], dtype=np.float64).reshape(-1)
                           for n, _ in layout])


def _unflatten(vector, layout):
    out, pos = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape))
        out[name] = vector[pos:pos + size].reshape(shape).copy()
        pos += size
    return out


# -- objective and gradients at a given model ----------------------------------
def _targets(y, classes, cfg):
    """Per-output +-1 targets and per-sample weights, as scikit-learn's OvR does."""
    if cfg["task"] == "regression":
        return y[:, None].astype(np.float64), np.ones((len(y), 1))
    cw = cfg["class_weight"]
    outputs = [1] if len(classes) == 2 else range(len(classes))
    Y = np.empty((len(y), len(outputs)))
    W = np.empty_like(Y)
    for j, c in enumerate(outputs):
        pos = y == classes[c]
        Y[:, j] = np.where(pos, 1.0, -1.0)
        if len(classes) == 2:
            W[:, j] = np.where(pos, cw[1], cw[0])
        else:
            W[:, j] = np.where(pos, cw[c], 1.0)
    return Y, W


def _loss_and_grad(model, X, Y, W, cfg, with_grad):
    coef = model["coef_"].reshape(Y.shape[1], -1)
    P = X @ coef.T + model["intercept_"].reshape(1, -1)
    loss, dloss = loss_and_dloss(cfg["loss"], P, Y, cfg["epsilon"])
    loss_sum = float(np.sum(W * loss))
    if not with_grad:
        return loss_sum, None
    G = W * dloss
    grad = np.concatenate([(G.T @ X).ravel(), G.sum(axis=0)])
    return loss_sum, grad


# -- local optimisation with scikit-learn's own SGD ------------------------------
def _local_estimator(cfg, seed):
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    params = dict(loss=cfg["loss"], penalty=cfg["penalty"], alpha=cfg["alpha"],
                  l1_ratio=cfg["l1_ratio"], fit_intercept=cfg["fit_intercept"],
                  epsilon=cfg["epsilon"], learning_rate=cfg["learning_rate"],
                  eta0=cfg["eta0"], power_t=cfg["power_t"], average=cfg["average"],
                  tol=None, shuffle=True, random_state=seed)
    if cfg["task"] == "classification":
        cw = cfg["class_weight"]
        classes = cfg["classes"]
        return SGDClassifier(class_weight={classes[i]: w for i, w in enumerate(cw)}
                             if cfg["class_weight_set"] else None, **params)
    return SGDRegressor(**params)


def _schedule_sum(cfg, t_start, n_steps):
    """Sum of the learning rates SGD applies over ``n_steps`` steps from ``t_start``."""
    t = t_start + np.arange(n_steps, dtype=np.float64)
    lr = cfg["learning_rate"]
    if lr == "optimal":
        alpha = cfg["alpha"]
        typw = np.sqrt(1.0 / np.sqrt(alpha))
        _, d = loss_and_dloss(cfg["loss"], -typw, 1.0, cfg["epsilon"])
        init_eta = typw / max(1.0, float(d))
        return float(np.sum(1.0 / (alpha * (1.0 / (init_eta * alpha) + t - 1.0))))
    if lr == "invscaling":
        return float(np.sum(cfg["eta0"] / t ** cfg["power_t"]))
    return cfg["eta0"] * n_steps


def _proximal_step(est, global_model, mu, step):
    """FedProx's pull towards the global model: prox of (mu/2)||w - w_g||^2.

    scikit-learn's SGD inner loop cannot take the proximal term per sample, so
    it is applied as a backward (proximal) step after each local epoch, with
    the step size SGD used over that epoch (forward-backward splitting).
    """
    shrink = 1.0 / (1.0 + step * mu)
    names = ("_standard_coef", "_standard_intercept") if est.average else ("coef_", "intercept_")
    for name, gname in zip(names, ("coef_", "intercept_")):
        current = getattr(est, name)
        target = global_model[gname].reshape(current.shape)
        current[...] = shrink * (current + step * mu * target)


def _local_train(est, X, y, global_model, cfg, first):
    if not first:
        for name, value in global_model.items():
            setattr(est, name, value.reshape(np.shape(getattr(est, name))).copy())
        if est.average:
            # scikit-learn's averaged SGD keeps coef_/intercept_ as aliases of the
            # averaged (or standard) arrays and writes through them; restore that.
            src = "_average" if est.average <= est.t_ - 1 else "_standard"
            est.coef_ = getattr(est, src + "_coef").reshape(est.coef_.shape)
            est.intercept_ = getattr(est, src + "_intercept")
    kwargs = {"classes": np.asarray(cfg["classes"])} if cfg["task"] == "classification" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for _ in range(cfg["local_epochs"]):
            t_start = getattr(est, "t_", 1.0)
            est.partial_fit(X, y, **kwargs)
            if cfg["strategy"] == "fedprox" and cfg["mu"] > 0:
                _proximal_step(est, global_model, cfg["mu"],
                               _schedule_sum(cfg, t_start, X.shape[0]))
    return {name: np.asarray(getattr(est, name), dtype=np.float64)
            for name, _ in cfg["layout"]}


# -- roles -----------------------------------------------------------------------
def client(ctx, X, y, cfg, seed):
    """A data holder: trains on its own rows, uploads only protected vectors."""
    server_name, clients = cfg["server"], cfg["clients"]
    agg = client_aggregation(ctx, server_name, clients, cfg["secure_aggregation"],
                             cfg.get("min_clients"), key_size=cfg["key_size"],
                             n_jobs=cfg["n_jobs"])
    n_k = X.shape[0]
    classes = None
    if cfg["task"] == "classification":
        # The label set is declared metadata: the union defines classes_.
        ctx.send(server_name, "labels", np.unique(y).tolist(), kind="plain")
        classes = ctx.recv(server_name, "classes")
        counts = [float(np.sum(y == c)) for c in classes]
    else:
        counts = []
    agg.upload([n_k] + counts, "counts")
    stats = ctx.recv(server_name, "totals")
    n_total = stats["n_samples"]
    cfg = dict(cfg, classes=classes, class_weight=stats.get("class_weight"),
               class_weight_set=stats.get("class_weight_set", False))
    weight = n_k / n_total
    Y, W = _targets(y, classes, cfg)
    est = _local_estimator(cfg, seed)
    first = True
    while True:
        msg = check_dict(ctx.recv(server_name, "model"), sender=server_name, tag="model",
                         keys=("done", "model"))
        if check_scalar(msg["done"], sender=server_name, tag="model", kind="bool"):
            return None
        size = sum(int(np.prod(s)) for _, s in cfg["layout"])
        model = _unflatten(check_array(msg["model"], sender=server_name, tag="model",
                                       shape=(size,)), cfg["layout"])
        agg.prepare("update")  # (dropout tolerance) key shares travel during training
        fullbatch = cfg["strategy"] == "fedsgd"
        loss_sum, grad = _loss_and_grad(model, X, Y, W, cfg, with_grad=fullbatch)
        if fullbatch:
            upload = np.concatenate([grad / n_total, [loss_sum / n_total]])
        else:
            local = _local_train(est, X, y, model, cfg, first)
            upload = np.concatenate([weight * _flatten(local, cfg["layout"]),
                                     [loss_sum / n_total]])
        first = False
        try:
            agg.upload(upload, "update", weight=weight)
        except OverflowError as exc:
            raise FitDiverged(
                f"this client's update left the protected range ({exc}); training is "
                "diverging: standardise the features (FederatedStandardScaler) or lower "
                "the learning rate") from exc


def _learning_rate(cfg, round_index, eta):
    if cfg["learning_rate"] == "invscaling":
        return cfg["eta0"] / (round_index + 1) ** cfg["power_t"]
    return eta


def server(ctx, cfg, progress=None):
    """Coordinates rounds and learns only aggregates.

    ``progress`` is a local object of the server's own process (a
    :class:`~skfed._progress.FitProgress`), never sent anywhere: it prints
    progress lines and lets scikit-learn callbacks stop the fit.
    """
    clients = cfg["clients"]
    agg = server_aggregation(ctx, clients, cfg["secure_aggregation"], cfg.get("min_clients"))
    layout = cfg["layout"]
    out = {}
    if cfg["task"] == "classification":
        label_sets = list(agg.gather("labels").values())
        classes = sorted(set().union(*map(set, label_sets)))
        if len(classes) < 2:
            raise ValueError(
                f"the clients hold a single class ({classes[0]!r}); a classifier needs "
                "at least two")
        agg.broadcast("classes", classes, kind="plain")
        out["classes"] = classes
        n_counts = len(classes)
    else:
        n_counts = 0
    totals = agg.secure_sum("counts", 1 + n_counts)
    n_total = float(np.rint(totals[0]))
    stats = {"n_samples": n_total}
    if cfg["task"] == "classification":
        counts = np.rint(totals[1:])
        cw = cfg["class_weight"]
        if cw == "balanced":
            weights = n_total / (len(classes) * np.maximum(counts, 1.0))
        elif isinstance(cw, dict):
            unknown = set(cw) - set(classes)
            if unknown:
                raise ValueError(f"class_weight names classes not in the data: {unknown}")
            weights = np.array([float(cw.get(c, 1.0)) for c in classes])
        else:
            weights = np.ones(len(classes))
        stats.update(class_weight=weights.tolist(), class_weight_set=cw is not None)
        out["class_counts"] = counts
    agg.broadcast("totals", stats, kind="plain")
    out["n_samples"] = n_total

    size = sum(int(np.prod(s)) for _, s in layout)
    w = np.zeros(size)
    m = np.zeros(size)
    v = np.zeros(size)
    history, best, no_improve = [], np.inf, 0
    eta = cfg["eta0"]
    coef_size = int(np.prod(layout[0][1]))
    fullbatch = cfg["strategy"] == "fedsgd"
    for r in range(cfg["n_rounds"]):
        agg.broadcast("model", {"done": False, "model": w}, kind="plain")
        n_params = coef_size + layout[1][1][0]  # coef_ and intercept_
        total = agg.secure_sum("update", (n_params if fullbatch else size) + 1,
                               weighted=True)
        coef_now = w[:coef_size]
        objective = float(total[-1]) + cfg["alpha"] * penalty_value(
            coef_now, cfg["penalty"], cfg["l1_ratio"])
        if fullbatch:
            grad = total[:-1].copy()
            grad[:coef_size] += cfg["alpha"] * penalty_grad(coef_now, cfg["penalty"],
                                                            cfg["l1_ratio"])
            if not cfg["fit_intercept"]:
                grad[coef_size:] = 0.0
            step = _learning_rate(cfg, r, eta)
            w = w.copy()
            w[:n_params] -= step * grad
        elif cfg["strategy"] == "fedadam":
            delta = total[:-1] - w
            m = cfg["beta_1"] * m + (1 - cfg["beta_1"]) * delta
            v = cfg["beta_2"] * v + (1 - cfg["beta_2"]) * delta * delta
            w = w + cfg["server_learning_rate"] * m / (np.sqrt(v) + cfg["tau"])
        else:
            w = total[:-1]
        # The objective is measured at the model the clients received, so the
        # first round's is the loss at zero weights. A regressor whose loss grew
        # 1000-fold predicts garbage; a classifier's hinge or log loss may grow
        # with the scale of its weights while its decisions stay sound (as with
        # scikit-learn's SGDClassifier on unscaled data), so only non-finite
        # values stop it.
        f0 = history[0]["objective"] if history else objective
        grew = (cfg["task"] == "regression" and f0 > 0
                and objective > DIVERGENCE_FACTOR * f0)
        if not np.all(np.isfinite(w)) or not np.isfinite(objective) or grew:
            raise FitDiverged(
                f"the global model diverged at round {r + 1} (objective {objective:.4g}, "
                f"{f0:.4g} at the start): "
                "standardise the features "
                "(FederatedStandardScaler: the federation's statistics) or lower the "
                "learning rate")
        history.append({"round": r + 1, "objective": objective})
        if progress is not None and progress.update(
                r + 1, objective=objective, nbytes=ctx.bytes_sent + ctx.bytes_received,
                state=w):
            break
        if cfg["tol"] is not None:
            if objective > best - cfg["tol"]:
                no_improve += 1
            else:
                no_improve = 0
            best = min(best, objective)
            if no_improve >= cfg["n_iter_no_change"]:
                if cfg["learning_rate"] == "adaptive" and eta > 1e-6:
                    eta, no_improve = eta / 5.0, 0
                else:
                    break
    agg.broadcast("model", {"done": True, "model": None}, kind="plain")
    if progress is not None:
        progress.close(state=w)
    out.update(model=_unflatten(w, layout), history=history, n_iter=len(history),
               dropouts=list(agg.dropouts))
    return out
