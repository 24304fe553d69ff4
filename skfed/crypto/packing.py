"""Rows of a matrix packed several values per Paillier ciphertext, with matrix products.

A 2048-bit Paillier plaintext holds far more than the ~50 bits a
fixed-point value needs, so encrypting an ``n x d`` matrix one value per
ciphertext spends ``n d`` encryptions where ``n d / D`` would do.
:class:`PackedRows` puts up to ``D`` consecutive values of a row into one
plaintext, ``P = sum_s v_s 2**(b s)`` with *signed* slot values (balanced
digits: every slot of every result must satisfy ``|v| < 2**(b - 1)``).

What packing keeps and loses: adding two packed arrays adds every slot at
once, and multiplying a ciphertext by a plaintext integer multiplies all its
slots by it. So ``X @ [[V]]`` (``X`` plaintext, ``V`` packed by rows) is
exact: output row ``r`` is ``sum_i X[r, i] V[i, :]``, one scalar per input
row. An elementwise product with a different factor per slot, or an inner
product *within* a row, is not possible on packed ciphertexts.

Headroom is tracked, not hoped for: every :class:`PackedRows` carries
``value_bits``, a public bound on ``|v|`` of every slot (at its fixed-point
scale) derived from the public encoding bound and the plaintext factors of
each operation; an operation that could overflow a slot raises
:class:`OverflowError` before any arithmetic. Before a peer decrypts, each
slot gets its own mask ``r`` uniform in ``[0, 2**(value_bits + sigma))``:
the decrypting party sees ``v + r`` per slot, within statistical distance
``2**-sigma`` of ``r`` alone (``2**(1 - sigma)`` with the sign), and the
mask owner checks on removal that the value stayed within its bound.

This module knows nothing of learning: it is arithmetic on encrypted
matrices (see :mod:`skfed.crypto.paillier` for the scheme).
"""

import math
import secrets

import gmpy2
import numpy as np

from .paillier import (
    _MIN_SIGMA_BITS,
    MAX_EXPONENT_BITS,
    EncryptedArray,
    _check_int,
    _check_pool,
    _context,
    _encode,
    _encode_multiplier,
    _encrypt_ints,
    _ints_to_float,
    _obj_from_list,
    _plain_bits,
    _release_gil,
    check_key_size,
)

__all__ = ["PackedRows", "slots_per_ciphertext", "unpack_masked", "unpack_ints",
           "fixed_point", "dot_ints", "add_ints"]

_WIRE_KIND = "packed-rows"


def slots_per_ciphertext(n_bits, slot_bits):
    """How many ``slot_bits``-bit signed slots fit in a plaintext of an ``n_bits`` key.

    The packed integer must stay below a third of ``n`` (the signed range
    :meth:`EncryptedArray.decrypt_encoded` accepts), masks included.
    """
    n_slots = (int(n_bits) - 3) // int(slot_bits)
    if n_slots < 1:
        raise ValueError(f"slots of {slot_bits} bits do not fit a {n_bits}-bit key")
    return n_slots


def _pack(ints, width, slot_bits, n_slots):
    """(rows, width) signed ints -> (rows, chunks) signed packed ints."""
    rows = ints.shape[0]
    chunks = -(-width // n_slots)
    out = np.empty((rows, chunks), dtype=object)
    for i in range(rows):
        row = [int(v) for v in ints[i]]
        for j in range(chunks):
            acc = 0
            for v in reversed(row[j * n_slots:(j + 1) * n_slots]):
                acc = (acc << slot_bits) + v
            out[i, j] = acc
    return out


def unpack_ints(packed, width, slot_bits, n_slots):
    """Balanced-digit unpacking: (rows, chunks) signed ints -> (rows, width) signed ints.

    Raises
    ------
    ValueError
        If a packed integer has more slots than its layout allows (a
        tampered or corrupted plaintext).
    """
    packed = np.asarray(packed, dtype=object)
    rows, chunks = packed.shape
    if chunks != -(-width // n_slots):
        raise ValueError(f"{chunks} packed integers per row do not hold {width} values "
                         f"in {n_slots} slots")
    base, half, low = 1 << slot_bits, 1 << (slot_bits - 1), (1 << slot_bits) - 1
    out = np.empty((rows, width), dtype=object)
    for i in range(rows):
        for j in range(chunks):
            P = int(packed[i, j])
            for s in range(j * n_slots, min((j + 1) * n_slots, width)):
                v = P & low
                if v >= half:
                    v -= base
                out[i, s] = v
                P = (P - v) >> slot_bits
            if P:
                raise ValueError("packed plaintext has more slots than its layout")
    return out


def unpack_masked(ints, mask, scale_bits, width, slot_bits, n_slots, value_bits):
    """Remove per-slot masks from decrypted packed integers and decode to floats.

    The counterpart of :meth:`PackedRows.add_random_mask`: ``ints`` is what
    the key owner returned (``decrypt_encoded`` of the masked ciphertexts),
    ``mask`` the (rows, width) masks kept by the sender.

    Raises
    ------
    OverflowError
        If a slot value exceeds ``value_bits`` after unmasking (overflow or
        tampering: the value would not have been hidden).
    """
    slots = unpack_ints(ints, width, slot_bits, n_slots)
    mask = np.asarray(mask, dtype=object)
    if slots.shape != mask.shape:
        raise ValueError(f"shape mismatch: values {slots.shape}, mask {mask.shape}")
    diff = [int(a) - int(b) for a, b in zip(slots.ravel().tolist(), mask.ravel().tolist())]
    if any(abs(v).bit_length() > value_bits for v in diff):
        raise OverflowError("packed value exceeds its bound after unmasking: overflow or "
                            "tampering")
    return _ints_to_float(diff, int(scale_bits)).reshape(slots.shape)


def fixed_point(values, scale_bits):
    """The signed integers ``round(values * 2**scale_bits)`` that encryption uses."""
    return _encode(values, int(scale_bits))


def dot_ints(enc, ints, scale_bits, *, n_jobs=None):
    """``[[sum_i ints_i * m_i]]`` for exact integers of any size.

    ``ints`` (same size as ``enc``) are fixed-point integers at
    ``scale_bits``; the result, a 1-element :class:`EncryptedArray`, has
    scale ``enc.scale_bits + scale_bits``. Unlike ``rmatmul``, whose
    factors are rounded to at most 62 bits, this keeps masked values exact.
    """
    flat = enc.ravel()
    exps = np.asarray(ints, dtype=object).ravel()
    if exps.size != flat.size:
        raise ValueError(f"{exps.size} integers for {flat.size} ciphertexts")
    powered = flat._new(flat._powmod(exps, n_jobs)).sum()
    return EncryptedArray(enc.public_key, np.asarray(powered._c, dtype=object).reshape(1),
                          enc.scale_bits + int(scale_bits), n_jobs=enc.n_jobs)


def add_ints(enc, ints, scale_bits):
    """``[[m + ints]]`` for exact integers at ``scale_bits`` (lifting whichever
    side has the smaller scale), e.g. to subtract a masked value."""
    ints = np.asarray(ints, dtype=object)
    if enc.scale_bits < scale_bits:
        enc = enc.rescale(int(scale_bits))
    return enc._add_encoded(ints * (1 << (enc.scale_bits - int(scale_bits))))


def _max_bits(ints):
    return max((abs(int(v)).bit_length() for v in np.ravel(ints).tolist()), default=0)


class PackedRows:
    """A matrix encrypted row by row, ``n_slots`` values per ciphertext.

    Parameters
    ----------
    enc : EncryptedArray of shape (rows, chunks)
        The packed ciphertexts; its ``scale_bits`` is every slot's scale.
    width : int
        Values per row (``d``); row ``i`` occupies ``chunks`` ciphertexts.
    slot_bits : int
        Bits per slot, fixed when the matrix was encrypted.
    value_bits : int
        Public bound: every slot value ``|v| < 2**value_bits`` (encoded).

    Examples
    --------
    >>> import numpy as np
    >>> from skfed.crypto.paillier import generate_keypair
    >>> pk, sk = generate_keypair(1024)
    >>> V = np.array([[1.5, -2.0, 0.25], [0.5, 1.0, -1.0]])
    >>> enc = PackedRows.encrypt(pk, V, slot_bits=160)
    >>> len(enc.enc.ravel())          # 2 rows x 1 ciphertext instead of 6
    2
    >>> (np.array([[2.0, -1.0]]) @ enc).decrypt(sk)
    array([[ 2.5, -5. ,  1.5]])
    """

    __array_ufunc__ = None

    PRECISION_BITS = 28
    BOUND_BITS = 16

    def __init__(self, enc, width, slot_bits, value_bits):
        self.enc = enc
        self.width = int(width)
        self.slot_bits = int(slot_bits)
        self.value_bits = int(value_bits)
        self.n_slots = slots_per_ciphertext(enc._ctx.n_bits, self.slot_bits)
        if enc.ndim != 2 or enc.shape[1] != -(-self.width // self.n_slots):
            raise ValueError(f"{enc.shape} ciphertexts do not hold rows of {width} values "
                             f"in {self.n_slots}-slot plaintexts")
        self._check_room(self.value_bits)

    @property
    def shape(self):
        return (self.enc.shape[0], self.width)

    @property
    def scale_bits(self):
        return self.enc.scale_bits

    @property
    def public_key(self):
        return self.enc.public_key

    def __repr__(self):
        return (f"PackedRows(shape={self.shape}, slots={self.n_slots}x{self.slot_bits} bits, "
                f"value_bits={self.value_bits})")

    def _check_room(self, value_bits):
        # Balanced digits need |v| < 2**(slot_bits - 1); keep one more bit.
        if value_bits + 1 >= self.slot_bits:
            raise OverflowError(
                f"a slot of {self.slot_bits} bits cannot hold {value_bits} value bits "
                "(mask included): encrypt with wider slots, or use plaintext factors of "
                "similar magnitudes (standardise the features)"
            )

    def _new(self, enc, value_bits):
        return type(self)(enc, self.width, self.slot_bits, value_bits)

    # -- construction -----------------------------------------------------------
    @classmethod
    def encrypt(cls, public_key, values, *, slot_bits, precision_bits=None,
                bound_bits=None, n_jobs=None, pool=None):
        """Encrypt a 2-D array, packing each row.

        Parameters
        ----------
        public_key : phe.paillier.PaillierPublicKey
        values : array-like of shape (rows, width)
        slot_bits : int
            Bits per slot; leave room for what the receiver will compute
            (see :meth:`slot_bits_for`).
        precision_bits : int, default=PRECISION_BITS
            Fractional bits of the fixed-point encoding.
        bound_bits : int, default=BOUND_BITS
            Public bound ``|values| < 2**bound_bits``; the bound, not the
            data, sets ``value_bits``, so the receiver learns nothing of the
            magnitudes.
        n_jobs : int, default=None
        pool : ObfuscatorPool, default=None

        Raises
        ------
        OverflowError
            If a value is not below ``2**bound_bits`` in magnitude.
        """
        ctx = _context(public_key.n)
        check_key_size(ctx.n_bits)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"PackedRows needs a 2-D array, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("cannot encrypt NaN or infinite values")
        s = cls.PRECISION_BITS if precision_bits is None else _check_int(precision_bits,
                                                                           "precision_bits")
        bound = cls.BOUND_BITS if bound_bits is None else _check_int(bound_bits, "bound_bits")
        if values.size and np.abs(values).max() >= 2.0 ** bound:
            raise OverflowError(
                f"a value of magnitude {np.abs(values).max():.3g} exceeds the packing bound "
                f"2**{bound}: training has diverged (lower the learning rate)"
            )
        n_slots = slots_per_ciphertext(ctx.n_bits, slot_bits)
        packed = _pack(_encode(values, s), values.shape[1], int(slot_bits), n_slots)
        flat = packed.ravel().tolist()
        if pool is not None:
            _check_pool(pool, ctx, "djn")
            _release_gil()
            plain = _obj_from_list([gmpy2.mpz(v % ctx.n) for v in flat])
            c = (plain * ctx.n + 1) * pool.take(len(flat)) % ctx.nsquare
        else:
            c = _encrypt_ints(ctx, flat, n_jobs)
        enc = EncryptedArray(public_key, np.asarray(c, dtype=object).reshape(packed.shape), s,
                             n_jobs=n_jobs)
        return cls(enc, values.shape[1], slot_bits, s + bound)

    @classmethod
    def slot_bits_for(cls, n_terms, exponent_bits, sigma_bits, *, precision_bits=None,
                      bound_bits=None):
        """Slot width for values the receiver multiplies and sums, then masks.

        ``n_terms`` summands, each a value times a plaintext factor of at
        most ``exponent_bits`` bits (scale lifts included), then a mask of
        ``sigma_bits`` beyond the value.
        """
        s = cls.PRECISION_BITS if precision_bits is None else precision_bits
        bound = cls.BOUND_BITS if bound_bits is None else bound_bits
        return (s + bound + exponent_bits + math.ceil(math.log2(max(n_terms, 1) + 1))
                + sigma_bits + 3)

    # -- arithmetic ---------------------------------------------------------------
    def rmatmul(self, X, *, precision_bits=None, n_jobs=None, scale_bits=None):
        """``X @ self`` for a plaintext ``X`` of shape (m, rows): a PackedRows (m, width).

        ``scale_bits`` encodes ``X`` at that absolute scale (see
        :meth:`EncryptedArray.rmatmul`): the result's scale is then public.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.shape[0]:
            raise ValueError(f"shapes {X.shape} and {self.shape} not aligned for matmul")
        # The bound the product needs, from the same encoding the
        # multi-exponentiation will use (each output row lifted to the
        # finest row scale when the scale is relative).
        if scale_bits is None:
            B = _plain_bits(precision_bits, limit=MAX_EXPONENT_BITS - 1)
            K, p = _encode_multiplier(X, B, per_row=True)
            P = int(p.max()) if p.size else 0
            bits = max((_max_bits(K[r]) + P - int(p[r]) for r in range(K.shape[0])),
                       default=0)
        else:
            bits = _max_bits(_encode(X, int(scale_bits)))
        value_bits = self.value_bits + bits + math.ceil(math.log2(max(X.shape[1], 1) + 1))
        self._check_room(value_bits)
        out = self.enc.rmatmul(X, precision_bits=precision_bits, n_jobs=n_jobs,
                               scale_bits=scale_bits)
        return self._new(out, value_bits)

    def with_bound(self, value_bits):
        """The same ciphertexts declaring a looser public bound (>= the tracked one),
        e.g. before sending them, so the bound reveals nothing of the values."""
        if value_bits < self.value_bits:
            raise ValueError(f"bound {value_bits} is below the tracked {self.value_bits}")
        return self._new(self.enc, value_bits)

    def __rmatmul__(self, other):
        if isinstance(other, (EncryptedArray, PackedRows)):
            return NotImplemented
        return self.rmatmul(other)

    def __getitem__(self, rows):
        """A subset of rows (index array or slice), same layout."""
        return self._new(self.enc[rows], self.value_bits)

    def rescale(self, scale_bits, *, n_jobs=None):
        """The same values at a larger scale (a homomorphic lift of every slot)."""
        vb = self.value_bits + int(scale_bits) - self.scale_bits
        self._check_room(vb)
        return self._new(self.enc.rescale(scale_bits, n_jobs=n_jobs), vb)

    def add_at(self, other, offset, *, n_jobs=None):
        """Add ``other`` (same rows and slot width) into slots ``offset, offset + 1, ...``.

        ``other`` must fit in one ciphertext per row, and ``offset +
        other.width`` slots in the first ciphertext of ``self``'s rows; its
        ciphertexts are shifted by ``2**(slot_bits * offset)`` (that many
        squarings each) and multiplied into the first chunk. Scales are
        aligned by lifting the smaller one.
        """
        if other.slot_bits != self.slot_bits or other.shape[0] != self.shape[0]:
            raise ValueError(f"cannot add {other!r} into {self!r}")
        if other.enc.shape[1] != 1 or offset + other.width > min(self.n_slots, self.width):
            raise ValueError(f"{other.width} values at slot {offset} do not fit the first "
                             f"chunk of {self!r}")
        s = max(self.scale_bits, other.scale_bits)
        a = self.rescale(s, n_jobs=n_jobs) if s > self.scale_bits else self
        b = other.rescale(s, n_jobs=n_jobs) if s > other.scale_bits else other
        col = b.enc[:, 0]
        if offset:
            shift = np.full(col.shape, 1 << (self.slot_bits * int(offset)), dtype=object)
            col = col._new(col._powmod(shift, n_jobs))
        vb = max(a.value_bits, b.value_bits) + 1
        self._check_room(vb)
        c = a.enc._c.copy()
        c[:, 0] = c[:, 0] * col._c % a.enc._ctx.nsquare
        return self._new(a.enc._new(c), vb)

    def _same_layout(self, other):
        if (other.width, other.slot_bits, other.shape) != (self.width, self.slot_bits,
                                                           self.shape):
            raise ValueError(f"packed layouts differ: {self!r} and {other!r}")
        self.enc._check_same_key(other.enc)

    def __add__(self, other):
        if isinstance(other, PackedRows):
            self._same_layout(other)
            s = max(self.scale_bits, other.scale_bits)
            vb = max(self.value_bits + s - self.scale_bits,
                     other.value_bits + s - other.scale_bits) + 1
            self._check_room(vb)
            return self._new(self.enc + other.enc, vb)
        values = np.broadcast_to(np.asarray(other, dtype=np.float64), self.shape)
        ints = _encode(values, self.scale_bits)
        vb = max(self.value_bits, _max_bits(ints)) + 1
        self._check_room(vb)
        packed = _pack(ints, self.width, self.slot_bits, self.n_slots)
        return self._new(self.enc._add_encoded(packed), vb)

    __radd__ = __add__

    def __neg__(self):
        return self._new(-self.enc, self.value_bits)

    def __sub__(self, other):
        return self + (-other if isinstance(other, PackedRows) else
                       -np.asarray(other, dtype=np.float64))

    def __mul__(self, scalar):
        """Multiply every value by one plaintext scalar."""
        if isinstance(scalar, (EncryptedArray, PackedRows)) or np.ndim(scalar):
            return NotImplemented
        B = _plain_bits(None)
        K, _ = _encode_multiplier(float(scalar), B)
        vb = self.value_bits + _max_bits(K)
        self._check_room(vb)
        return self._new(self.enc.multiply(float(scalar)), vb)

    __rmul__ = __mul__

    def obfuscate(self, *, n_jobs=None, pool=None):
        """Re-randomised copy (before sending a derived value back to the key owner)."""
        return self._new(self.enc.obfuscate(n_jobs=n_jobs, pool=pool), self.value_bits)

    # -- masking and decryption ------------------------------------------------------
    def add_random_mask(self, sigma_bits, *, n_jobs=None, pool=None):
        """Mask every slot, for decryption by the key owner; re-randomised.

        Returns
        -------
        masked : PackedRows
        mask : ndarray of object, shape (rows, width)
            Keep it for :func:`unpack_masked`.
        """
        sigma_bits = _check_int(sigma_bits, "sigma_bits")
        if sigma_bits < _MIN_SIGMA_BITS:
            raise ValueError(f"sigma_bits must be at least {_MIN_SIGMA_BITS}")
        bits = self.value_bits + sigma_bits
        # |v + r| < 2**bits + 2**value_bits <= 2**(bits + 1)
        self._check_room(bits + 1)
        rows, width = self.shape
        mask = _obj_from_list([secrets.randbits(bits) for _ in range(rows * width)],
                              (rows, width))
        packed = _pack(mask, width, self.slot_bits, self.n_slots)
        masked = self.enc._add_encoded(packed).obfuscate(n_jobs=n_jobs, pool=pool)
        return self._new(masked, bits + 1), mask

    def decrypt_slots(self, private_key, *, n_jobs=None):
        """Decrypt to the signed slot integers, shape (rows, width).

        Raises
        ------
        OverflowError
            If a slot exceeds the declared ``value_bits`` (a sender's
            overflow or a tampered plaintext).
        """
        ints = self.enc.decrypt_encoded(private_key, n_jobs=n_jobs)
        slots = unpack_ints(ints, self.width, self.slot_bits, self.n_slots)
        if _max_bits(slots) > self.value_bits:
            raise OverflowError("a decrypted slot exceeds its declared bound: overflow or "
                                "tampering")
        return slots

    def decrypt(self, private_key, *, n_jobs=None):
        """Decrypt and decode to a float64 array of shape (rows, width)."""
        slots = self.decrypt_slots(private_key, n_jobs=n_jobs)
        return _ints_to_float(slots.ravel().tolist(), self.scale_bits).reshape(self.shape)

    # -- wire ----------------------------------------------------------------------
    def to_wire(self):
        return {"kind": _WIRE_KIND, "ciphertexts": self.enc.to_wire(), "width": self.width,
                "slot_bits": self.slot_bits, "value_bits": self.value_bits}

    @classmethod
    def from_wire(cls, public_key, obj, *, n_jobs=None):
        """Parse and check (layout against the key, ciphertexts in ``Z*_{n^2}``)."""
        if not isinstance(obj, dict) or obj.get("kind") != _WIRE_KIND:
            raise ValueError("not a packed-rows message")
        width = _check_int(obj.get("width"), "width")
        slot_bits = _check_int(obj.get("slot_bits"), "slot_bits")
        value_bits = _check_int(obj.get("value_bits"), "value_bits")
        if width < 1 or not 2 <= slot_bits <= 1 << 16 or not 0 <= value_bits < slot_bits:
            raise ValueError("packed-rows layout out of range")
        enc = EncryptedArray.from_wire(public_key, obj.get("ciphertexts"), n_jobs=n_jobs)
        return cls(enc, width, slot_bits, value_bits)

    @staticmethod
    def is_wire(obj):
        return isinstance(obj, dict) and obj.get("kind") == _WIRE_KIND
