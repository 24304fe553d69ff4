"""Protected upload (client side) and secure sum (server side).

Three protections, one interface, so the learning roles do not care which is
used:

* ``"masking"``: pairwise-mask secure aggregation over Z_{2**64}
  (:mod:`skfed.crypto.secagg`). The server learns only the sum.
* ``"paillier"``: the article's option. One client (the key holder) makes a
  Paillier key pair and shares the private key with the other clients,
  sealed under pairwise X25519-derived keys, so the relaying server never
  sees it. Clients upload packed ciphertexts of their fixed-point updates;
  the server multiplies them (adds the plaintexts) and the key holder
  decrypts only the aggregate.
* ``None``: plain uploads, for comparison and debugging only.

Every secure sum has a running index that both sides count identically; it
separates the masks of different sums, so no mask is ever reused.
"""

import math

import numpy as np

from ..crypto.secagg import FixedPointRing, MaskingClient, new_session_id, ring_sum
from ..runtime.layout import check_array, check_attributes
from ..runtime.wire import decode, encode

__all__ = ["ClientAggregation", "ServerAggregation", "PROTECTIONS"]

PROTECTIONS = ("masking", "paillier", None)


_SIGN_BIT = np.uint64(2**63)


def to_slots(encoded):
    """Ring values to offset binary, the form packed into Paillier slots.

    Two's-complement slots would carry 2**64 for every negative upload, and
    the key holder, who decrypts whole slot sums, would learn how many clients
    sent a negative value on each coordinate. With offset binary the slot sum
    is the aggregate plus a public constant.
    """
    return np.asarray(encoded, dtype=np.uint64) ^ _SIGN_BIT


def from_slot_sums(sums, n_clients):
    """Decrypted slot sums of offset-binary values back to the ring sum."""
    shift = n_clients * 2**63
    return np.array([(int(s) - shift) % 2**64 for s in sums], dtype=np.uint64)


def _slot_bits(n_clients):
    # 64-bit ring values plus headroom so the slot sum of n_clients terms never carries.
    return 64 + max(1, math.ceil(math.log2(n_clients + 1)))


class ClientAggregation:
    """A client's half of the protocol: key agreement, then protected uploads."""

    def __init__(self, ctx, server, clients, protection, key_size=2048, n_jobs=None):
        self.ctx, self.server, self.clients = ctx, server, list(clients)
        self.protection = protection
        self.ring = FixedPointRing(n_summands=len(self.clients))
        self.key_size, self.n_jobs = key_size, n_jobs
        self.index = 0
        self.masker = None
        self.public_key = self.private_key = None
        self.key_holder = self.clients[0]

    def setup(self):
        if self.protection is None:
            return
        ctx = self.ctx
        self.masker = MaskingClient(ctx.party)
        ctx.send(self.server, "agree_public_key", self.masker.public_bytes(), kind="public_key")
        relayed = ctx.recv(self.server, "agree_public_keys")
        self.masker.agree(relayed["keys"], relayed["session"])
        if self.protection == "paillier":
            self._share_paillier_key()

    def _share_paillier_key(self):
        from phe import paillier as phe_paillier

        from ..crypto.paillier import generate_keypair, public_key_from_wire, public_key_to_wire

        ctx = self.ctx
        if ctx.party == self.key_holder:
            pk, sk = generate_keypair(self.key_size)
            secret = encode({"p": int(sk.p), "q": int(sk.q)})
            ctx.send(self.server, "paillier_public_key", public_key_to_wire(pk),
                     kind="public_key")
            for peer in self.masker.peers:
                ctx.send(self.server, "sealed_private_key",
                         {"to": peer, "sealed": self.masker.seal(peer, secret, "paillier")},
                         kind="ciphertext")
        else:
            pk = public_key_from_wire(ctx.recv(self.server, "paillier_public_key"))
            sealed = ctx.recv(self.server, "sealed_private_key")
            parts = decode(self.masker.open(self.key_holder, sealed, "paillier"))
            sk = phe_paillier.PaillierPrivateKey(pk, parts["p"], parts["q"])
            if sk.p * sk.q != pk.n:
                raise ValueError("the shared Paillier private key does not match the public key")
        self.public_key, self.private_key = pk, sk

    def prepare(self, tag):
        """Nothing to do ahead of an upload without dropout tolerance."""

    def upload(self, values, tag, weight=None):
        """Send one protected vector; take part in decrypting the aggregate.

        ``weight`` is unused: without dropouts the weights of all clients sum to 1.
        """
        values = np.asarray(values, dtype=np.float64).ravel()
        self.index += 1
        ctx = self.ctx
        if self.protection is None:
            ctx.send(self.server, tag, values, kind="plain")
            return
        encoded = self.ring.encode(values)
        if self.protection == "masking":
            ctx.send(self.server, tag, self.masker.mask(encoded, self.index), kind="masked")
            return
        from ..crypto.paillier import PackedCiphertexts, pack_encrypt

        packed = pack_encrypt(self.public_key, to_slots(encoded),
                              _slot_bits(len(self.clients)), n_jobs=self.n_jobs)
        ctx.send(self.server, tag, packed.to_wire(), kind="ciphertext")
        if ctx.party == self.key_holder:
            # What the key holder decrypts must be the sum of every client's
            # upload, in the upload's layout, never some other ciphertext.
            total = check_attributes(
                PackedCiphertexts.from_wire(self.public_key,
                                            ctx.recv(self.server, tag + "_encrypted_sum")),
                sender=self.server, tag=tag + "_encrypted_sum", n_values=values.size,
                slot_bits=packed.slot_bits, n_summands=len(self.clients))
            sums = total.decrypt(self.private_key, values.size)
            ring = from_slot_sums(sums, len(self.clients))
            # Only the aggregate is revealed, as with masking.
            ctx.send(self.server, tag + "_sum", ring, kind="plain")


    def upload_ring(self, ints, tag):
        """Send integers for an exact sum modulo 2**64 (no fixed-point encoding):
        masked by the pairwise masks, or plain without protection."""
        ints = np.ascontiguousarray(ints, dtype=np.int64).ravel()
        self.index += 1
        if self.protection is None:
            self.ctx.send(self.server, tag, ints, kind="plain")
            return
        _check_ring_protection(self.protection)
        # In place: the caller's vector is not used after the upload (it was
        # copied above only when not already contiguous int64).
        self.ctx.send(self.server, tag, self.masker.mask(ints.view(np.uint64), self.index,
                                                         inplace=True), kind="masked")


def _check_ring_protection(protection):
    if protection != "masking":
        raise ValueError(f"exact integer sums need secure_aggregation='masking' or None, "
                         f"not {protection!r}")


class ServerAggregation:
    """The server's half: relays keys and learns only sums."""

    def __init__(self, ctx, clients, protection):
        self.ctx, self.clients = ctx, list(clients)
        self.protection = protection
        self.ring = FixedPointRing(n_summands=len(self.clients))
        self.index = 0
        self.public_key = None
        self.key_holder = self.clients[0]

    def setup(self):
        if self.protection is None:
            return
        ctx = self.ctx
        keys = dict(zip(self.clients, ctx.gather(self.clients, "agree_public_key")))
        ctx.broadcast(self.clients, "agree_public_keys",
                      {"keys": keys, "session": new_session_id()}, kind="public_key")
        if self.protection == "paillier":
            from ..crypto.paillier import public_key_from_wire

            wire_pk = ctx.recv(self.key_holder, "paillier_public_key")
            self.public_key = public_key_from_wire(wire_pk)
            others = [c for c in self.clients if c != self.key_holder]
            ctx.broadcast(others, "paillier_public_key", wire_pk, kind="public_key")
            for _ in others:
                msg = ctx.recv(self.key_holder, "sealed_private_key")
                if msg.get("to") not in others:
                    raise ValueError("sealed key addressed to an unknown client")
                ctx.send(msg["to"], "sealed_private_key", msg["sealed"], kind="ciphertext")

    @property
    def active(self):
        """Every client: without dropout tolerance all must answer every step."""
        return self.clients

    dropouts = ()

    def gather(self, tag):
        return dict(zip(self.clients, self.ctx.gather(self.clients, tag)))

    def broadcast(self, tag, payload, kind="plain"):
        self.ctx.broadcast(self.clients, tag, payload, kind=kind)

    @property
    def contributors(self):
        """The clients whose vectors every sum holds: all of them."""
        return tuple(self.clients)

    def secure_sum_ring(self, tag, size):
        """The clients' vectors of :meth:`ClientAggregation.upload_ring` summed
        modulo 2**64 (int64)."""
        self.index += 1
        masked = self.protection is not None
        if masked:
            _check_ring_protection(self.protection)
        # Each vector is added as it arrives, while later clients still compute
        # theirs (ring_sum's arithmetic, one vector at a time).
        total = None
        for c in self.clients:
            u = check_array(self.ctx.recv(c, tag), sender=c, tag=tag, shape=(size,),
                            dtype="u" if masked else "i",
                            exact_dtype="uint64" if masked else "int64")
            u = u.view(np.uint64)
            if total is None:
                total = u if u.flags.writeable else u.copy()
            else:
                total += u
        return total.view(np.int64)

    def secure_sum(self, tag, size, weighted=False):
        """Receive every client's protected vector under ``tag``; return the sum.

        ``weighted`` is unused (see :meth:`ClientAggregation.upload`).
        """
        self.index += 1
        ctx = self.ctx
        uploads = ctx.gather(self.clients, tag)
        if self.protection is None:
            return np.sum([check_array(u, sender=c, tag=tag, shape=(size,))
                           for c, u in zip(self.clients, uploads)], axis=0)
        if self.protection == "masking":
            for c, u in zip(self.clients, uploads):
                check_array(u, sender=c, tag=tag, shape=(size,), dtype="u", exact_dtype="uint64")
            return self.ring.decode(ring_sum(uploads))
        from ..crypto.paillier import PackedCiphertexts

        parts = [check_attributes(PackedCiphertexts.from_wire(self.public_key, u), sender=c,
                                  tag=tag, n_values=size,
                                  slot_bits=_slot_bits(len(self.clients)), n_summands=1)
                 for c, u in zip(self.clients, uploads)]
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        ctx.send(self.key_holder, tag + "_encrypted_sum", total.to_wire(), kind="ciphertext")
        ring = check_array(ctx.recv(self.key_holder, tag + "_sum"), sender=self.key_holder,
                           tag=tag + "_sum", shape=(size,), dtype="u", exact_dtype="uint64")
        return self.ring.decode(ring)
