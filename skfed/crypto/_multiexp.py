"""Multi-exponentiation over gmpy2 integers (internal to the Paillier engine).

Everything here is plain modular arithmetic: it computes products of powers
``prod_i b_i ** k_i mod m`` for many exponent vectors that share their bases,
which is what a plaintext matrix times an encrypted vector reduces to. It
knows nothing about Paillier, keys or encodings.

Three strategies are implemented and chosen by a cost model counted in modular
multiplications (the unit that dominates at 2048-bit keys: ~5 us for a
4096-bit ``a * b % m`` through gmpy2):

* **bucket** (Pippenger): for each exponent row and each ``c``-bit window,
  every base is multiplied into the bucket of its digit, then the buckets are
  folded with the running-sum trick. Cost ~ ``W * (N + 2**(c+1))`` per row,
  i.e. about ``N * bits / c`` instead of ``N * 1.2 * bits`` for independent
  powers. Best for ``X.T @ [[d]]`` (many bases, few rows).
* **table** (fixed-base comb): per base, a table of ``b ** (u * 2**(w t))``;
  each row then costs ``bits / w`` multiplications per base. Best when few
  bases are shared by many rows (``X @ [[w]]``).
* **naive**: one ``powmod`` per non-zero exponent, for tiny problems.

Exponents are signed 64-bit integers (|k| < 2**62). They are recoded into
signed digits in ``[-2**(c-1), 2**(c-1))``, so negative exponents cost no
per-base inversion: negative digits go to a second set of buckets which is
inverted once per window. When many rows share the bases, it is cheaper to
invert every base once instead (Montgomery's batch inversion: one inversion
and three multiplications per base, shared by all rows and windows) and put
a base with digit ``-u`` into bucket ``u`` as its inverse, so each window
folds half as many buckets; the cost model picks the cheaper way.
"""

import math

import gmpy2
import numpy as np

# Relative cost of one ``powmod`` with a b-bit exponent, in multiplications.
# gmpy2 uses sliding windows: about b squarings plus b/5 multiplications.
_POWMOD_FACTOR = 1.2
# One modular inversion modulo n**2 costs about seven multiplications.
_INVERT_COST = 7

MAX_EXPONENT_BITS = 62


def signed_digits(K, c):
    """Recode integers into signed base-``2**c`` digits.

    Parameters
    ----------
    K : ndarray of int64
        Exponents, ``|K| < 2**62``.
    c : int
        Window width in bits.

    Returns
    -------
    digits : list of ndarray of int64
        ``digits[t]`` has the shape of ``K`` and values in
        ``[-2**(c-1), 2**(c-1))``; ``K == sum_t digits[t] * 2**(c*t)``.
    """
    k = np.array(K, dtype=np.int64, copy=True)
    mask = (1 << c) - 1
    half = 1 << (c - 1)
    out = []
    while k.any():
        # Two's complement makes ``k & mask`` the low digit even for k < 0,
        # and the arithmetic shift keeps the remaining value exact.
        d = k & mask
        d = np.where(d >= half, d - (1 << c), d)
        out.append(d)
        k = (k - d) >> c
    return out


def _n_windows(bits, c):
    # A signed window of width c carries c - 1 bits of magnitude at the top.
    return max(1, -(-(bits + 1) // c))


def _aggregate(buckets, m):
    """Return ``prod_u buckets[u] ** u`` with 2 multiplications per bucket."""
    running = None
    total = None
    for u in range(len(buckets) - 1, 0, -1):
        b = buckets[u]
        if b is not None:
            running = b if running is None else running * b % m
        if running is not None:
            total = running if total is None else total * running % m
    return total


def batch_invert(values, m):
    """Inverses of ``values`` modulo ``m`` with one inversion (Montgomery's trick).

    Costs one ``invert`` and ``3 (n - 1)`` multiplications instead of ``n``
    inversions.

    Examples
    --------
    >>> import gmpy2
    >>> [int(v) for v in batch_invert([gmpy2.mpz(3), gmpy2.mpz(5)], gmpy2.mpz(7))]
    [5, 3]
    """
    n = len(values)
    if n == 0:
        return []
    prefix = [values[0]]
    for v in values[1:]:
        prefix.append(prefix[-1] * v % m)
    inv = gmpy2.invert(prefix[-1], m)
    out = [None] * n
    for i in range(n - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % m
        inv = inv * values[i] % m
    out[0] = inv
    return out


def _bucket_costs(n_rows, n_bases, nnz, W, c):
    """Multiplications of the bucket method: (with a positive and a negative
    set of buckets per window, with the bases inverted once)."""
    split = n_rows * W * (nnz / max(n_rows, 1) + (1 << (c + 1)) + _INVERT_COST)
    shared = n_rows * W * (nnz / max(n_rows, 1) + (1 << c)) + 3 * n_bases
    return split, shared


def _bucket(bases, K, m, c):
    digits = signed_digits(K, c)
    if not any((d < 0).any() for d in digits):
        return _bucket_shared(bases, K, m, c, digits, None)
    split, shared = _bucket_costs(K.shape[0], K.shape[1], np.count_nonzero(K), len(digits), c)
    if shared < split:
        return _bucket_shared(bases, K, m, c, digits, batch_invert(bases, m))
    return _bucket_split(bases, K, m, c, digits)


def _bucket_split(bases, K, m, c, digits):
    half = 1 << (c - 1)
    out = []
    for row in range(K.shape[0]):
        acc = None
        for t in range(len(digits) - 1, -1, -1):
            if acc is not None:
                acc = gmpy2.powmod(acc, 1 << c, m)
            dig = digits[t][row]
            nz = np.flatnonzero(dig)
            if nz.size == 0:
                continue
            pos = [None] * (half + 1)
            neg = [None] * (half + 1)
            for i, d in zip(nz.tolist(), dig[nz].tolist()):
                if d > 0:
                    b = pos[d]
                    pos[d] = bases[i] if b is None else b * bases[i] % m
                else:
                    b = neg[-d]
                    neg[-d] = bases[i] if b is None else b * bases[i] % m
            tp = _aggregate(pos, m)
            tn = _aggregate(neg, m)
            term = tp
            if tn is not None:
                inv = gmpy2.invert(tn, m)
                term = inv if term is None else term * inv % m
            if term is not None:
                acc = term if acc is None else acc * term % m
        out.append(gmpy2.mpz(1) if acc is None else acc)
    return out


def _bucket_shared(bases, K, m, c, digits, inverses):
    half = 1 << (c - 1)
    out = []
    for row in range(K.shape[0]):
        acc = None
        for t in range(len(digits) - 1, -1, -1):
            if acc is not None:
                acc = gmpy2.powmod(acc, 1 << c, m)
            dig = digits[t][row]
            nz = np.flatnonzero(dig)
            if nz.size == 0:
                continue
            buckets = [None] * (half + 1)
            for i, d in zip(nz.tolist(), dig[nz].tolist()):
                if d > 0:
                    b = bases[i]
                else:
                    b, d = inverses[i], -d
                cur = buckets[d]
                buckets[d] = b if cur is None else cur * b % m
            term = _aggregate(buckets, m)
            if term is not None:
                acc = term if acc is None else acc * term % m
        out.append(gmpy2.mpz(1) if acc is None else acc)
    return out


def _table(bases, K, m, w):
    digits = signed_digits(K, w)
    half = 1 << (w - 1)
    r = K.shape[0]
    acc = np.empty(r, dtype=object)
    acc[:] = [gmpy2.mpz(1)] * r
    for j, b in enumerate(bases):
        col = [d[:, j] for d in digits]
        if not any(c.any() for c in col):
            continue
        g_pos = b
        g_neg = gmpy2.invert(b, m)
        for t, dig in enumerate(col):
            if t:
                g_pos = gmpy2.powmod(g_pos, 1 << w, m)
                g_neg = gmpy2.powmod(g_neg, 1 << w, m)
            if not dig.any():
                continue
            # table[half + u] = g ** u for u in [-half, half]
            table = np.empty(2 * half + 1, dtype=object)
            table[half] = gmpy2.mpz(1)
            p = gmpy2.mpz(1)
            q = gmpy2.mpz(1)
            for u in range(1, half + 1):
                p = p * g_pos % m
                q = q * g_neg % m
                table[half + u] = p
                table[half - u] = q
            nz = np.flatnonzero(dig)
            acc[nz] = acc[nz] * table[dig[nz] + half] % m
    return list(acc)


def _naive(bases, K, m):
    out = []
    for row in K:
        acc = gmpy2.mpz(1)
        for i in np.flatnonzero(row).tolist():
            acc = acc * gmpy2.powmod(bases[i], int(row[i]), m) % m
        out.append(acc)
    return out


def plan(n_rows, n_bases, bits, nnz_fraction=1.0):
    """Choose a strategy and its window for one base vector.

    Parameters
    ----------
    n_rows : int
        Number of exponent rows (outputs).
    n_bases : int
        Number of shared bases.
    bits : int
        Bit length of the largest exponent magnitude.
    nnz_fraction : float, default=1.0
        Fraction of non-zero exponents.

    Returns
    -------
    method : str
        ``"bucket"``, ``"table"`` or ``"naive"``.
    window : int
        Window width in bits (0 for ``"naive"``).
    cost : float
        Estimated number of modular multiplications.
    """
    bits = max(int(bits), 1)
    nnz = max(nnz_fraction, 0.0) * n_rows * n_bases
    best = ("naive", 0, nnz * (_POWMOD_FACTOR * bits + 1))
    for c in range(2, 17):
        W = _n_windows(bits, c)
        # Every window folds its buckets at two multiplications each (a
        # positive and a negative set, or one set over inverted bases), plus
        # the c squarings between windows.
        cost = min(_bucket_costs(n_rows, n_bases, nnz, W, c)) + n_rows * bits
        if cost < best[2]:
            best = ("bucket", c, cost)
    for w in range(2, 13):
        W = _n_windows(bits, w)
        cost = n_bases * (W * (1 << w) + W * w + _INVERT_COST) + nnz * W
        if cost < best[2]:
            best = ("table", w, cost)
    return best


def multiexp(bases, K, m, method=None, window=None):
    """Compute ``prod_i bases[i] ** K[r, i] mod m`` for every row ``r``.

    Parameters
    ----------
    bases : sequence of gmpy2.mpz
        Shared bases, invertible modulo ``m``.
    K : ndarray of int64 of shape (n_rows, n_bases)
        Signed exponents with ``|K| < 2**62``.
    m : gmpy2.mpz
        Modulus.
    method : {"bucket", "table", "naive"}, default=None
        Strategy; chosen by :func:`plan` when None.
    window : int, default=None
        Window width for ``"bucket"`` and ``"table"``.

    Returns
    -------
    out : list of gmpy2.mpz
        One product per row.

    Examples
    --------
    >>> import gmpy2, numpy as np
    >>> m = gmpy2.mpz(1009 * 1013)
    >>> K = np.array([[3, -2, 0], [1, 1, 1]], dtype=np.int64)
    >>> out = multiexp([gmpy2.mpz(5), gmpy2.mpz(7), gmpy2.mpz(11)], K, m)
    >>> [int(v) for v in out] == [5**3 * pow(7, -2, int(m)) % int(m), 5 * 7 * 11]
    True
    """
    K = np.asarray(K, dtype=np.int64)
    if K.ndim != 2 or K.shape[1] != len(bases):
        raise ValueError(f"exponent matrix of shape {K.shape} does not match {len(bases)} bases")
    if K.shape[0] == 0:
        return []
    absmax = int(np.abs(K).max()) if K.size else 0
    if absmax >= 1 << MAX_EXPONENT_BITS:
        raise ValueError(f"exponents must be below 2**{MAX_EXPONENT_BITS} in magnitude")
    if absmax == 0:
        return [gmpy2.mpz(1)] * K.shape[0]
    if method is None:
        nnz = np.count_nonzero(K) / K.size
        method, window, _ = plan(K.shape[0], K.shape[1], absmax.bit_length(), nnz)
    if method == "bucket":
        return _bucket(bases, K, m, window)
    if method == "table":
        return _table(bases, K, m, window)
    if method == "naive":
        return _naive(bases, K, m)
    raise ValueError(f"unknown method {method!r}")


class FixedBaseTable:
    """Window table for fast powers of one fixed base.

    Stores ``base ** (u * 2**(w * t))`` for every ``w``-bit window ``t`` of an
    ``exponent_bits``-bit exponent, so that ``base ** e`` costs
    ``exponent_bits / w`` multiplications instead of ~1.2 * ``exponent_bits``.
    With ``w = 8`` each digit is one random byte, which lets callers draw
    exponents directly as bytes from the operating system's CSPRNG.

    Parameters
    ----------
    base : gmpy2.mpz
        The fixed base.
    modulus : gmpy2.mpz
        The modulus.
    exponent_bits : int
        Maximum exponent length; rounded up to a multiple of ``window``.
    window : int, default=8
        Window width in bits.

    Examples
    --------
    >>> import gmpy2
    >>> T = FixedBaseTable(gmpy2.mpz(3), gmpy2.mpz(1000003), 24)
    >>> int(T.pow_digits([[0x01, 0x02, 0x03]])[0]) == pow(3, 0x030201, 1000003)
    True
    """

    def __init__(self, base, modulus, exponent_bits, window=8):
        self.base = gmpy2.mpz(base)
        self.modulus = gmpy2.mpz(modulus)
        self.window = int(window)
        self.n_windows = math.ceil(exponent_bits / self.window)
        self.exponent_bits = self.n_windows * self.window
        size = 1 << self.window
        m = self.modulus
        rows = []
        g = self.base
        for t in range(self.n_windows):
            if t:
                # g <- g ** (2**w): the last entry times g again.
                g = rows[-1][size - 1] * g % m
            row = np.empty(size, dtype=object)
            row[0] = gmpy2.mpz(1)
            p = gmpy2.mpz(1)
            for u in range(1, size):
                p = p * g % m
                row[u] = p
            rows.append(row)
        self._rows = rows

    def pow_digits(self, digits):
        """Compute ``base ** e`` for exponents given as little-endian digits.

        Parameters
        ----------
        digits : array-like of int of shape (n, n_windows)
            Base-``2**window`` digits, least significant first.

        Returns
        -------
        out : ndarray of object (gmpy2.mpz) of shape (n,)
        """
        digits = np.asarray(digits)
        n = digits.shape[0]
        acc = np.empty(n, dtype=object)
        acc[:] = [gmpy2.mpz(1)] * n
        m = self.modulus
        for t in range(digits.shape[1]):
            acc = acc * self._rows[t][digits[:, t]] % m
        return acc
