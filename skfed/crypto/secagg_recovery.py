"""Secure aggregation that survives dropouts (Bonawitz et al., CCS 2017).

Every client masks its update twice: with *pairwise* masks that cancel in
the sum (as in :mod:`skfed.crypto.secagg`) and with a *self-mask* expanded
from a fresh seed ``b_u``. Before uploading, it Shamir-shares (t-out-of-n,
:mod:`skfed.crypto.shamir`) both its per-sum mask key ``s_u`` and ``b_u``
among the other clients, each share sealed for its recipient. After the
upload the server names the clients whose masked vectors it holds
(``survivors``); every live client then reveals, for each client ``u``:

* a share of ``b_u`` if ``u`` survived (so the server removes its self-mask),
* a share of ``s_u`` if ``u`` dropped before uploading (so the server
  rebuilds the pairwise masks the survivors added for ``u``),

and never both for the same ``u``: a surviving client's vector keeps its
pairwise masks, a dropped client never sent one.

The steps of one secure sum (``index`` numbers the sums of a session)::

    1 share    client -> server : fresh X25519 mask public key s_u^PK,
                                  shares of s_u^SK and b_u sealed per peer
               server -> client : the mask keys of those who shared (U2),
                                  the sealed shares addressed to this client
    2 upload   client -> server : y_u = x_u + PRG(b_u) + sum_v +-PRG(s_uv)
    3 check    server -> client : survivors U3 (those whose y_u arrived)
               client -> server : for each other survivor v, a MAC of
                                  (session, index, U3) under the pair's key
    4 unmask   server -> client : t - 1 other survivors' MACs for this client
               client -> server : the shares above, once at least t of U3
                                  confirmed the same list
               server           : sum_U3 y_u - self-masks - dropped pair masks

Consistency check (step 3): a server that claimed a client dropped to some
clients and survived to others could collect shares of both its secrets.
Each client confirms the one survivor list it was shown, reveals only after
``t`` clients (itself and ``t - 1`` others) confirmed that same list, and
``t`` must exceed half the clients, so two different lists can never both
gather ``t`` confirmations. A confirmation is an HMAC-SHA256 under a key only
the two clients of a pair derive (from their long-term X25519 agreement), so
the server cannot forge one. It is what Bonawitz et al.'s signatures do here
at a fraction of the cost: ``t`` verifications of a signature per client, the
price of a publicly verifiable signature, were most of the protocol's time
at 20 clients, and nobody but the recipient needs to verify.
A server that tells *everyone* a client dropped after it uploaded learns
``s_u`` but not ``b_u``, and the self-mask still hides that client's vector.

Keys: the long-term X25519 key of :class:`~skfed.crypto.secagg.MaskingClient`
seals the shares (HKDF-SHA256 + ChaCha20-Poly1305; it is never revealed);
per-sum X25519 keys make the pairwise masks, so revealing a dropped client's
``s_u`` exposes only that sum and a client may take part again in the next
one. Masks are AES-256-CTR keystreams under HKDF-derived 256-bit keys, over
Z_{2**64} as in :mod:`skfed.crypto.secagg`; all secrets are 256-bit and
shared whole over GF(2**521 - 1): 128-bit security end to end.

Threat model: honest-but-curious clients; a server that follows the steps
but may lie about who dropped, relays keys faithfully (authenticate the
advertised keys out of band in deployments, as for
:mod:`~skfed.crypto.secagg`) and colludes with at most
:func:`tolerated_colluders` ``(t, n) = min(t - 2, 2t - n - 1)`` clients.
Both limits are tight: with ``t - 1`` colluders the server calls every other
client dropped and unmasks the one honest survivor; colluders confirm *both*
of two survivor lists, so with ``2t - n`` of them two disjoint groups of honest
clients each complete a quorum of ``t`` (5 clients, ``t = 3``: one colluder
suffices). Only ``t = n`` (no dropouts) or ``t`` near ``n`` tolerates
several colluders.
"""

import hashlib
import hmac
import os
import struct

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import shamir
from .secagg import MaskingClient, _hkdf, keystream

__all__ = ["RecoveryClient", "RecoveryServer", "check_threshold", "tolerated_colluders",
           "ConsistencyError"]

# v2: masks from AES-256-CTR (v1 used ChaCha20).
_DOMAIN = b"skfed/secagg-recovery/v2/"


class ConsistencyError(ValueError):
    """A message broke the protocol's consistency rules; nothing was revealed."""


def check_threshold(threshold, n_clients):
    """Refuse thresholds the consistency argument does not cover."""
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise ValueError(f"the threshold must be an integer, got {threshold!r}")
    if not n_clients // 2 < threshold <= n_clients:
        raise ValueError(
            f"the threshold must be more than half the clients and at most all of them "
            f"(in [{n_clients // 2 + 1}, {n_clients}] for {n_clients} clients), got "
            f"{threshold}: with half or fewer, two disjoint groups could each vouch for a "
            "different list of survivors and the server could unmask a client")


def tolerated_colluders(threshold, n_clients):
    """How many clients may collude with a server that lies about who dropped.

    The server learns one client's update if it controls ``t - 1`` clients
    (it names them and the victim as the only survivors) or ``2t - n``
    clients (they confirm two different survivor lists, and the honest
    clients split into two groups that each reach ``t`` confirmations).

    Examples
    --------
    >>> tolerated_colluders(3, 5), tolerated_colluders(4, 5), tolerated_colluders(5, 5)
    (0, 2, 3)
    """
    check_threshold(threshold, n_clients)
    return max(0, min(threshold - 2, 2 * threshold - n_clients - 1))


def _names(names):
    parts = []
    for name in names:
        raw = name.encode("utf-8")
        parts.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(parts)


def _stream(key, size):
    # A fresh key per use, so the stream may start at counter zero.
    return keystream(key, size)


def self_mask(seed, session, index, name, size):
    """The self-mask a client adds, expanded from its seed ``b_u``."""
    info = _DOMAIN + b"self|" + struct.pack(">Q", index) + _names([name])
    return _stream(_hkdf(seed, session, info), size)


def pair_mask(dh_secret, session, index, a, b, size):
    """The mask clients ``a`` and ``b`` share in sum ``index``; ``min(a, b)`` adds it."""
    info = _DOMAIN + b"pair|" + struct.pack(">Q", index) + _names(sorted([a, b]))
    return _stream(_hkdf(dh_secret, session, info), size)


def _commit(seed, session, index, name):
    """Binding commitment to a self-mask seed, so the server can tell bad shares."""
    return hashlib.sha256(_DOMAIN + b"commit|" + session + struct.pack(">Q", index)
                          + _names([name]) + seed).digest()


def _pack_share(sender, receiver, index, s_share, b_share):
    n = shamir.SHARE_BYTES
    return (_names([sender, receiver]) + struct.pack(">Q", index)
            + s_share.to_bytes(n, "big") + b_share.to_bytes(n, "big"))


def _unpack_share(plain, sender, receiver, index):
    head = _names([sender, receiver]) + struct.pack(">Q", index)
    n = shamir.SHARE_BYTES
    if len(plain) != len(head) + 2 * n or not plain.startswith(head):
        raise ConsistencyError(f"the share from {sender!r} is not for this client and sum")
    body = plain[len(head):]
    return int.from_bytes(body[:n], "big"), int.from_bytes(body[n:], "big")


def _share_nonce(sender, receiver, index):
    # The pair's key serves both directions and every sum of the session; the
    # nonce names both, and a client starts each sum once, so no nonce repeats.
    return struct.pack(">Q", index) + (b"\x00" if sender < receiver else b"\x01") + bytes(3)


def _survivor_message(session, index, survivors):
    return _DOMAIN + b"survivors|" + session + struct.pack(">Q", index) + _names(survivors)


class RecoveryClient:
    """One client's side of dropout-tolerant masking.

    Parameters
    ----------
    name : str
        This client's party name.
    threshold : int
        Shares needed to reconstruct a secret; more than half the clients of
        the session (the clients whose keys :meth:`agree` receives; a
        client's Shamir point is its 1-based position in their sorted list).
    clients : list of str, default=None
        The clients this client was configured with. When given, :meth:`agree`
        refuses a relayed key set naming anyone else, and the threshold must
        exceed half of *these* clients: a server relaying a smaller or padded
        key set cannot weaken the consistency check.

    Examples
    --------
    >>> import numpy as np
    >>> names = ["a", "b", "c"]
    >>> cs = {n: RecoveryClient(n, threshold=2) for n in names}
    >>> session = os.urandom(32)
    >>> keys = {n: c.public_keys() for n, c in cs.items()}
    >>> for c in cs.values():
    ...     c.agree(keys, session)
    >>> server = RecoveryServer(2, keys, session)
    >>> shared = {n: c.share(1) for n, c in cs.items() if n != "c"}   # "c" drops
    >>> relay = {n: server.relay(1, shared, n) for n in shared}
    >>> x = {"a": np.array([1, 2], np.uint64), "b": np.array([3, 4], np.uint64)}
    >>> y = {n: cs[n].mask(1, x[n], relay[n]) for n in shared}
    >>> survivors = server.survivors(1, y)
    >>> confirms = {n: cs[n].confirm(1, survivors) for n in survivors}
    >>> reveals = {n: cs[n].reveal(1, server.confirmations(1, confirms, n))
    ...            for n in survivors}
    >>> server.unmask(1, y, reveals)
    array([4, 6], dtype=uint64)
    """

    def __init__(self, name, threshold, clients=None):
        self.name = name
        self.clients = None
        self.threshold = threshold
        self.expected = None if clients is None else sorted(clients)
        self._channel = MaskingClient(name)
        self._session = None
        self._sums = {}
        self._aeads = {}
        self._mac_keys = {}

    def public_keys(self):
        """Long-term public key: it seals shares and authenticates survivor lists."""
        return {"c": self._channel.public_bytes()}

    def agree(self, keys, session):
        """Take every client's long-term public keys (relayed by the server)."""
        if self._session is not None:
            # The seal and MAC keys are cached per peer, and the nonces count
            # this object's sums: a second session needs a fresh client.
            raise ConsistencyError("this client already agreed on a session")
        if not isinstance(keys, dict) or self.name not in keys:
            raise ConsistencyError("the relayed key set does not name this client")
        if not all(isinstance(n, str) for n in keys):
            raise ValueError("the relayed key set names clients by non-strings")
        if self.expected is not None:
            unknown = sorted(set(keys) - set(self.expected))
            if unknown:
                raise ConsistencyError(
                    f"the relayed key set names {unknown}, who are not among this "
                    f"client's configured clients {self.expected}")
            check_threshold(self.threshold, len(self.expected))
        check_threshold(self.threshold, len(keys))
        for peer, k in keys.items():
            if not isinstance(k, dict) or not isinstance(k.get("c"), bytes):
                raise ValueError(f"malformed public keys from {peer!r}")
        self._channel.agree({n: k["c"] for n, k in keys.items()}, session)
        self._session = session
        self.clients = sorted(keys)

    def _point(self, name):
        return self.clients.index(name) + 1

    def _seal_key(self, peer):
        """The AEAD for shares exchanged with ``peer`` (both directions, whole session)."""
        if peer not in self._aeads:
            self._aeads[peer] = ChaCha20Poly1305(
                self._channel._pair_key(peer, "seal/recovery-share"))
        return self._aeads[peer]

    # -- step 1 -------------------------------------------------------------------
    def share(self, index):
        """Fresh mask key and self-mask seed for sum ``index``, shared among the peers."""
        if self._session is None:
            raise RuntimeError("call agree() first")
        if index in self._sums:
            raise ConsistencyError(f"sum {index} was already started")
        s_key = X25519PrivateKey.generate()
        s_raw = s_key.private_bytes_raw()
        seed = os.urandom(32)
        points = [self._point(n) for n in self.clients]
        s_shares = shamir.split(shamir.secret_to_int(s_raw), points, self.threshold)
        b_shares = shamir.split(shamir.secret_to_int(seed), points, self.threshold)
        sealed = {}
        for peer in self.clients:
            if peer == self.name:
                continue
            p = self._point(peer)
            plain = _pack_share(self.name, peer, index, s_shares[p], b_shares[p])
            sealed[peer] = self._seal_key(peer).encrypt(
                _share_nonce(self.name, peer, index), plain, None)
        me = self._point(self.name)
        self._sums[index] = {"s_key": s_key, "seed": seed, "stage": "shared",
                             "held": {self.name: (s_shares[me], b_shares[me])}}
        pk = s_key.public_key().public_bytes_raw()
        return {"s_pk": pk, "commit": _commit(seed, self._session, index, self.name),
                "shares": sealed}

    # -- step 2 -------------------------------------------------------------------
    def mask(self, index, encoded, relayed):
        """Mask ``encoded`` (uint64) with the self-mask and the pairwise masks of U2."""
        st = self._sums.get(index)
        if st is None or st["stage"] != "shared":
            raise ConsistencyError(f"sum {index} is not waiting for an upload")
        if not isinstance(relayed, dict):
            raise ValueError("malformed relay of mask keys and shares")
        pks, sealed = relayed.get("s_pks"), relayed.get("shares")
        if not isinstance(pks, dict) or not isinstance(sealed, dict):
            raise ValueError("malformed relay of mask keys and shares")
        u2 = sorted(pks)
        if not set(u2) <= set(self.clients) or self.name not in pks:
            raise ConsistencyError("the relayed mask keys name unknown clients or omit this one")
        if pks[self.name] != st["s_key"].public_key().public_bytes_raw():
            raise ConsistencyError("the relayed mask keys do not hold this client's own key")
        if len(u2) < self.threshold:
            raise ConsistencyError(
                f"only {len(u2)} clients shared their keys; the threshold is {self.threshold}")
        if set(sealed) != set(u2) - {self.name}:
            raise ConsistencyError("the relayed shares do not match the clients that shared")
        seen = {pks[self.name]}
        for peer in u2:
            if peer == self.name:
                continue
            if not isinstance(sealed[peer], bytes):
                raise ValueError(f"malformed sealed share from {peer!r}")
            try:
                plain = self._seal_key(peer).decrypt(
                    _share_nonce(peer, self.name, index), sealed[peer], None)
            except InvalidTag as exc:
                raise ValueError(f"the share from {peer!r} failed authentication") from exc
            st["held"][peer] = _unpack_share(plain, peer, self.name, index)
            if not isinstance(pks[peer], bytes) or len(pks[peer]) != 32 or pks[peer] in seen:
                raise ConsistencyError(f"invalid or repeated mask key from {peer!r}")
            seen.add(pks[peer])
        encoded = np.asarray(encoded, dtype=np.uint64)
        flat = encoded.ravel().copy()
        flat += self_mask(st["seed"], self._session, index, self.name, flat.size)
        for peer in u2:
            if peer == self.name:
                continue
            try:
                dh = st["s_key"].exchange(X25519PublicKey.from_public_bytes(pks[peer]))
            except ValueError as exc:
                raise ConsistencyError(f"invalid mask key from {peer!r}: {exc}") from exc
            m = pair_mask(dh, self._session, index, self.name, peer, flat.size)
            if self.name < peer:
                flat += m
            else:
                flat -= m
        st.update(stage="uploaded", u2=u2)
        # The secrets are no longer needed here: only their shares are revealed later.
        del st["s_key"], st["seed"]
        return flat.reshape(encoded.shape)

    # -- step 3 -------------------------------------------------------------------
    def confirm(self, index, survivors):
        """Confirm the survivor list of sum ``index`` to every other survivor.

        Returns ``{peer: MAC}``; a second list for the same sum is refused.
        """
        st = self._sums.get(index)
        if st is None or st["stage"] != "uploaded":
            raise ConsistencyError(f"sum {index} is not waiting for its survivor list")
        if not isinstance(survivors, (list, tuple)) \
                or not all(isinstance(u, str) for u in survivors):
            raise ConsistencyError("the survivor list is not a list of client names")
        survivors = list(survivors)
        if survivors != sorted(set(survivors)) or not set(survivors) <= set(st["u2"]):
            raise ConsistencyError("the survivor list is not a sorted subset of the "
                                   "clients that shared keys")
        if self.name not in survivors:
            raise ConsistencyError("the survivor list omits this client, which uploaded")
        if len(survivors) < self.threshold:
            raise ConsistencyError(
                f"only {len(survivors)} clients survived; the threshold is {self.threshold}")
        st.update(stage="confirmed", survivors=survivors)
        message = _survivor_message(self._session, index, survivors)
        return {peer: self._mac(peer, self.name, message)
                for peer in survivors if peer != self.name}

    def _mac(self, peer, sender, message):
        if peer not in self._mac_keys:
            self._mac_keys[peer] = self._channel._pair_key(peer, "survivor-list")
        # The sender's name is inside the MAC: a confirmation cannot be reflected.
        return hmac.new(self._mac_keys[peer], _names([sender]) + message,
                        hashlib.sha256).digest()

    # -- step 4 -------------------------------------------------------------------
    def reveal(self, index, confirmations):
        """The shares the server needs, once ``t`` survivors confirmed the same list."""
        st = self._sums.get(index)
        if st is None or st["stage"] != "confirmed":
            raise ConsistencyError(f"sum {index} is not waiting for the confirmations")
        survivors = st["survivors"]
        if not isinstance(confirmations, dict) \
                or not set(confirmations) <= set(survivors) - {self.name}:
            raise ConsistencyError("confirmations from clients outside the survivor list")
        message = _survivor_message(self._session, index, survivors)
        for peer, mac in confirmations.items():
            if not isinstance(mac, bytes) or not hmac.compare_digest(
                    mac, self._mac(peer, peer, message)):
                raise ConsistencyError(
                    f"{peer!r} did not confirm this survivor list: the server showed "
                    "clients different lists; refusing to reveal any share")
        if len(confirmations) + 1 < self.threshold:
            raise ConsistencyError(
                f"only {len(confirmations) + 1} survivors vouched for the list; the "
                f"threshold is {self.threshold}")
        s_shares, b_shares = {}, {}
        for u in st["u2"]:
            s, b = st["held"][u]
            if u in survivors:
                b_shares[u] = b
            else:
                s_shares[u] = s
        st["stage"] = "revealed"
        del st["held"]
        return {"s": s_shares, "b": b_shares}


class RecoveryServer:
    """The server's side: relays keys and shares, removes the masks of the survivors' sum.

    Parameters
    ----------
    threshold : int
    keys : dict
        Every client's long-term public keys (from :meth:`RecoveryClient.public_keys`),
        as relayed to the clients: they define the session's clients.
    session : bytes
        The session salt the clients agreed with.
    """

    def __init__(self, threshold, keys, session):
        self.clients = sorted(keys)
        check_threshold(threshold, len(self.clients))
        self.threshold = threshold
        self.session = session
        self._sums = {}

    def _point(self, name):
        return self.clients.index(name) + 1

    def relay(self, index, shared, to):
        """What client ``to`` receives after step 1: U2's mask keys, its sealed shares.

        ``shared`` maps each client whose step-1 message arrived to that message.
        """
        st = self._sums.setdefault(index, {})
        if "u2" not in st:
            u2 = sorted(shared)
            if len(u2) < self.threshold:
                raise ConsistencyError(
                    f"only {len(u2)} clients shared their keys; the threshold is "
                    f"{self.threshold}")
            for u in u2:
                msg = shared[u]
                if not isinstance(msg, dict) or not isinstance(msg.get("s_pk"), bytes) \
                        or not isinstance(msg.get("shares"), dict) \
                        or not isinstance(msg.get("commit"), bytes):
                    raise ValueError(f"malformed key share message from {u!r}")
            st.update(u2=u2, s_pks={u: shared[u]["s_pk"] for u in u2},
                      commits={u: shared[u]["commit"] for u in u2})
        missing = [u for u in st["u2"] if u != to and to not in shared[u]["shares"]]
        if missing:
            raise ConsistencyError(f"{missing} sent no share for {to!r}")
        return {"s_pks": st["s_pks"],
                "shares": {u: shared[u]["shares"][to] for u in st["u2"] if u != to}}

    def survivors(self, index, uploads):
        """The survivor list U3: the clients of U2 whose masked vectors arrived."""
        st = self._sums[index]
        u3 = sorted(u for u in uploads if u in st["u2"])
        if len(u3) < self.threshold:
            raise ConsistencyError(
                f"only {len(u3)} clients uploaded; the threshold is {self.threshold}")
        st["u3"] = u3
        return u3

    def confirmations(self, index, confirms, to):
        """The confirmations client ``to`` receives in step 4.

        ``confirms`` maps each survivor whose step-3 message arrived to its
        ``{peer: MAC}``. ``t - 1`` of them (``to`` being the t-th) prove the
        quorum; relaying only those keeps each client's checks at ``t``.
        """
        st = self._sums[index]
        others = [u for u in sorted(confirms) if u != to and u in st["u3"]
                  and isinstance(confirms[u], dict) and to in confirms[u]]
        if len(others) + 1 < self.threshold:
            raise ConsistencyError(
                f"only {len(others) + 1} survivors confirmed the list; the threshold is "
                f"{self.threshold}")
        return {u: confirms[u][to] for u in others[:self.threshold - 1]}

    def unmask(self, index, uploads, reveals):
        """The ring sum of the survivors' vectors from their uploads and revealed shares."""
        st = self._sums[index]
        u2, u3 = st["u2"], st["u3"]
        if len(reveals) < self.threshold:
            raise ConsistencyError(
                f"only {len(reveals)} clients revealed shares; the threshold is "
                f"{self.threshold}")
        revealers = sorted(reveals)[:self.threshold]
        lam = shamir.lagrange_at_zero([self._point(v) for v in revealers])
        dropped = [u for u in u2 if u not in u3]

        def recover(kind, u):
            shares = {}
            for v in revealers:
                part = reveals[v].get(kind, {}) if isinstance(reveals[v], dict) else None
                if not isinstance(part, dict):
                    raise ConsistencyError(f"{v!r} revealed a malformed set of shares")
                if u not in part:
                    raise ConsistencyError(f"{v!r} revealed no share of {u!r}'s secret")
                shares[self._point(v)] = part[u]
            return shamir.int_to_secret(shamir.combine(shares, self.threshold, lam))

        total = np.zeros_like(np.asarray(uploads[u3[0]], dtype=np.uint64)).ravel()
        for u in u3:
            total += np.asarray(uploads[u], dtype=np.uint64).ravel()
        size = total.size
        for u in u3:
            seed = recover("b", u)
            if _commit(seed, self.session, index, u) != st["commits"][u]:
                raise ConsistencyError(f"the shares of {u!r}'s self-mask seed are inconsistent")
            total -= self_mask(seed, self.session, index, u, size)
        for u in dropped:
            key = X25519PrivateKey.from_private_bytes(recover("s", u))
            if key.public_key().public_bytes_raw() != st["s_pks"][u]:
                raise ConsistencyError(f"the shares of {u!r}'s mask key are inconsistent")
            for v in u3:
                dh = key.exchange(X25519PublicKey.from_public_bytes(st["s_pks"][v]))
                m = pair_mask(dh, self.session, index, u, v, size)
                # v added m if v < u, subtracted it otherwise; take that back.
                if v < u:
                    total -= m
                else:
                    total += m
        del self._sums[index]
        return total.reshape(np.shape(uploads[u3[0]]))
