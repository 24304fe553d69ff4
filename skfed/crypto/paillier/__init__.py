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

Layout
------
One module per concept; every name is re-exported here, so
``from skfed.crypto.paillier import X`` works for all of them:

* :mod:`~skfed.crypto.paillier.keys`: key generation, the key-size policy,
  public keys on the wire;
* :mod:`~skfed.crypto.paillier.encoding`: fixed-point encoding and
  :func:`decode_masked`;
* :mod:`~skfed.crypto.paillier.tables`: per-key contexts and the DJN
  randomiser's fixed-base tables;
* :mod:`~skfed.crypto.paillier.parallel`: chunking over joblib workers and
  the worker functions (``PARALLEL_MIN_SECONDS`` is read from this package);
* :mod:`~skfed.crypto.paillier.obfuscators`: :class:`ObfuscatorPool`;
* :mod:`~skfed.crypto.paillier.ciphertexts`: raw ciphertext vectors
  (encrypting integers, parsing wire blobs);
* :mod:`~skfed.crypto.paillier.encrypted_array`: :class:`EncryptedArray`;
* :mod:`~skfed.crypto.paillier.packed`: :class:`PackedCiphertexts` and
  :func:`pack_encrypt`.

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

from .._multiexp import MAX_EXPONENT_BITS  # noqa: F401 - imported from here before the split
from .ciphertexts import (  # noqa: F401 - re-exported
    _check_header,
    _decrypt_seconds,
    _encrypt_ints,
    _invert_seconds,
    _parse_ciphertexts,
    _plain_bits,
)
from .encoding import (  # noqa: F401 - re-exported
    _MIN_SIGMA_BITS,
    DEFAULT_PLAIN_PRECISION_BITS,
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
    _trailing_zeros,
    decode_masked,
)
from .encrypted_array import (  # noqa: F401 - re-exported
    EncryptedArray,
)
from .keys import (  # noqa: F401 - re-exported
    _ABSOLUTE_MIN_KEY_BITS,
    _MAX_KEY_BITS,
    _SMALL_PRIMES_PRODUCT,
    _WIRE_SCHEME,
    ALLOW_INSECURE_ENV,
    DEFAULT_KEY_BITS,
    _insecure_allowed,
    check_key_size,
    generate_keypair,
    public_key_from_wire,
    public_key_to_wire,
)
from .obfuscators import (  # noqa: F401 - re-exported
    ObfuscatorPool,
    _check_pool,
    _Factors,
    _generate_obfuscators,
    _obfuscator_worker,
)
from .packed import (  # noqa: F401 - re-exported
    PackedCiphertexts,
    _slots,
    pack_encrypt,
)
from .parallel import (  # noqa: F401 - re-exported
    PARALLEL_MIN_SECONDS,
    _decrypt_worker,
    _elementwise,
    _encrypt_worker,
    _from_blob,
    _invert,
    _invert_worker,
    _multiexp_parallel,
    _multiexp_worker,
    _n_chunks,
    _obfuscate_worker,
    _powmod,
    _powmod_worker,
    _release_gil,
    _run,
    _split,
    _to_blob,
)
from .tables import (  # noqa: F401 - re-exported
    _CONTEXTS,
    _CONTEXTS_LOCK,
    _MAX_CONTEXTS,
    _OWNER_CONTEXTS,
    DJN_WINDOW_LARGE,
    DJN_WINDOW_SMALL,
    _context,
    _KeyContext,
    _owner_context,
    _OwnerKeyContext,
    _random_digits,
)

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

