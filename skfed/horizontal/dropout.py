"""Protected uploads and secure sums that survive clients dropping out.

Used instead of :mod:`.aggregation` when the estimator's ``min_clients`` is
set. The learning roles call the same methods; what changes:

* ``"masking"`` runs the four steps of :mod:`skfed.crypto.secagg_recovery`
  for every sum (share, upload, check, unmask), so the server can remove the
  masks of whoever is left;
* ``None`` (plain uploads, the debugging and reference mode) simply sums the
  uploads that arrived;
* every upload carries the client's weight ``n_k / N`` as one more summed
  coordinate, so the server re-normalises an average over the survivors;
* a client that misses any step is out for the rest of the fit (its process
  has died or its network is gone; its per-sum mask key may have been
  revealed). A sum with fewer than ``min_clients`` clients left raises
  :class:`TooFewClients`.

Each client passes four checkpoints per sum, where the in-process runtime
can drop it (``LocalRuntime(drops={client: (stage, n)})``, ``n`` counting the
sums: 1 is the set-up sum of sample counts, ``r + 1`` is training round
``r``): ``"before_key_sharing"``, ``"before_upload"``, ``"after_upload"``
and ``"during_unmasking"``. A client that drops after uploading is still in
that sum; it is out from the next one.
"""

import logging

import numpy as np

from ..crypto.secagg import FixedPointRing, new_session_id, ring_sum
from ..crypto.secagg_recovery import (
    RecoveryClient,
    RecoveryServer,
    check_threshold,
    tolerated_colluders,
)
from ..runtime.layout import check_array, check_dict
from ..runtime.local import PartyLeft
from .aggregation import ClientAggregation, ServerAggregation

__all__ = ["TooFewClients", "TolerantClientAggregation", "TolerantServerAggregation",
           "STAGES", "check_min_clients", "client_aggregation", "server_aggregation"]

_log = logging.getLogger("skfed.horizontal")

STAGES = ("before_key_sharing", "before_upload", "after_upload", "during_unmasking")


class TooFewClients(RuntimeError):
    """Fewer than ``min_clients`` clients are left to complete a round."""


def check_min_clients(min_clients, n_clients, protection):
    """Refuse thresholds that cannot work, before any message is sent."""
    if min_clients is None:
        return
    if protection == "paillier":
        raise ValueError(
            "min_clients needs secure_aggregation='masking' (or None): in Paillier mode "
            "the key holder decrypts every sum, and its dropping out would stop the "
            "federation, so Paillier mode does not tolerate dropouts")
    if min_clients > n_clients:
        raise ValueError(f"min_clients={min_clients} exceeds the number of clients "
                         f"({n_clients})")
    if protection == "masking":
        check_threshold(min_clients, n_clients)


def _checkpoint(ctx, stage):
    hook = getattr(ctx, "checkpoint", None)
    if hook is not None:
        hook(stage)


class TolerantClientAggregation:
    """A client's half: long-term keys once, then four steps per protected upload."""

    def __init__(self, ctx, server, clients, protection, threshold):
        self.ctx, self.server, self.clients = ctx, server, list(clients)
        self.protection = protection
        self.ring = FixedPointRing(n_summands=len(self.clients))
        self.threshold = threshold
        self.index = 0
        self.recovery = None
        self._prepared = None

    def setup(self):
        if self.protection != "masking":
            return
        ctx = self.ctx
        self.recovery = RecoveryClient(ctx.party, self.threshold, clients=self.clients)
        ctx.send(self.server, "recovery_keys", self.recovery.public_keys(), kind="public_key")
        relayed = check_dict(ctx.recv(self.server, "recovery_keys"), sender=self.server,
                             tag="recovery_keys", keys=("keys", "session"))
        self.recovery.agree(relayed["keys"], relayed["session"])

    def prepare(self, tag):
        """Share this sum's mask secrets now, before the update is computed.

        The shares do not depend on the update, so a client that sends them
        before its local training takes the key-sharing step off the round's
        critical path: the server relays them while the clients train.
        """
        self.index += 1
        _checkpoint(self.ctx, "before_key_sharing")
        if self.recovery is not None:
            self.ctx.send(self.server, tag + "/share", self.recovery.share(self.index),
                          kind="ciphertext")
        self._prepared = tag

    def upload(self, values, tag, weight=None):
        """Send one protected vector (with ``weight`` appended) and help unmask the sum."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if weight is not None:
            values = np.concatenate([values, [float(weight)]])
        self._upload(values, tag, encode=self.ring.encode)

    def upload_ring(self, ints, tag):
        """Send integers for an exact sum modulo 2**64 (no fixed-point encoding),
        with the same four steps as :meth:`upload`."""
        ints = np.ascontiguousarray(ints, dtype=np.int64).ravel()
        self._upload(ints, tag, encode=lambda v: v.view(np.uint64))

    def _upload(self, values, tag, encode):
        if self._prepared != tag:
            self.prepare(tag)
        self._prepared = None
        ctx, server, rc, i = self.ctx, self.server, self.recovery, self.index
        if rc is not None:
            relayed = check_dict(ctx.recv(server, tag + "/relay"), sender=server,
                                 tag=tag + "/relay", keys=("s_pks", "shares"))
        _checkpoint(ctx, "before_upload")
        if rc is None:
            ctx.send(server, tag, values, kind="plain")
        else:
            ctx.send(server, tag, rc.mask(i, encode(values), relayed), kind="masked")
        _checkpoint(ctx, "after_upload")
        if rc is not None:
            survivors = ctx.recv(server, tag + "/survivors")
            ctx.send(server, tag + "/confirm", rc.confirm(i, survivors), kind="plain")
            confirmations = ctx.recv(server, tag + "/confirmations")
        _checkpoint(ctx, "during_unmasking")
        if rc is not None:
            # Shares of survivors' self-mask seeds and of dropped clients' mask
            # keys: what the protocol reveals to the server by design.
            ctx.send(server, tag + "/reveal", rc.reveal(i, confirmations), kind="plain")


class TolerantServerAggregation:
    """The server's half: carries on with the clients that are left.

    Attributes
    ----------
    active : list of str
        Clients still taking part.
    dropouts : list of dict
        One entry per client that dropped: its name, the sum (1 = set-up) and
        the stage at which it stopped answering.
    """

    def __init__(self, ctx, clients, protection, threshold):
        self.ctx, self.clients = ctx, list(clients)
        self.protection = protection
        self.ring = FixedPointRing(n_summands=len(self.clients))
        self.threshold = threshold
        self.index = 0
        self.active = list(self.clients)
        self.dropouts = []
        self.recovery = None
        # The clients whose vectors the last sum holds (a client that dropped
        # after uploading is in it, though no longer active).
        self.contributors = tuple(self.clients)

    # -- talking to whoever is left -------------------------------------------------
    def _drop(self, client, stage):
        if client in self.active:
            self.active.remove(client)
            index = self.index
            if stage is None:
                # Lost between sums (a model or statistics broadcast): for the
                # client, the same as dropping before the next sum's first step.
                index, stage = index + 1, STAGES[0]
            self.dropouts.append({"client": client, "sum": index, "stage": stage})
            where = "set-up" if index <= 1 else f"round {index - 1}"
            _log.warning("client %r dropped out (%s, %s); %d of %d clients left, "
                         "min_clients=%d", client, where, stage, len(self.active),
                         len(self.clients), self.threshold)

    def _enough(self, present, what):
        if len(present) < self.threshold:
            dropped = sorted(set(self.clients) - set(present))
            where = "during set-up" if self.index <= 1 else f"in round {self.index - 1}"
            raise TooFewClients(
                f"{what} {where}: only {len(present)} of {len(self.clients)} clients are "
                f"left ({', '.join(map(repr, dropped))} dropped out) and min_clients="
                f"{self.threshold}; the round cannot complete")

    def gather(self, tag, senders=None, stage=None, what="answered"):
        """``{client: message}`` from every active client in ``senders`` that answers."""
        out = {}
        for c in list(self.active if senders is None else senders):
            if c not in self.active:
                continue
            try:
                out[c] = self.ctx.recv(c, tag)
            except PartyLeft:
                self._drop(c, stage)
        self._enough(out, what)
        return out

    def send(self, client, tag, payload, kind, stage=None):
        try:
            self.ctx.send(client, tag, payload, kind=kind)
        except PartyLeft:
            self._drop(client, stage)

    def broadcast(self, tag, payload, kind="plain", receivers=None, stage=None):
        for c in list(self.active if receivers is None else receivers):
            if c in self.active:
                self.send(c, tag, payload, kind, stage)

    def setup(self):
        if self.protection != "masking":
            return
        keys = self.gather("recovery_keys", what="long-term keys")
        session = new_session_id()
        self.broadcast("recovery_keys", {"keys": keys, "session": session}, kind="public_key")
        self.recovery = RecoveryServer(self.threshold, {c: keys[c] for c in self.active},
                                       session)
        # The operator's reminder that t buys dropout tolerance with collusion resistance.
        _log.info("dropout-tolerant masking with min_clients=%d of %d clients resists a "
                  "server colluding with at most %d client(s)", self.threshold,
                  len(self.clients), tolerated_colluders(self.threshold, len(self.clients)))

    def secure_sum(self, tag, size, weighted=False):
        """The sum of the survivors' vectors; with ``weighted``, their weighted mean.

        Clients append their weight ``n_k / N``; the server divides by the
        survivors' weight sum, once someone has dropped (until then the
        weights sum to 1 and the result is the one of plain secure aggregation).
        """
        n = size + 1 if weighted else size
        total, uploads = self._sum(tag, n, ring=False)
        if not weighted:
            return total
        if sorted(uploads) != sorted(self.clients):
            return total[:-1] / total[-1]
        return total[:-1]

    def secure_sum_ring(self, tag, size):
        """The survivors' integer vectors of :meth:`TolerantClientAggregation.upload_ring`
        summed modulo 2**64 (int64)."""
        return self._sum(tag, size, ring=True)[0].view(np.int64)

    def _sum(self, tag, n, ring):
        self.index += 1
        rs, i = self.recovery, self.index
        if rs is None:
            uploads = self.gather(tag, stage="before_upload", what="uploads")
            for c, u in uploads.items():
                if ring:
                    check_array(u, sender=c, tag=tag, shape=(n,), dtype="i",
                                exact_dtype="int64")
                else:
                    check_array(u, sender=c, tag=tag, shape=(n,))
            total = ring_sum([uploads[c].view(np.uint64) for c in sorted(uploads)]) if ring \
                else np.sum([uploads[c] for c in sorted(uploads)], axis=0)
        else:
            shared = self.gather(tag + "/share", stage="before_key_sharing",
                                 what="key shares")
            for c in sorted(shared):
                self.send(c, tag + "/relay", rs.relay(i, shared, c), kind="ciphertext",
                          stage="before_upload")
            uploads = self.gather(tag, senders=sorted(shared), stage="before_upload",
                                  what="masked uploads")
            for c, u in uploads.items():
                check_array(u, sender=c, tag=tag, shape=(n,), dtype="u", exact_dtype="uint64")
            survivors = rs.survivors(i, uploads)
            self.broadcast(tag + "/survivors", survivors, receivers=survivors,
                           stage="after_upload")
            confirms = self.gather(tag + "/confirm", senders=survivors, stage="after_upload",
                                   what="survivor-list confirmations")
            for c in sorted(confirms):
                self.send(c, tag + "/confirmations", rs.confirmations(i, confirms, c),
                          kind="plain", stage="during_unmasking")
            reveals = self.gather(tag + "/reveal", senders=sorted(confirms),
                                  stage="during_unmasking", what="unmasking shares")
            for c, r in reveals.items():
                check_dict(r, sender=c, tag=tag + "/reveal", keys=("s", "b"))
            total = rs.unmask(i, {c: uploads[c] for c in survivors}, reveals)
            if not ring:
                total = self.ring.decode(total)
            uploads = {c: uploads[c] for c in survivors}
        self.contributors = tuple(sorted(uploads))
        return total, uploads


def client_aggregation(ctx, server, clients, protection, min_clients=None, **options):
    """A client's half of secure aggregation, set up: dropout-tolerant when
    ``min_clients`` is set, plain otherwise (``options``: its Paillier settings)."""
    if min_clients is None:
        agg = ClientAggregation(ctx, server, clients, protection, **options)
    else:
        agg = TolerantClientAggregation(ctx, server, clients, protection, min_clients)
    agg.setup()
    return agg


def server_aggregation(ctx, clients, protection, min_clients=None):
    """The server's half of :func:`client_aggregation`, set up."""
    if min_clients is None:
        agg = ServerAggregation(ctx, list(clients), protection)
    else:
        agg = TolerantServerAggregation(ctx, list(clients), protection, min_clients)
    agg.setup()
    return agg
