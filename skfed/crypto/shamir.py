"""Shamir t-out-of-n secret sharing over the prime field GF(2**521 - 1).

A secret is the constant term of a random polynomial of degree ``t - 1``;
share ``i`` is the polynomial's value at ``x = i``. Any ``t`` shares give the
secret back by Lagrange interpolation at 0; any ``t - 1`` shares are
uniformly distributed whatever the secret (information-theoretic hiding).

Why a module of our own rather than a library: the Shamir packages on PyPI
are small and mostly unmaintained (``secretsharing``, ``pyseltongue``,
``horcrux``, ...), and the one well-kept implementation, PyCryptodome's
``Crypto.Protocol.SecretSharing.Shamir``, shares only 16-byte secrets over
GF(2**128), so every 32-byte key would need two sharings and a second crypto
library beside ``cryptography``. The arithmetic is a few lines of Python
integers; what matters for security is checked here and tested:

* **Field size.** The Mersenne prime 2**521 - 1 exceeds every 32-byte secret
  (X25519 private keys, 256-bit seeds), so a secret is shared whole, never
  reduced or truncated.
* **Randomness.** Coefficients come from ``os.urandom`` (the operating
  system's CSPRNG), uniform over the whole field.
* **Strict inputs.** Points are distinct non-zero field elements; a share
  outside the field, a repeated point, or fewer than ``t`` shares raise
  instead of silently interpolating garbage.
"""

import os

__all__ = ["PRIME", "split", "combine", "lagrange_at_zero", "secret_to_int", "int_to_secret"]

PRIME = 2**521 - 1
SHARE_BYTES = 66  # ceil(521 / 8): the wire size of one share value


def _check_point(x):
    if not isinstance(x, int) or isinstance(x, bool) or not 0 < x < PRIME:
        raise ValueError(f"share points must be integers in [1, p-1], got {x!r}")


def _random_elements(k):
    """``k`` uniform field elements from one CSPRNG call (rejection sampling).

    One ``os.urandom`` call per sharing instead of one per coefficient: in a
    multi-threaded run every call releases the GIL, and the hand-overs, not
    the bytes, were the cost.
    """
    out = []
    while len(out) < k:
        raw = os.urandom(SHARE_BYTES * (k - len(out)))
        for i in range(0, len(raw), SHARE_BYTES):
            # 521 random bits; only the all-ones value, p itself, is rejected.
            v = int.from_bytes(raw[i:i + SHARE_BYTES], "big") & PRIME
            if v < PRIME:
                out.append(v)
    return out


def split(secret, points, threshold):
    """Share ``secret`` (an int in [0, p)) at ``points``; any ``threshold`` recover it.

    Parameters
    ----------
    secret : int
    points : sequence of int
        Distinct non-zero evaluation points, one per recipient (skfed uses a
        client's 1-based position in the sorted list of clients).
    threshold : int
        How many shares reconstruct the secret (``1 <= threshold <= len(points)``).

    Returns
    -------
    dict
        ``{point: share}``.

    Examples
    --------
    >>> shares = split(42, [1, 2, 3, 4, 5], threshold=3)
    >>> combine({x: shares[x] for x in (2, 4, 5)}, threshold=3)
    42
    """
    if not isinstance(secret, int) or not 0 <= secret < PRIME:
        raise ValueError("the secret must be an integer in [0, p)")
    points = list(points)
    for x in points:
        _check_point(x)
    if len(set(points)) != len(points):
        raise ValueError("share points must be distinct")
    if not 1 <= threshold <= len(points):
        raise ValueError(f"threshold must be in [1, {len(points)}], got {threshold}")
    coefs = [secret] + _random_elements(threshold - 1)
    shares = {}
    for x in points:
        acc = 0
        for c in reversed(coefs):  # Horner's rule
            acc = (acc * x + c) % PRIME
        shares[x] = acc
    return shares


def lagrange_at_zero(points):
    """Lagrange coefficients that interpolate a polynomial at 0 from ``points``.

    The same coefficients serve every secret shared at the same points, so a
    server recovering many secrets from one set of survivors computes them once.
    """
    points = list(points)
    for x in points:
        _check_point(x)
    if len(set(points)) != len(points):
        raise ValueError("share points must be distinct")
    coefs = {}
    for i in points:
        num, den = 1, 1
        for j in points:
            if j != i:
                num = num * j % PRIME
                den = den * (j - i) % PRIME
        coefs[i] = num * pow(den, -1, PRIME) % PRIME
    return coefs


def combine(shares, threshold, coefficients=None):
    """Recover a secret from at least ``threshold`` shares ``{point: share}``.

    Exactly ``threshold`` shares are used (the lowest points); more add
    nothing for honest shares. ``coefficients`` may pass precomputed
    :func:`lagrange_at_zero` values for those points.
    """
    if len(shares) < threshold:
        raise ValueError(f"need {threshold} shares to reconstruct, got {len(shares)}")
    points = sorted(shares)[:threshold]
    for x in points:
        y = shares[x]
        if not isinstance(y, int) or not 0 <= y < PRIME:
            raise ValueError("a share value lies outside the field")
    lam = lagrange_at_zero(points) if coefficients is None else coefficients
    return sum(shares[x] * lam[x] for x in points) % PRIME


def secret_to_int(raw):
    """32 (or fewer) secret bytes to a field element (big-endian)."""
    if not isinstance(raw, bytes) or len(raw) > 64:
        raise ValueError("secrets are byte strings of at most 64 bytes")
    return int.from_bytes(raw, "big")


def int_to_secret(value, length=32):
    """Back from a field element to ``length`` bytes; raise if it does not fit."""
    if not 0 <= value < 2 ** (8 * length):
        raise ValueError("the reconstructed value is not a secret of this length "
                         "(inconsistent shares?)")
    return value.to_bytes(length, "big")
