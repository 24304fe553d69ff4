"""Horizontal boosting with one party per process (a runtime with a ``party``).

Each client calls ``fit(X_k, y_k)`` with its own rows; the server calls
``fit(None)``. Before the protocol of :mod:`._boosting_roles`, a set-up
exchange gives the server what the in-process estimator reads off the pooled
data — the number of columns (equal at every client, with their names) and
the label set — and checks that everybody typed in the same
hyper-parameters::

    client -> server   setup   {n_features, feature_names, labels, params}   plain
    server -> clients  setup   {classes}                                     plain

Every party ends with the model (trees, edges, baseline): it is public to
the clients, who receive it at the end of the protocol.
"""

import time
from dataclasses import asdict, replace
from numbers import Integral

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from .._progress import FitProgress
from ..runtime.party import public_params
from . import _boosting_roles as roles
from ._party import gather_setups
from .dropout import check_min_clients

__all__ = ["fit_party"]

_SERVER = "server"
# Settings each party chooses for itself, or learns in the set-up.
PRIVATE_CONFIG_KEYS = ("verbose", "clients", "n_classes", "n_features")


def _public(cfg):
    return public_params({k: v for k, v in asdict(cfg).items() if k not in PRIVATE_CONFIG_KEYS})


def fit_party(est, X, y):
    """Fit ``est`` as the party its runtime runs (see the module docstring)."""
    runtime = est.runtime
    me = runtime.party
    topo = est._topology().validate()
    if topo.by_column:
        raise ValueError("with one party per process each client passes its own rows; a "
                         "partition column only applies to simulations")
    clients = topo.names()
    expected = {_SERVER, *clients}
    if set(runtime.parties) != expected:
        raise ValueError(
            f"the runtime's parties {sorted(runtime.parties)} do not match the topology's "
            f"server and clients {sorted(expected)} (name the clients with "
            "HorizontalTopology(n_parties=..., party_names=[...]))")
    if est.secure_aggregation is not None and len(clients) < 2:
        raise ValueError("secure aggregation needs at least two clients")
    check_min_clients(est.min_clients, len(clients), est.secure_aggregation)
    if est.early_stopping == "auto":
        raise ValueError(
            "with one party per process set early_stopping to True or False: 'auto' "
            "depends on the federation's row count, which no party knows beforehand")
    vf = est.validation_fraction
    if est.early_stopping and isinstance(vf, Integral) and not isinstance(vf, bool):
        raise ValueError("with one party per process validation_fraction must be a "
                         "fraction of each client's rows, not a number of rows")
    early = bool(est.early_stopping)
    fraction = None if not early or vf is None else float(vf)
    cfg = est._config(clients, 0, 0, fraction, early)
    start = time.perf_counter()
    if me == _SERVER:
        if X is not None or y is not None:
            raise ValueError("the server holds no data: call fit(None)")
        results, transcript = runtime.run({me: lambda ctx: _server(ctx, est, cfg)})
        out = results[me]
    else:
        results, transcript = runtime.run({me: _client_role(est, cfg, X, y, clients, me)})
        out = results[me]
    est._set_fitted(out, transcript, early)
    est.fit_time_ = time.perf_counter() - start
    return est


def _client_role(est, cfg, X, y, clients, me):
    X, y = validate_data(est, X, y, dtype=np.float64, ensure_all_finite="allow-nan",
                         y_numeric=est._task == "regression")
    if est._task == "classification":
        check_classification_targets(y)
    if len(y) < 1:
        raise ValueError(f"client {me!r} holds no rows")
    names = getattr(est, "feature_names_in_", None)
    seed = est._client_seeds(len(clients))[clients.index(me)]

    def role(ctx):
        labels = np.unique(y).tolist() if est._task == "classification" else None
        ctx.send(_SERVER, "setup", {
            "n_features": int(X.shape[1]),
            "feature_names": None if names is None else list(map(str, names)),
            "labels": labels, "params": _public(cfg)}, kind="plain")
        setup = ctx.recv(_SERVER, "setup")
        if est._task == "classification":
            classes = np.asarray(setup["classes"])
            est.classes_ = classes
            y_enc = np.searchsorted(classes, y)
            n_classes = len(classes)
        else:
            y_enc, n_classes = y.astype(np.float64), 0
        full = replace(cfg, n_classes=n_classes, n_features=int(X.shape[1]))
        return roles.client(ctx, X, y_enc, full, seed)

    return role


def _server(ctx, est, cfg):
    clients = list(cfg.clients)
    first, labels, present = gather_setups(ctx, clients, _public(cfg), cfg.min_clients)
    classes = sorted(labels)
    if est._task == "classification":
        if len(classes) < 2:
            raise ValueError(f"the clients' labels hold a single class: {classes}")
        est.classes_ = np.asarray(classes)
    ctx.broadcast(present, "setup", {"classes": classes}, kind="plain")
    est.n_features_in_ = int(first["n_features"])
    if first["feature_names"] is not None:
        est.feature_names_in_ = np.asarray(first["feature_names"], dtype=object)
    full = replace(cfg, n_classes=len(classes) if est._task == "classification" else 0,
                   n_features=int(first["n_features"]))
    progress = FitProgress(est, total=int(est.max_iter), unit="iteration", verbose=est.verbose)
    return roles.server(ctx, full, progress=progress)
