"""Chunking bulk big-integer work over joblib workers, and the worker functions."""

import gmpy2
import numpy as np
from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed

from .._multiexp import multiexp, plan
from .encoding import (
    _obj,
    _obj_from_list,
)
from .tables import (
    _context,
)

# Below this estimated wall time a job runs in the calling process: handing
# chunks to loky workers costs tens of milliseconds even when they are warm.
PARALLEL_MIN_SECONDS = 0.15


def _n_chunks(n_items, seconds, n_jobs):
    """How many chunks to cut a job of ``seconds`` estimated work into."""
    # Read through the package: ``skfed.crypto.paillier.PARALLEL_MIN_SECONDS``
    # is the documented knob (tests and benchmarks set it there).
    from . import PARALLEL_MIN_SECONDS

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


_powmod = np.frompyfunc(gmpy2.powmod, 3, 1)


_invert = np.frompyfunc(gmpy2.invert, 2, 1)


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
