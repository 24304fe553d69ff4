"""Per-key contexts: the DJN randomiser's fixed-base tables, cached per process."""

import secrets
import threading
from collections import OrderedDict

import gmpy2
import numpy as np

from .._multiexp import FixedBaseTable
from .encoding import (
    _obj,
)

# Fixed-base table windows for the DJN randomiser (see the module docstring
# and docs/crypto.rst for the measurements behind them). Each process starts
# with the small table and switches to the large one once it has computed
# enough randomisers for the key that the build has paid for itself.
DJN_WINDOW_SMALL = 8


DJN_WINDOW_LARGE = 10


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
