"""The transcript: a record of every message that crossed a party boundary."""

from collections import OrderedDict
from dataclasses import dataclass, field

KINDS = ("ciphertext", "masked", "public_key", "plain")

__all__ = ["KINDS", "Message", "Transcript", "TranscriptSummary"]

_COLUMNS = ("sender", "receiver", "messages", "bytes", "kinds")


class TranscriptSummary(list):
    """Per-link rows (a list of dicts) that print as a table.

    In a notebook it renders as an HTML table; :meth:`to_frame` gives a
    :class:`pandas.DataFrame` when pandas is installed.
    """

    def _cells(self):
        return [[str(row[c]) if c != "bytes" else f"{row[c]:,}" for c in _COLUMNS]
                for row in self]

    def __str__(self):
        cells = self._cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(_COLUMNS)]
        right = {"messages", "bytes"}
        def fmt(values):
            return "  ".join(v.rjust(w) if c in right else v.ljust(w)
                             for v, w, c in zip(values, widths, _COLUMNS)).rstrip()
        lines = [fmt(_COLUMNS), fmt(["-" * w for w in widths])]
        lines += [fmt(r) for r in cells]
        total = sum(row["bytes"] for row in self)
        lines.append(f"total: {sum(row['messages'] for row in self)} messages, {total:,} bytes")
        return "\n".join(lines)

    def _repr_html_(self):
        from html import escape

        head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r) + "</tr>"
                       for r in self._cells())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_frame(self):
        """The rows as a :class:`pandas.DataFrame`."""
        import pandas as pd

        return pd.DataFrame(list(self), columns=list(_COLUMNS))


@dataclass(frozen=True)
class Message:
    """One message as seen on the wire.

    Attributes
    ----------
    sender, receiver : str
        Party names.
    tag : str
        What the message is, in the protocol's words (``"update"``, ``"d"``...).
    kind : {"ciphertext", "masked", "public_key", "plain"}
        How the payload is protected. ``plain`` is only used for values the
        protocol declares public.
    nbytes : int
        Size of the serialised payload.
    seq : int
        Position in the global order of sends.
    payload : bytes or None
        The serialised payload, kept only when the runtime was asked to
        (``keep_payloads=True``), so tests can inspect what left a party.
    """

    sender: str
    receiver: str
    tag: str
    kind: str
    nbytes: int
    seq: int = 0
    payload: bytes | None = field(default=None, repr=False, compare=False)

    def decoded(self):
        """Decode the kept payload (requires ``keep_payloads=True``)."""
        from .wire import decode

        if self.payload is None:
            raise ValueError("payload was not kept; run with keep_payloads=True")
        return decode(self.payload)


class ByteCount(int):
    """A number of bytes that, called with filters, counts a part of its transcript."""

    def __new__(cls, value, transcript):
        self = super().__new__(cls, value)
        self._transcript = transcript
        return self

    def __call__(self, *, sender=None, receiver=None, tag=None, kind=None):
        return sum(m.nbytes for m in self._transcript.filter(
            sender=sender, receiver=receiver, tag=tag, kind=kind))

    def __reduce__(self):  # copies and pickles are plain ints
        return (int, (int(self),))


class Transcript:
    """Ordered list of :class:`Message` records with summaries.

    Examples
    --------
    >>> from skfed.runtime import Transcript
    >>> t = Transcript()
    >>> t.record("a", "b", "x", "plain", 10)
    >>> t.summary()
    [{'sender': 'a', 'receiver': 'b', 'messages': 1, 'bytes': 10, 'kinds': 'plain'}]
    """

    def __init__(self, messages=()):
        self.messages = list(messages)

    def record(self, sender, receiver, tag, kind, nbytes, payload=None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.messages.append(
            Message(sender, receiver, tag, kind, int(nbytes), len(self.messages), payload)
        )

    def __iter__(self):
        return iter(self.messages)

    def __len__(self):
        return len(self.messages)

    def __getitem__(self, i):
        return self.messages[i]

    def __repr__(self):
        return f"Transcript({len(self)} messages, {self.total_bytes()} bytes)"

    def filter(self, *, sender=None, receiver=None, tag=None, kind=None):
        """Return the messages matching every given field."""
        return [
            m for m in self.messages
            if (sender is None or m.sender == sender)
            and (receiver is None or m.receiver == receiver)
            and (tag is None or m.tag == tag)
            and (kind is None or m.kind == kind)
        ]

    @property
    def total_bytes(self):
        """Bytes of every message; call it to count some: ``total_bytes(sender="a")``.

        An attribute like :attr:`messages` (``t.total_bytes`` is a number),
        and callable with the filters of :meth:`filter`.

        Examples
        --------
        >>> from skfed.runtime import Transcript
        >>> t = Transcript()
        >>> t.record("a", "b", "x", "plain", 10)
        >>> t.record("b", "a", "y", "plain", 5)
        >>> t.total_bytes, t.total_bytes(), t.total_bytes(sender="b")
        (15, 15, 5)
        """
        return ByteCount(sum(m.nbytes for m in self.messages), self)

    def extend(self, other):
        """Append another transcript's messages (e.g. from several runs)."""
        for m in other:
            self.record(m.sender, m.receiver, m.tag, m.kind, m.nbytes, m.payload)

    def summary(self):
        """Per-link totals: one row per (sender, receiver) pair.

        Returns
        -------
        rows : TranscriptSummary
            A list of dicts with keys ``sender``, ``receiver``, ``messages``,
            ``bytes`` and ``kinds`` (the protection kinds used on that link),
            which prints as a table.
        """
        links = OrderedDict()
        for m in self.messages:
            row = links.setdefault(
                (m.sender, m.receiver),
                {"sender": m.sender, "receiver": m.receiver, "messages": 0,
                 "bytes": 0, "kinds": set()},
            )
            row["messages"] += 1
            row["bytes"] += m.nbytes
            row["kinds"].add(m.kind)
        rows = TranscriptSummary()
        for row in links.values():
            row["kinds"] = ",".join(k for k in KINDS if k in row["kinds"])
            rows.append(row)
        return rows

    def to_frame(self):
        """The per-link summary as a :class:`pandas.DataFrame`."""
        return self.summary().to_frame()

    def _repr_html_(self):
        return self.summary()._repr_html_()
