"""Benchmark skfed's Paillier engine against naive phe+gmpy2, measured in the same run.

Usage::

    python benchmarks/bench_paillier.py            # ~1-2 minutes, 2048-bit keys
    python benchmarks/bench_paillier.py --quick    # smaller samples, ~30 s
    python benchmarks/bench_paillier.py --key-bits 3072

Prints the primitive costs that bound everything (mulmod and powmod modulo
n**2), then encryption, decryption, ``X.T @ [[d]]`` (N=10,000, d=10) and
packed secure aggregation (10,000 values x 10 clients), each as skfed with 1
and with ``--n-jobs`` workers, naive phe, and the speed-up. Naive phe is too
slow to run in full, so it is measured on a subsample and scaled linearly;
the table says so on those lines. Finally it sweeps problem sizes to show
where two workers start to pay.

It also sweeps the window of the fixed-base table behind the DJN randomiser
(build time, memory, cost per randomiser), and measures the obfuscator pool:
how fast it fills, and what an encryption costs at use time once the pool is
stocked (the randomisers were computed beforehand, and that time is not in
the "stocked" figure; it is the "pool fill" line).
"""

import argparse
import os
import secrets
import statistics
import sys
import time

import gmpy2
import numpy as np
from joblib import parallel_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skfed.crypto import paillier  # noqa: E402
from skfed.crypto._multiexp import FixedBaseTable  # noqa: E402
from skfed.crypto.paillier import (  # noqa: E402
    EncryptedArray,
    ObfuscatorPool,
    generate_keypair,
    pack_encrypt,
)


def timed(fn, repeat=1):
    """Median wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def fmt_s(t):
    if t >= 1:
        return f"{t:8.2f} s "
    if t >= 1e-3:
        return f"{t * 1e3:8.2f} ms"
    return f"{t * 1e6:8.2f} us"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    q = args.quick
    J = args.n_jobs

    print(f"skfed Paillier benchmark: {args.key_bits}-bit keys, {os.cpu_count()} CPUs, "
          f"n_jobs={J}, gmpy2 {gmpy2.version()}{' (quick)' if q else ''}")
    t, (pk, sk) = timed(lambda: generate_keypair(args.key_bits))
    print(f"key generation (phe): {fmt_s(t)}")
    n = gmpy2.mpz(pk.n)
    n2 = n * n
    rng = np.random.default_rng(0)

    # ---- primitives ---------------------------------------------------------
    xs = [gmpy2.mpz(secrets.randbelow(int(n2))) for _ in range(400)]
    t_mul, _ = timed(lambda: [a * b % n2 for a, b in zip(xs, xs[1:])], repeat=5)
    t_mul /= len(xs) - 1
    e32 = gmpy2.mpz(secrets.randbits(32) | (1 << 31))
    t_pow32, _ = timed(lambda: [gmpy2.powmod(a, e32, n2) for a in xs[:200]], repeat=3)
    t_pow32 /= 200
    t_pown, _ = timed(lambda: [gmpy2.powmod(a, n, n2) for a in xs[:20]], repeat=3)
    t_pown /= 20
    print()
    print("primitive costs (median)")
    print(f"  mulmod mod n^2                 {fmt_s(t_mul)}")
    print(f"  powmod 32-bit exponent mod n^2 {fmt_s(t_pow32)}")
    print(f"  powmod n-bit exponent mod n^2  {fmt_s(t_pown)}   (= one textbook r^n obfuscation)")

    rows = []

    # Warm the loky workers (spawn + per-process DJN table) so that the timed
    # runs measure steady state, as in a training loop.
    with parallel_config(n_jobs=J):
        old = paillier.PARALLEL_MIN_SECONDS
        paillier.PARALLEL_MIN_SECONDS = 0.0
        t_warm, _ = timed(lambda: EncryptedArray.encrypt(pk, np.zeros(4 * J), n_jobs=J))
        paillier.PARALLEL_MIN_SECONDS = old
    print(f"  worker warm-up (spawn + tables) {fmt_s(t_warm)}  (once per process pool)")

    # ---- window of the fixed-base table -----------------------------------
    print()
    ctx = paillier._context(pk.n)
    hs = ctx._base()
    n_rand = 300 if q else 1000
    mpz_bytes = sys.getsizeof(gmpy2.mpz(1) << (2 * args.key_bits - 1))
    print(f"DJN randomiser h_s^r, r of >= {ctx.exponent_bits} bits: fixed-base table window "
          f"(default: {paillier.DJN_WINDOW_SMALL}, then {paillier.DJN_WINDOW_LARGE} after "
          f"{ctx.upgrade_threshold():.0f} randomisers per process and key)")
    win_cost = {}
    for w in (8, 10, 11, 12):
        t_build, table = timed(lambda w=w: FixedBaseTable(hs, ctx.nsquare, ctx.exponent_bits, w))
        mem = table.n_windows * (1 << w) * mpz_bytes / 2**20
        t_one, _ = timed(lambda table=table: table.pow_digits(
            paillier._random_digits(n_rand, table.n_windows, table.window)), repeat=3)
        win_cost[w] = t_one / n_rand
        print(f"  w={w:2d}: {table.n_windows:3d} multiplications, build {fmt_s(t_build)}, "
              f"table {mem:6.1f} MB, {fmt_s(t_one / n_rand)} per randomiser "
              f"({win_cost[8] / win_cost[w]:.2f}x w=8)")
        del table

    # ---- encryption -------------------------------------------------------
    n_enc = 500 if q else 2000
    n_phe = 20 if q else 60
    vals = rng.normal(size=n_enc)
    t_phe, _ = timed(lambda: [pk.encrypt(float(v)) for v in vals[:n_phe]])
    t_phe /= n_phe
    # Build this process's (small) table outside the timing; one timed run
    # stays below the upgrade threshold, so the row measures the small table.
    w_small = ctx.djn_table().window
    t1, enc = timed(lambda: EncryptedArray.encrypt(pk, vals, n_jobs=1))
    tJ, _ = timed(lambda: EncryptedArray.encrypt(pk, vals, n_jobs=J))
    tfull, _ = timed(lambda: EncryptedArray.encrypt(pk, vals[: n_enc // 10], obfuscator="full"))
    rows.append((f"encrypt (DJN, w={w_small}, per value)", t1 / n_enc,
                 tJ / n_enc, t_phe, "first table of a process"))
    # Steady state of a long run: the large window (built above, not timed here).
    ctx.djn_table(upcoming=int(ctx.upgrade_threshold()) + 1)
    t1L, _ = timed(lambda: EncryptedArray.encrypt(pk, vals, n_jobs=1), repeat=3)
    rows.append((f"encrypt (DJN, w={ctx.djn_table().window}, per value)", t1L / n_enc, None,
                 t_phe, "after the upgrade"))
    rows.append(("encrypt (full r^n, per value)", tfull / (n_enc // 10), None, t_phe, ""))

    # ---- obfuscator pool ----------------------------------------------------
    pool1 = ObfuscatorPool(pk, n_jobs=1, background=False)
    poolJ = ObfuscatorPool(pk, n_jobs=J, background=False)
    t_fill1, _ = timed(lambda: pool1.fill(n_enc))
    t_fillJ, _ = timed(lambda: poolJ.fill(n_enc))
    t_use, _ = timed(lambda: EncryptedArray.encrypt(pk, vals, pool=pool1))
    assert pool1.n_missed == 0 and len(pool1) == 0
    rows.append(("pool fill (per randomiser)", t_fill1 / n_enc, t_fillJ / n_enc, t_phe,
                 "offline / while idle"))
    rows.append(("encrypt from stocked pool (per value)", t_use / n_enc, None, t_phe,
                 "online part only; fill not included"))
    poolJ.close()

    # ---- decryption -------------------------------------------------------
    n_dec = 300 if q else 1000
    sub = enc[:n_dec]
    phe_nums = sub[:n_phe].to_phe()
    t_phe_dec, _ = timed(lambda: [sk.decrypt(x) for x in phe_nums])
    t_phe_dec /= n_phe
    t1, _ = timed(lambda: sub.decrypt(sk, n_jobs=1))
    tJ, _ = timed(lambda: sub.decrypt(sk, n_jobs=J))
    rows.append(("decrypt (CRT, per value)", t1 / n_dec, tJ / n_dec, t_phe_dec, ""))

    # ---- X.T @ [[d]] -----------------------------------------------------
    N, d = 10_000, 10
    X = rng.normal(size=(N, d))
    dvec = rng.normal(size=N)
    t_setup, encd = timed(lambda: EncryptedArray.encrypt(pk, dvec, n_jobs=J))
    t1, g1 = timed(lambda: X.T @ EncryptedArray(pk, encd._c, encd.scale_bits, n_jobs=1))
    tJ, gJ = timed(lambda: X.T @ EncryptedArray(pk, encd._c, encd.scale_bits, n_jobs=J))
    with parallel_config(backend="threading"):
        tT, _ = timed(lambda: X.T @ EncryptedArray(pk, encd._c, encd.scale_bits, n_jobs=J))
    n_naive = 60 if q else 250
    # phe's own encryptions: each value gets its own exponent, as in any phe
    # pipeline, so phe's additions pay for exponent alignment.
    phe_d = [pk.encrypt(float(v)) for v in dvec[:n_naive]]

    def naive():
        # What a straightforward implementation does: one EncryptedNumber
        # product per entry and phe's own additions.
        return [sum(float(X[i, j]) * phe_d[i] for i in range(n_naive)) for j in range(d)]

    t_naive_sub, naive_out = timed(naive)
    t_naive = t_naive_sub * N / n_naive
    # Check the fast result while we are here.
    got = gJ.decrypt(sk)
    assert np.allclose(got, X.T @ dvec, rtol=1e-8, atol=1e-8), "X.T @ enc mismatch"
    assert np.allclose(
        [sk.decrypt(v) for v in naive_out], X[:n_naive].T @ dvec[:n_naive], rtol=1e-6, atol=1e-6
    )
    rows.append((f"X.T @ enc (N={N}, d={d})", t1, tJ, t_naive,
                 f"naive on {n_naive} rows x {N // n_naive}; {J} threads: {fmt_s(tT).strip()}"))

    # ---- packed secure aggregation ---------------------------------------
    dim, clients = 10_000, 10
    slot_bits = 64  # 60-bit values + 4 bits of headroom for 10 summands
    updates = [rng.integers(0, 2**60, size=dim, dtype=np.uint64) for _ in range(clients)]

    def packed_round(n_jobs):
        cts = [pack_encrypt(pk, u, slot_bits, n_jobs=n_jobs) for u in updates]
        total = sum(cts)
        return total.decrypt(sk, n_jobs=n_jobs)

    t1, agg = timed(lambda: packed_round(1))
    tJ, _ = timed(lambda: packed_round(J))
    expect = np.sum([u.astype(object) for u in updates], axis=0)
    assert (agg.astype(object) == expect).all(), "packed aggregation mismatch"
    # naive phe: one encryption per value per client, additions, one decryption per value
    e_add = pk.encrypt(1)
    t_phe_add, _ = timed(lambda: [e_add + e_add for _ in range(200)])
    t_phe_add /= 200
    t_naive_agg = clients * dim * t_phe + (clients - 1) * dim * t_phe_add + dim * t_phe_dec
    spc = (args.key_bits - 1) // slot_bits
    rows.append((f"packed agg ({dim} x {clients} clients)", t1, tJ, t_naive_agg,
                 f"{spc} slots/ct; naive from per-op costs"))

    # ---- table -----------------------------------------------------------
    print()
    header = f"{'operation':34s} {'skfed 1 job':>11s} {'skfed ' + str(J) + ' jobs':>12s} " \
             f"{'naive phe':>11s} {'speed-up':>9s}  note"
    print(header)
    print("-" * len(header))
    for name, a, b, c, note in rows:
        best = min(x for x in (a, b) if x is not None)
        bs = fmt_s(b) if b is not None else "       -   "
        print(f"{name:34s} {fmt_s(a)} {bs:>12s} {fmt_s(c)} {c / best:8.1f}x  {note}")
    print()
    prefixes = (f"encrypt (DJN, w={paillier.DJN_WINDOW_SMALL}",
                f"encrypt (DJN, w={paillier.DJN_WINDOW_LARGE}",
                "encrypt from stocked pool", "decrypt")
    small, large, stocked, dec = (next(r for r in rows if r[0].startswith(p)) for p in prefixes)
    print(f"encryptions/s: skfed {1 / small[2]:8.0f} ({J} jobs, small table), "
          f"{1 / small[1]:6.0f} (1 job), {1 / large[1]:6.0f} (1 job, large table), "
          f"{1 / stocked[1]:6.0f} (1 job, stocked pool); "
          f"phe {1 / t_phe:6.0f}")
    print(f"decryptions/s: skfed {1 / dec[2]:8.0f} ({J} jobs), "
          f"{1 / dec[1]:6.0f} (1 job); phe {1 / t_phe_dec:6.0f}")

    # ---- where do J workers start to pay? ---------------------------------
    print()
    print(f"parallel crossover (warm workers, dispatch forced): time 1 job / time {J} jobs")
    threshold = paillier.PARALLEL_MIN_SECONDS
    paillier.PARALLEL_MIN_SECONDS = 0.0
    sizes = [16, 64, 256] if q else [16, 64, 128, 256, 1024]
    line = []
    for s in sizes:
        v = vals[:s]
        a, _ = timed(lambda v=v: EncryptedArray.encrypt(pk, v, n_jobs=1), repeat=3)
        b, _ = timed(lambda v=v: EncryptedArray.encrypt(pk, v, n_jobs=J), repeat=3)
        line.append(f"{s}: {a / b:4.2f} ({fmt_s(a).strip()} serial)")
    print("  encrypt   " + ", ".join(line))
    line = []
    for s in ([200, 1000] if q else [100, 300, 1000, 3000]):
        e = EncryptedArray(pk, encd._c[:s], encd.scale_bits)
        Xs = X[:s].T
        a, _ = timed(lambda Xs=Xs, e=e: Xs @ EncryptedArray(pk, e._c, e.scale_bits, n_jobs=1), 2)
        b, _ = timed(lambda Xs=Xs, e=e: Xs @ EncryptedArray(pk, e._c, e.scale_bits, n_jobs=J), 2)
        line.append(f"{s}: {a / b:4.2f} ({fmt_s(a).strip()} serial)")
    print("  X.T @ enc " + ", ".join(line))
    print(f"  default threshold: dispatch when estimated serial work > {threshold} s")
    print(f"  (setup: encrypting the N={N} vector with {J} jobs took {fmt_s(t_setup).strip()})")


if __name__ == "__main__":
    main()
