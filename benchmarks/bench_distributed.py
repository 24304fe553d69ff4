"""The vertical benchmark with one OS process per party, gRPC and mutual TLS.

Usage::

    python benchmarks/bench_distributed.py            # 2048-bit keys, ~2 minutes
    python benchmarks/bench_distributed.py --quick    # 1024-bit keys, fewer epochs

FATE's standard vertical task (breast cancer, 569 rows, 10 guest / 20 host
features, full batch, ``VerticalLogisticRegression``) is fitted twice:

* in-process (``LocalRuntime``: three threads, the wire format in memory);
* as three processes on 127.0.0.1 started with ``python -m skfed party``
  (guest, host, arbiter), talking gRPC with mutual TLS.

Seconds per epoch are ``(fit(max_iter=k+1) - fit(max_iter=1)) / k`` at the
guest, so key generation, process start-up and the TLS handshakes are not
counted; each fit runs ``--repeat`` times and the fastest counts (key
generation time and the other users of a shared machine vary a lot). Bytes
are the wire-format payloads each party sent and received (TLS and HTTP/2
framing add a little on top). The two runs must produce the
same coefficients, which the script checks.

Wall-clock numbers on a shared machine mean little alone; the load average is
printed and the ratio is measured in the same run.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.preprocessing import scale  # noqa: E402

from skfed import VerticalLogisticRegression, VerticalTopology  # noqa: E402
from skfed.runtime.certs import make_test_pki  # noqa: E402
from skfed.runtime.grpc import free_local_ports  # noqa: E402

PARTIES = ("arbiter", "guest", "host")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import load  # noqa: E402


def write_csv(path, header, columns):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in zip(*columns):
            w.writerow([repr(float(v)) for v in row])


def deployment(directory, params, pki):
    ports = free_local_ports(len(PARTIES))
    config = {
        "estimator": "VerticalLogisticRegression",
        "params": params,
        "topology": {"label_party": "guest", "target": "y"},
        "transport": {"cafile": pki["cafile"], "connect_timeout": 60},
        "parties": {p: {"address": f"127.0.0.1:{port}", **pki[p]}
                    for p, port in zip(PARTIES, ports)},
    }
    config["parties"]["guest"]["columns"] = [f"g{i}" for i in range(10)]
    config["parties"]["host"]["columns"] = [f"h{i}" for i in range(20)]
    path = os.path.join(directory, "federation.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    return path


def run_processes(directory, params, pki):
    config = deployment(directory, params, pki)
    env = dict(os.environ, SKFED_ALLOW_INSECURE_KEYS="1", PYTHONPATH=ROOT)
    procs = {}
    for p in PARTIES:
        cmd = [sys.executable, "-m", "skfed", "party", "--role", p, "--config", config,
               "--output", os.path.join(directory, f"{p}.json")]
        if p != "arbiter":
            cmd += ["--data", os.path.join(directory, f"{p}.csv")]
        procs[p] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
    for p, proc in procs.items():
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{p} failed:\n{out}\n{err}")
    out = {}
    for p in PARTIES:
        with open(os.path.join(directory, f"{p}.json")) as f:
            out[p] = json.load(f)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--key-bits", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    bits = args.key_bits or (1024 if args.quick else 2048)
    k = 2 if args.quick else 10
    repeat = args.repeat or (1 if args.quick else 2)
    os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1" if bits < 2048 else "0")
    print(f"skfed distributed benchmark: breast cancer, 569 rows, 10 / 20 features, "
          f"{bits}-bit keys, {load()}")

    X, y = load_breast_cancer(return_X_y=True)
    X = scale(X)
    topo = VerticalTopology({"guest": list(range(10)), "host": list(range(10, 30))},
                            label_party="guest")
    params = {"tol": None, "key_size": bits, "random_state": 0}

    # -- in-process -------------------------------------------------------------
    local = {}
    for m in (1, k + 1):
        for _ in range(repeat):
            est = VerticalLogisticRegression(topo, max_iter=m, **params)
            t = time.perf_counter()
            est.fit(X, y)
            seconds = time.perf_counter() - t
            if m not in local or seconds < local[m][0]:
                local[m] = (seconds, est)
    per_local = (local[k + 1][0] - local[1][0]) / k

    # -- three processes, mTLS on loopback ------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(os.path.join(tmp, "pki"), PARTIES)
        pki = {p: ({"certfile": pki[p]["certfile"], "keyfile": pki[p]["keyfile"]}
                   if p in PARTIES else pki[p]) for p in pki}
        write_csv(os.path.join(tmp, "guest.csv"), [f"g{i}" for i in range(10)] + ["y"],
                  [*X[:, :10].T, y])
        write_csv(os.path.join(tmp, "host.csv"), [f"h{i}" for i in range(20)], X[:, 10:].T)
        remote = {}
        for m in (1, k + 1):
            for _ in range(repeat):
                out = run_processes(tmp, dict(params, max_iter=m), pki)
                if (m not in remote
                        or out["guest"]["fit_seconds"] < remote[m]["guest"]["fit_seconds"]):
                    remote[m] = out
    per_remote = (remote[k + 1]["guest"]["fit_seconds"]
                  - remote[1]["guest"]["fit_seconds"]) / k

    ref = local[k + 1][1]
    got = remote[k + 1]
    same = (np.array_equal(got["guest"]["coef_by_party_"]["guest"],
                           ref.coef_by_party_["guest"])
            and np.array_equal(got["host"]["coef_by_party_"]["host"],
                               ref.coef_by_party_["host"]))

    print(f"\nseconds per epoch (from fits of 1 and {k + 1} epochs, best of {repeat})")
    print(f"   fits in-process:  {local[1][0]:.2f} s and {local[k + 1][0]:.2f} s; processes: "
          f"{remote[1]['guest']['fit_seconds']:.2f} s and "
          f"{remote[k + 1]['guest']['fit_seconds']:.2f} s")
    print(f"   in-process (threads):           {per_local:7.3f} s")
    print(f"   3 processes, gRPC + mTLS:       {per_remote:7.3f} s   "
          f"({per_remote / per_local:.2f}x the in-process time)")
    print(f"   same coefficients in both runs: {same}")
    print(f"\nbytes per party over a {k + 1}-epoch fit (wire-format payloads)")
    print(f"   {'party':<8} {'sent':>12} {'received':>12}   in-process sent")
    t = ref.transcript_
    for p in PARTIES:
        print(f"   {p:<8} {got[p]['bytes_sent']:>12,} {got[p]['bytes_received']:>12,}   "
              f"{t.total_bytes(sender=p):>12,}")
    per_epoch = {p: (got[p]["bytes_sent"] - remote[1][p]["bytes_sent"]) / k for p in PARTIES}
    print("   per epoch sent: " + ", ".join(f"{p} {v / 1e3:.1f} kB"
                                          for p, v in per_epoch.items()))
    print("   (the distributed run adds one set-up message per data party: "
          "hyper-parameters and row count for the arbiter to check)")
    if not same:
        raise SystemExit("the distributed fit differs from the in-process fit")


if __name__ == "__main__":
    main()
