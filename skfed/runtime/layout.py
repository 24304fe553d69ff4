"""Checking a received message against the layout its protocol makes public.

Every protocol fixes, before a run, the *public layout* of each message:
the shape of an array (from the agreed sizes), the fixed-point scale of a
ciphertext array (from public constants), the dtype of a masked vector, the
type of a scalar. A party that receives a message checks it against that
layout right after :meth:`recv`, before it uses the value. Without the check,
numpy broadcasting and lenient parsing can absorb a message of the wrong
shape (a ``(1, 1)`` array where ``(n, 1)`` was due) and the fit finishes with
a wrong model and no error.

This module is the one place every family calls for that: it knows arrays
and ciphertext arrays only by their attributes (``shape``, ``scale_bits``),
so it sits in the transport layer without knowing any protocol. A mismatch
raises :class:`LayoutMismatch`, a :class:`~skfed.runtime.party.ProtocolMismatch`
whose message names only public values (shapes, scales, dtypes, the tag and
the sender), so a network runtime may forward it to the peers.
"""

import numbers

import numpy as np

from .party import ProtocolMismatch

__all__ = ["LayoutMismatch", "check_array", "check_attributes", "check_dict",
           "check_encrypted", "check_scalar"]


class LayoutMismatch(ProtocolMismatch):
    """A received message does not have the layout its protocol makes public."""


def _where(sender, tag):
    return f"{tag!r} from {sender!r}"


def _shape_matches(got, want):
    return len(got) == len(want) and all(w is None or int(g) == int(w)
                                         for g, w in zip(got, want))


def _fmt_shape(shape):
    return "(" + ", ".join("*" if s is None else str(int(s)) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def check_array(value, *, sender, tag, shape=None, dtype="f", finite=False, exact_dtype=None):
    """Return ``value`` as an ndarray after checking its public layout.

    Parameters
    ----------
    value : object
        The decoded payload (a plain array, or a list the sender made of one).
    sender, tag : str
        Who sent it and under which tag (for the error message).
    shape : tuple of int or None, default=None
        The public shape; ``None`` entries accept any size on that axis.
        ``None`` accepts any shape.
    dtype : str, default="f"
        The numpy dtype kinds accepted (e.g. ``"f"``, ``"u"``, ``"biuf"``).
        Floats are returned as float64; other kinds are returned unchanged.
    finite : bool, default=False
        Refuse NaN and infinities in a float array. Off by default: a
        diverging fit is the receiving role's to report (in its own words),
        not a layout mismatch.
    exact_dtype : str or None, default=None
        Require exactly this dtype (e.g. ``"uint64"`` for masked ring elements).

    Returns
    -------
    array : ndarray

    Raises
    ------
    LayoutMismatch
        If the value is not an array of an accepted kind and shape.

    Examples
    --------
    >>> import numpy as np
    >>> from skfed.runtime.layout import check_array
    >>> check_array(np.zeros((3, 1)), sender="host", tag="u", shape=(3, 1)).shape
    (3, 1)
    >>> check_array(np.zeros((1, 1)), sender="host", tag="u", shape=(3, 1))
    Traceback (most recent call last):
    ...
    skfed.runtime.layout.LayoutMismatch: 'u' from 'host' has shape (1, 1); ...
    """
    if isinstance(value, (list, tuple)) and "f" in dtype:
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise LayoutMismatch(f"{_where(sender, tag)} is not a numeric array") from None
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool) \
            and "f" in dtype:
        value = np.asarray(value, dtype=np.float64)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in dtype:
        got = f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) \
            else f"a {type(value).__name__}"
        raise LayoutMismatch(
            f"{_where(sender, tag)} is {got}; the protocol sends an array of kind {dtype!r}")
    if exact_dtype is not None and value.dtype != np.dtype(exact_dtype):
        raise LayoutMismatch(
            f"{_where(sender, tag)} has dtype {value.dtype}; the protocol sends {exact_dtype}")
    if shape is not None and not _shape_matches(value.shape, tuple(shape)):
        raise LayoutMismatch(
            f"{_where(sender, tag)} has shape {_fmt_shape(value.shape)}; the protocol's "
            f"public layout is {_fmt_shape(tuple(shape))}")
    if value.dtype.kind == "f":
        value = value.astype(np.float64, copy=False)
        if finite and not np.all(np.isfinite(value)):
            raise LayoutMismatch(f"{_where(sender, tag)} holds NaN or infinite values")
    return value


def check_encrypted(value, *, sender, tag, shape=None, scale_bits=None):
    """Return a ciphertext array after checking its public shape and scale.

    A ciphertext array's scale is public metadata fixed by the protocol; one
    that differs means the sender computed something else than the protocol
    says (or sized a value to reveal, or hide, a magnitude). Key holders call
    this before they decrypt anything they are asked to.

    Parameters
    ----------
    value : EncryptedArray
        Anything with ``shape`` and ``scale_bits`` attributes.
    sender, tag : str
    shape : tuple of int or None, default=None
        As for :func:`check_array`.
    scale_bits : int or None, default=None
        The public fixed-point scale; ``None`` accepts any.

    Returns
    -------
    value : EncryptedArray

    Raises
    ------
    LayoutMismatch
    """
    got_shape = getattr(value, "shape", None)
    got_scale = getattr(value, "scale_bits", None)
    if got_shape is None or got_scale is None:
        raise LayoutMismatch(
            f"{_where(sender, tag)} is a {type(value).__name__}, not a ciphertext array")
    if shape is not None and not _shape_matches(got_shape, tuple(shape)):
        raise LayoutMismatch(
            f"{_where(sender, tag)} has shape {_fmt_shape(got_shape)}; the protocol's "
            f"public layout is {_fmt_shape(tuple(shape))}")
    if scale_bits is not None and int(got_scale) != int(scale_bits):
        raise LayoutMismatch(
            f"{_where(sender, tag)} has fixed-point scale 2**-{got_scale}; the protocol's "
            f"public scale is 2**-{int(scale_bits)}")
    return value


def check_scalar(value, *, sender, tag, kind, low=None, high=None):
    """Return a received scalar after checking its type (and range).

    Parameters
    ----------
    value : object
    sender, tag : str
    kind : {"bool", "int", "float"}
    low, high : number, default=None
        Inclusive bounds for ``"int"`` and ``"float"``.

    Returns
    -------
    value : bool, int or float

    Raises
    ------
    LayoutMismatch
    """
    ok = {"bool": lambda v: isinstance(v, (bool, np.bool_)),
          "int": lambda v: isinstance(v, (numbers.Integral, np.integer))
          and not isinstance(v, (bool, np.bool_)),
          "float": lambda v: isinstance(v, (numbers.Real, np.number))
          and not isinstance(v, (bool, np.bool_))}[kind](value)
    if not ok:
        raise LayoutMismatch(
            f"{_where(sender, tag)} is a {type(value).__name__}; the protocol sends a {kind}")
    value = {"bool": bool, "int": int, "float": float}[kind](value)
    if kind == "float" and not np.isfinite(value):
        raise LayoutMismatch(f"{_where(sender, tag)} is not finite")
    if (low is not None and value < low) or (high is not None and value > high):
        raise LayoutMismatch(
            f"{_where(sender, tag)} is {value}, outside the protocol's range [{low}, {high}]")
    return value


def check_attributes(value, *, sender, tag, **expected):
    """Return ``value`` after checking public attributes (e.g. a packing's ``n_values``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from skfed.runtime.layout import check_attributes
    >>> packed = SimpleNamespace(n_values=3, n_summands=1)
    >>> check_attributes(packed, sender="c1", tag="update", n_values=3).n_values
    3
    """
    wrong = [f"{name} {getattr(value, name, '<missing>')!r} (public: {want!r})"
             for name, want in expected.items() if getattr(value, name, None) != want]
    if wrong:
        raise LayoutMismatch(f"{_where(sender, tag)} has " + ", ".join(wrong))
    return value


def check_dict(value, *, sender, tag, keys):
    """Return a received dict after checking it has exactly the public ``keys``."""
    if not isinstance(value, dict) or set(value) != set(keys):
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise LayoutMismatch(
            f"{_where(sender, tag)} has fields {got}; the protocol sends {sorted(keys)}")
    return value
