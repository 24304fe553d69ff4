"""Network runtime: each party runs in its own process and talks gRPC.

:class:`GrpcRuntime` runs *one* party's role and exchanges with the other
parties exactly the bytes the in-process :class:`~skfed.runtime.LocalRuntime`
passes around: skfed's wire format (never pickle), now inside gRPC calls.

Transport
---------
* One gRPC server per party receives messages into per-(sender, tag) FIFO
  queues; one channel per peer sends them. The service is defined with
  grpcio's generic handlers and raw bytes (no generated protobuf code):
  ``/skfed.Party/Send`` (client streaming: a message travels in chunks of
  ``CHUNK_BYTES``, so ciphertext arrays of any size stay under gRPC's
  per-message limits), ``/skfed.Party/Abort`` and ``/skfed.Party/Ping``.
  A small wire-format header in the call's binary metadata names the
  sender, the tag, the protection kind, the size and a sequence number.
* **Mutual TLS by default**: every party has a certificate signed by the CA
  the federation agreed on (``cafile``). A party checks that the server it
  connects to presents the certificate of the party it means to reach
  (``ssl_target_name_override``), and a server accepts a message only if the
  connection was authenticated by a certificate naming the claimed sender
  (subject common name or DNS subject alternative name) and that sender is
  one of the parties in ``addresses``. Anything else is refused with
  ``PERMISSION_DENIED`` and recorded in :attr:`GrpcRuntime.refused`.
  ``insecure=True`` sends plaintext and trusts the claimed sender: for
  local experiments only.

Failures
--------
* A peer that is not up yet is retried (``UNAVAILABLE``) with backoff for
  up to ``connect_timeout`` seconds, so parties may start in any order.
* While a role waits for a message it pings the sender; a sender that has
  been unreachable for ``connect_timeout`` seconds (a crashed process, a
  lost network) raises :class:`PartyUnreachable` naming it.
* A role that fails sends an *abort* to every peer, which then stop with
  :class:`PartyAborted` naming the party that failed, instead of waiting.
  So does a party that fails *before* its role starts (a CSV without a
  column, a bad setting), as soon as it leaves the runtime's ``with`` block
  with an exception or calls :meth:`GrpcRuntime.abort`. A peer that has not
  started yet is retried for up to ``connect_timeout`` seconds, so the abort
  reaches it when it comes up, and it stops at once rather than waiting
  ``connect_timeout`` for a party that will never send.
  The abort carries the exception's type, not its message: error messages
  may quote data, and the abort crosses the organisation's boundary. The
  full error stays in the failing party's own traceback.
* A message that never comes raises :class:`~skfed.runtime.ProtocolTimeout`
  after ``timeout`` seconds.

Limits
------
An authenticated peer could otherwise make a party buffer without bound.
A party refuses (``RESOURCE_EXHAUSTED``, naming the limit) a message larger
than ``max_message_bytes`` (default 256 MiB: a full-batch ``[[d]]`` of
about 500,000 rows under a 2048-bit key; raise it on every party for larger
batches) and a message that would take the bytes it holds for one sender,
received but not yet consumed by its role, above ``max_peer_bytes``
(default 1 GiB). A sender checks its own messages against its
``max_message_bytes`` before sending, so the usual misconfiguration fails
at the sender with a message that says which parameter to raise.

The transcript a run returns holds the messages this party sent and
received (sizes are those of the wire-format payloads; TLS and HTTP/2
framing add a few percent on top).
"""

import json
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from concurrent import futures

from .local import PartyLeft, ProtocolTimeout, RoleError
from .party import ProtocolMismatch
from .transcript import KINDS, Transcript
from .wire import WireFormatError, decode, encode

__all__ = [
    "GrpcRuntime",
    "TransportError",
    "PartyUnreachable",
    "PartyAborted",
    "ProtocolMismatch",
    "CHUNK_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_PEER_BYTES",
    "free_local_ports",
]

SERVICE = "skfed.Party"
_log = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20  # 1 MiB: well under gRPC's default 4 MiB per message
_HEADER_KEY = "skfed-header-bin"
_GRPC_MESSAGE_LIMIT = 4 * CHUNK_BYTES
DEFAULT_MAX_MESSAGE_BYTES = 1 << 28
DEFAULT_MAX_PEER_BYTES = 1 << 30
_PING_DEADLINE = 5.0
# A party that fails cancels the calls in flight as it shuts down; its abort
# notice can arrive a moment after the cancellation.
_ABORT_GRACE = 2.0


def _require_grpc():
    try:
        import grpc
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "GrpcRuntime needs grpcio: pip install 'skfed[grpc]'") from exc
    return grpc


class TransportError(RoleError):
    """A problem reaching or hearing from another party; ``party`` names it."""

    def __init__(self, party, message):
        RuntimeError.__init__(self, message)
        self.party = party
        self.error = None


class PartyUnreachable(TransportError, PartyLeft):
    """A peer could not be reached (not started, crashed, or cut off)."""


class PartyAborted(TransportError):
    """A peer's role failed and it told the others to stop.

    Attributes
    ----------
    party : str
        The party whose role failed first.
    reason : str
        What it reported: the exception type (and, for
        :class:`ProtocolMismatch`, the message).
    reporter : str
        The party that sent the abort (differs from ``party`` when the abort
        was relayed, e.g. a crash noticed by one peer).
    """

    def __init__(self, party, reason, reporter):
        via = "" if reporter == party else f" (reported by {reporter!r})"
        # A relayed transport error already names the party.
        what = reason if reason.startswith(f"party {party!r}") else (
            f"party {party!r} aborted the run: {reason}")
        super().__init__(party, what + via)
        self.reason = reason
        self.reporter = reporter


def _persist(exc):
    """Should the abort wait for peers that have not started yet?

    Yes for a party that failed on its own (bad data, a bad setting), maybe
    before its peers started; no after a timeout or a transport error: this
    party has waited for its peers already, and those it never heard from
    are not coming.
    """
    return not isinstance(exc, (TransportError, ProtocolTimeout))


def _abort_reason(exc):
    if isinstance(exc, ProtocolMismatch):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


class _Context:
    """The channel a role sees: the same methods as ``PartyContext``."""

    def __init__(self, runtime, transcript):
        self.party = runtime.party
        self._rt = runtime
        self._transcript = transcript
        # What this party put on / took off the wire (as PartyContext counts it).
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def parties(self):
        return self._rt.parties

    def send(self, to, tag, payload, kind="plain"):
        """Send ``payload`` to party ``to`` under ``tag`` (see ``PartyContext.send``)."""
        if to not in self._rt.parties or to == self.party:
            raise ValueError(f"{self.party!r} cannot send to {to!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(tag, str):
            raise ValueError(f"tag must be a string, got {tag!r}")
        data = encode(payload)
        self._rt._send_message(to, tag, kind, data)
        self.bytes_sent += len(data)
        self._transcript.record(self.party, to, tag, kind, len(data),
                                data if self._rt.keep_payloads else None)

    def broadcast(self, receivers, tag, payload, kind="plain"):
        """Send the same payload to every party in ``receivers``."""
        for to in receivers:
            self.send(to, tag, payload, kind=kind)

    def checkpoint(self, stage):
        """No-op: failures are real here (see ``PartyContext.checkpoint``)."""

    def recv(self, frm, tag, timeout=None):
        """Wait for the next message from ``frm`` under ``tag`` and decode it."""
        if frm not in self._rt.parties or frm == self.party:
            raise ValueError(f"{self.party!r} cannot receive from {frm!r}")
        kind, data = self._rt._receive(frm, tag, timeout)
        self.bytes_received += len(data)
        self._transcript.record(frm, self.party, tag, kind, len(data),
                                data if self._rt.keep_payloads else None)
        return decode(data)

    def gather(self, senders, tag):
        """Receive one message under ``tag`` from each of ``senders``, in order."""
        return [self.recv(s, tag) for s in senders]


class GrpcRuntime:
    """Runs one party's role; talks to the other parties over gRPC.

    Every party runs the same estimator (or CLI command) with its own
    ``GrpcRuntime``: same ``addresses``, its own ``party``, certificate and
    key. The estimators see ``runtime.party`` and then take only that
    party's data (see :ref:`deployment`).

    Parameters
    ----------
    party : str
        The party this process is.
    addresses : dict of str -> str
        Every party's ``host:port`` (including this one's, where its server
        listens unless ``listen`` says otherwise). Only these parties may
        send to this one.
    certfile, keyfile : str or path-like, default=None
        This party's certificate (PEM, naming the party in its subject CN or
        a DNS SAN) and private key. Required unless ``insecure=True``.
    cafile : str or path-like, default=None
        The CA certificate(s) that sign the parties' certificates. Required
        unless ``insecure=True``.
    insecure : bool, default=False
        Plaintext, unauthenticated transport (the claimed sender is
        trusted). For experiments on one machine only.
    timeout : float, default=600
        Seconds a role waits for one message, and the deadline of one send.
    connect_timeout : float, default=120
        Seconds a peer may be unreachable (not started yet, or lost) before
        the run fails with :class:`PartyUnreachable`.
    listen : str, default=None
        Address the server binds to (e.g. ``"0.0.0.0:50051"``) when it
        differs from ``addresses[party]``.
    keep_payloads : bool, default=False
        Keep each message's bytes in the transcript.
    max_message_bytes : int, default=2**28
        Largest message (wire-format bytes) sent to or accepted from a peer:
        256 MiB holds a full batch of about 500,000 rows of 2048-bit
        ciphertexts. Raise it on every party for larger full batches (or use
        mini-batches).
    max_peer_bytes : int, default=2**30
        Most bytes this party holds for one sender at a time: messages
        being received or waiting for the role to consume them. A sender
        that goes above it is refused; at least ``max_message_bytes``.

    Attributes
    ----------
    refused : list of dict
        Connections refused by this party's server: claimed sender, the
        identities its certificate proved, and why.

    Examples
    --------
    Two parties in one process, plaintext on loopback (in a deployment each
    runs in its own process, with certificates):

    >>> import threading
    >>> from skfed.runtime.grpc import GrpcRuntime, free_local_ports
    >>> ports = free_local_ports(2)
    >>> addresses = {"alice": f"127.0.0.1:{ports[0]}", "bob": f"127.0.0.1:{ports[1]}"}
    >>> def alice(ctx):
    ...     ctx.send("bob", "greeting", "hello")
    ...     return ctx.recv("bob", "reply")
    >>> def bob(ctx):
    ...     ctx.send("alice", "reply", ctx.recv("alice", "greeting").upper())
    >>> with GrpcRuntime("bob", addresses, insecure=True) as rt_bob:
    ...     t = threading.Thread(target=rt_bob.run, args=({"bob": bob},))
    ...     t.start()
    ...     with GrpcRuntime("alice", addresses, insecure=True) as rt_alice:
    ...         results, transcript = rt_alice.run({"alice": alice})
    ...     t.join()
    >>> results, len(transcript)
    ({'alice': 'HELLO'}, 2)
    """

    def __init__(self, party, addresses, *, certfile=None, keyfile=None, cafile=None,
                 insecure=False, timeout=600.0, connect_timeout=120.0, listen=None,
                 keep_payloads=False, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
                 max_peer_bytes=DEFAULT_MAX_PEER_BYTES):
        if not isinstance(addresses, dict) or len(addresses) < 2:
            raise ValueError("addresses must map at least two party names to host:port")
        for name, addr in addresses.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"party names must be non-empty strings, got {name!r}")
            if not isinstance(addr, str) or ":" not in addr:
                raise ValueError(f"address of {name!r} must be 'host:port', got {addr!r}")
        if party not in addresses:
            raise ValueError(f"party {party!r} is not in addresses {sorted(addresses)}")
        if not isinstance(insecure, bool):
            # bool("false") is True: only a real boolean may turn TLS off.
            raise ValueError(f"insecure must be True or False, got {insecure!r}")
        if not insecure and None in (certfile, keyfile, cafile):
            raise ValueError(
                "mutual TLS needs certfile, keyfile and cafile; pass insecure=True only "
                "for local experiments")
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.party = party
        self.addresses = dict(addresses)
        self.certfile, self.keyfile, self.cafile = certfile, keyfile, cafile
        self.insecure = bool(insecure)
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.listen = listen
        self.keep_payloads = keep_payloads
        for name, value in (("max_message_bytes", max_message_bytes),
                            ("max_peer_bytes", max_peer_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if max_peer_bytes < max_message_bytes:
            raise ValueError(
                f"max_peer_bytes ({max_peer_bytes}) must be at least max_message_bytes "
                f"({max_message_bytes})")
        self.max_message_bytes = int(max_message_bytes)
        self.max_peer_bytes = int(max_peer_bytes)
        self._reset()

    def _reset(self):
        self._server = None
        self._channels = {}
        self._stubs = {}
        self._cond = threading.Condition()
        self._queues = defaultdict(deque)
        # Bytes held per sender: declared sizes of messages being received
        # plus those queued for the role (the budget max_peer_bytes).
        self._held = defaultdict(int)
        self._aborted = None
        self._last_seq = {}
        self._last_alive = {}
        # Peers this party has heard from: one that goes silent afterwards is
        # gone, while one never heard from may not have started yet.
        self._heard = set()
        self._told = False
        self._failure = None
        self._nonce = secrets.token_hex(8)
        self._seq = 0
        self.refused = []

    # -- copying: a runtime is configuration until started ----------------------
    def __getstate__(self):
        state = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        state.pop("refused", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def __repr__(self):
        mode = "insecure" if self.insecure else "mTLS"
        return f"GrpcRuntime(party={self.party!r}, parties={list(self.addresses)}, {mode})"

    @property
    def parties(self):
        return tuple(self.addresses)

    @property
    def peers(self):
        return tuple(p for p in self.addresses if p != self.party)

    # -- lifecycle ----------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc is not None and not self._told:
                # A party that fails outside a role (reading its data, checking
                # its settings) must not leave its peers waiting for it.
                self.abort(exc)
        finally:
            self.close()

    def start(self):
        """Start this party's server and open channels to the peers (idempotent)."""
        if self._server is not None:
            return self
        grpc = _require_grpc()
        opts = [("grpc.max_receive_message_length", _GRPC_MESSAGE_LIMIT),
                ("grpc.max_send_message_length", _GRPC_MESSAGE_LIMIT)]
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Send": grpc.stream_unary_rpc_method_handler(self._on_send),
            "Abort": grpc.unary_unary_rpc_method_handler(self._on_abort),
            "Ping": grpc.unary_unary_rpc_method_handler(self._on_ping),
        })
        server = grpc.server(futures.ThreadPoolExecutor(
            max_workers=max(4, 2 * len(self.addresses)),
            thread_name_prefix=f"skfed-{self.party}-server"), handlers=[handler],
            options=opts)
        bind = self.listen or self.addresses[self.party]
        if self.insecure:
            _log.warning(
                "party %r runs WITHOUT TLS (insecure=True): messages travel in plaintext and "
                "any process that reaches %s can claim to be a party; for local experiments "
                "only", self.party, bind)
            port = server.add_insecure_port(bind)
        else:
            creds = grpc.ssl_server_credentials(
                [(_read(self.keyfile), _read(self.certfile))],
                root_certificates=_read(self.cafile), require_client_auth=True)
            port = server.add_secure_port(bind, creds)
        if port == 0:
            raise OSError(f"party {self.party!r} could not listen on {bind}")
        server.start()
        self._server = server
        for peer in self.peers:
            peer_opts = list(opts) + [("grpc.enable_retries", 0)]
            if self.insecure:
                channel = grpc.insecure_channel(self.addresses[peer], options=peer_opts)
            else:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=_read(self.cafile), private_key=_read(self.keyfile),
                    certificate_chain=_read(self.certfile))
                # Check that the server we reach is the party we mean, whatever
                # its host name: its certificate must name the party.
                peer_opts.append(("grpc.ssl_target_name_override", peer))
                channel = grpc.secure_channel(self.addresses[peer], creds, options=peer_opts)
            self._channels[peer] = channel
            self._stubs[peer] = {
                "Send": channel.stream_unary(f"/{SERVICE}/Send"),
                "Abort": channel.unary_unary(f"/{SERVICE}/Abort"),
                "Ping": channel.unary_unary(f"/{SERVICE}/Ping"),
            }
        now = time.monotonic()
        self._last_alive = dict.fromkeys(self.peers, now)
        return self

    def abort(self, exc):
        """Tell every peer that this party failed, so they stop at once.

        For failures outside :meth:`run` (a failing role already tells its
        peers). Like a failing role's abort, it carries the exception's type,
        not its message. Peers not reachable yet are retried for up to
        ``connect_timeout`` seconds (they may not have started).

        Parameters
        ----------
        exc : BaseException
            What went wrong.
        """
        if self._told:
            return
        # Set before the server starts: a message that arrives now is refused
        # (ABORTED), so a peer cannot mistake this party for a working one.
        if isinstance(exc, TransportError):
            origin = exc.party
            reason = exc.reason if isinstance(exc, PartyAborted) else str(exc)
        else:
            origin, reason = self.party, _abort_reason(exc)
        self._failure = (origin, str(reason)[:500])
        self._told = True
        self.start()
        self._broadcast_abort(origin, reason, persist=_persist(exc))

    def close(self, grace=1.0):
        """Stop the server and close the channels."""
        if self._server is not None:
            self._server.stop(grace).wait()
        for channel in self._channels.values():
            channel.close()
        self._server = None
        self._channels, self._stubs = {}, {}

    # -- running a role -----------------------------------------------------------
    def run(self, roles, transcript=None):
        """Run ``roles[self.party]`` to completion, talking to the other parties.

        Parameters
        ----------
        roles : dict of str -> callable(ctx)
            Must contain this party's role; the others, if present, are ignored
            (they run in their own processes).
        transcript : Transcript, default=None
            Appended to; a new one by default.

        A runtime can run several protocols in turn (alignment, fit,
        predict), as long as every party runs the same sequence. After a
        failed run, start a new runtime: messages of the broken run may still
        be queued.

        Returns
        -------
        results : dict
            ``{party: the role's return value}``.
        transcript : Transcript
            The messages this party sent and received.

        Raises
        ------
        RoleError
            This party's role failed (``party`` is this party), or a peer was
            unreachable or aborted (:class:`PartyUnreachable`,
            :class:`PartyAborted`, whose ``party`` names the peer).
        """
        if self.party not in roles:
            raise ValueError(f"no role for party {self.party!r} among {sorted(roles)}")
        unknown = set(roles) - set(self.addresses)
        if unknown:
            raise ValueError(f"roles for parties without an address: {sorted(unknown)}")
        with self._cond:
            if self._aborted is not None:
                origin, reason, reporter = self._aborted
                raise PartyAborted(origin, reason, reporter)
        self.start()
        transcript = Transcript() if transcript is None else transcript
        ctx = _Context(self, transcript)
        try:
            result = roles[self.party](ctx)
        except TransportError as exc:
            relayed = isinstance(exc, PartyAborted) and exc.reporter != exc.party
            reason = exc.reason if isinstance(exc, PartyAborted) else str(exc)
            self._broadcast_abort(exc.party, reason, persist=False, tell_origin=relayed)
            raise
        except BaseException as exc:
            self._broadcast_abort(self.party, _abort_reason(exc), persist=_persist(exc))
            if isinstance(exc, Exception):
                raise RoleError(self.party, exc) from exc
            raise
        return {self.party: result}, transcript

    # -- sending ------------------------------------------------------------------
    def _check_aborted(self):
        if self._aborted is not None:
            origin, reason, reporter = self._aborted
            raise PartyAborted(origin, reason, reporter)

    def _header(self, **fields):
        self._seq += 1
        return encode({"sender": self.party, "nonce": self._nonce, "seq": self._seq,
                       **fields})

    def _call(self, peer, method, make_request, header, deadline):
        """One RPC with retries while the peer is unavailable (starting up)."""
        grpc = _require_grpc()
        start = time.monotonic()
        delay = 0.05
        while True:
            try:
                out = self._stubs[peer][method](make_request(), timeout=deadline,
                                                metadata=((_HEADER_KEY, header),))
                self._last_alive[peer] = time.monotonic()
                self._heard.add(peer)
                return out
            except grpc.RpcError as exc:
                code = exc.code()
                waited = time.monotonic() - start
                if code == grpc.StatusCode.UNAVAILABLE:
                    with self._cond:
                        # Another party failed meanwhile: say so, not "unreachable".
                        self._check_aborted()
                    if waited < self.connect_timeout:
                        time.sleep(delay)
                        delay = min(2 * delay, 1.0)
                        continue
                    raise PartyUnreachable(
                        peer, f"party {peer!r} at {self.addresses[peer]} is unreachable "
                        f"(tried for {waited:.0f} s; is it running, and do both sides trust the "
                        f"same CA?): {exc.details()}") from None
                if code == grpc.StatusCode.ABORTED:
                    raise self._peer_failed(peer, exc) from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise PartyUnreachable(
                        peer, f"party {peer!r} at {self.addresses[peer]} did not accept "
                        f"{method} within {deadline:.0f} s") from None
                raise self._refused(
                    peer, f"party {peer!r} refused {method} from {self.party!r}: "
                    f"{code.name}: {exc.details()}") from None

    def _send_message(self, to, tag, kind, data):
        with self._cond:
            self._check_aborted()
        if len(data) > self.max_message_bytes:
            raise ValueError(
                f"{self.party!r} would send {tag!r} of {len(data)} bytes to {to!r}, above "
                f"max_message_bytes={self.max_message_bytes}; raise max_message_bytes on every "
                "party (or use smaller batches)")
        header = self._header(tag=tag, kind=kind, nbytes=len(data))
        view = memoryview(data)

        def chunks():
            if not data:
                yield b""
            for i in range(0, len(data), CHUNK_BYTES):
                yield bytes(view[i:i + CHUNK_BYTES])

        self._call(to, "Send", chunks, header, self.timeout)

    def _refused(self, peer, message):
        """The error for a call ``peer`` refused with an unexpected status: the
        :class:`PartyAborted` of an abort notice arriving within
        ``_ABORT_GRACE`` (a failing party cancels calls in flight before its
        notice lands, and the user needs the party that failed and why), else
        a :class:`TransportError` with ``message``."""
        with self._cond:
            self._cond.wait_for(lambda: self._aborted is not None, timeout=_ABORT_GRACE)
            if self._aborted is not None:
                return PartyAborted(*self._aborted)
        return TransportError(peer, message)

    def _peer_failed(self, peer, exc):
        """The PartyAborted for a peer that answered ABORTED: it has failed."""
        with self._cond:
            if self._aborted is not None:
                return PartyAborted(*self._aborted)
        try:
            body = json.loads(exc.details())
            origin, reason = str(body["origin"]), str(body["reason"])[:500]
        except (ValueError, KeyError, TypeError):
            origin, reason = peer, "it failed"
        if origin not in self.addresses:
            origin = peer
        return PartyAborted(origin, reason, peer)

    def _broadcast_abort(self, origin, reason, persist, tell_origin=False):
        """Tell every peer to stop.

        A peer this party has heard from and that no longer answers is gone
        (best effort: it cannot hear). With ``persist``, a peer never heard
        from may still be starting: it is retried for up to
        ``connect_timeout`` seconds.
        """
        if self._server is None:
            return
        self._failure = (origin, str(reason)[:500])
        self._told = True
        payload = encode({"origin": origin, "reason": str(reason)[:500]})
        grpc = _require_grpc()

        header = self._header(tag="abort", kind="plain", nbytes=len(payload))
        until = time.monotonic() + self.connect_timeout

        def tell(peer):
            delay = 0.05
            while True:
                try:
                    self._stubs[peer]["Abort"](payload, timeout=3.0,
                                               metadata=((_HEADER_KEY, header),))
                    return
                except grpc.RpcError as exc:
                    if (not persist or exc.code() != grpc.StatusCode.UNAVAILABLE
                            or peer in self._heard or time.monotonic() + delay > until):
                        return
                time.sleep(delay)
                delay = min(2 * delay, 1.0)

        # In parallel: a dead peer must not delay telling the live ones. With
        # ``tell_origin`` (the failure was relayed by a third party) the
        # origin hears from us too: a party that failed at start retries its
        # own abort until it hears from each peer, and would otherwise go on
        # retrying for connect_timeout after everyone has stopped.
        threads = [threading.Thread(target=tell, args=(p,), daemon=True)
                   for p in self.peers if p != origin or tell_origin]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.connect_timeout + 5.0)

    # -- receiving ----------------------------------------------------------------
    def _receive(self, frm, tag, timeout):
        timeout = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + timeout
        key = (frm, tag)
        while True:
            with self._cond:
                if self._queues[key]:
                    kind, data = self._queues[key].popleft()
                    self._held[frm] -= len(data)
                    return kind, data
                self._check_aborted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProtocolTimeout(
                        f"{self.party!r} waited {timeout:.0f} s for {tag!r} from {frm!r}")
                self._cond.wait(min(remaining, 1.0))
                if self._queues[key] or self._aborted is not None:
                    continue
            self._probe(frm)

    def _probe(self, peer):
        """Is ``peer`` still there? Raise once it has been gone too long."""
        if time.monotonic() - self._last_alive[peer] < 1.0:
            return
        grpc = _require_grpc()
        try:
            self._stubs[peer]["Ping"](b"", timeout=_PING_DEADLINE, metadata=(
                (_HEADER_KEY, self._header(tag="ping", kind="plain", nbytes=0)),))
            self._last_alive[peer] = time.monotonic()
            self._heard.add(peer)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.ABORTED:
                raise self._peer_failed(peer, exc) from None
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED):
                raise self._refused(
                    peer, f"party {peer!r} refused a ping from {self.party!r}: "
                    f"{exc.code().name}: {exc.details()}") from None
            gone = time.monotonic() - self._last_alive[peer]
            if gone > self.connect_timeout:
                raise PartyUnreachable(
                    peer, f"party {peer!r} at {self.addresses[peer]} has been unreachable "
                    f"for {gone:.0f} s: {exc.details()}") from None

    # -- server side ----------------------------------------------------------------
    def _authenticate(self, context):
        """The sender of this call, if its certificate proves it; else refuse."""
        grpc = _require_grpc()
        raw = dict(context.invocation_metadata()).get(_HEADER_KEY)
        try:
            header = decode(raw) if isinstance(raw, bytes) else None
        except WireFormatError:
            header = None
        if not isinstance(header, dict) or not isinstance(header.get("sender"), str):
            self._refuse(context, None, set(), "missing or malformed header",
                         grpc.StatusCode.INVALID_ARGUMENT)
        sender = header["sender"]
        identities = set()
        if not self.insecure:
            auth = context.auth_context()
            for field in ("x509_common_name", "x509_subject_alternative_name"):
                identities.update(v.decode("utf-8", "replace") for v in auth.get(field, ()))
            if sender not in identities:
                self._refuse(context, sender, identities,
                             "the certificate does not name the claimed sender")
        if sender not in self.addresses or sender == self.party:
            self._refuse(context, sender, identities, "not a party of this federation")
        return sender, header

    def _refuse(self, context, sender, identities, why, code=None):
        grpc = _require_grpc()
        with self._cond:
            self.refused.append({"sender": sender, "identities": sorted(identities),
                                 "reason": why})
        context.abort(code or grpc.StatusCode.PERMISSION_DENIED,
                      f"{self.party!r} refuses messages from {sender!r}: {why}")

    def _fresh(self, sender, header):
        """Drop a message delivered twice (a send retried after a lost reply)."""
        key = (sender, header.get("nonce"))
        seq = header.get("seq")
        if not isinstance(seq, int):
            return False
        if seq <= self._last_seq.get(key, 0):
            return False
        self._last_seq[key] = seq
        return True

    def _refuse_if_failed(self, context, sender):
        if self._told:
            grpc = _require_grpc()
            with self._cond:
                # It learns of the failure from this answer: no need to retry the abort.
                self._heard.add(sender)
            origin, reason = self._failure or (self.party, "it failed")
            context.abort(grpc.StatusCode.ABORTED,
                          json.dumps({"origin": origin, "reason": reason}))

    def _on_send(self, request_iterator, context):
        grpc = _require_grpc()
        sender, header = self._authenticate(context)
        self._refuse_if_failed(context, sender)
        tag, kind, nbytes = header.get("tag"), header.get("kind"), header.get("nbytes")
        if not isinstance(tag, str) or kind not in KINDS or not isinstance(nbytes, int):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed message header")
        if not 0 <= nbytes <= self.max_message_bytes:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.party!r} accepts messages of at most max_message_bytes="
                          f"{self.max_message_bytes} bytes; {tag!r} has {nbytes}")
        with self._cond:
            held = self._held[sender]
            if held + nbytes > self.max_peer_bytes:
                over = True
            else:
                over = False
                self._held[sender] = held + nbytes
        if over:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.party!r} already holds {held} bytes from {sender!r}; "
                          f"{tag!r} of {nbytes} bytes would exceed max_peer_bytes="
                          f"{self.max_peer_bytes}")
        queued = False
        try:
            buf = bytearray()
            for chunk in request_iterator:
                buf += chunk
                if len(buf) > nbytes:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  "message longer than declared")
            if len(buf) != nbytes:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message shorter than declared")
            with self._cond:
                self._last_alive[sender] = time.monotonic()
                self._heard.add(sender)
                if self._fresh(sender, header):
                    self._queues[(sender, tag)].append((kind, bytes(buf)))
                    queued = True
                    self._cond.notify_all()
        finally:
            if not queued:
                with self._cond:
                    self._held[sender] -= nbytes
        return b""

    def _on_abort(self, request, context):
        grpc = _require_grpc()
        sender, _ = self._authenticate(context)
        try:
            body = decode(request)
            origin, reason = str(body["origin"]), str(body["reason"])[:500]
        except (WireFormatError, KeyError, TypeError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed abort")
        if origin not in self.addresses:
            origin = sender
        with self._cond:
            # The sender is alive and knows of a failure: no abort of ours
            # needs retrying towards it.
            self._heard.add(sender)
            if self._aborted is None:
                self._aborted = (origin, reason, sender)
            self._cond.notify_all()
        return b""

    def _on_ping(self, request, context):
        sender, _ = self._authenticate(context)
        self._refuse_if_failed(context, sender)
        with self._cond:
            self._last_alive[sender] = time.monotonic()
            self._heard.add(sender)
        return b""


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def free_local_ports(n):
    """``n`` TCP ports on 127.0.0.1 that were free a moment ago (for tests)."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
