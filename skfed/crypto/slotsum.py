"""Group sums of slot-packed Paillier ciphertexts, and repacking sums for decryption.

The key owner encrypts a row of small signed integers as one plaintext
``sum_s v_s 2**(b s)`` (balanced digits, as in :mod:`skfed.crypto.packing`).
Another party then

* adds rows by groups (:func:`group_products`: one multiplication modulo
  ``n**2`` per row), every slot at once;
* subtracts one group sum from another (:func:`divide`);
* packs many such sums into one ciphertext before sending them back
  (:func:`repack`): Horner's rule, ``acc**(2**(b k)) * c``, costs ``b k``
  squarings per packed sum of ``k`` slots and saves a decryption (about
  as costly as ``b k = 600`` squarings at 2048 bits) for every sum after
  the first of each ciphertext;
* re-randomises what it sends with its own randomisers.

The key owner decrypts each packed ciphertext once and splits it into the
sums (:func:`unpack`). Slot widths are the caller's responsibility: every
slot of every sum must stay below ``2**(b - 1)`` in magnitude, and the whole
packed integer below ``n / 3`` (see :func:`slots_per_ciphertext`).

Nothing here knows what the integers mean.
"""

import gmpy2
import numpy as np

from .packing import _pack, slots_per_ciphertext, unpack_ints
from .paillier import EncryptedArray, _check_pool, _context, _obj_from_list, _release_gil

__all__ = ["slots_per_ciphertext", "encrypt_rows", "group_products", "multi_group_products",
           "divide", "repack", "unpack"]


def encrypt_rows(public_key, ints, slot_bits, *, pool):
    """Encrypt each row of signed integers packed into as few plaintexts as fit.

    Parameters
    ----------
    public_key : phe.paillier.PaillierPublicKey
    ints : array-like of int, shape (n_rows, width)
        Every value must satisfy ``|v| < 2**(slot_bits - 2)``.
    slot_bits : int
    pool : ObfuscatorPool
        Randomisers (one per ciphertext); a key owner's pool
        (``private_key=...``) computes them by the CRT.

    Returns
    -------
    EncryptedArray of shape (n_rows, chunks), scale 0
    """
    ctx = _context(public_key.n)
    _check_pool(pool, ctx, "djn")
    ints = np.asarray(ints, dtype=object)
    if ints.ndim != 2:
        raise ValueError(f"need a 2-D array of integers, got shape {ints.shape}")
    limit = 1 << (int(slot_bits) - 2)
    if ints.size and max(abs(int(v)) for v in ints.ravel().tolist()) >= limit:
        raise OverflowError(f"a value does not fit a {slot_bits}-bit slot")
    n_slots = slots_per_ciphertext(ctx.n_bits, slot_bits)
    packed = _pack(ints, ints.shape[1], int(slot_bits), n_slots)
    _release_gil()
    plain = _obj_from_list([gmpy2.mpz(int(v) % ctx.n) for v in packed.ravel().tolist()])
    c = (plain * ctx.n + 1) * pool.take(plain.size) % ctx.nsquare
    return EncryptedArray(public_key, c.reshape(packed.shape), 0)


def group_products(ciphertexts, groups, n_groups, nsquare):
    """Per-group homomorphic sums: the product of the ciphertexts of each group.

    Parameters
    ----------
    ciphertexts : sequence of gmpy2.mpz
    groups : ndarray of int, same length
        Group of each ciphertext, in ``[0, n_groups)``.
    n_groups : int
    nsquare : gmpy2.mpz

    Returns
    -------
    list of gmpy2.mpz
        An empty group's sum is ``1`` (zero with no randomness: re-randomise
        before sending it).
    """
    acc = [None] * n_groups
    for c, k in zip(ciphertexts, groups.tolist()):
        a = acc[k]
        acc[k] = c if a is None else a * c % nsquare
    one = gmpy2.mpz(1)
    return [one if a is None else a for a in acc]


def multi_group_products(ciphertexts, groups, n_groups, nsquare, *, max_ratio=0.5):
    """Per-group sums under several groupings of the same ciphertexts at once.

    Equal to ``[group_products(ciphertexts, groups[:, j], n_groups[j], nsquare)
    for j in ...]``, integer for integer (multiplication modulo ``n**2`` is
    associative and commutative), with fewer multiplications when groupings
    are correlated: ciphertexts are first multiplied into the cells of a
    joint grouping (``m - c`` multiplications for ``m`` ciphertexts in ``c``
    non-empty cells), and each grouping's sums come from those cells. Two
    groupings of ``m`` rows then cost ``m + c`` multiplications instead of
    ``2 m``. Joint groupings nest (a binary tree over the groupings), merged
    greedily while the merged grouping has fewer than ``max_ratio * m``
    non-empty cells.

    Parameters
    ----------
    ciphertexts : sequence of gmpy2.mpz, length m
    groups : ndarray of int, shape (m, k)
        Column ``j``: the group of each ciphertext under grouping ``j``.
    n_groups : sequence of int, length k
    nsquare : gmpy2.mpz
    max_ratio : float, default=0.5
        Merge two groupings only below this many cells per ciphertext.

    Returns
    -------
    list of k lists of gmpy2.mpz
        An empty group's sum is ``1``, as in :func:`group_products`.
    """
    groups = np.asarray(groups)
    m, k = groups.shape
    one = gmpy2.mpz(1)
    if m == 0:
        return [[one] * int(g) for g in n_groups]
    roots = [_Grouping.leaf(groups[:, j], j) for j in range(k)]
    _merge_groupings(roots, m, max_ratio)
    out = [None] * k
    for root in roots:
        cells = group_products(ciphertexts, root.ids, root.count, nsquare)
        root.collect(cells, nsquare, out)
    result = []
    for j in range(k):
        values, cells = out[j]
        hist = [one] * int(n_groups[j])
        for v, c in zip(values.tolist(), cells):
            hist[v] = c
        result.append(hist)
    return result


class _Grouping:
    """A (joint) grouping of the rows: dense cell ids, and how its parts read them."""

    __slots__ = ("ids", "count", "parts", "column", "values")

    @classmethod
    def leaf(cls, labels, column):
        g = cls()
        g.values, g.ids = np.unique(labels, return_inverse=True)
        g.ids = g.ids.ravel()
        g.count, g.parts, g.column = g.values.size, (), column
        return g

    @classmethod
    def joint(cls, a, b, cells, ids):
        g = cls()
        g.ids, g.count, g.column, g.values = ids, cells.size, None, None
        # Cell id -> the part's cell id.
        g.parts = ((a, cells // b.count), (b, cells % b.count))
        return g

    def collect(self, cells, nsquare, out):
        if self.column is not None:
            out[self.column] = (self.values, cells)
            return
        for part, of_cell in self.parts:
            part.collect(group_products(cells, of_cell, part.count, nsquare), nsquare, out)


def _joint_cells(a, b):
    code = a.ids.astype(np.int64) * b.count + b.ids
    return np.unique(code, return_inverse=True)


# Planning counts the joint cells of pairs of groupings: of every pair for up
# to this many neighbours in column order (all pairs below that many
# groupings), so that it stays linear in the number of groupings.
_NEIGHBOURS = 12


# Below this many ciphertexts, counting cells costs more than it saves.
_MIN_ROWS_TO_MERGE = 32


def _merge_groupings(roots, m, max_ratio):
    # Greedy agglomeration: merging two trees saves ``m - c`` multiplications
    # (``c``: cells of the merged grouping), so merge the pair with fewest cells.
    if len(roots) < 2 or m < _MIN_ROWS_TO_MERGE:
        return
    limit = max_ratio * m
    pos = {id(r): i for i, r in enumerate(roots)}
    alive = {id(r): r for r in roots}
    counts = {}

    def count(a, b):
        if a.count * b.count <= 4 * m:
            c = np.count_nonzero(np.bincount(a.ids * b.count + b.ids,
                                             minlength=a.count * b.count))
        elif max(a.count, b.count) >= limit:
            return
        else:
            c = np.unique(a.ids.astype(np.int64) * b.count + b.ids).size
        if c < limit:
            counts[(id(a), id(b))] = c

    for i, a in enumerate(roots):
        for b in roots[i + 1:i + 1 + _NEIGHBOURS]:
            count(a, b)
    while counts:
        (ka, kb), _ = min(counts.items(), key=lambda item: item[1])
        a, b = alive.pop(ka), alive.pop(kb)
        counts = {k: c for k, c in counts.items() if not ({ka, kb} & set(k))}
        cells, ids = _joint_cells(a, b)
        g = _Grouping.joint(a, b, cells, ids.ravel())
        pos[id(g)] = min(pos[ka], pos[kb])
        for other in alive.values():
            if abs(pos[id(other)] - pos[id(g)]) <= _NEIGHBOURS:
                count(g, other)
        alive[id(g)] = g
    roots[:] = list(alive.values())


def divide(a, b, nsquare):
    """Homomorphic differences ``a - b``, elementwise, one inversion for the lot.

    Montgomery's trick: the inverses of all of ``b`` from one modular
    inversion and three multiplications per element.
    """
    b = list(b)
    if not b:
        return []
    prefix = [b[0]]
    for x in b[1:]:
        prefix.append(prefix[-1] * x % nsquare)
    inv = gmpy2.invert(prefix[-1], nsquare)
    out = [None] * len(b)
    for i in range(len(b) - 1, 0, -1):
        out[i] = a[i] * (inv * prefix[i - 1] % nsquare) % nsquare
        inv = inv * b[i] % nsquare
    out[0] = a[0] * inv % nsquare
    return out


def repack(ciphertexts, item_slots, slot_bits, n_bits, nsquare):
    """Pack sums of ``item_slots`` slots each, as many per ciphertext as fit.

    Item ``j`` of a packed ciphertext occupies slots ``j * item_slots`` on
    (the first item of the sequence lowest).

    Returns
    -------
    packed : list of gmpy2.mpz
    per_ciphertext : int
        Items per packed ciphertext (the last one may hold fewer).
    """
    per = slots_per_ciphertext(n_bits, slot_bits) // int(item_slots)
    if per < 1:
        raise ValueError(f"an item of {item_slots} slots of {slot_bits} bits does not fit "
                         f"a {n_bits}-bit plaintext")
    shift = gmpy2.mpz(1) << (int(slot_bits) * int(item_slots))
    out = []
    for start in range(0, len(ciphertexts), per):
        group = ciphertexts[start:start + per]
        acc = group[-1]
        for c in reversed(group[:-1]):
            acc = gmpy2.powmod(acc, shift, nsquare) * c % nsquare
        out.append(acc)
    return out, per


def unpack(ints, n_items, item_slots, slot_bits, n_bits, per_ciphertext):
    """Split decrypted packed integers back into items.

    Returns
    -------
    ndarray of object (Python ints), shape (n_items, item_slots)
    """
    n_slots = slots_per_ciphertext(n_bits, slot_bits)
    out = np.empty((n_items, item_slots), dtype=object)
    ints = list(ints)
    expected = -(-n_items // per_ciphertext) if n_items else 0
    if len(ints) != expected:
        raise ValueError(f"{len(ints)} packed integers for {n_items} items, expected {expected}")
    for k, P in enumerate(ints):
        count = min(per_ciphertext, n_items - k * per_ciphertext)
        slots = unpack_ints(np.asarray([[P]], dtype=object), count * item_slots,
                            int(slot_bits), n_slots)
        out[k * per_ciphertext:k * per_ciphertext + count] = slots.reshape(count, item_slots)
    return out
