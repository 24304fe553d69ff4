"""Horizontal FL with one party per process (a runtime with a ``party``).

Each client calls ``fit(X_k, y_k)`` with its own rows; the server calls
``fit(None)``. Around the unchanged ``client``/``server`` roles, a set-up
exchange lets the server learn what the in-process estimator reads off the
pooled data — the number of features (checked equal at every client, with
their column names) and the label set — and check that everybody typed in
the same hyper-parameters. At the end the server sends the final global
model to the clients: it is public to them (they receive it every round).

Extra messages, all ``plain`` and public::

    client -> server   setup        {n_features, feature_names, labels, params}
    server -> clients  setup        n_outputs
    ...                             the protocol of :mod:`.roles`
    server -> clients  final_model  {model, classes, n_iter, history}
"""

import logging

import numpy as np

from ..runtime.local import PartyLeft
from ..runtime.party import ProtocolMismatch, check_agreement, public_params
from .dropout import TooFewClients
from .roles import client, model_layout, server

__all__ = ["client_party", "server_party", "gather_setups", "PRIVATE_CONFIG_KEYS"]

# Settings each party chooses for itself; everything else in the role
# configuration must agree across parties.
PRIVATE_CONFIG_KEYS = ("n_jobs", "verbose", "layout", "clients")
_log = logging.getLogger("skfed.horizontal")


def _public(cfg):
    return public_params({k: v for k, v in cfg.items() if k not in PRIVATE_CONFIG_KEYS})


def gather_setups(ctx, clients, mine, min_clients=None):
    """The server's side of every horizontal set-up, before any data-derived message.

    Each client must agree on the public settings ``mine`` and hold the same
    columns. With ``min_clients`` set, a client that cannot be reached (never
    started, or died before sending its set-up) is left out, as long as
    ``min_clients`` clients are present; the protocol's dropout-tolerant sums
    then record it among the dropouts when they find it absent too. Returns
    the first present client's set-up, the union of the labels the present
    clients declared (empty for tasks without labels) and the present clients.
    """
    if min_clients is None:
        setups, present = ctx.gather(clients, "setup"), list(clients)
    else:
        setups, present = [], []
        for name in clients:
            try:
                setups.append(ctx.recv(name, "setup"))
            except PartyLeft:
                _log.warning("client %r did not send its set-up; the federation starts "
                             "without it (min_clients=%d)", name, min_clients)
                continue
            present.append(name)
        if len(present) < min_clients:
            raise TooFewClients(
                f"only {len(present)} of {len(clients)} clients sent their set-up "
                f"({', '.join(map(repr, sorted(set(clients) - set(present))))} did not) "
                f"and min_clients={min_clients}; the federation cannot start")
    first = setups[0]
    labels = set()
    for name, s in zip(present, setups):
        check_agreement(mine, s.get("params") if isinstance(s, dict) else None,
                        me=ctx.party, them=name)
        if (s["n_features"], s["feature_names"]) != (first["n_features"],
                                                     first["feature_names"]):
            raise ProtocolMismatch(
                f"clients {present[0]!r} and {name!r} hold different columns: "
                f"{first['n_features']} {first['feature_names'] or ''} vs "
                f"{s['n_features']} {s['feature_names'] or ''}")
        labels.update(s.get("labels") or ())
    return first, labels, present


def _n_outputs(task, labels):
    if task != "classification":
        return 0
    n_classes = len(labels)
    return 1 if n_classes <= 2 else n_classes


def client_party(ctx, X, y, cfg, seed, feature_names):
    """A client in its own process: set-up, the client role, the final model."""
    srv = cfg["server"]
    labels = np.unique(y).tolist() if cfg["task"] == "classification" else None
    ctx.send(srv, "setup", {"n_features": int(X.shape[1]), "feature_names": feature_names,
                            "labels": labels, "params": _public(cfg)}, kind="plain")
    n_outputs = int(ctx.recv(srv, "setup"))
    cfg = dict(cfg, layout=model_layout(X.shape[1], n_outputs, cfg["average"]))
    client(ctx, X, y, cfg, seed)
    return ctx.recv(srv, "final_model")


def server_party(ctx, cfg, progress=None):
    """The server in its own process: checks the clients agree, then serves."""
    clients = cfg["clients"]
    first, labels, present = gather_setups(ctx, clients, _public(cfg), cfg.get("min_clients"))
    n_features = int(first["n_features"])
    n_outputs = _n_outputs(cfg["task"], labels)
    ctx.broadcast(present, "setup", n_outputs, kind="plain")
    cfg = dict(cfg, layout=model_layout(n_features, n_outputs, cfg["average"]))
    out = server(ctx, cfg, progress=progress)
    final = {"model": out["model"], "classes": out.get("classes"), "n_iter": out["n_iter"],
             "history": out["history"]}
    gone = {d["client"] for d in out["dropouts"]}
    for c in clients:
        if c in gone:
            continue
        try:
            ctx.send(c, "final_model", final, kind="plain")
        except PartyLeft:
            # With min_clients set, a client that died after the last round
            # does not spoil the model the others receive.
            if cfg.get("min_clients") is None:
                raise
    return dict(out, n_features=n_features, feature_names=first["feature_names"])
