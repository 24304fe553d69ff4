"""Pairwise masks of secure aggregation against their floor, measured in the same run.

One client of five masks a vector per round (:meth:`MaskingClient.mask`,
four peers): a boosting round's upload (76,800 words: 3 nodes x 2 words x
50 columns x 256 bins) and a small one (500 words). Two baselines, timed
alternately with it:

* the floor: the same four AES-256-CTR keystreams under fixed keys, added
  into the vector (no key derivation, no bookkeeping);
* the earlier key schedule (domain v2): an HKDF per round and peer, the
  stream from counter zero (the current one derives a key per pair and
  session and uses the round as the CTR nonce).

    python benchmarks/bench_masks.py [--rounds 2000]
"""

import argparse
import struct
import time

import numpy as np

from skfed.crypto.secagg import MaskingClient, _hkdf, _pair_info, keystream, new_session_id

try:
    from _machine import load
except ImportError:  # run from elsewhere than benchmarks/
    from benchmarks._machine import load


def _clients():
    cs = [MaskingClient(f"c{i}") for i in range(5)]
    keys = {c.name: c.public_bytes() for c in cs}
    session = new_session_id()
    for c in cs:
        c.agree(keys, session)
    return cs[0]


def _floor(keys, x, buf):
    for key in keys:
        x += keystream(key, x.size, buf)


def _per_round_keys(client, x, r, buf):
    for peer in client.peers:
        key = _hkdf(client._pair_secrets[peer], client._session,
                    _pair_info("mask", client.name, peer, struct.pack(">Q", r)))
        m = keystream(key, x.size, buf)
        if client.name < peer:
            x += m
        else:
            x -= m


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 rounds")
    args = parser.parse_args()
    rounds = 200 if args.quick else args.rounds
    client = _clients()
    keys = [bytes([i]) * 32 for i in range(4)]
    print(f"pairwise masks, one client of 5 (4 peers), {rounds} rounds, median of 3 passes")
    for size in (76_800, 500):
        x = np.zeros(size, dtype=np.uint64)
        buf = np.empty(size + 2, dtype=np.uint64)
        times = {"mask": [], "floor": [], "v2 schedule": []}
        for _ in range(3):
            for name in times:
                start = time.perf_counter()
                for r in range(rounds):
                    if name == "mask":
                        client.mask(x, r, inplace=True)
                    elif name == "floor":
                        _floor(keys, x, buf)
                    else:
                        _per_round_keys(client, x, r, buf)
                times[name].append((time.perf_counter() - start) / rounds * 1e6)
        t = {k: float(np.median(v)) for k, v in times.items()}
        print(f"  {size:6d} words: mask {t['mask']:7.1f} us, floor {t['floor']:7.1f} us "
              f"({t['mask'] / t['floor']:.2f}x the floor), v2 per-round keys "
              f"{t['v2 schedule']:7.1f} us ({t['v2 schedule'] / t['mask']:.2f}x the mask)")
    print(f"  {load()}")


if __name__ == "__main__":
    main()
