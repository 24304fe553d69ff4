"""Packed ciphertexts: many small non-negative integers per ciphertext (secure sums)."""

import numpy as np

from .ciphertexts import (
    _check_header,
    _decrypt_seconds,
    _encrypt_ints,
    _parse_ciphertexts,
)
from .encoding import (
    _check_int,
    _obj,
    _obj_from_list,
)
from .keys import (
    _WIRE_SCHEME,
    check_key_size,
)
from .parallel import (
    _decrypt_worker,
    _elementwise,
    _obfuscate_worker,
)
from .tables import (
    _context,
)


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
    >>> from skfed.crypto.paillier import generate_keypair, pack_encrypt
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
