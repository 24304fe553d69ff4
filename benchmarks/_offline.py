"""Benchmark helper: fits whose randomisers were precomputed before they start.

Encryption randomisers do not depend on the data, so a party can compute them
before training (offline) and spend one multiplication per encryption during
it (online). The estimators do not expose such an offline phase; this helper
emulates it for benchmarks only:

1. :func:`recording_pools` runs a normal fit and records how many randomisers
   each party's :class:`~skfed.crypto.paillier.ObfuscatorPool` handed out
   (pools are keyed by the party's thread name and their creation order,
   which the protocol fixes);
2. :func:`precompute` computes exactly that many for prepared key pairs,
   timed: that is the offline cost;
3. :func:`precomputed` runs the same fit with the prepared keys and the
   stocked pools (background refill off, so nothing is precomputed inside the
   timed fit; a shortfall would be computed on the spot and counted).

Key generation is excluded from the online fits, and the per-process tables
for the prepared keys are warm (both are part of the offline cost).
"""

import contextlib
import threading
import time

from skfed.crypto import paillier
from skfed.transfer import roles as transfer_roles


def _thread():
    return threading.current_thread().name


@contextlib.contextmanager
def _patched_pool_init(hook):
    init = paillier.ObfuscatorPool.__init__
    local = threading.local()

    def patched(self, public_key, **kwargs):
        init(self, public_key, **kwargs)
        index = getattr(local, "index", 0)
        local.index = index + 1
        hook((_thread(), index), self)

    paillier.ObfuscatorPool.__init__ = patched
    try:
        yield
    finally:
        paillier.ObfuscatorPool.__init__ = init


@contextlib.contextmanager
def recording_pools():
    """Record ``{(thread name, pool index): n_taken}`` of the pools created inside."""
    pools, demands = [], {}
    with _patched_pool_init(lambda key, pool: pools.append((key, pool))):
        yield demands
    for key, pool in pools:
        demands[key] = demands.get(key, 0) + pool.n_taken


def precompute(demands, key_of, n_jobs):
    """Randomisers for each recorded pool; returns ``(stock, seconds)``.

    ``key_of(thread name, index)`` names the public key that pool will hold.
    """
    stock = {}
    start = time.perf_counter()
    for (thread, index), count in demands.items():
        pk = key_of(thread, index)
        scratch = paillier.ObfuscatorPool(pk, n_jobs=n_jobs, background=False)
        scratch.fill(count)
        stock[thread, index] = (int(pk.n), list(scratch._stock))
    return stock, time.perf_counter() - start


@contextlib.contextmanager
def precomputed(keys_by_thread, stock):
    """Run fits with prepared key pairs and pools stocked from ``stock`` (consumed).

    Yields the list of pools created inside, so the caller can check that
    none missed (``n_missed``: randomisers computed on the spot).
    """
    pools = []

    def keygen(n_length=2048):
        return keys_by_thread[_thread()]

    def stock_pool(key, pool):
        n, values = stock.pop(key, (int(pool.public_key.n), []))
        if n != int(pool.public_key.n):
            raise RuntimeError(f"precomputed randomisers for {key} belong to another key")
        pool.background = False
        pool._stock.extend(values)
        pool.n_generated += len(values)
        pools.append(pool)

    old = paillier.generate_keypair, transfer_roles.generate_keypair
    paillier.generate_keypair = transfer_roles.generate_keypair = keygen
    try:
        with _patched_pool_init(stock_pool):
            yield pools
    finally:
        paillier.generate_keypair, transfer_roles.generate_keypair = old
