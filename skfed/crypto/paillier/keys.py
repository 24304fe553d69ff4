"""Paillier keys: generation, the size policy, and the public key on the wire."""

import math
import os

import gmpy2
import numpy as np
from phe import paillier as _phe

ALLOW_INSECURE_ENV = "SKFED_ALLOW_INSECURE_KEYS"


DEFAULT_KEY_BITS = 2048


# Even with the opt-in, fixed-point values and statistical masks need room.
_ABSOLUTE_MIN_KEY_BITS = 256


_WIRE_SCHEME = "paillier"


def _insecure_allowed():
    return os.environ.get(ALLOW_INSECURE_ENV, "") == "1"


_MAX_KEY_BITS = 8192


def check_key_size(n_length):
    """Refuse Paillier moduli shorter than 2048 bits unless explicitly allowed.

    Parameters
    ----------
    n_length : int
        Bit length of the modulus ``n``.

    Raises
    ------
    ValueError
        If ``n_length < 2048`` and the environment variable
        ``SKFED_ALLOW_INSECURE_KEYS`` is not ``"1"``, or if ``n_length`` is
        below 256 bits (too small for fixed-point values and masks), above
        8192 bits (a denial of service from a peer's key), or not an integer.

    Examples
    --------
    >>> check_key_size(2048)
    """
    if isinstance(n_length, bool) or not isinstance(n_length, (int, np.integer)):
        raise ValueError(f"key size must be an integer number of bits, got {n_length!r}")
    n_length = int(n_length)
    if n_length < _ABSOLUTE_MIN_KEY_BITS:
        raise ValueError(
            f"Paillier key of {n_length} bits is too small; the minimum is "
            f"{_ABSOLUTE_MIN_KEY_BITS} bits even for tests"
        )
    if n_length < DEFAULT_KEY_BITS and not _insecure_allowed():
        raise ValueError(
            f"Paillier key of {n_length} bits is insecure; use at least "
            f"{DEFAULT_KEY_BITS} bits (set {ALLOW_INSECURE_ENV}=1 to allow small keys "
            "for tests only)"
        )
    if n_length > _MAX_KEY_BITS:
        # A peer's public key is checked before use; an enormous modulus would
        # only make every later operation (and the checks themselves) crawl.
        raise ValueError(
            f"Paillier key of {n_length} bits is larger than the supported maximum of "
            f"{_MAX_KEY_BITS} bits"
        )


def generate_keypair(n_length=DEFAULT_KEY_BITS):
    """Generate a Paillier key pair (phe key objects).

    Parameters
    ----------
    n_length : int, default=2048
        Bit length of the modulus. Checked with :func:`check_key_size`
        before any work.

    Returns
    -------
    public_key : phe.paillier.PaillierPublicKey
    private_key : phe.paillier.PaillierPrivateKey

    Examples
    --------
    >>> import os; os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
    '1'
    >>> pk, sk = generate_keypair(512)
    >>> pk.n.bit_length()
    512
    """
    check_key_size(n_length)
    return _phe.generate_paillier_keypair(n_length=int(n_length))


def public_key_to_wire(public_key):
    """Serialise a public key for the wire format.

    Parameters
    ----------
    public_key : phe.paillier.PaillierPublicKey

    Returns
    -------
    obj : dict
        ``{"scheme": "paillier", "n": int}``; ``g = n + 1`` is implied.
    """
    return {"scheme": _WIRE_SCHEME, "n": int(public_key.n)}


# Product of the odd primes below 2000: a modulus sharing one is not an RSA
# modulus of two large primes.
_SMALL_PRIMES_PRODUCT = math.prod(int(p) for p in range(3, 2000, 2) if gmpy2.is_prime(p))


def public_key_from_wire(obj):
    """Rebuild and validate a public key received from another party.

    Parameters
    ----------
    obj : dict
        As produced by :func:`public_key_to_wire`.

    Returns
    -------
    public_key : phe.paillier.PaillierPublicKey

    Raises
    ------
    ValueError
        If the object is malformed, ``n`` is not an odd composite without
        small factors, is a perfect square, or is too short for
        :func:`check_key_size`.
    """
    if not isinstance(obj, dict) or "n" not in obj:
        raise ValueError("a Paillier public key must be a dict with an integer 'n'")
    if obj.get("scheme", _WIRE_SCHEME) != _WIRE_SCHEME:
        raise ValueError(f"not a Paillier public key: scheme {obj.get('scheme')!r}")
    n = obj["n"]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError("public key modulus 'n' must be an integer")
    n = int(n)
    if n <= 1 or n % 2 == 0:
        raise ValueError("public key modulus must be an odd integer > 1")
    check_key_size(n.bit_length())
    if math.gcd(n, _SMALL_PRIMES_PRODUCT) != 1:
        raise ValueError("public key modulus has a small prime factor")
    if gmpy2.is_square(n) or gmpy2.is_prime(n):
        raise ValueError("public key modulus is not a product of two distinct primes")
    return _phe.PaillierPublicKey(n)
