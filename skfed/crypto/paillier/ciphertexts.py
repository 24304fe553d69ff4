"""Vectors of raw ciphertexts: encrypting integers, parsing wire blobs, cost estimates."""

import gmpy2

from .._multiexp import MAX_EXPONENT_BITS
from .encoding import (
    DEFAULT_PLAIN_PRECISION_BITS,
    _check_int,
    _obj_from_list,
)
from .keys import (
    _WIRE_SCHEME,
)
from .parallel import (
    _elementwise,
    _encrypt_worker,
)


def _plain_bits(precision_bits, limit=MAX_EXPONENT_BITS):
    B = DEFAULT_PLAIN_PRECISION_BITS if precision_bits is None else _check_int(
        precision_bits, "precision_bits"
    )
    if not 1 <= B <= limit:
        raise ValueError(f"plaintext precision_bits must be in [1, {limit}], got {B}")
    return B


def _invert_seconds(ctx):
    return 7 * ctx.mul_seconds


def _decrypt_seconds(ctx):
    # Two half-size exponentiations (exponent k/2 bits modulo a k-bit number).
    return 0.6 * ctx.n_bits * ctx.mul_seconds


def _encrypt_ints(ctx, ints, n_jobs, obfuscator="djn"):
    plain = _obj_from_list([gmpy2.mpz(int(v) % ctx.n) for v in ints])
    return _elementwise(
        _encrypt_worker,
        n_jobs,
        ctx.obfuscation_seconds(obfuscator),
        [plain],
        int(ctx.n),
        obfuscator,
    )


def _check_header(obj, keys):
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        raise ValueError(f"expected a dict with keys {keys}")
    if obj.get("scheme", _WIRE_SCHEME) != _WIRE_SCHEME:
        raise ValueError(f"not Paillier ciphertexts: scheme {obj.get('scheme')!r}")
    shape = obj.get("shape", None)
    if shape is not None:
        if not isinstance(shape, (list, tuple)) or len(shape) > 32:
            raise ValueError("shape must be a list of at most 32 non-negative integers")
        shape = [_check_int(d, "shape entry") for d in shape]
        if any(d < 0 for d in shape):
            raise ValueError("shape entries must be non-negative")
    scale = obj.get("scale_bits", 0)
    scale = _check_int(scale, "scale_bits")
    if abs(scale) > 1 << 16:
        raise ValueError("scale_bits out of range")
    return shape, scale


def _parse_ciphertexts(ctx, blob, count):
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError("ciphertexts must be bytes")
    blob = bytes(blob)
    w = ctx.nsq_bytes
    if len(blob) != count * w:
        raise ValueError(
            f"ciphertext blob has {len(blob)} bytes, expected {count} x {w} for this key"
        )
    n, nsq = ctx.n, ctx.nsquare
    cs = [gmpy2.mpz(int.from_bytes(blob[i * w : (i + 1) * w], "big")) for i in range(count)]
    for i, c in enumerate(cs):
        if c <= 0 or c >= nsq:
            raise ValueError(f"ciphertext {i} is outside [1, n**2)")
    # gcd(prod c_i mod n, n) == 1 iff every c_i is a unit: one gcd, not N.
    acc = gmpy2.mpz(1)
    for c in cs:
        acc = acc * c % n
    if gmpy2.gcd(acc, n) != 1:
        bad = next(i for i, c in enumerate(cs) if gmpy2.gcd(c, n) != 1)
        raise ValueError(f"ciphertext {bad} is not invertible modulo n**2 (not in Z*_(n^2))")
    return cs
