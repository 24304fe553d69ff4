"""In-process runtime: every role runs in its own thread with in-memory queues.

Roles never share objects: each message is serialised with the wire format on
``send`` and rebuilt on ``recv``, exactly as a network transport would do.
"""

import threading
import time
from collections import defaultdict, deque

from .transcript import KINDS, Transcript
from .wire import decode, encode

__all__ = ["PartyContext", "LocalRuntime", "RoleError", "ProtocolTimeout", "PartyLeft",
           "PartyDropped", "run_roles"]

DEFAULT_TIMEOUT = 600.0


class RoleError(RuntimeError):
    """A role failed; ``party`` names it and ``__cause__`` is the original error."""

    def __init__(self, party, error):
        super().__init__(f"party {party!r} failed: {type(error).__name__}: {error}")
        self.party = party
        self.error = error


class ProtocolTimeout(TimeoutError):
    """A role waited for a message that never came."""


class PartyLeft(Exception):
    """Base of the errors saying a peer has gone: dropped out, crashed or cut off.

    A protocol that tolerates dropouts catches this around a ``recv`` and
    carries on without the peer; ``party`` names it.
    """


class PartyDropped(PartyLeft, ProtocolTimeout):
    """An in-process peer dropped out (a drop injected with ``LocalRuntime(drops=...)``)."""

    def __init__(self, party, message):
        super().__init__(message)
        self.party = party


class _Dropped(BaseException):
    """Raised inside a role at its injected drop point; it leaves the run silently."""


class _Aborted(Exception):
    """Raised inside a waiting role when another role has failed."""


class _Mailroom:
    """Shared state of one run: queues, transcript, liveness."""

    def __init__(self, parties, transcript, keep_payloads, timeout):
        self.parties = tuple(parties)
        self.transcript = transcript
        self.keep_payloads = keep_payloads
        self.timeout = timeout
        self.cond = threading.Condition()
        # One condition per receiver over the same lock: a message wakes only
        # the party it is for (with one shared condition every send woke
        # every waiting thread, a measurable cost at thousands of rounds).
        # Events that concern everyone (a failure, a party finished or
        # dropped) go through notify_everyone().
        self.inbox = {p: threading.Condition(self.cond) for p in self.parties}
        self.queues = defaultdict(deque)
        self.finished = set()
        self.dropped = set()
        self.failed = None
        self.drops = {}

    def notify_everyone(self):
        """Wake every waiting party (the lock must be held)."""
        for c in self.inbox.values():
            c.notify_all()


class PartyContext:
    """What a role sees of the world: its own name and a channel to the others.

    Parameters are set by the runtime; role functions only call the methods.

    Attributes
    ----------
    party : str
        The name of the party running the role.
    parties : tuple of str
        Every party taking part in the run.
    """

    def __init__(self, party, mailroom):
        self.party = party
        self._room = mailroom
        # What this party itself put on / took off the wire: local knowledge,
        # used for progress reports.
        self.bytes_sent = 0
        self.bytes_received = 0
        self._hits = defaultdict(int)

    @property
    def parties(self):
        return self._room.parties

    def send(self, to, tag, payload, kind="plain"):
        """Send ``payload`` to party ``to`` under ``tag``.

        ``kind`` declares how the payload is protected and is recorded in the
        transcript: ``"ciphertext"``, ``"masked"``, ``"public_key"`` or
        ``"plain"`` (only for values the protocol declares public).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self._deliver(to, tag, encode(payload), kind)

    def _deliver(self, to, tag, data, kind):
        room = self._room
        if to not in room.parties or to == self.party:
            raise ValueError(f"{self.party!r} cannot send to {to!r}")
        self.bytes_sent += len(data)
        with room.cond:
            room.transcript.record(self.party, to, tag, kind, len(data),
                                   data if room.keep_payloads else None)
            room.queues[(self.party, to, tag)].append(data)
            room.inbox[to].notify_all()

    def broadcast(self, receivers, tag, payload, kind="plain"):
        """Send the same payload to every party in ``receivers``."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        # Serialised once: every receiver gets the same bytes (immutable).
        data = encode(payload)
        for to in receivers:
            self._deliver(to, tag, data, kind)

    def checkpoint(self, stage):
        """Mark that this party reached ``stage``; an injected drop may stop it here.

        Roles that tolerate dropouts name their stages; with
        ``LocalRuntime(drops={party: (stage, n)})`` the party leaves the run
        the ``n``-th time it reaches ``stage``, as a process that died there
        would: it sends nothing more and its peers' ``recv`` from it raise
        :class:`PartyDropped`. Other runtimes ignore checkpoints.
        """
        self._hits[stage] += 1
        if self._room.drops.get(self.party) == (stage, self._hits[stage]):
            raise _Dropped()

    def recv(self, frm, tag, timeout=None):
        """Wait for the next message from ``frm`` under ``tag`` and decode it."""
        room = self._room
        if frm not in room.parties or frm == self.party:
            raise ValueError(f"{self.party!r} cannot receive from {frm!r}")
        timeout = room.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        key = (frm, self.party, tag)
        with room.cond:
            while not room.queues[key]:
                if room.failed is not None:
                    raise _Aborted()
                if frm in room.dropped:
                    raise PartyDropped(frm, f"{self.party!r} waits for {tag!r} from {frm!r}, "
                                       "which dropped out")
                if frm in room.finished:
                    raise ProtocolTimeout(
                        f"{self.party!r} waits for {tag!r} from {frm!r}, "
                        f"which has finished without sending it"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProtocolTimeout(
                        f"{self.party!r} waited {timeout:.0f} s for {tag!r} from {frm!r}"
                    )
                room.inbox[self.party].wait(min(remaining, 1.0))
            data = room.queues[key].popleft()
        self.bytes_received += len(data)
        return decode(data)

    def gather(self, senders, tag):
        """Receive one message under ``tag`` from each of ``senders``, in order."""
        return [self.recv(s, tag) for s in senders]


class LocalRuntime:
    """Runs every role of a protocol in this process, one thread per party.

    Parameters
    ----------
    timeout : float, default=600
        Seconds a role may wait for a message before failing.
    keep_payloads : bool, default=False
        Keep each message's serialised payload in the transcript (for audits
        and privacy tests).
    drops : dict, default=None
        Failures to inject: ``{party: (stage, n)}`` makes ``party`` drop out
        the ``n``-th time its role reaches checkpoint ``stage`` (see
        :meth:`PartyContext.checkpoint`). A dropped party returns no result;
        the run fails only if a remaining role fails.

    Examples
    --------
    >>> from skfed.runtime import LocalRuntime
    >>> def alice(ctx):
    ...     ctx.send("bob", "greeting", "hello")
    ...     return ctx.recv("bob", "reply")
    >>> def bob(ctx):
    ...     msg = ctx.recv("alice", "greeting")
    ...     ctx.send("alice", "reply", msg.upper())
    >>> results, transcript = LocalRuntime().run({"alice": alice, "bob": bob})
    >>> results["alice"], len(transcript)
    ('HELLO', 2)
    """

    def __init__(self, timeout=DEFAULT_TIMEOUT, keep_payloads=False, drops=None):
        self.timeout = timeout
        self.keep_payloads = keep_payloads
        self.drops = drops

    def run(self, roles, transcript=None):
        """Run ``roles`` (a mapping party name -> callable(ctx)) to completion.

        Returns
        -------
        results : dict
            Each party's return value.
        transcript : Transcript
            Every message sent during the run.

        Raises
        ------
        RoleError
            The first role that failed, naming its party.
        """
        transcript = Transcript() if transcript is None else transcript
        room = _Mailroom(list(roles), transcript, self.keep_payloads, self.timeout)
        room.drops = _check_drops(self.drops, roles)
        results, errors = {}, {}

        def target(name, fn):
            ctx = PartyContext(name, room)
            try:
                results[name] = fn(ctx)
            except _Aborted:
                pass
            except _Dropped:
                with room.cond:
                    room.dropped.add(name)
            except BaseException as exc:  # noqa: BLE001 - surfaced below
                with room.cond:
                    errors[name] = exc
                    if room.failed is None:
                        room.failed = name
            finally:
                with room.cond:
                    room.finished.add(name)
                    room.notify_everyone()

        threads = [threading.Thread(target=target, args=(n, f), name=f"skfed-{n}",
                                    daemon=True) for n, f in roles.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if room.failed is not None:
            first = room.failed
            # A timeout caused by another party's failure is a symptom; report the cause.
            raise RoleError(first, errors[first]) from errors[first]
        return results, transcript


def _check_drops(drops, roles):
    if drops is None:
        return {}
    if not isinstance(drops, dict):
        raise TypeError("drops must be a dict {party: (stage, n)}")
    out = {}
    for party, spec in drops.items():
        if party not in roles:
            raise ValueError(f"drops names {party!r}, which is not a party of this run")
        if isinstance(spec, str):
            spec = (spec, 1)
        stage, n = spec
        if not isinstance(stage, str) or not isinstance(n, int) or n < 1:
            raise ValueError(f"a drop is (stage, n) with n >= 1, got {spec!r}")
        out[party] = (stage, n)
    return out


def run_roles(roles, runtime=None, transcript=None):
    """Run ``roles`` with ``runtime`` (default: a new :class:`LocalRuntime`)."""
    runtime = LocalRuntime() if runtime is None else runtime
    return runtime.run(roles, transcript=transcript)
