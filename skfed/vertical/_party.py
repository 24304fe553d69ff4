"""Vertical FL with one party per process (a runtime with a ``party``).

The label party calls ``fit(X_guest, y)``, each feature party
``fit(X_host)``, the arbiter ``fit(None)``. Around the unchanged roles of
:mod:`.roles`, one set-up message from each data party to the arbiter lets
the arbiter learn the number of rows (it needs the mini-batch sizes) and
check that every party typed in the same hyper-parameters and holds the
same number of (aligned) rows::

    guest, hosts -> arbiter   setup   {n_samples, params}   plain
    ...                               the protocol of :mod:`.roles`

The arbiter's public key is the go-ahead: if the set-up disagrees, the
arbiter aborts instead of sending it, and the network runtime tells the
others why (a :class:`~skfed.runtime.party.ProtocolMismatch` names only
public values).
"""

from dataclasses import asdict, replace

from ..runtime.party import ProtocolMismatch, check_agreement, public_params
from . import roles

__all__ = ["data_party", "arbiter_party", "PRIVATE_CONFIG_KEYS"]

# Each party's own choices; every other field of VerticalConfig must agree.
PRIVATE_CONFIG_KEYS = ("n_jobs", "verbose", "n_samples")


def _public(cfg):
    return public_params({k: v for k, v in asdict(cfg).items()
                          if k not in PRIVATE_CONFIG_KEYS})


def data_party(ctx, role, cfg):
    """A guest or host: announce the set-up, then run its role."""
    ctx.send(cfg.arbiter, "setup", {"n_samples": int(cfg.n_samples), "params": _public(cfg)},
             kind="plain")
    return role(ctx)


def arbiter_party(ctx, cfg, progress=None):
    """The arbiter: check the set-up of every data party, then run its role."""
    parties = (cfg.label_party, *cfg.hosts)
    mine = _public(cfg)
    setups = ctx.gather(parties, "setup")
    for name, s in zip(parties, setups):
        check_agreement(mine, s.get("params") if isinstance(s, dict) else None,
                        me=ctx.party, them=name)
    sizes = {name: s["n_samples"] for name, s in zip(parties, setups)}
    if len(set(sizes.values())) != 1:
        raise ProtocolMismatch(
            f"the data parties hold different numbers of rows {sizes}; align the "
            "samples first (skfed.align_samples) and pass the aligned rows")
    return roles.arbiter_fit(ctx, replace(cfg, n_samples=int(sizes[cfg.label_party])),
                             progress=progress)
