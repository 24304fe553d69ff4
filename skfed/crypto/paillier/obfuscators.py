"""Randomisers computed ahead of use: :class:`ObfuscatorPool`."""

import contextlib
import threading
from collections import deque

from joblib import effective_n_jobs
from phe import paillier as _phe

from .encoding import (
    _check_int,
    _obj_from_list,
)
from .keys import (
    check_key_size,
)
from .parallel import (
    _from_blob,
    _n_chunks,
    _release_gil,
    _run,
    _split,
    _to_blob,
)
from .tables import (
    _context,
    _owner_context,
    _OwnerKeyContext,
)


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


_CHUNKS_PER_WORKER = 4


_MIN_CHUNK = 512


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
    if not force_parallel:
        # Several chunks per worker: a worker slowed down by another process
        # then takes fewer of them instead of holding up the whole result.
        k = max(k, min(_CHUNKS_PER_WORKER * k, count // _MIN_CHUNK))
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
    >>> from skfed.crypto.paillier import EncryptedArray, ObfuscatorPool, generate_keypair
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
        >>> from skfed.crypto.paillier import ObfuscatorPool, generate_keypair
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
