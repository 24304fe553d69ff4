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

import numpy as np

from ..runtime.local import PartyLeft
from ..runtime.party import ProtocolMismatch, check_agreement, public_params
from .roles import client, model_layout, server

__all__ = ["client_party", "server_party", "gather_setups", "PRIVATE_CONFIG_KEYS"]

# Settings each party chooses for itself; everything else in the role
# configuration must agree across parties.
PRIVATE_CONFIG_KEYS = ("n_jobs", "verbose", "layout", "clients")


def _public(cfg):
    return public_params({k: v for k, v in cfg.items() if k not in PRIVATE_CONFIG_KEYS})


def gather_setups(ctx, clients, mine):
    """The server's side of every horizontal set-up, before any data-derived message.

    Each client must agree on the public settings ``mine`` and hold the same
    columns. Returns the first client's set-up and the union of the labels
    the clients declared (empty for tasks without labels).
    """
    setups = ctx.gather(clients, "setup")
    first = setups[0]
    labels = set()
    for name, s in zip(clients, setups):
        check_agreement(mine, s.get("params") if isinstance(s, dict) else None,
                        me=ctx.party, them=name)
        if (s["n_features"], s["feature_names"]) != (first["n_features"],
                                                     first["feature_names"]):
            raise ProtocolMismatch(
                f"clients {clients[0]!r} and {name!r} hold different columns: "
                f"{first['n_features']} {first['feature_names'] or ''} vs "
                f"{s['n_features']} {s['feature_names'] or ''}")
        labels.update(s.get("labels") or ())
    return first, labels


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
    first, labels = gather_setups(ctx, clients, _public(cfg))
    n_features = int(first["n_features"])
    n_outputs = _n_outputs(cfg["task"], labels)
    ctx.broadcast(clients, "setup", n_outputs, kind="plain")
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
