"""Transfer learning with one party per process (a runtime with a ``party``).

The source calls ``fit(X_source, y, overlap=idx)``, the target
``fit(X_target, overlap=idx)``: each passes all of its own rows and, in
``overlap``, the positions of the shared rows in the order both agreed on
(for instance from :func:`skfed.align_samples`). Before the protocol of
:mod:`.roles`, one set-up message each way::

    source <-> target  setup          {params, n_overlap}      plain
    source  -> target  setup_source   {batch_seed, classes}    plain

Both check that the other has the same public settings (the normalised
configuration the roles run with, and the topology) and as many overlap
rows (a :class:`~skfed.runtime.party.ProtocolMismatch` names only public
values); only then does the source send its batch seed, the shared
randomness of mini-batches, and its class labels, which the target's
``predict`` returns (declared metadata, like the labelled-overlap mask).
The overlap's *order* cannot be checked here (neither side sees the other's
IDs): pass the positions :func:`skfed.align_samples` returns.
"""

from ..runtime.party import ProtocolMismatch, check_agreement, public_params
from . import roles

__all__ = ["PRIVATE_PARAMS", "source_party", "target_party"]

# Each party's own choices; every other setting must agree.
PRIVATE_PARAMS = ("n_jobs", "verbose", "batch_seed", "network_seed")


def setup_params(cfg, topology):
    """The public set-up both parties compare: the normalised configuration the
    roles run with (so ``(8,)`` and ``[8]``, or ``1`` and ``1.0``, agree) and
    the topology."""
    public = {k: v for k, v in cfg.items() if k not in PRIVATE_PARAMS}
    public["topology"] = (sorted((p, [str(c) for c in cols])
                                 for p, cols in topology.parties.items()),
                          topology.label_party)
    return public_params(public)


def _exchange(ctx, peer, mine):
    ctx.send(peer, "setup", mine, kind="plain")
    theirs = ctx.recv(peer, "setup")
    check_agreement(mine["params"], theirs.get("params") if isinstance(theirs, dict)
                    else None, me=ctx.party, them=peer)
    if theirs.get("n_overlap") != mine["n_overlap"]:
        raise ProtocolMismatch(
            f"{peer!r} holds {theirs.get('n_overlap')} overlap rows and {ctx.party!r} "
            f"{mine['n_overlap']}; align the samples first (skfed.align_samples)")
    return theirs


def source_party(ctx, X, labelled, Y, overlap, cfg, params, classes, progress=None):
    """The source: check the set-up, send the batch seed and classes, run :func:`roles.source`."""
    peer = cfg["target_name"]
    _exchange(ctx, peer, {"params": params, "n_overlap": len(overlap)})
    ctx.send(peer, "setup_source", {"batch_seed": cfg["batch_seed"], "classes": list(classes)},
             kind="plain")
    return roles.source(ctx, X, labelled, Y, overlap, cfg, progress=progress)


def target_party(ctx, X, overlap, cfg, params):
    """The target: check the set-up, take the source's batch seed, run :func:`roles.target`."""
    peer = cfg["source_name"]
    _exchange(ctx, peer, {"params": params, "n_overlap": len(overlap)})
    theirs = ctx.recv(peer, "setup_source")
    out = roles.target(ctx, X, overlap, {**cfg, "batch_seed": int(theirs["batch_seed"])})
    return {**out, "classes": theirs["classes"]}
