"""Paillier engine: phe-compatible keys, fixed-point encrypted arrays, fast arithmetic.

Keys are :mod:`phe` key objects, so ciphertexts interoperate with phe
(:meth:`EncryptedArray.to_phe`, :meth:`EncryptedArray.from_phe`). The heavy
arithmetic is vectorised over gmpy2 integers, and large jobs are chunked
through :class:`sklearn.utils.parallel.Parallel` so that joblib's backend
(loky by default, dask or ray on a cluster) decides where they run.

Encoding (precision and range)
------------------------------
An :class:`EncryptedArray` holds one ciphertext per element and a single
``scale_bits`` ``s`` for the whole array: element ``i`` encrypts the integer
``m_i`` with value ``m_i / 2**s``. ``m`` is signed: residues up to ``n // 3``
are positive, residues from ``n - n // 3`` on are negative, and anything in the
middle third means the value wrapped around; decoding raises
:class:`OverflowError` there instead of returning garbage (the same
convention as phe).

* Encryption uses ``s = 64`` fractional bits by default
  (``DEFAULT_PRECISION_BITS``): the rounding error is at most ``2**-65``, every
  float64 with ``|x| >= 2**-12`` is encoded exactly (its 53-bit mantissa fits),
  and the range ``|x| < n / 3 / 2**64`` (about ``2**1980`` at 2048 bits) holds
  every finite float64 with ample room for sums and products. A large ``s``
  costs nothing: encryption does not depend on the size of ``m``, and the
  multi-exponentiation cost depends only on the *plaintext* factors.
* A plaintext multiplier (``enc * a``, ``X @ enc``) is rounded to
  ``DEFAULT_PLAIN_PRECISION_BITS = 32`` significant bits relative to the
  largest magnitude of the array (of each output row for a matrix product):
  relative error at most ``2**-33`` (1.2e-10) of that maximum. The cost of
  ``X.T @ enc`` is proportional to these bits; 32 leaves two orders of
  magnitude of margin on the 1e-8 agreement we want between encrypted and
  plaintext linear regression, where 53 would cost 1.6 times more. The
  product's scale is ``s + p`` where ``p`` is the multiplier's scale.
* Adding arrays of different scales lifts the smaller one (one small powmod
  per element); adding a plaintext encodes it at the array's scale, for free.

The scale of a product depends on the binary order of magnitude of the
plaintext multiplier, which is public metadata of the result. Use
:meth:`EncryptedArray.rescale` to a scale fixed by the protocol before sending
a result to a party that must not learn that.

Encryption and the obfuscator
-----------------------------
``c = (1 + n)**m * rho mod n**2`` with ``g = n + 1`` (so ``g**m = 1 + m n``
costs one multiplication). The randomiser ``rho`` dominates the cost:

* ``obfuscator="djn"`` (default) follows Damgard, Jurik and Nielsen, "A
  generalization of Paillier's public-key system with applications to
  electronic voting", Int. J. Inf. Secur. 9(6), 2010: with ``h = -x**2 mod n``
  for a random ``x`` and ``h_s = h**n mod n**2``, ``rho = h_s**r`` with ``r``
  uniform of ``ceil(k/2)`` bits, ``k`` the modulus length (1024 bits for
  2048-bit keys). Semantic security rests on the DCR assumption (as for
  Paillier) plus the assumption made there that a ``k/2``-bit exponent of
  ``h_s`` is indistinguishable from a full-length one. The best generic
  attack on such short exponents costs about ``2**(k/4)`` group operations,
  far above the ~112-bit strength of the 2048-bit modulus itself. Because
  ``h_s`` is fixed, ``h_s**r`` comes from a fixed-base window table, cached
  per public key in each process: one multiplication per ``w``-bit window of
  ``r``. Each process starts with 8-bit windows (128 multiplications at 2048
  bits; a 17 MB table built in ~0.16 s) and, once it has computed enough
  randomisers for the key that a bigger table has paid for its build (about
  4,200 at 2048 bits), switches to 10-bit windows (103 multiplications,
  56 MB, ~0.5 s). The exponent is then uniform over ``103 * 10 = 1030``
  bits: whole windows, never fewer than ``ceil(k/2)`` bits. Each process
  draws its own ``x`` (``h_s`` is public in DJN, so nothing is shared or
  secret about it).
* :class:`ObfuscatorPool` computes these randomisers ahead of use (offline,
  or in the background while a party waits for a message), so that
  encrypting a value at use time is one multiplication. Every pooled
  randomiser is used exactly once.
* ``obfuscator="full"`` is textbook Paillier: ``rho = r**n`` for a uniform
  ``r`` in ``Z*_n``; about 14 times slower.

All randomness comes from :mod:`secrets` (the operating system's CSPRNG),
never from a seeded generator.

Decryption uses the CRT over ``p**2`` and ``q**2``.

Parallelism
-----------
Every bulk operation accepts ``n_jobs``. It only dispatches when the estimated
work exceeds ``PARALLEL_MIN_SECONDS`` (loky workers take a second to start and
each then builds its own obfuscation table), and then in one chunk per worker.
Parallel decryption ships ``p`` and ``q`` to the joblib workers: only use a
backend whose workers you trust with the private key.

Examples
--------
>>> import os; os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
'1'
>>> import numpy as np
>>> pk, sk = generate_keypair(512)
>>> enc = EncryptedArray.encrypt(pk, [1.5, -2.0, 0.25])
>>> X = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, -4.0]])
>>> (X @ enc).decrypt(sk)
array([-1.75, -0.25])
>>> (2 * enc - 1).sum().decrypt(sk)
array(-3.5)
"""

import contextlib
import math
import os
import secrets
import threading
from collections import OrderedDict, deque

import gmpy2
import numpy as np
from joblib import effective_n_jobs
from phe import paillier as _phe
from sklearn.utils.parallel import Parallel, delayed

from .._multiexp import MAX_EXPONENT_BITS, FixedBaseTable, multiexp, plan

__all__ = [
    "DEFAULT_KEY_BITS",
    "DEFAULT_PRECISION_BITS",
    "DEFAULT_PLAIN_PRECISION_BITS",
    "DEFAULT_SIGMA_BITS",
    "check_key_size",
    "generate_keypair",
    "public_key_to_wire",
    "public_key_from_wire",
    "EncryptedArray",
    "ObfuscatorPool",
    "decode_masked",
    "PackedCiphertexts",
    "pack_encrypt",
]

ALLOW_INSECURE_ENV = "SKFED_ALLOW_INSECURE_KEYS"
DEFAULT_KEY_BITS = 2048
# Even with the opt-in, fixed-point values and statistical masks need room.
_ABSOLUTE_MIN_KEY_BITS = 256
DEFAULT_PRECISION_BITS = 64
DEFAULT_PLAIN_PRECISION_BITS = 32
DEFAULT_SIGMA_BITS = 80
_MIN_SIGMA_BITS = 40
# Below this estimated wall time a job runs in the calling process: handing
# chunks to loky workers costs tens of milliseconds even when they are warm.
PARALLEL_MIN_SECONDS = 0.15
# Fixed-base table windows for the DJN randomiser (see the module docstring
# and docs/crypto.rst for the measurements behind them). Each process starts
# with the small table and switches to the large one once it has computed
# enough randomisers for the key that the build has paid for itself.
DJN_WINDOW_SMALL = 8
DJN_WINDOW_LARGE = 10

_WIRE_SCHEME = "paillier"


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Per-process key context (cached; rebuilt independently in each worker)
# --------------------------------------------------------------------------


class _KeyContext:
    def __init__(self, n):
        self.n = gmpy2.mpz(n)
        self.nsquare = self.n * self.n
        self.max_int = self.n // 3
        self.n_bits = int(self.n.bit_length())
        self.nsq_bytes = (int(self.nsquare.bit_length()) + 7) // 8
        # Seconds per multiplication modulo n**2, for scheduling decisions only.
        self.mul_seconds = 5e-6 * (self.n_bits / 2048) ** 1.6
        self.exponent_bits = -(-self.n_bits // 2)
        self._hs = None
        self._djn = None
        self._upgrading = False
        self._n_obfuscations = 0
        self._lock = threading.Lock()

    def _base(self):
        # Called under self._lock.
        if self._hs is None:
            n = self.n
            while True:
                x = gmpy2.mpz(secrets.randbelow(int(n) - 2) + 2)
                if gmpy2.gcd(x, n) == 1:
                    break
            h = (-x * x) % n
            self._hs = gmpy2.powmod(h, n, self.nsquare)
        return self._hs

    def upgrade_threshold(self):
        """Obfuscations after which the large-window table has paid for itself.

        Ski rental: build the large table once the multiplications it would
        have saved equal the multiplications it costs to build.
        """
        small = -(-self.exponent_bits // DJN_WINDOW_SMALL)
        large = -(-self.exponent_bits // DJN_WINDOW_LARGE)
        return large * ((1 << DJN_WINDOW_LARGE) - 1) / max(small - large, 1)

    def djn_table(self, upcoming=0):
        """The fixed-base table for ``h_s``, upgraded to larger windows once it pays.

        ``upcoming`` obfuscations are about to be computed with it; they count
        towards the upgrade, so a single large request builds the large table
        first.
        """
        with self._lock:
            hs = self._base()
            self._n_obfuscations += upcoming
            large = self._n_obfuscations >= self.upgrade_threshold()
            if self._djn is None:
                window = DJN_WINDOW_LARGE if large else DJN_WINDOW_SMALL
                self._djn = FixedBaseTable(hs, self.nsquare, self.exponent_bits, window=window)
                return self._djn
            if not large or self._upgrading or self._djn.window >= DJN_WINDOW_LARGE:
                return self._djn
            self._upgrading = True
        # Build outside the lock: meanwhile other threads use the small table.
        try:
            table = FixedBaseTable(hs, self.nsquare, self.exponent_bits, window=DJN_WINDOW_LARGE)
        finally:
            with self._lock:
                self._upgrading = False
        with self._lock:
            self._djn = table
        return table

    def obfuscators(self, count, mode="djn"):
        """``count`` fresh randomisers ``rho`` (object array of mpz)."""
        if count == 0:
            return np.empty(0, dtype=object)
        if mode == "djn":
            table = self.djn_table(upcoming=count)
            return table.pow_digits(_random_digits(count, table.n_windows, table.window))
        if mode == "full":
            n, nsq = self.n, self.nsquare
            out = np.empty(count, dtype=object)
            for i in range(count):
                while True:
                    r = gmpy2.mpz(secrets.randbelow(int(n) - 1) + 1)
                    if gmpy2.gcd(r, n) == 1:
                        break
                out[i] = gmpy2.powmod(r, n, nsq)
            return out
        raise ValueError(f"obfuscator must be 'djn' or 'full', got {mode!r}")

    def obfuscation_seconds(self, mode):
        if mode == "full":
            return 1.25 * self.n_bits * self.mul_seconds
        table = self._djn
        window = DJN_WINDOW_SMALL if table is None else table.window
        return (-(-self.exponent_bits // window) + 2) * self.mul_seconds


class _OwnerKeyContext(_KeyContext):
    """The key owner's context: randomisers computed modulo ``p**2`` and ``q**2``.

    ``h_s**r mod n**2`` by the Chinese remainder theorem: two fixed-base
    tables over half-size moduli, the same exponent ``r`` for both, then one
    recombination. Same randomisers (same distribution) as the public
    computation, ~1.8x faster at 2048 bits; only a party that holds the
    private key can use it, so it serves encryption under one's own key.
    """

    def __init__(self, n, p, q):
        super().__init__(n)
        self.p2, self.q2 = gmpy2.mpz(p) ** 2, gmpy2.mpz(q) ** 2
        if self.p2 * self.q2 != self.nsquare:
            raise ValueError("p * q does not match the public key")
        self._p2_inv = gmpy2.invert(self.p2, self.q2)
        self._crt = None

    def worker_factors(self):
        return int(gmpy2.isqrt(self.p2)), int(gmpy2.isqrt(self.q2))

    def _crt_tables(self, upcoming):
        # The public table's upgrade rule (ski rental) decides the window; one
        # table per prime power, built outside the lock like the public one.
        with self._lock:
            self._n_obfuscations += upcoming
            large = self._n_obfuscations >= self.upgrade_threshold()
            window = DJN_WINDOW_LARGE if large else DJN_WINDOW_SMALL
            if self._crt is not None and self._crt[0].window >= window:
                return self._crt
            hs = self._base()
        tables = tuple(FixedBaseTable(hs % m, m, self.exponent_bits, window=window)
                       for m in (self.p2, self.q2))
        with self._lock:
            if self._crt is None or self._crt[0].window < window:
                self._crt = tables
            return self._crt

    def obfuscators(self, count, mode="djn"):
        if mode != "djn" or count == 0:
            return super().obfuscators(count, mode)
        tp, tq = self._crt_tables(count)
        digits = _random_digits(count, tp.n_windows, tp.window)
        xp, xq = tp.pow_digits(digits), tq.pow_digits(digits)
        return _obj(xp + self.p2 * ((xq - xp) * self._p2_inv % self.q2))

    def obfuscation_seconds(self, mode):
        return 0.55 * super().obfuscation_seconds(mode)


def _random_digits(count, n_windows, window):
    """Uniform exponents as little-endian base-``2**window`` digits, from :mod:`secrets`.

    Every digit is ``window`` independent uniform bits, so the exponent is
    uniform over ``n_windows * window`` bits.
    """
    if window == 8:
        raw = secrets.token_bytes(count * n_windows)
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, n_windows)
    bits = n_windows * window
    nbytes = -(-bits // 8)
    raw = np.frombuffer(secrets.token_bytes(count * nbytes), dtype=np.uint8)
    b = np.unpackbits(raw.reshape(count, nbytes), axis=1, bitorder="little")[:, :bits]
    weights = np.left_shift(1, np.arange(window, dtype=np.int64))
    return b.reshape(count, n_windows, window).astype(np.int64) @ weights


_CONTEXTS = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_MAX_CONTEXTS = 8


def _context(n):
    n = int(n)
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(n)
        if ctx is None:
            ctx = _KeyContext(n)
            _CONTEXTS[n] = ctx
            while len(_CONTEXTS) > _MAX_CONTEXTS:
                _CONTEXTS.popitem(last=False)
        else:
            _CONTEXTS.move_to_end(n)
        return ctx


def _owner_context(private_key):
    """The cached :class:`_OwnerKeyContext` of a private key (this process only)."""
    n = int(private_key.public_key.n)
    with _CONTEXTS_LOCK:
        ctx = _OWNER_CONTEXTS.get(n)
        if ctx is None:
            ctx = _OwnerKeyContext(n, private_key.p, private_key.q)
            _OWNER_CONTEXTS[n] = ctx
            while len(_OWNER_CONTEXTS) > _MAX_CONTEXTS:
                _OWNER_CONTEXTS.popitem(last=False)
        else:
            _OWNER_CONTEXTS.move_to_end(n)
        return ctx


_OWNER_CONTEXTS = OrderedDict()


# --------------------------------------------------------------------------
# Parallel helpers
# --------------------------------------------------------------------------


def _n_chunks(n_items, seconds, n_jobs):
    """How many chunks to cut a job of ``seconds`` estimated work into."""
    if n_items <= 1 or seconds < PARALLEL_MIN_SECONDS:
        return 1
    workers = effective_n_jobs(n_jobs)
    return max(1, min(workers, n_items))


def _split(n_items, n_chunks):
    bounds = np.linspace(0, n_items, n_chunks + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run(func, arg_lists, n_jobs):
    if len(arg_lists) == 1:
        return [func(*arg_lists[0])]
    return Parallel(n_jobs=n_jobs)(delayed(func)(*args) for args in arg_lists)


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


_powmod = np.frompyfunc(gmpy2.powmod, 3, 1)
_invert = np.frompyfunc(gmpy2.invert, 2, 1)


# Worker functions: module level so that loky can import them; each takes
# only integers and arrays, and rebuilds its key context locally. Each lets
# gmpy2 release the GIL (a per-thread setting), so that joblib's threading
# backend also runs the big-integer arithmetic in parallel.


def _release_gil():
    gmpy2.get_context().allow_release_gil = True


def _encrypt_worker(plaintexts, n, mode):
    _release_gil()
    ctx = _context(n)
    rho = ctx.obfuscators(len(plaintexts), mode)
    return (plaintexts * ctx.n + 1) * rho % ctx.nsquare


def _obfuscate_worker(ciphertexts, n, mode):
    _release_gil()
    ctx = _context(n)
    rho = ctx.obfuscators(len(ciphertexts), mode)
    return ciphertexts * rho % ctx.nsquare


def _powmod_worker(bases, exponents, modulus):
    _release_gil()
    return _powmod(bases, exponents, modulus)


def _invert_worker(values, modulus):
    return _invert(values, modulus)


def _decrypt_worker(ciphertexts, p, q):
    _release_gil()
    p, q = gmpy2.mpz(p), gmpy2.mpz(q)
    p2, q2 = p * p, q * q
    # h_p = L_p((n+1)**(p-1) mod p**2)**-1 mod p (phe's h_function), in closed
    # form: (1+n)**(p-1) = 1 + (p-1) n mod p**2, so L_p(..) = (p-1) q = -q mod p.
    hp = gmpy2.invert(-q % p, p)
    hq = gmpy2.invert(-p % q, q)
    p_inv = gmpy2.invert(p, q)
    mp = (_powmod(ciphertexts % p2, p - 1, p2) - 1) // p * hp % p
    mq = (_powmod(ciphertexts % q2, q - 1, q2) - 1) // q * hq % q
    return mp + (mq - mp) * p_inv % q * p


def _to_blob(values, width):
    # One bytes object pickles as a memcpy; a list of mpz pickles object by object.
    return b"".join(int(v).to_bytes(width, "big") for v in values)


def _from_blob(blob, width):
    step = range(0, len(blob), width)
    return [gmpy2.mpz(int.from_bytes(blob[i : i + width], "big")) for i in step]


def _multiexp_worker(base_vectors, K, modulus, method, window, width=None):
    _release_gil()
    if width is not None:
        base_vectors = [_from_blob(b, width) for b in base_vectors]
    return [multiexp(b, K, modulus, method, window) for b in base_vectors]


def _elementwise(func, n_jobs, seconds_per_item, flat_arrays, *extra):
    """Apply ``func(*chunks, *extra)`` to aligned 1-D object arrays, in chunks."""
    size = len(flat_arrays[0])
    k = _n_chunks(size, size * seconds_per_item, n_jobs)
    if k == 1:
        return _obj(func(*flat_arrays, *extra))
    parts = _run(func, [[a[s] for a in flat_arrays] + list(extra) for s in _split(size, k)], n_jobs)
    return np.concatenate([_obj(p).ravel() for p in parts])


def _multiexp_parallel(ctx, base_vectors, K, n_jobs):
    """``out[r, l] = prod_i base_vectors[l][i] ** K[r, i]`` as an object array."""
    L = len(base_vectors)
    r, N = K.shape
    out = np.empty((r, L), dtype=object)
    if r == 0 or L == 0:
        return out
    absmax = int(np.abs(K).max()) if K.size else 0
    if absmax == 0 or N == 0:
        out[...] = gmpy2.mpz(1)
        return out
    bits = absmax.bit_length()
    nnz = np.count_nonzero(K) / K.size
    method, window, cost = plan(r, N, bits, nnz)
    k = _n_chunks(max(L, r, N), L * cost * ctx.mul_seconds, n_jobs)
    m = ctx.nsquare
    if k == 1:
        res = _multiexp_worker(base_vectors, K, m, method, window)
        for l_idx, col in enumerate(res):
            out[:, l_idx] = col
        return out
    w = ctx.nsq_bytes
    if L >= k:
        # Independent base vectors: no work is duplicated.
        parts = _run(
            _multiexp_worker,
            [
                ([_to_blob(b, w) for b in base_vectors[s]], K, m, method, window, w)
                for s in _split(L, k)
            ],
            n_jobs,
        )
        cols = [col for part in parts for col in part]
        for l_idx, col in enumerate(cols):
            out[:, l_idx] = col
        return out
    if method != "table" and r >= k:
        # Buckets are per row, so splitting rows duplicates nothing.
        slices = _split(r, k)
        blobs = [_to_blob(b, w) for b in base_vectors]
        parts = _run(
            _multiexp_worker, [(blobs, K[s], m, method, window, w) for s in slices], n_jobs
        )
        for s, part in zip(slices, parts):
            for l_idx, col in enumerate(part):
                out[s, l_idx] = col
        return out
    # Few rows and few base vectors: split the bases themselves and multiply
    # the partial products.
    slices = _split(N, k)
    tasks = []
    for s in slices:
        sub = K[:, s]
        sub_bits = max(int(np.abs(sub).max()).bit_length(), 1)
        meth, win, _ = plan(r, sub.shape[1], sub_bits, np.count_nonzero(sub) / max(sub.size, 1))
        tasks.append(([_to_blob(b[s], w) for b in base_vectors], sub, m, meth, win, w))
    parts = _run(_multiexp_worker, tasks, n_jobs)
    out[...] = gmpy2.mpz(1)
    for part in parts:
        for l_idx, col in enumerate(part):
            out[:, l_idx] = out[:, l_idx] * _obj_from_list(col) % m
    return out


# --------------------------------------------------------------------------
# Obfuscator pool: randomisers computed ahead of use
# --------------------------------------------------------------------------


def _obfuscator_worker(count, n, width, factors=None):
    _release_gil()
    # ``factors``: the key owner's own workers (same machine) use CRT.
    ctx = _context(n) if factors is None else _owner_context(_Factors(n, *factors))
    return _to_blob(ctx.obfuscators(count).tolist(), width)


class _Factors:
    """The parts of a private key :func:`_owner_context` reads."""

    def __init__(self, n, p, q):
        self.public_key = _phe.PaillierPublicKey(int(n))
        self.p, self.q = p, q


def _generate_obfuscators(ctx, count, n_jobs, force_parallel=False):
    """``count`` fresh DJN randomisers as a list, chunked over joblib workers."""
    if count <= 0:
        return []
    # As in the workers: without it, role threads computing randomisers at
    # the same time convoy on the interpreter lock (~30% slower measured).
    _release_gil()
    if force_parallel:
        k = max(1, min(effective_n_jobs(n_jobs), count))
    else:
        k = _n_chunks(count, count * ctx.obfuscation_seconds("djn"), n_jobs)
    if k == 1:
        return ctx.obfuscators(count).tolist()
    w = ctx.nsq_bytes
    sizes = [s.stop - s.start for s in _split(count, k)]
    factors = ctx.worker_factors() if isinstance(ctx, _OwnerKeyContext) else None
    blobs = _run(_obfuscator_worker, [(c, int(ctx.n), w, factors) for c in sizes], n_jobs)
    return [x for blob in blobs for x in _from_blob(blob, w)]


class ObfuscatorPool:
    """A stock of DJN randomisers ``h_s**r`` precomputed for one public key.

    A randomiser does not depend on the message, so it can be computed
    before the message exists: with a stocked pool, encryption at use time
    is one multiplication, ``c = (1 + m n) * rho mod n**2``, instead of a
    fixed-base exponentiation (about 100 multiplications at 2048 bits). Pass
    the pool to :meth:`EncryptedArray.encrypt`, :meth:`EncryptedArray.obfuscate`
    or :meth:`EncryptedArray.add_random_mask`.

    **Each randomiser is used exactly once**: :meth:`take` removes what it
    returns from the stock under a lock, so no two ciphertexts (from any
    thread) ever share one. Reusing a randomiser would let anyone holding
    the two ciphertexts divide them and learn ``g**(m1 - m2)``, i.e. the
    difference of the plaintexts. Randomisers come from the same generator
    as without a pool (exponents from :mod:`secrets`, at least ``ceil(k/2)``
    bits), so a pooled ciphertext is distributed exactly like an unpooled
    one.

    When the stock runs short, :meth:`take` computes the missing randomisers
    on the spot (through joblib when large), so a pool never changes results,
    only when the work happens. The stock is refilled up to ``target`` (by
    default the largest single request seen so far):

    * :meth:`fill`: now, blocking (an offline phase before training);
    * :meth:`idle`: in a background thread *while* the caller waits, e.g.
      ``with pool.idle(): msg = ctx.recv(...)``. The refill pauses when the
      block exits (after the step in progress), so it uses time in which the
      party would have done nothing and never delays the party's own next
      step by more than one step (64 randomisers in-process, 256 per joblib
      worker);
    * :meth:`start_refill`: in the background until the target is reached.

    Background steps run on the joblib workers when ``n_jobs`` resolves to
    more than one, and otherwise in a thread of the calling process; pass
    ``background="workers"`` when other busy threads share this process (for
    example every party's role under :class:`~skfed.runtime.LocalRuntime`):
    an in-process refill would then compete with them for the interpreter
    lock instead of using idle time.

    The stock lives in this process's memory (about 600 bytes per randomiser
    at 2048 bits) and is never serialised.

    Parameters
    ----------
    public_key : phe.paillier.PaillierPublicKey
    n_jobs : int, default=None
        joblib workers for computing randomisers (None: joblib's default).
    target : int, default=0
        Stock that background refills aim for; 0 means "the largest single
        request seen so far" (see :meth:`reserve`).
    background : bool or "workers", default=True
        Whether :meth:`idle` refills in the background; ``"workers"`` only
        when the refill can run on joblib workers; False: :meth:`idle` does
        nothing.
    private_key : phe.paillier.PaillierPrivateKey, default=None
        Pass the key pair's private key when the pool serves encryption
        under one's *own* key: randomisers are then computed modulo ``p**2``
        and ``q**2`` (~1.8x faster at 2048 bits, same distribution). The
        factors go to the joblib workers that compute randomisers (and stay
        cached there, as in each worker's per-key tables): use it only with a
        backend you trust with the key, as for parallel decryption.

    Attributes
    ----------
    n_generated : int
        Randomisers computed for the stock so far.
    n_taken : int
        Randomisers handed out so far (from the stock or computed on the spot).
    n_missed : int
        Of those, how many were computed on the spot because the stock was short.

    Examples
    --------
    >>> import os; os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
    '1'
    >>> pk, sk = generate_keypair(512)
    >>> with ObfuscatorPool(pk) as pool:
    ...     pool.fill(4)
    ...     enc = EncryptedArray.encrypt(pk, [1.5, -2.0, 0.25], pool=pool)
    ...     len(pool), pool.n_missed
    (1, 0)
    >>> enc.decrypt(sk)
    array([ 1.5 , -2.  ,  0.25])
    """

    # Randomisers per background step: small enough that close() and a
    # competing foreground thread wait little, large enough to amortise
    # dispatch to joblib workers (per worker).
    _LOCAL_CHUNK = 64
    _WORKER_CHUNK = 256

    def __init__(self, public_key, *, n_jobs=None, target=0, background=True,
                 private_key=None):
        self.public_key = public_key
        if private_key is not None and int(private_key.public_key.n) != int(public_key.n):
            raise ValueError("private key does not match the pool's public key")
        self._ctx = _context(public_key.n) if private_key is None else \
            _owner_context(private_key)
        check_key_size(self._ctx.n_bits)
        self.n_jobs = n_jobs
        if background not in (True, False, "workers"):
            raise ValueError(f"background must be True, False or 'workers', got {background!r}")
        self.background = background
        self._target = _check_int(target, "target")
        self._auto_target = self._target == 0
        self._stock = deque()
        self._lock = threading.Lock()
        self._thread = None
        self._closed = False
        self._error = None
        self._idle = 0
        self._eager = False
        self.n_generated = 0
        self.n_taken = 0
        self.n_missed = 0

    def __len__(self):
        with self._lock:
            return len(self._stock)

    def __repr__(self):
        return (
            f"ObfuscatorPool(key_bits={self._ctx.n_bits}, stock={len(self)}, "
            f"target={self._target}, n_taken={self.n_taken}, n_missed={self.n_missed})"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def target(self):
        return self._target

    def _check_open(self):
        if self._closed:
            raise ValueError("the obfuscator pool is closed")
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError("background refill of the obfuscator pool failed") from err

    def reserve(self, count):
        """Set the refill target to ``count`` randomisers.

        Parameters
        ----------
        count : int
            New refill target; the pool stops adapting it to the requests it sees.
        """
        self._check_open()
        count = _check_int(count, "count")
        if count < 0:
            raise ValueError("count must be non-negative")
        with self._lock:
            self._target, self._auto_target = count, False

    @contextlib.contextmanager
    def idle(self):
        """Refill in the background while the ``with`` block runs (e.g. a blocking receive).

        Examples
        --------
        >>> import os; os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
        '1'
        >>> pk, _ = generate_keypair(512)
        >>> pool = ObfuscatorPool(pk, target=8)
        >>> with pool.idle():
        ...     pool.wait()            # stands for waiting on a message
        >>> len(pool)
        8
        """
        self._check_open()
        if not self.background or (
            self.background == "workers" and effective_n_jobs(self.n_jobs) <= 1
        ):
            yield self
            return
        with self._lock:
            self._idle += 1
        try:
            self._start_refill()
            yield self
        finally:
            with self._lock:
                self._idle -= 1

    def start_refill(self):
        """Refill to the target in the background, without waiting for idle time."""
        self._check_open()
        with self._lock:
            self._eager = True
        self._start_refill()

    def fill(self, count=None):
        """Compute randomisers now (blocking) until the stock holds ``count``.

        Parameters
        ----------
        count : int, default=None
            Stock to reach; the refill target when None.
        """
        self._check_open()
        count = self._target if count is None else _check_int(count, "count")
        deficit = count - len(self)
        if deficit > 0:
            new = _generate_obfuscators(self._ctx, deficit, self.n_jobs)
            with self._lock:
                self._stock.extend(new)
                self.n_generated += len(new)

    def take(self, count):
        """Remove ``count`` randomisers from the stock and return them.

        Missing ones are computed on the spot. Nothing returned here is ever
        returned again.

        Returns
        -------
        rho : ndarray of object (gmpy2.mpz), shape (count,)
        """
        self._check_open()
        count = _check_int(count, "count")
        if count < 0:
            raise ValueError("count must be non-negative")
        with self._lock:
            k = min(count, len(self._stock))
            got = [self._stock.popleft() for _ in range(k)]
            self.n_taken += count
            self.n_missed += count - k
            if self._auto_target and count > self._target:
                self._target = count
        if count > k:
            got.extend(_generate_obfuscators(self._ctx, count - k, self.n_jobs))
        return _obj_from_list(got)

    def wait(self):
        """Block until the background refill in progress (if any) stops."""
        thread = self._thread
        if thread is not None:
            thread.join()
        if self._error is not None:
            self._check_open()

    def close(self):
        """Stop refilling (after the step in progress) and drop the stock."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._stock.clear()

    def _start_refill(self):
        with self._lock:
            if self._closed or self._thread is not None or not self._wanted():
                return
            self._thread = threading.Thread(
                target=self._refill, name="skfed-obfuscator-pool", daemon=True
            )
            thread = self._thread
        thread.start()

    def _wanted(self):
        # Called under self._lock.
        return (
            not self._closed
            and len(self._stock) < self._target
            and (self._idle > 0 or self._eager)
        )

    def _refill(self):
        _release_gil()
        parallel = effective_n_jobs(self.n_jobs) > 1
        try:
            while True:
                with self._lock:
                    need = self._target - len(self._stock)
                    if not self._wanted():
                        self._thread = None
                        self._eager = False
                        return
                if parallel:
                    workers = effective_n_jobs(self.n_jobs)
                    step = min(need, workers * self._WORKER_CHUNK)
                    new = _generate_obfuscators(self._ctx, step, self.n_jobs,
                                                force_parallel=step >= workers)
                else:
                    new = self._ctx.obfuscators(min(need, self._LOCAL_CHUNK)).tolist()
                with self._lock:
                    if self._closed:
                        self._thread = None
                        return
                    self._stock.extend(new)
                    self.n_generated += len(new)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the next take()
            with self._lock:
                self._error = exc
                self._thread = None


def _check_pool(pool, ctx, obfuscator):
    if not isinstance(pool, ObfuscatorPool):
        raise TypeError(f"pool must be an ObfuscatorPool, got {type(pool).__name__}")
    if int(pool.public_key.n) != int(ctx.n):
        raise ValueError("the obfuscator pool belongs to a different public key")
    if obfuscator != "djn":
        raise ValueError("an obfuscator pool holds DJN randomisers; use obfuscator='djn'")


# --------------------------------------------------------------------------
# Fixed-point encoding
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# EncryptedArray
# --------------------------------------------------------------------------


def _check_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


class EncryptedArray:
    """An n-dimensional array of Paillier ciphertexts sharing one fixed-point scale.

    Element ``i`` encrypts the signed integer ``m_i`` and stands for
    ``m_i / 2**scale_bits``. Build one with :meth:`encrypt` or
    :meth:`from_wire`; the constructor wraps existing ciphertexts without
    checking them.

    Parameters
    ----------
    public_key : phe.paillier.PaillierPublicKey
    ciphertexts : ndarray of object (gmpy2.mpz)
        Ciphertexts in ``Z*_{n**2}``, any shape.
    scale_bits : int
        Fixed-point scale of every element.
    n_jobs : int, default=None
        Default number of joblib workers for operations on this array and
        the arrays derived from it.

    Attributes
    ----------
    shape, ndim, size : as for numpy arrays.
    scale_bits : int
    exponent : int
        ``-scale_bits``: value = ``m * 2**exponent``.

    Notes
    -----
    Arithmetic with plaintexts does not re-randomise ciphertexts; call
    :meth:`obfuscate` before sending a ciphertext derived from another
    party's ciphertexts back to anyone who holds those.
    """

    # Make ``ndarray @ enc`` and ``ndarray + enc`` defer to our reflected ops.
    __array_ufunc__ = None

    def __init__(self, public_key, ciphertexts, scale_bits, *, n_jobs=None):
        self.public_key = public_key
        self._ctx = _context(public_key.n)
        self._c = _obj(np.asarray(ciphertexts, dtype=object))
        self.scale_bits = int(scale_bits)
        self.n_jobs = n_jobs

    # -- construction ---------------------------------------------------

    @classmethod
    def encrypt(
        cls, public_key, values, *, precision_bits=None, n_jobs=None, obfuscator="djn",
        pool=None,
    ):
        """Encrypt an array of numbers.

        Parameters
        ----------
        public_key : phe.paillier.PaillierPublicKey
        values : array-like of float or int, any shape
            Finite values; integers are encoded exactly.
        precision_bits : int, default=None
            Fractional bits of the fixed-point encoding (the array's
            ``scale_bits``); ``DEFAULT_PRECISION_BITS`` (64) when None.
        n_jobs : int, default=None
            Number of joblib workers (None: joblib's current default).
        obfuscator : {"djn", "full"}, default="djn"
            Randomiser, see the module documentation.
        pool : ObfuscatorPool, default=None
            Take the randomisers from this pool (one multiplication per value
            at use time when it is stocked); each is used once. Needs
            ``obfuscator="djn"``.

        Returns
        -------
        EncryptedArray

        Raises
        ------
        OverflowError
            If a value is too large for the key at this scale.
        ValueError
            If a value is NaN or infinite.
        """
        ctx = _context(public_key.n)
        check_key_size(ctx.n_bits)
        s = DEFAULT_PRECISION_BITS if precision_bits is None else _check_int(
            precision_bits, "precision_bits"
        )
        ints = _encode(values, s, ctx.max_int)
        if pool is not None:
            _check_pool(pool, ctx, obfuscator)
            _release_gil()
            plain = _obj_from_list([gmpy2.mpz(int(v) % ctx.n) for v in ints.ravel().tolist()])
            c = _obj((plain * ctx.n + 1) * pool.take(plain.size) % ctx.nsquare)
        else:
            c = _encrypt_ints(ctx, ints.ravel(), n_jobs, obfuscator)
        return cls(public_key, c.reshape(ints.shape), s, n_jobs=n_jobs)

    def _new(self, ciphertexts, scale_bits=None):
        return type(self)(
            self.public_key,
            ciphertexts,
            self.scale_bits if scale_bits is None else scale_bits,
            n_jobs=self.n_jobs,
        )

    # -- array protocol ---------------------------------------------------

    @property
    def shape(self):
        return self._c.shape

    @property
    def ndim(self):
        return self._c.ndim

    @property
    def size(self):
        return self._c.size

    @property
    def exponent(self):
        return -self.scale_bits

    def __len__(self):
        if self._c.ndim == 0:
            raise TypeError("len() of a 0-d EncryptedArray")
        return self._c.shape[0]

    def __getitem__(self, key):
        if isinstance(key, EncryptedArray):
            raise TypeError("cannot index with an EncryptedArray")
        return self._new(_obj(self._c[key]))

    @property
    def T(self):
        return self._new(self._c.T)

    def reshape(self, *shape):
        """Return the same ciphertexts with a new shape."""
        return self._new(self._c.reshape(*shape))

    def broadcast_to(self, shape):
        """Return the same ciphertexts broadcast to ``shape`` (as :func:`numpy.broadcast_to`).

        Adding two ciphertext arrays requires equal shapes; broadcasting one
        is a deliberate step, written out where the protocol means it.
        """
        return self._new(np.array(np.broadcast_to(self._c, shape), dtype=object))

    def ravel(self):
        """Return a flattened copy (a 1-D array)."""
        return self._new(self._c.ravel())

    def copy(self):
        return self._new(self._c.copy())

    def __repr__(self):
        return (
            f"EncryptedArray(shape={self.shape}, scale_bits={self.scale_bits}, "
            f"key_bits={self._ctx.n_bits})"
        )

    def __bool__(self):
        raise TypeError("the truth value of an EncryptedArray is unknown without decryption")

    @staticmethod
    def concatenate(arrays, axis=0):
        """Join encrypted arrays (same key) along an axis, aligning scales."""
        arrays = list(arrays)
        if not arrays:
            raise ValueError("need at least one array to concatenate")
        first = arrays[0]
        for a in arrays:
            first._check_same_key(a)
        s = max(a.scale_bits for a in arrays)
        parts = [a.rescale(s)._c for a in arrays]
        return first._new(np.concatenate(parts, axis=axis), s)

    # -- homomorphic arithmetic ---------------------------------------------

    def _check_same_key(self, other):
        if int(other.public_key.n) != int(self.public_key.n):
            raise ValueError("encrypted arrays are under different public keys")

    def rescale(self, scale_bits, *, n_jobs=None):
        """Return the same values at a larger scale (``scale_bits >= self.scale_bits``).

        Multiplies every plaintext by ``2**delta`` homomorphically (``delta``
        squarings per element). Scales can only grow: lowering one would need
        division, which Paillier cannot do.
        """
        scale_bits = _check_int(scale_bits, "scale_bits")
        delta = scale_bits - self.scale_bits
        if delta < 0:
            raise ValueError(
                f"cannot lower the scale from {self.scale_bits} to {scale_bits} homomorphically"
            )
        if delta == 0:
            return self
        c = self._powmod(_obj(np.full(self.shape, 1 << delta, dtype=object)), n_jobs)
        return self._new(c, scale_bits)

    def _powmod(self, exponents, n_jobs, bases=None):
        bases = self._c if bases is None else bases
        bases, exponents = np.broadcast_arrays(bases, exponents)
        bits = max((abs(int(e)).bit_length() for e in exponents.ravel().tolist()), default=1)
        per = (1.2 * bits + 2) * self._ctx.mul_seconds
        flat = _elementwise(
            _powmod_worker,
            self.n_jobs if n_jobs is None else n_jobs,
            per,
            [bases.ravel(), exponents.ravel()],
            self._ctx.nsquare,
        )
        return flat.reshape(bases.shape)

    def _add_encoded(self, ints):
        """Add signed fixed-point integers already at this array's scale."""
        ctx = self._ctx
        ints = _obj(np.asarray(ints, dtype=object))
        g_m = _obj((ints % ctx.n) * ctx.n + 1)
        a, b = np.broadcast_arrays(self._c, g_m)
        return self._new(_obj(a * b % ctx.nsquare))

    def __add__(self, other):
        if isinstance(other, EncryptedArray):
            self._check_same_key(other)
            # Broadcasting between ciphertext arrays would silently absorb a
            # peer's message of the wrong shape (a (1, 1) sent for (n, 1)):
            # the shapes of two encrypted operands must match exactly.
            if self.shape != other.shape:
                raise ValueError(
                    f"cannot add encrypted arrays of shapes {self.shape} and {other.shape}; "
                    "ciphertext arrays do not broadcast (reshape explicitly)")
            s = max(self.scale_bits, other.scale_bits)
            a, b = self.rescale(s), other.rescale(s)
            return self._new(_obj(a._c * b._c % self._ctx.nsquare), s)
        try:
            ints = _encode(other, self.scale_bits, self._ctx.max_int)
        except TypeError:
            return NotImplemented
        return self._add_encoded(ints)

    __radd__ = __add__

    def __neg__(self):
        c = _elementwise(
            _invert_worker,
            self.n_jobs,
            _invert_seconds(self._ctx),
            [self._c.ravel()],
            self._ctx.nsquare,
        )
        return self._new(c.reshape(self.shape))

    def __sub__(self, other):
        if isinstance(other, EncryptedArray):
            return self + (-other)
        try:
            ints = _encode(other, self.scale_bits, self._ctx.max_int)
        except TypeError:
            return NotImplemented
        return self._add_encoded(-ints)

    def __rsub__(self, other):
        return (-self) + other

    def multiply(self, other, *, precision_bits=None, n_jobs=None):
        """Elementwise product with a plaintext scalar or array (broadcasting).

        Parameters
        ----------
        other : float, int or array-like
            Plaintext factor. Floats are rounded to ``precision_bits``
            significant bits relative to their largest magnitude; integers are
            exact.
        precision_bits : int, default=None
            ``DEFAULT_PLAIN_PRECISION_BITS`` (32) when None; at most 62.
        n_jobs : int, default=None

        Returns
        -------
        EncryptedArray
            Scale ``self.scale_bits + p`` where ``p`` is the factor's scale.
        """
        if isinstance(other, EncryptedArray):
            raise TypeError("Paillier cannot multiply two ciphertexts")
        B = _plain_bits(precision_bits)
        K, p = _encode_multiplier(other, B)
        return self._new(self._powmod(K, n_jobs), self.scale_bits + p)

    def __mul__(self, other):
        if isinstance(other, EncryptedArray):
            return NotImplemented
        try:
            return self.multiply(other)
        except TypeError:
            return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, EncryptedArray):
            return NotImplemented
        try:
            arr, _ = _as_numeric(other)
        except TypeError:
            return NotImplemented
        return self.multiply(1.0 / np.asarray(arr, dtype=np.float64))

    def sum(self, axis=None):
        """Homomorphic sum over all elements (``axis=None``) or one axis."""
        c = self._c
        if axis is None:
            c = c.ravel()
            axis = 0
        axis = int(axis)
        c = np.moveaxis(c, axis, 0)
        m = self._ctx.nsquare
        if c.shape[0] == 0:
            out = np.empty(c.shape[1:], dtype=object)
            out[...] = gmpy2.mpz(1)
            return self._new(out)
        # Pairwise tree: the same number of multiplications as a running
        # product, with log(N) Python-level steps.
        while c.shape[0] > 1:
            h = c.shape[0] // 2
            prod = _obj(c[:h] * c[h : 2 * h] % m)
            c = np.concatenate([prod, c[2 * h :]], axis=0) if c.shape[0] % 2 else prod
        return self._new(_obj(c[0]))

    def rmatmul(self, X, *, precision_bits=None, n_jobs=None, scale_bits=None):
        """Plaintext matrix times this encrypted vector or matrix: ``X @ self``.

        Computed as a multi-exponentiation (bucket/Pippenger, fixed-base
        tables or single powers, chosen by a cost model), chunked over joblib
        workers.

        Parameters
        ----------
        X : array-like of shape (n_out, n) or (n,)
            Plaintext factor. Floats are rounded to ``precision_bits``
            significant bits relative to the largest magnitude of each row;
            integers are exact.
        precision_bits : int, default=None
            ``DEFAULT_PLAIN_PRECISION_BITS`` (32) when None; at most 61.
        n_jobs : int, default=None
        scale_bits : int, default=None
            Encode ``X`` at this absolute fixed-point scale instead
            (``round(X * 2**scale_bits)``, below ``2**62`` in magnitude), so
            that the result's scale, ``self.scale_bits + scale_bits``, does
            not depend on ``X``'s magnitudes: use it when the result goes to
            the key owner, whom the scale would otherwise tell them.

        Returns
        -------
        EncryptedArray of shape (n_out,) or (n_out, k) (``X`` 1-D drops n_out).
        """
        X = np.asarray(X)
        if self.ndim not in (1, 2):
            raise ValueError("matrix product needs a 1-D or 2-D EncryptedArray")
        squeeze = X.ndim == 1
        X2 = X.reshape(1, -1) if squeeze else X
        if X2.ndim != 2 or X2.shape[1] != self.shape[0]:
            raise ValueError(f"shapes {X.shape} and {self.shape} not aligned for matmul")
        if self.ndim == 1:
            bases = [list(self._c)]
        else:
            bases = [list(self._c[:, j]) for j in range(self.shape[1])]
        out, s = self._shared_scalar_products(bases, X2, precision_bits, n_jobs, scale_bits)
        out = out if self.ndim == 2 else out[:, 0]
        return self._new(out[0] if squeeze else out, s)

    def __rmatmul__(self, other):
        if isinstance(other, EncryptedArray):
            return NotImplemented
        return self.rmatmul(other)

    def matmul(self, M, *, precision_bits=None, n_jobs=None):
        """This encrypted vector or matrix times a plaintext matrix: ``self @ M``.

        Parameters
        ----------
        M : array-like of shape (k, m) or (k,)
            Plaintext factor; each output column is encoded with its own scale
            (``precision_bits`` significant bits).
        precision_bits : int, default=None
        n_jobs : int, default=None

        Returns
        -------
        EncryptedArray of shape (n, m), (m,), (n,) or () following numpy.
        """
        M = np.asarray(M)
        if self.ndim == 1:
            res = self.rmatmul(M.T, precision_bits=precision_bits, n_jobs=n_jobs)
            return res
        if self.ndim != 2:
            raise ValueError("matrix product needs a 1-D or 2-D EncryptedArray")
        squeeze = M.ndim == 1
        M2 = M.reshape(-1, 1) if squeeze else M
        if M2.ndim != 2 or M2.shape[0] != self.shape[1]:
            raise ValueError(f"shapes {self.shape} and {M.shape} not aligned for matmul")
        # Rows of self are independent base vectors sharing the scalars M.T.
        bases = [list(row) for row in self._c]
        out, s = self._shared_scalar_products(bases, M2.T, precision_bits, n_jobs)
        out = out.T
        return self._new(out[:, 0] if squeeze else out, s)

    def __matmul__(self, other):
        if isinstance(other, EncryptedArray):
            return NotImplemented
        return self.matmul(other)

    def _shared_scalar_products(self, bases, K_plain, precision_bits, n_jobs, scale_bits=None):
        """``out[r, l] = prod_i bases[l][i] ** K[r, i]`` aligned to one scale."""
        if scale_bits is None:
            B = _plain_bits(precision_bits, limit=MAX_EXPONENT_BITS - 1)
            K, p = _encode_multiplier(K_plain, B, per_row=True)
        else:
            K = _float_to_ints(K_plain, _check_int(scale_bits, "scale_bits"))
            p = np.full(K.shape[0], int(scale_bits))
        K = np.asarray(K, dtype=object)
        if K.size and max(abs(int(v)) for v in K.ravel().tolist()) >= 1 << MAX_EXPONENT_BITS:
            raise ValueError(
                f"integer plaintext factors must be below 2**{MAX_EXPONENT_BITS} in magnitude"
            )
        K = K.astype(np.int64) if K.size else np.zeros(K.shape, dtype=np.int64)
        n_jobs = self.n_jobs if n_jobs is None else n_jobs
        out = _multiexp_parallel(self._ctx, bases, K, n_jobs)
        P = int(p.max()) if p.size else 0
        lift = P - p
        if lift.any():
            # Bring every output row to the finest row scale.
            exps = np.empty(out.shape, dtype=object)
            for r in range(out.shape[0]):
                exps[r, :] = 1 << int(lift[r])
            out = self._powmod(exps, n_jobs, bases=out)
        return out, self.scale_bits + P

    # -- randomisation, masking, decryption ---------------------------------

    def obfuscate(self, *, n_jobs=None, obfuscator="djn", pool=None):
        """Return a re-randomised copy (same plaintexts, fresh randomness).

        Needed before forwarding a ciphertext derived from another party's
        ciphertexts, so that party cannot relate the two. With ``pool`` (an
        :class:`ObfuscatorPool` for this key) the randomisers come from its
        stock, each used once.
        """
        ctx = self._ctx
        if pool is not None:
            _check_pool(pool, ctx, obfuscator)
            flat = self._c.ravel()
            return self._new(_obj(flat * pool.take(flat.size) % ctx.nsquare).reshape(self.shape))
        flat = _elementwise(
            _obfuscate_worker,
            self.n_jobs if n_jobs is None else n_jobs,
            ctx.obfuscation_seconds(obfuscator),
            [self._c.ravel()],
            int(ctx.n),
            obfuscator,
        )
        return self._new(flat.reshape(self.shape))

    def add_random_mask(self, sigma_bits=DEFAULT_SIGMA_BITS, *, n_jobs=None, pool=None):
        """Add a uniformly random additive mask, for decryption by a third party.

        The mask is uniform in ``[0, 2**(k - 4))`` in the encoded domain (``k``
        the key length): as long as the encoded value ``m`` satisfies
        ``|m| < 2**(k - 4 - sigma_bits)`` (any realistic value: ~1960 bits at
        2048-bit keys), ``m + mask`` is within statistical distance
        ``2**-sigma_bits`` of the mask alone, and it never wraps modulo ``n``.
        The result is re-randomised, so its ciphertexts reveal nothing about
        the ones it came from.

        Parameters
        ----------
        sigma_bits : int, default=80
            Statistical hiding parameter, at least 40.
        n_jobs : int, default=None
        pool : ObfuscatorPool, default=None
            Source of the re-randomisation (see :meth:`obfuscate`).

        Returns
        -------
        masked : EncryptedArray
            Same shape and scale; send it with its ``scale_bits``.
        mask : ndarray of object (Python ints)
            Keep it: :func:`decode_masked` needs it.
        """
        sigma_bits = _check_int(sigma_bits, "sigma_bits")
        if sigma_bits < _MIN_SIGMA_BITS:
            raise ValueError(f"sigma_bits must be at least {_MIN_SIGMA_BITS}")
        mask_bits = self._ctx.n_bits - 4
        if mask_bits - sigma_bits < 64:
            raise ValueError(
                f"key of {self._ctx.n_bits} bits is too short for sigma_bits={sigma_bits}"
            )
        mask = _obj_from_list([secrets.randbits(mask_bits) for _ in range(self.size)], self.shape)
        masked = self._add_encoded(mask).obfuscate(n_jobs=n_jobs, pool=pool)
        return masked, mask

    def decrypt_encoded(self, private_key, *, n_jobs=None):
        """Decrypt to the signed fixed-point integers (not divided by the scale).

        Returns
        -------
        ints : ndarray of object (Python ints), shape ``self.shape``

        Raises
        ------
        OverflowError
            If a plaintext lies in the middle third of ``Z_n`` (it wrapped).
        """
        ctx = self._ctx
        if int(private_key.public_key.n) != int(ctx.n):
            raise ValueError("private key does not match the array's public key")
        flat = _elementwise(
            _decrypt_worker,
            self.n_jobs if n_jobs is None else n_jobs,
            _decrypt_seconds(ctx),
            [self._c.ravel()],
            int(private_key.p),
            int(private_key.q),
        )
        return _obj_from_list(_signed(flat.tolist(), int(ctx.n), int(ctx.max_int)), self.shape)

    def decrypt(self, private_key, *, n_jobs=None):
        """Decrypt and decode to float64 (CRT decryption).

        Raises
        ------
        OverflowError
            If a value wrapped around the plaintext space or does not fit a
            float64.
        """
        ints = self.decrypt_encoded(private_key, n_jobs=n_jobs)
        return _ints_to_float(ints.ravel().tolist(), self.scale_bits).reshape(self.shape)

    # -- wire format ----------------------------------------------------------

    def to_wire(self):
        """Serialise: fixed-width big-endian ciphertexts in one bytes blob.

        Returns
        -------
        obj : dict
            ``{"scheme", "shape", "scale_bits", "ciphertexts"}``.
        """
        w = self._ctx.nsq_bytes
        blob = b"".join(int(c).to_bytes(w, "big") for c in self._c.ravel().tolist())
        return {
            "scheme": _WIRE_SCHEME,
            "shape": [int(d) for d in self.shape],
            "scale_bits": self.scale_bits,
            "ciphertexts": blob,
        }

    @classmethod
    def from_wire(cls, public_key, obj, *, n_jobs=None):
        """Deserialise and validate ciphertexts received from another party.

        Raises
        ------
        ValueError
            On a malformed object, a blob of the wrong length, or a ciphertext
            outside ``Z*_{n**2}`` (``c <= 0``, ``c >= n**2`` or
            ``gcd(c, n) != 1``).
        """
        ctx = _context(public_key.n)
        shape, scale_bits = _check_header(obj, ("shape", "scale_bits", "ciphertexts"))
        blob = obj["ciphertexts"]
        count = math.prod(shape)
        cs = _parse_ciphertexts(ctx, blob, count)
        return cls(public_key, _obj_from_list(cs, tuple(shape)), scale_bits, n_jobs=n_jobs)

    # -- phe interoperability ---------------------------------------------

    def to_phe(self):
        """Return the ciphertexts as phe ``EncryptedNumber`` objects (object array).

        phe uses base-16 exponents, so the scale is first lifted to a multiple
        of 4.
        """
        a = self.rescale(-(-self.scale_bits // 4) * 4)
        e = -a.scale_bits // 4
        out = [_phe.EncryptedNumber(self.public_key, int(c), e) for c in a._c.ravel().tolist()]
        return _obj_from_list(out, self.shape)

    @classmethod
    def from_phe(cls, public_key, numbers, *, n_jobs=None):
        """Wrap phe ``EncryptedNumber`` objects (array-like), aligning their exponents."""
        arr = np.asarray(numbers, dtype=object)
        flat = arr.ravel().tolist()
        for x in flat:
            if int(x.public_key.n) != int(public_key.n):
                raise ValueError("EncryptedNumber under a different public key")
        scales = [-4 * int(x.exponent) for x in flat]
        s = max(scales, default=DEFAULT_PRECISION_BITS)
        m = _context(public_key.n).nsquare
        cs = [
            gmpy2.powmod(x.ciphertext(be_secure=False), 1 << (s - si), m)
            for x, si in zip(flat, scales)
        ]
        return cls(public_key, _obj_from_list(cs, arr.shape), s, n_jobs=n_jobs)


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


# --------------------------------------------------------------------------
# Packing (slot-wise secure aggregation)
# --------------------------------------------------------------------------


class PackedCiphertexts:
    """Non-negative integers packed into slots of Paillier plaintexts.

    ``slots_per_ciphertext = (k - 1) // slot_bits`` slots of ``slot_bits``
    bits fit below ``n`` (31 slots of 64 bits at 2048 bits), so one
    encryption and one decryption serve that many values, and adding two
    packed ciphertexts adds every slot at once.

    Slot and headroom rules: every slot of every *sum* must stay below
    ``2**slot_bits``. When adding ``K`` vectors whose entries are below
    ``2**v``, choose ``slot_bits >= v + ceil(log2(K))``. A carry out of the
    top slot is detected on decryption (:class:`OverflowError`); a carry
    between inner slots is not, so the headroom is the caller's duty.
    Negative values need an offset (e.g. add ``2**(v-1)`` and subtract
    ``K * 2**(v-1)`` after decryption).

    Parameters
    ----------
    public_key : phe.paillier.PaillierPublicKey
    ciphertexts : ndarray of object (gmpy2.mpz), 1-D
    slot_bits : int
    n_values : int
        Number of packed values.
    n_summands : int, default=1
        How many packed vectors were added together (public metadata).
    """

    def __init__(self, public_key, ciphertexts, slot_bits, n_values, n_summands=1):
        self.public_key = public_key
        self._ctx = _context(public_key.n)
        self._c = _obj(np.asarray(ciphertexts, dtype=object)).ravel()
        self.slot_bits = int(slot_bits)
        self.n_values = int(n_values)
        self.n_summands = int(n_summands)

    @property
    def slots_per_ciphertext(self):
        return _slots(self._ctx, self.slot_bits)

    def __len__(self):
        return len(self._c)

    def __repr__(self):
        return (
            f"PackedCiphertexts(n_values={self.n_values}, slot_bits={self.slot_bits}, "
            f"n_ciphertexts={len(self._c)}, n_summands={self.n_summands})"
        )

    def __add__(self, other):
        if not isinstance(other, PackedCiphertexts):
            return NotImplemented
        if int(other.public_key.n) != int(self.public_key.n):
            raise ValueError("packed ciphertexts are under different public keys")
        if (other.slot_bits, other.n_values) != (self.slot_bits, self.n_values):
            raise ValueError("packed ciphertexts differ in slot_bits or n_values")
        c = self._c * other._c % self._ctx.nsquare
        return PackedCiphertexts(
            self.public_key, c, self.slot_bits, self.n_values, self.n_summands + other.n_summands
        )

    def __radd__(self, other):
        # Lets the built-in sum() start from 0.
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def obfuscate(self, *, n_jobs=None):
        """Return a re-randomised copy."""
        ctx = self._ctx
        c = _elementwise(
            _obfuscate_worker, n_jobs, ctx.obfuscation_seconds("djn"), [self._c], int(ctx.n), "djn"
        )
        return PackedCiphertexts(self.public_key, c, self.slot_bits, self.n_values, self.n_summands)

    def decrypt(self, private_key, n_values=None, *, n_jobs=None):
        """Decrypt the slot sums.

        Parameters
        ----------
        private_key : phe.paillier.PaillierPrivateKey
        n_values : int, default=None
            Number of values to return (the packed count when None).
        n_jobs : int, default=None

        Returns
        -------
        sums : ndarray of uint64 (``slot_bits <= 64``) or object (Python ints)

        Raises
        ------
        OverflowError
            If the top slot of a ciphertext carried out.
        """
        ctx = self._ctx
        if int(private_key.public_key.n) != int(ctx.n):
            raise ValueError("private key does not match the packed ciphertexts' key")
        n_values = self.n_values if n_values is None else _check_int(n_values, "n_values")
        if not 0 <= n_values <= self.n_values:
            raise ValueError(f"n_values must be in [0, {self.n_values}]")
        plain = _elementwise(
            _decrypt_worker,
            n_jobs,
            _decrypt_seconds(ctx),
            [self._c],
            int(private_key.p),
            int(private_key.q),
        )
        spc, b = self.slots_per_ciphertext, self.slot_bits
        mask = (1 << b) - 1
        out = []
        for i, M in enumerate(plain.tolist()):
            M = int(M)
            used = min(spc, self.n_values - i * spc)
            if M >> (used * b):
                raise OverflowError("packed slot sum overflowed its slot (not enough headroom)")
            for _ in range(used):
                out.append(M & mask)
                M >>= b
        out = out[:n_values]
        if b <= 64:
            return np.array(out, dtype=np.uint64)
        return _obj_from_list(out)

    def to_wire(self):
        """Serialise to a dict (fixed-width big-endian ciphertext blob)."""
        w = self._ctx.nsq_bytes
        return {
            "scheme": _WIRE_SCHEME,
            "slot_bits": self.slot_bits,
            "n_values": self.n_values,
            "n_summands": self.n_summands,
            "ciphertexts": b"".join(int(c).to_bytes(w, "big") for c in self._c.tolist()),
        }

    @classmethod
    def from_wire(cls, public_key, obj):
        """Deserialise and validate (see :meth:`EncryptedArray.from_wire`)."""
        ctx = _context(public_key.n)
        _check_header(obj, ("slot_bits", "n_values", "n_summands", "ciphertexts"))
        slot_bits = _check_int(obj["slot_bits"], "slot_bits")
        n_values = _check_int(obj["n_values"], "n_values")
        n_summands = _check_int(obj["n_summands"], "n_summands")
        if not 1 <= slot_bits <= ctx.n_bits - 1 or n_values < 0 or n_summands < 1:
            raise ValueError("invalid packing parameters")
        count = -(-n_values // _slots(ctx, slot_bits))
        cs = _parse_ciphertexts(ctx, obj["ciphertexts"], count)
        return cls(public_key, _obj_from_list(cs), slot_bits, n_values, n_summands)


def _slots(ctx, slot_bits):
    # Packed sums must stay below n >= 2**(k-1).
    return (ctx.n_bits - 1) // slot_bits


def pack_encrypt(public_key, values_uint, slot_bits, *, n_jobs=None):
    """Encrypt non-negative integers packed several to a ciphertext.

    Parameters
    ----------
    public_key : phe.paillier.PaillierPublicKey
    values_uint : array-like of int, 1-D
        Values in ``[0, 2**slot_bits)``; leave headroom for the number of
        summands (see :class:`PackedCiphertexts`).
    slot_bits : int
        Bits per slot, at most ``k - 1``.
    n_jobs : int, default=None

    Returns
    -------
    PackedCiphertexts

    Examples
    --------
    >>> import os; os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
    '1'
    >>> pk, sk = generate_keypair(512)
    >>> a = pack_encrypt(pk, [1, 2, 3, 4, 5, 6, 7, 8, 9], slot_bits=64)
    >>> b = pack_encrypt(pk, [10] * 9, slot_bits=64)
    >>> (a + b).decrypt(sk).tolist()
    [11, 12, 13, 14, 15, 16, 17, 18, 19]
    """
    ctx = _context(public_key.n)
    check_key_size(ctx.n_bits)
    slot_bits = _check_int(slot_bits, "slot_bits")
    if not 1 <= slot_bits <= ctx.n_bits - 1:
        raise ValueError(f"slot_bits must be in [1, {ctx.n_bits - 1}]")
    arr = np.asarray(values_uint)
    if arr.ndim != 1:
        raise ValueError("values_uint must be 1-D")
    if arr.dtype.kind not in "biuO":
        raise ValueError("values_uint must be integers")
    vals = [int(v) for v in arr.tolist()]
    if any(v < 0 or v >> slot_bits for v in vals):
        raise ValueError(f"values must lie in [0, 2**{slot_bits})")
    spc = _slots(ctx, slot_bits)
    packed = []
    for start in range(0, len(vals), spc):
        M = 0
        for v in reversed(vals[start : start + spc]):
            M = (M << slot_bits) | v
        packed.append(M)
    c = _encrypt_ints(ctx, packed, n_jobs)
    return PackedCiphertexts(public_key, c, slot_bits, len(vals))
