"""Building blocks of Diffie-Hellman private set intersection over X25519.

The protocol (see :mod:`skfed.vertical.alignment`) needs one primitive, a
commutative blinding ``u -> X25519(s, u)``: blinding by ``a`` then ``b`` gives
the same 32 bytes as blinding by ``b`` then ``a`` (both are the u-coordinate
of ``[clamp(a) * clamp(b)] P``), and without the scalars nobody can link a
blinded value to the identifier behind it (the decisional Diffie-Hellman
assumption on Curve25519, with the hash modelled as a random oracle).

This module knows nothing about parties or messages: it turns identifiers
into canonical bytes, hashes them to X25519 u-coordinates, draws secret
scalars and blinds batches of points, in parallel with joblib where the batch
is large enough to pay for the workers.

Why the hash lands on the curve, never on its twist
----------------------------------------------------
* **Try-and-increment onto Curve25519.** A 255-bit string is the
  u-coordinate of a point either on Curve25519 or on its quadratic twist
  (about half each). X25519 is twist secure, so blinding a twist point is
  safe for the scalar, but blinding keeps the side: a blinded value would
  still tell, to anyone, on which side its identifier's hash fell, a public
  bit per identifier that the blinding does not hide (and pseudo-randomness
  under DDH holds only within one group). :func:`hash_to_point` therefore
  re-hashes with an incremented counter until the u-coordinate is canonical
  (below ``p``) and on the curve (``u**3 + A u**2 + u`` is a square mod
  ``p``): two hashes and one Legendre symbol per identifier on average,
  a few microseconds against the two blindings' ~70. The counter's value
  depends only on the identifier, so every party finds the same point.
  Modelling the hash as a random oracle, the result is a uniform point of
  the curve's group of order ``8 q``.
* **Received values are checked.** Honest blinded values lie on the curve,
  so :func:`check_points` refuses twist points (and non-canonical
  encodings) from a peer, which closes the twist as a side channel.
* **Clamping clears the cofactor.** X25519 clamps every scalar to a multiple
  of 8, the curve's cofactor, so the small-order component of a hashed point
  is wiped out by the first blinding and every value that leaves a party lies
  in the prime-order subgroup (order ``q``, a 253-bit prime).
* **Low-order inputs are refused.** The only inputs that blinding maps to the
  neutral element are the handful of small-order u-coordinates
  (:data:`LOW_ORDER_U`, the same list as libsodium's blocklist). The
  ``cryptography`` package raises ``ValueError`` when the shared value is
  all-zero; :func:`blind` turns that into :class:`LowOrderPointError`, which
  on a received message means the sender misbehaved. :func:`hash_to_point`
  never outputs one of them (it re-hashes with a counter, which would happen
  with probability about ``2**-252`` per identifier), so honest inputs never
  trigger the error.
* **Distinct identifiers give distinct blinded values** except with
  probability about ``n**2 * 2**-249``: two hashes collide after blinding only
  if their points differ by a small-order point.
* **Domain separation.** Hash inputs are a canonical, type-tagged encoding
  (so the integer ``1`` and the string ``"1"`` are different identifiers),
  hashed with BLAKE2b personalised with :data:`DOMAIN`, so skfed's hashes
  cannot be confused with another protocol's.

Scalars come from the operating system's CSPRNG (:mod:`secrets`) and never
leave the party that drew them (joblib workers run on that party's own
machine); a ``random_state`` must never reach them.
"""

import hashlib
import numbers
import secrets

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed

__all__ = [
    "DOMAIN",
    "LOW_ORDER_U",
    "POINT_BYTES",
    "LowOrderPointError",
    "blind",
    "check_points",
    "encode_id",
    "encode_ids",
    "generate_scalar",
    "hash_ids",
    "hash_to_point",
    "on_curve",
]

POINT_BYTES = 32

#: BLAKE2b personalisation (at most 16 bytes) separating skfed's PSI hashes.
DOMAIN = b"skfed-psi-x25519"

_P = 2**255 - 19
_MP = gmpy2.mpz(_P)
_A = 486662  # Curve25519: v**2 = u**3 + A u**2 + u
#: u-coordinates (after clearing bit 255) of the points of order 1, 2, 4 or 8
#: on Curve25519 and its twist, including the non-canonical encodings p and
#: p + 1. Blinding any of them yields the all-zero value.
LOW_ORDER_U = frozenset({
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    _P - 1,
    _P,
    _P + 1,
})

# Type tags of the canonical encoding; a tag byte makes 1 and "1" differ.
_TAG_INT, _TAG_BYTES, _TAG_STR = b"i", b"b", b"s"

# Below this many points per job, joblib's process start-up and messaging
# cost more than the exchanges they would spread out (~34 us each).
_MIN_POINTS_PER_JOB = 4096


class LowOrderPointError(ValueError):
    """A point of small order was blinded: the all-zero result is refused.

    Honest inputs never cause it (see the module docstring); on a received
    message it means the sender is misbehaving.
    """


def _is_missing(value):
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    # pandas.NA and pandas.NaT without importing pandas.
    return type(value).__name__ in ("NAType", "NaTType")


def encode_id(value):
    """Canonical, type-tagged bytes of one identifier.

    Integers (Python or numpy, any size) become ``b"i"`` and their signed
    big-endian bytes; strings become ``b"s"`` and their UTF-8 bytes; bytes
    become ``b"b"`` and themselves. Equal values of different integer types
    (``5`` and ``numpy.int64(5)``) encode identically; ``1`` and ``"1"`` do
    not.

    Parameters
    ----------
    value : int, str or bytes
        The identifier.

    Returns
    -------
    encoded : bytes

    Raises
    ------
    ValueError
        If ``value`` is missing (None, NaN, ``pandas.NA``) or of an
        unsupported type (floats, booleans, anything else).

    Examples
    --------
    >>> from skfed.crypto.psi import encode_id
    >>> encode_id(1), encode_id("1")
    (b'i\\x01', b's1')
    """
    if isinstance(value, str):
        return _TAG_STR + value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"boolean identifiers are not supported (got {value!r}); use int or str IDs"
        )
    if isinstance(value, numbers.Integral):
        v = int(value)
        return _TAG_INT + v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
    if isinstance(value, (bytes, bytearray)):
        return _TAG_BYTES + bytes(value)
    if _is_missing(value):
        raise ValueError(f"missing identifier ({value!r})")
    if isinstance(value, (float, np.floating)):
        raise ValueError(
            f"float identifiers are not supported (got {value!r}): float equality is "
            "fragile; convert IDs to int or str"
        )
    raise ValueError(
        f"unsupported identifier type {type(value).__name__} ({value!r}); "
        "IDs must be int, str or bytes"
    )


def encode_ids(values):
    """Encode a sequence of identifiers with :func:`encode_id`.

    Errors name the position of the first offending value.

    Parameters
    ----------
    values : iterable of int, str or bytes

    Returns
    -------
    encoded : list of bytes
    """
    out = []
    for i, value in enumerate(values):
        try:
            out.append(encode_id(value))
        except ValueError as exc:
            raise ValueError(f"identifier at position {i}: {exc}") from None
    return out


def on_curve(u):
    """Whether the integer ``u`` is the canonical u-coordinate of a Curve25519 point.

    ``0 <= u < p`` and ``u**3 + A u**2 + u`` a square modulo ``p`` (a point on
    the twist makes it a non-square).

    Examples
    --------
    >>> from skfed.crypto.psi import on_curve
    >>> on_curve(9), on_curve(2)  # 9: the X25519 base point; 2: on the twist
    (True, False)
    """
    if not 0 <= u < _P:
        return False
    u = gmpy2.mpz(u)
    return gmpy2.legendre(u * (u * (u + _A) + 1) % _MP, _MP) >= 0


def hash_to_point(encoded):
    """Hash canonical identifier bytes to the u-coordinate of a Curve25519 point.

    BLAKE2b-256 personalised with :data:`DOMAIN`, bit 255 cleared (X25519
    ignores it), re-hashed with an incremented counter in the salt until the
    result is a canonical u-coordinate on the curve (not its twist, see the
    module docstring) and not one of the :data:`LOW_ORDER_U`. Each try
    succeeds with probability about 1/2.

    Parameters
    ----------
    encoded : bytes
        Output of :func:`encode_id`.

    Returns
    -------
    point : bytes of length 32
        Little-endian u-coordinate, as X25519 expects.

    Examples
    --------
    >>> from skfed.crypto.psi import encode_id, hash_to_point
    >>> len(hash_to_point(encode_id("alice")))
    32
    """
    for counter in range(2**16):
        digest = bytearray(hashlib.blake2b(
            encoded, digest_size=POINT_BYTES, person=DOMAIN,
            salt=counter.to_bytes(16, "little"),
        ).digest())
        digest[-1] &= 0x7F
        u = int.from_bytes(digest, "little")
        if u not in LOW_ORDER_U and on_curve(u):
            return bytes(digest)
    raise AssertionError("unreachable: 65536 hashes off the curve")  # pragma: no cover


def _hash_blob(encoded):
    return b"".join([hash_to_point(e) for e in encoded])


def _chunks(n, n_jobs):
    """Chunk bounds for ``n`` points, or None when one process is cheaper."""
    n_workers = effective_n_jobs(n_jobs)
    n_chunks = min(4 * n_workers, n // _MIN_POINTS_PER_JOB) if n_workers > 1 else 1
    if n_chunks <= 1:
        return None
    return np.linspace(0, n, n_chunks + 1).astype(int)


def hash_ids(encoded, *, n_jobs=None):
    """Hash many encoded identifiers to u-coordinates.

    Parameters
    ----------
    encoded : sequence of bytes
        Outputs of :func:`encode_id`.
    n_jobs : int, default=None
        Number of joblib workers, as for :func:`blind`.

    Returns
    -------
    points : ndarray of shape (n, 32), dtype uint8
    """
    encoded = list(encoded)
    bounds = _chunks(len(encoded), n_jobs)
    if bounds is None:
        blob = _hash_blob(encoded)
    else:
        blob = b"".join(Parallel(n_jobs=n_jobs)(
            delayed(_hash_blob)(encoded[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)))
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, POINT_BYTES).copy()


def generate_scalar():
    """A fresh secret X25519 scalar from the operating system's CSPRNG.

    Returns
    -------
    scalar : bytes of length 32
        Clamped by X25519 when used, as RFC 7748 prescribes.
    """
    return secrets.token_bytes(POINT_BYTES)


def check_points(points, what="points", *, curve=False):
    """Validate a batch of u-coordinates, e.g. one received from a peer.

    Parameters
    ----------
    points : array-like of shape (n, 32), dtype uint8
    what : str
        Name used in error messages.
    curve : bool, default=False
        Also require every point to be a canonical u-coordinate on
        Curve25519 (not its twist), as every honest hashed or blinded value
        is. Costs a Legendre symbol per point (~6 us).

    Returns
    -------
    points : ndarray of shape (n, 32), dtype uint8, C-contiguous
    """
    if not isinstance(points, np.ndarray) or points.dtype != np.uint8 \
            or points.ndim != 2 or points.shape[1] != POINT_BYTES:
        shape = getattr(points, "shape", None)
        dtype = getattr(points, "dtype", type(points).__name__)
        raise ValueError(
            f"{what} must be a uint8 array of shape (n, {POINT_BYTES}), "
            f"got {dtype} with shape {shape}"
        )
    points = np.ascontiguousarray(points)
    if curve:
        for i, row in enumerate(points):
            if not on_curve(int.from_bytes(row.tobytes(), "little")):
                raise ValueError(
                    f"{what}: value {i} is not a point of Curve25519 (it is on the twist or "
                    "not canonical); honest blinded values always are")
    return points


def _blind_blob(scalar, blob):
    """Blind the concatenated 32-byte points of ``blob``; one joblib task."""
    exchange = X25519PrivateKey.from_private_bytes(scalar).exchange
    load = X25519PublicKey.from_public_bytes
    step = POINT_BYTES
    try:
        return b"".join([exchange(load(blob[i:i + step])) for i in range(0, len(blob), step)])
    except ValueError:
        # Find which point it was, for the message (rare path: only on bad input).
        for i in range(0, len(blob), step):
            try:
                exchange(load(blob[i:i + step]))
            except ValueError:
                raise LowOrderPointError(
                    f"point {blob[i:i + step].hex()} has small order: blinding it "
                    "gives the all-zero value, which X25519 refuses"
                ) from None
        raise


def blind(points, scalar, *, n_jobs=None):
    """Blind u-coordinates with a secret scalar: ``X25519(scalar, u)`` each.

    Parameters
    ----------
    points : ndarray of shape (n, 32), dtype uint8
        Little-endian u-coordinates (hashes from :func:`hash_ids` or
        another party's blinded values).
    scalar : bytes of length 32
        Secret scalar from :func:`generate_scalar`.
    n_jobs : int, default=None
        Number of joblib workers. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; ``-1`` means all processors.
        Batches too small to pay for the workers run in this process.

    Returns
    -------
    blinded : ndarray of shape (n, 32), dtype uint8

    Raises
    ------
    LowOrderPointError
        If a point has small order (never for outputs of :func:`hash_ids`).

    Examples
    --------
    Blinding commutes, which is what makes the intersection possible:

    >>> from skfed.crypto.psi import blind, encode_ids, generate_scalar, hash_ids
    >>> points = hash_ids(encode_ids(["alice", "bob"]))
    >>> a, b = generate_scalar(), generate_scalar()
    >>> bool((blind(blind(points, a), b) == blind(blind(points, b), a)).all())
    True
    """
    points = check_points(points)
    if not isinstance(scalar, bytes) or len(scalar) != POINT_BYTES:
        raise ValueError(f"scalar must be {POINT_BYTES} bytes")
    n = len(points)
    bounds = _chunks(n, n_jobs)
    if bounds is None:
        blob = _blind_blob(scalar, points.tobytes())
    else:
        parts = Parallel(n_jobs=n_jobs)(
            delayed(_blind_blob)(scalar, points[lo:hi].tobytes())
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        )
        blob = b"".join(parts)
    return np.frombuffer(blob, dtype=np.uint8).reshape(n, POINT_BYTES).copy()
