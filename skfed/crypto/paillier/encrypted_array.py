""":class:`EncryptedArray`: fixed-point arrays of Paillier ciphertexts."""

import math
import secrets

import gmpy2
import numpy as np
from phe import paillier as _phe

from .._multiexp import MAX_EXPONENT_BITS
from .ciphertexts import (
    _check_header,
    _decrypt_seconds,
    _encrypt_ints,
    _invert_seconds,
    _parse_ciphertexts,
    _plain_bits,
)
from .encoding import (
    _MIN_SIGMA_BITS,
    DEFAULT_PRECISION_BITS,
    DEFAULT_SIGMA_BITS,
    _as_numeric,
    _check_int,
    _encode,
    _encode_multiplier,
    _float_to_ints,
    _ints_to_float,
    _obj,
    _obj_from_list,
    _signed,
)
from .keys import (
    _WIRE_SCHEME,
    check_key_size,
)
from .obfuscators import (
    _check_pool,
)
from .parallel import (
    _decrypt_worker,
    _elementwise,
    _invert_worker,
    _multiexp_parallel,
    _obfuscate_worker,
    _powmod_worker,
    _release_gil,
)
from .tables import (
    _context,
)


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
