"""Transfer learning with one party per process (a runtime with a ``party``).

The source calls ``fit(X_source, y, overlap=idx)``, the target
``fit(X_target, overlap=idx)``: each passes all of its own rows and, in
``overlap``, the positions of the shared rows in the order both agreed on
(for instance from :func:`skfed.align_samples`). Before the protocol of
:mod:`.roles`, one set-up message each way::

    source -> target   setup   {params, n_overlap, batch_seed, classes}   plain
    target -> source   setup   {params, n_overlap}                        plain

Both check that the other typed in the same public settings and holds as
many overlap rows (a :class:`~skfed.runtime.party.ProtocolMismatch` names
only public values). The source's batch seed is the shared randomness of
mini-batches; its class labels are what the target's ``predict`` returns
(declared metadata, like the labelled-overlap mask).
"""

from ..runtime.party import ProtocolMismatch, check_agreement, public_params
from . import roles

__all__ = ["PRIVATE_PARAMS", "source_party", "target_party"]

# Each party's own choices; every other parameter must agree.
PRIVATE_PARAMS = ("n_jobs", "verbose", "random_state", "runtime", "topology")


def setup_params(params, topology):
    """The public set-up both parties compare: hyper-parameters and topology."""
    public = {k: v for k, v in params.items() if k not in PRIVATE_PARAMS}
    public["topology"] = (sorted((p, list(c)) for p, c in topology.parties.items()),
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
    """The source: announce the set-up, then run :func:`roles.source`."""
    _exchange(ctx, cfg["target_name"], {
        "params": params, "n_overlap": len(overlap), "batch_seed": cfg["batch_seed"],
        "classes": list(classes)})
    return roles.source(ctx, X, labelled, Y, overlap, cfg, progress=progress)


def target_party(ctx, X, overlap, cfg, params):
    """The target: check the set-up, take the source's batch seed, run :func:`roles.target`."""
    theirs = _exchange(ctx, cfg["source_name"], {"params": params, "n_overlap": len(overlap)})
    out = roles.target(ctx, X, overlap, {**cfg, "batch_seed": int(theirs["batch_seed"])})
    return {**out, "classes": theirs["classes"]}
