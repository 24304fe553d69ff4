"""Fixed-point encoding: floats to signed integers at one scale per array, and back."""

import math

import numpy as np

DEFAULT_PRECISION_BITS = 64


DEFAULT_PLAIN_PRECISION_BITS = 32


DEFAULT_SIGMA_BITS = 80


_MIN_SIGMA_BITS = 40


def _obj(values):
    """Object ndarray view of a (possibly scalar) result of object arithmetic."""
    if isinstance(values, np.ndarray):
        return values
    out = np.empty((), dtype=object)
    out[()] = values
    return out


def _obj_from_list(values, shape=None):
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out if shape is None else out.reshape(shape)


def _as_numeric(values):
    """Return ``(array, is_integer)``; integer arrays become Python-int objects."""
    arr = np.asarray(values)
    if arr.dtype == object:
        flat = arr.ravel().tolist()
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in flat):
            return _obj_from_list([int(v) for v in flat], arr.shape), True
        arr = arr.astype(np.float64)
    if arr.dtype.kind in "biu":
        return arr.astype(object), True
    if arr.dtype.kind != "f":
        raise TypeError(f"cannot encode values of dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("cannot encode NaN or infinite values")
    return arr, False


def _float_to_ints(x, scale_bits):
    """Round ``x * 2**scale_bits`` to Python ints (object array), exactly."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        y = np.asarray(np.rint(np.ldexp(x, scale_bits)))
    if not y.size:
        return np.empty(y.shape, dtype=object)
    if np.isfinite(y).all():
        if np.abs(y).max() < 2.0**62:
            return _obj(y.astype(np.int64).astype(object))
        return _obj_from_list([int(v) for v in y.ravel().tolist()], x.shape)
    # 2**scale_bits overflows a float: scale the exact rational instead.
    out = []
    for v in x.ravel().tolist():
        num, den = float(v).as_integer_ratio()
        num = num << scale_bits if scale_bits >= 0 else num
        den = den if scale_bits >= 0 else den << -scale_bits
        q, r = divmod(num, den)
        out.append(q + (1 if 2 * r > den or (2 * r == den and q % 2) else 0))
    return _obj_from_list(out, x.shape)


def _encode(values, scale_bits, max_int=None):
    """Signed fixed-point integers ``round(values * 2**scale_bits)``."""
    arr, is_int = _as_numeric(values)
    if is_int:
        if scale_bits >= 0:
            ints = arr * (1 << scale_bits) if arr.size else arr
        else:
            half = 1 << (-scale_bits - 1)
            ints = (arr + half) >> (-scale_bits) if arr.size else arr
        ints = _obj(ints)
    else:
        ints = _float_to_ints(arr, scale_bits)
    if max_int is not None and ints.size:
        top = max(abs(int(v)) for v in ints.ravel().tolist())
        if top > max_int:
            raise OverflowError(
                f"value too large to encode: |m| has {top.bit_length()} bits at scale "
                f"2**-{scale_bits}, the key allows {int(max_int).bit_length()}"
            )
    return ints


def _trailing_zeros(ints):
    """Number of trailing zero bits common to all non-zero entries (0 if none)."""
    flat = np.asarray(ints, dtype=object).ravel()
    try:
        k = flat.astype(np.int64)
    except OverflowError:
        k = None
    if k is not None and (k.size == 0 or np.abs(k).max() < 2**62):
        nz = k[k != 0]
        if nz.size == 0:
            return 0
        low = np.bitwise_and(nz, -nz)  # lowest set bit of each entry
        return int(np.log2(low.min()).round())
    tz = None
    for v in flat.tolist():
        if v:
            t = (v & -v).bit_length() - 1
            tz = t if tz is None else min(tz, t)
    return tz or 0


def _encode_multiplier(values, precision_bits, per_row=False):
    """Encode a plaintext multiplier as small integers and a scale.

    Returns ``(K, p)`` where ``K`` is an object array of Python ints and
    ``p`` an int (or an int ndarray over rows when ``per_row``), with
    ``values ~= K / 2**p`` and ``|K| <= 2**precision_bits``; integers are
    exact. Trailing zero bits common to the array (to each row) are dropped,
    because the cost of an exponentiation grows with the exponent's length:
    ``0.25`` costs a 1-bit exponent instead of a 32-bit one, and so does a 0/1
    feature column in ``X.T @ enc``.
    """
    arr, is_int = _as_numeric(values)
    rows = arr.reshape(arr.shape[0], -1) if per_row else arr.reshape(1, -1)
    K = np.empty(rows.shape, dtype=object)
    p = np.zeros(rows.shape[0], dtype=int)
    live = np.zeros(rows.shape[0], dtype=bool)
    for i in range(rows.shape[0]):
        row = rows[i]
        if is_int:
            Ki, pi = _obj(row), 0
        else:
            amax = float(np.abs(row).max()) if row.size else 0.0
            # amax < 2**e, so |K| <= 2**precision_bits.
            pi = precision_bits - math.frexp(amax)[1] if amax else 0
            Ki = _float_to_ints(row, pi)
        shift = _trailing_zeros(Ki)
        if shift:
            Ki = _obj(Ki >> shift)
        K[i] = Ki
        p[i] = pi - shift
        live[i] = any(Ki.tolist())
    if live.any():
        # All-zero rows can take any scale: give them the one that needs no lift.
        p[~live] = p[live].max()
    else:
        p[:] = 0
    if per_row:
        return K.reshape(arr.shape), p
    return K.reshape(arr.shape), int(p[0])


def _signed(ints, n, max_int):
    """Map residues mod n to signed ints, raising on the middle third."""
    out = []
    for v in ints:
        v = int(v)
        if v <= max_int:
            out.append(v)
        elif v >= n - max_int:
            out.append(v - n)
        else:
            raise OverflowError(
                "decrypted value overflowed the plaintext space (it wrapped around n); "
                "the result of the computation is not representable with this key and scale"
            )
    return out


def _ints_to_float(ints, scale_bits):
    out = np.empty(len(ints), dtype=np.float64)
    try:
        if scale_bits >= 0:
            div = 1 << scale_bits
            for i, v in enumerate(ints):
                out[i] = v / div
        else:
            mul = 1 << -scale_bits
            for i, v in enumerate(ints):
                out[i] = float(v * mul)
    except OverflowError as exc:
        raise OverflowError("decrypted value does not fit in a float64") from exc
    return out


def decode_masked(ints, mask, scale_bits, *, sigma_bits=DEFAULT_SIGMA_BITS):
    """Remove a mask from decrypted masked integers and decode to floats.

    The counterpart of :meth:`EncryptedArray.add_random_mask` and
    :meth:`EncryptedArray.decrypt_encoded`: the owner of the mask receives
    ``ints = m + mask`` from the decrypting party and recovers ``m / 2**s``.

    Parameters
    ----------
    ints : array-like of int
        Signed integers returned by ``decrypt_encoded`` on the masked array.
    mask : array-like of int
        The mask returned by ``add_random_mask``, same shape.
    scale_bits : int
        The masked array's ``scale_bits`` (sent along with the ciphertexts).
    sigma_bits : int, default=80
        The statistical hiding parameter used for the mask; the value must
        be at least this many bits shorter than the mask or it was not
        hidden, and :class:`OverflowError` is raised.

    Returns
    -------
    values : ndarray of float64
    """
    ints = np.asarray(ints, dtype=object)
    mask = np.asarray(mask, dtype=object)
    if ints.shape != mask.shape:
        raise ValueError(f"shape mismatch: values {ints.shape}, mask {mask.shape}")
    flat_i = [int(v) for v in ints.ravel().tolist()]
    flat_m = [int(v) for v in mask.ravel().tolist()]
    diff = [a - b for a, b in zip(flat_i, flat_m)]
    if diff:
        limit = max(b.bit_length() for b in flat_m) - int(sigma_bits)
        if any(abs(v).bit_length() > limit for v in diff):
            raise OverflowError(
                "masked value is too large for its mask: it overflowed or was not "
                "statistically hidden"
            )
    return _ints_to_float(diff, int(scale_bits)).reshape(ints.shape)


def _check_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)
