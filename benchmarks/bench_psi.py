"""Encrypted sample alignment: skfed's X25519 DH-PSI against openmined-psi.

Two parties hold ``n`` string IDs each, half of them shared (``--overlap``).
We time :func:`skfed.align_samples` (the full protocol through the runtime:
hashing, two blindings per ID at each party, wire encoding, intersection,
returning the positions to both parties) and, in the same run on the same
IDs, OpenMined's ``openmined-psi`` (a C++ ECDH-PSI on P-256, raw-set mode:
the server's setup message, the client's request, the server's response and
the client's intersection). openmined-psi runs on one core; skfed spreads
each party's blinding over ``--n-jobs`` joblib workers.

openmined-psi is a benchmark-only dependency, not one of skfed's::

    .venv/bin/pip install openmined-psi

Without it the benchmark reports skfed's figures alone.

Usage::

    .venv/bin/python benchmarks/bench_psi.py            # 100,000 x 100,000
    .venv/bin/python benchmarks/bench_psi.py --quick    # 10,000 x 10,000

Target (issue 4): skfed at most half of openmined-psi's time.
"""

import argparse
import os
import time

import numpy as np
from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed

from skfed import align_samples


def make_ids(n, overlap, seed=0):
    """Two shuffled sets of ``n`` string IDs sharing ``overlap * n`` of them."""
    rng = np.random.default_rng(seed)
    n_shared = int(round(overlap * n))
    pool = [f"customer-{i:09d}" for i in rng.permutation(2 * n - n_shared)]
    a = pool[:n]
    b = pool[n - n_shared: 2 * n - n_shared]
    return ([a[i] for i in rng.permutation(n)], [b[i] for i in rng.permutation(n)],
            n_shared)


def cpu_seconds():
    """CPU time of this process and its live children (the joblib workers).

    On a shared machine the wall-clock ratio moves with other people's load;
    the CPU-time ratio measures the work each implementation does. Children
    are read from /proc (Linux); elsewhere only this process counts.
    """
    total = time.process_time()
    me, tick = str(os.getpid()), os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def _warm_worker(_):
    # Import skfed in the worker and hold it briefly so every worker gets a task.
    import skfed.crypto.psi  # noqa: F401

    time.sleep(0.3)


def run_skfed(a, b, n_jobs):
    cpu, start = cpu_seconds(), time.perf_counter()
    idx, transcript = align_samples({"guest": a, "host": b}, n_jobs=n_jobs,
                                    return_transcript=True)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return seconds, cpu, len(idx["guest"]), transcript.total_bytes()


def run_openmined(a, b):
    try:
        from private_set_intersection.python import DataStructure, client, server
    except ImportError:
        return None
    cpu, start = cpu_seconds(), time.perf_counter()
    c = client.CreateWithNewKey(True)
    s = server.CreateWithNewKey(True)
    setup = s.CreateSetupMessage(1e-9, len(a), b, DataStructure.RAW)
    request = c.CreateRequest(a)
    response = s.ProcessRequest(request)
    found = c.GetIntersection(setup, response)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    nbytes = len(setup.SerializeToString()) + len(request.SerializeToString()) \
        + len(response.SerializeToString())
    return seconds, cpu, len(found), nbytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="IDs per party")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="10,000 IDs per party")
    parser.add_argument("--n-jobs", type=int, default=-1,
                        help="joblib workers per party for the blinding (default: all cores)")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.n

    a, b, n_shared = make_ids(n, args.overlap)
    print(f"PSI benchmark: {n:,} x {n:,} string IDs, {n_shared:,} shared; "
          f"{os.cpu_count()} CPU(s), n_jobs={args.n_jobs}, "
          f"load average {os.getloadavg()[0]:.1f} (others' work slows both sides alike)")

    if effective_n_jobs(args.n_jobs) > 1:
        # Start the worker pool once, as a long-running party process would.
        start = time.perf_counter()
        Parallel(n_jobs=args.n_jobs)(delayed(_warm_worker)(i)
                                     for i in range(2 * effective_n_jobs(args.n_jobs)))
        print(f"  worker pool start-up (not counted below): "
              f"{time.perf_counter() - start:.2f} s")

    seconds, cpu, found, nbytes = run_skfed(a, b, args.n_jobs)
    assert found == n_shared, (found, n_shared)
    print(f"  skfed align_samples (X25519):  {seconds:7.2f} s wall, {cpu:7.2f} s CPU"
          f"  ({seconds / (2 * n) * 1e6:6.1f} us/ID wall, {cpu / (2 * n) * 1e6:6.1f} us/ID CPU;"
          f" {nbytes / 2**20:.1f} MiB on the wire)")

    om = run_openmined(a, b)
    if om is None:
        print("  openmined-psi: not installed (`.venv/bin/pip install openmined-psi` to "
              "compare); calibration on a similar machine: ~34 s for 100k x 100k")
        return
    om_seconds, om_cpu, om_found, om_bytes = om
    assert om_found == n_shared, (om_found, n_shared)
    print(f"  openmined-psi (P-256, raw):    {om_seconds:7.2f} s wall, {om_cpu:7.2f} s CPU"
          f"  ({om_seconds / (2 * n) * 1e6:6.1f} us/ID wall, "
          f"{om_cpu / (2 * n) * 1e6:6.1f} us/ID CPU;"
          f" {om_bytes / 2**20:.1f} MiB)")
    ratio = seconds / om_seconds
    verdict = "meets" if ratio <= 0.5 else "misses"
    print(f"  skfed / openmined-psi: wall {ratio:.2f} ({verdict} the target <= 0.50), "
          f"CPU {cpu / om_cpu:.2f}")


if __name__ == "__main__":
    main()
