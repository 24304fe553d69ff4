"""Hand-written mutation testing: does the default suite catch deliberate faults?

Each mutation is (file, exact original snippet, replacement, description,
tests). ``make mutation`` copies the repository to a temporary directory
(the working tree is never touched), applies one mutation at a time there and
runs its tests from the default suite (``-m "not slow" -x``, hypothesis seed
fixed); a mutation is *killed* when a test fails and *survives* when they all
pass. A mutation whose original snippet is no longer found (the code was
refactored) is reported *stale*, not killed, so a refactor never silently
disables it: update its snippet.

Usage::

    python tools/mutation.py                  # every mutation, this tree's tests
    python tools/mutation.py --tests-rev REV  # library of this tree, tests/ of REV
    python tools/mutation.py -k vertical      # only mutations whose id contains this
    python tools/mutation.py --list

Why hand-written rather than mutmut or cosmic-ray: those generate thousands of
operator swaps, most of them in code where any change is caught or
meaningless, and need hours on two cores; the faults that matter here are
protocol faults (a clear field inside a "ciphertext" message, a wrong
weighting, a missing mask) that no operator swap produces.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    original: str
    replacement: str
    description: str
    tests: tuple = field(default=())
    keyword: str | None = None    # optional pytest -k expression to narrow the run


H, V, T, R = ("tests/test_horizontal.py", "tests/test_vertical.py", "tests/test_transfer.py",
              "tests/test_runtime.py")
LEAKS = "tests/test_no_leaks.py"

MUTATIONS = [
    # -- the audit's seven faults (issue #13) -------------------------------------------------
    Mutation(
        "audit-1-horizontal-equal-weights", "skfed/horizontal/roles.py",
        "    weight = n_k / n_total\n",
        "    weight = 1.0 / len(clients)\n",
        "FedAvg weights clients equally instead of by sample count",
        (H,)),
    Mutation(
        "audit-2-vertical-equal-batch-loss", "skfed/vertical/roles.py",
        "out = codec.affine(enc_S, r / (2 * n), (const + r * reg / (2 * nb)) * nb / n)",
        # every batch weighs 1 / (number of batches) instead of nb / n
        "out = codec.affine(enc_S, r / (2 * nb * -(-n // (cfg.batch_size or n))), "
        "(const + r * reg / (2 * nb)) / -(-n // (cfg.batch_size or n)))",
        "the vertical epoch loss weights mini-batches equally instead of by size",
        (V,)),
    Mutation(
        "audit-3-vertical-u-in-clear", "skfed/vertical/roles.py",
        'ctx.send(cfg.label_party, "u", codec.to_wire(codec.encrypt(u)), kind=codec.kind_ct)',
        'ctx.send(cfg.label_party, "u", dict(codec.to_wire(codec.encrypt(u)), clear=u) '
        'if cfg.encryption else codec.to_wire(codec.encrypt(u)), kind=codec.kind_ct)',
        'the vertical "u" ciphertext message also carries u in clear',
        (LEAKS, V)),
    Mutation(
        "audit-4-transfer-labels-in-clear", "skfed/transfer/roles.py",
        '        ch.send_encrypted("labels", Y_ov)\n',
        '        ch.ctx.send(ch.peer, "labels", dict(EncryptedArray.encrypt(ch.pk, Y_ov)'
        '.to_wire(), clear=Y_ov) if ch.paillier else Y_ov, kind=ch.kind)\n',
        'the transfer "labels" ciphertext message also carries the label matrix in clear',
        (LEAKS, T)),
    Mutation(
        "audit-5-horizontal-paillier-clear-update", "skfed/horizontal/aggregation.py",
        'ctx.send(self.server, tag, packed.to_wire(), kind="ciphertext")',
        'ctx.send(self.server, tag, dict(packed.to_wire(), clear=values), kind="ciphertext")',
        "the horizontal Paillier upload also carries the clear update",
        (LEAKS, H)),
    Mutation(
        "audit-6-encrypted-sum-labelled-plain", "skfed/horizontal/aggregation.py",
        'ctx.send(self.key_holder, tag + "_encrypted_sum", total.to_wire(), kind="ciphertext")',
        'ctx.send(self.key_holder, tag + "_encrypted_sum", total.to_wire(), kind="plain")',
        "the server's update_encrypted_sum message is labelled plain",
        (LEAKS, H)),
    Mutation(
        "audit-7-wire-truncated-bytes-accepted", "skfed/runtime/wire.py",
        "        return bytes(reader.take(n))\n",
        "        return bytes(reader.take(min(n, len(reader.data) - reader.pos)))\n",
        "a bytes field truncated to what remains is accepted by wire.decode",
        (R,)),
    # -- wire format ------------------------------------------------------------------------
    Mutation(
        "wire-trailing-bytes", "skfed/runtime/wire.py",
        "    if reader.pos != len(reader.data):\n",
        "    if False:\n",
        "decode accepts trailing bytes after a message",
        (R,)),
    Mutation(
        "wire-negative-ints", "skfed/runtime/wire.py",
        '        return int.from_bytes(reader.take(n), "big", signed=True)\n',
        '        return int.from_bytes(reader.take(n), "big", signed=False)\n',
        "integers decode unsigned (negative ints come back wrong)",
        (R,)),
    Mutation(
        "wire-array-byte-count", "skfed/runtime/wire.py",
        "        if count * dtype.itemsize != nbytes:\n",
        "        if count * dtype.itemsize > nbytes:\n",
        "an array whose byte count exceeds its shape is not refused with WireFormatError",
        (R,)),
    Mutation(
        "wire-object-dtype", "skfed/runtime/wire.py",
        "        dtype = _DTYPES.get(bytes(reader.take(n)).decode(\"latin-1\"))\n",
        "        descr = bytes(reader.take(n)).decode(\"latin-1\")\n"
        "        dtype = _DTYPES.get(descr) or np.dtype(descr)\n",
        "decode lets object and structured dtypes through to numpy",
        (R,)),
    Mutation(
        "wire-depth-limit", "skfed/runtime/wire.py",
        "_MAX_DEPTH = 64\n",
        "_MAX_DEPTH = 10**9\n",
        "no nesting-depth limit (a deep message exhausts the recursion)",
        (R,)),
    Mutation(
        "wire-intarray-length-check", "skfed/runtime/wire.py",
        "        if count * _INT_HEADER > len(reader.data) - reader.pos:\n            raise "
        "WireFormatError(\"integer array length exceeds message size\")\n",
        "",
        "an integer array claiming 2**60 elements is not refused before decoding starts",
        (R,)),
    # -- secure aggregation -----------------------------------------------------------------
    Mutation(
        "secagg-truncate-encoding", "skfed/crypto/secagg.py",
        "scaled = np.rint(values * 2.0**self.scale_bits).astype(np.int64)",
        "scaled = np.trunc(values * 2.0**self.scale_bits).astype(np.int64)",
        "fixed-point encoding truncates instead of rounding (one more bit of error)",
        ("tests/test_secagg.py", H)),
    Mutation(
        "secagg-overflow-check", "skfed/crypto/secagg.py",
        "if values.size and np.max(np.abs(values)) >= self.max_abs:",
        "if values.size and np.max(np.abs(values)) >= 2 * self.max_abs:",
        "values up to twice the safe range are encoded (the sum may wrap silently)",
        ("tests/test_secagg.py", H)),
    Mutation(
        "secagg-mask-reused-across-rounds", "skfed/crypto/secagg.py",
        'key = self._pair_key(peer, "mask", struct.pack(">Q", round_index))',
        'key = self._pair_key(peer, "mask")',
        "the same pairwise mask every round (differences of uploads reveal update changes)",
        ("tests/test_secagg.py", H)),
    Mutation(
        "secagg-masks-do-not-cancel", "skfed/crypto/secagg.py",
        "            if self.name < peer:\n",
        "            if True:\n",
        "both clients of a pair add the mask: masks no longer cancel",
        ("tests/test_secagg.py", H)),
    Mutation(
        "secagg-fixed-seal-nonce", "skfed/crypto/secagg.py",
        "        nonce = os.urandom(12)\n",
        "        nonce = bytes(12)\n",
        "sealing reuses an all-zero nonce (ChaCha20-Poly1305 nonce reuse)",
        ("tests/test_secagg.py", H)),
    Mutation(
        "secagg-duplicate-key-accepted", "skfed/crypto/secagg.py",
        "            if raw in seen or raw == self.public_bytes():\n",
        "            if False:\n",
        "a relayed key set with a duplicated public key is accepted",
        ("tests/test_secagg.py", H)),
    Mutation(
        "secagg-session-not-salted", "skfed/crypto/secagg.py",
        "        return _hkdf(self._pair_secrets[peer], self._session,\n",
        "        return _hkdf(self._pair_secrets[peer], None,\n",
        "pairwise keys ignore the session: a new session with the same keys reuses masks",
        ("tests/test_secagg.py", H)),
    # -- Paillier, packing, PSI -------------------------------------------------------------
    Mutation(
        "paillier-zero-mask", "skfed/crypto/paillier/encrypted_array.py",
        "        mask = _obj_from_list([secrets.randbits(mask_bits) for _ in range(self.size)], "
        "self.shape)\n",
        "        mask = _obj_from_list([0 for _ in range(self.size)], self.shape)\n",
        "add_random_mask adds a zero mask: the decrypting party reads the clear values",
        ("tests/test_paillier.py", LEAKS, V)),
    Mutation(
        "packing-unmask-bound", "skfed/crypto/packing.py",
        "    if any(abs(v).bit_length() > value_bits for v in diff):\n",
        "    if False:\n",
        "unpack_masked accepts slot values beyond their bound (overflow or tampering)",
        ("tests/test_packing.py", T)),
    Mutation(
        "psi-positions-unsorted", "skfed/vertical/alignment.py",
        "np.sort(sigma[shuffled])",
        "sigma[shuffled]",
        "the leader receives positions in the shuffled order (order information leaks)",
        ("tests/test_alignment.py",)),
    Mutation(
        "psi-no-point-check", "skfed/crypto/psi.py",
        "    points = check_points(points)\n    if not isinstance(scalar, bytes)",
        "    points = np.ascontiguousarray(points)\n    if not isinstance(scalar, bytes)",
        "blind() accepts points that are not (n, 32) uint8 arrays",
        ("tests/test_psi.py", "tests/test_alignment.py")),
    # -- roles ------------------------------------------------------------------------------
    Mutation(
        "horizontal-masking-unmasked-upload", "skfed/horizontal/aggregation.py",
        'ctx.send(self.server, tag, self.masker.mask(encoded, self.index), kind="masked")',
        'ctx.send(self.server, tag, encoded, kind="masked")',
        "masking mode uploads the unmasked encoding (the sum is still right)",
        (LEAKS, H)),
    Mutation(
        "horizontal-fedsgd-local-normalisation", "skfed/horizontal/roles.py",
        "upload = np.concatenate([grad / n_total, [loss_sum / n_total]])",
        "upload = np.concatenate([grad / n_k / len(clients), [loss_sum / n_total]])",
        "FedSGD averages per-client mean gradients instead of the pooled mean",
        (H,)),
    Mutation(
        "vertical-loss-term-not-rerandomised", "skfed/vertical/roles.py",
        "ctx.send(cfg.label_party, tag, codec.to_wire(codec.obfuscate(term)), "
        "kind=codec.kind_ct)",
        "ctx.send(cfg.label_party, tag, codec.to_wire(term), kind=codec.kind_ct)",
        "the host's loss and curvature terms, derived from the guest's ciphertexts, are not "
        "re-randomised",
        (V, LEAKS)),
    Mutation(
        "vertical-predict-subtracts-host", "skfed/vertical/roles.py",
        'scores = scores + check_array(ctx.recv(h, "partial_score"), sender=h,',
        'scores = scores - check_array(ctx.recv(h, "partial_score"), sender=h,',
        "prediction subtracts the hosts' partial scores",
        (V,)),
    Mutation(
        "vertical-gradient-unmasked", "skfed/vertical/roles.py",
        "        masked, mask = c.add_random_mask(sigma_bits=MASK_SIGMA_BITS, n_jobs=self.n_jobs,\n"
        "                                         pool=self.pool)\n",
        "        masked, mask = c, np.zeros(c.shape, dtype=object)\n",
        "data parties send their encrypted gradients to the arbiter without a mask",
        (LEAKS, V)),
    Mutation(
        "transfer-predict-unmasked-scores", "skfed/transfer/roles.py",
        "        masked, mask = flat.add_random_mask(self.sigma_bits, n_jobs=self.n_jobs,\n"
        "                                            pool=self.peer_pool)\n",
        "        masked, mask = flat, np.zeros(flat.shape, dtype=object)\n",
        "the target asks the source to decrypt its scores without a mask",
        (LEAKS, T)),
    Mutation(
        "transfer-derived-not-rerandomised", "skfed/transfer/roles.py",
        "        payload = enc.obfuscate(n_jobs=self.n_jobs, pool=self.peer_pool).to_wire() \\\n",
        "        payload = enc.to_wire() \\\n",
        "values computed from the peer's ciphertexts go back without re-randomisation",
        (T,)),
    Mutation(
        "transfer-derived-rows-not-rerandomised", "skfed/transfer/roles.py",
        "            payload = packed.obfuscate(n_jobs=self.n_jobs, pool=self.peer_pool)"
        ".to_wire()\n",
        "            payload = packed.to_wire()\n",
        "packed cross moments computed from the peer's ciphertexts go back as computed",
        (T,)),
    Mutation(
        "transfer-epoch-loss-weighting", "skfed/transfer/roles.py",
        "            epoch_loss += loss * n_b / len(overlap)\n",
        "            epoch_loss += loss / len(overlap)\n",
        "the transfer epoch loss weights mini-batches equally instead of by size",
        (T,)),
    # -- federated scalers (issue 18) ------------------------------------------------------
    Mutation(
        "scaler-stats-in-clear", "skfed/horizontal/_scaling_roles.py",
        '    agg.upload(_to_ring(np.concatenate(parts)), "scaler_stats")\n',
        '    ctx.send(server, "scaler_note", np.concatenate(parts), kind="plain")\n'
        '    agg.upload(_to_ring(np.concatenate(parts)), "scaler_stats")\n',
        "a client also sends its digit sums in clear beside the masked upload",
        ("tests/test_preprocessing.py",), "unmasked"),
    Mutation(
        "scaler-high-half-same-digit", "skfed/horizontal/_scaling_roles.py",
        "    _add_digits(sums, M >> DIGIT_BITS, keys + 1, r, sign)",
        "    _add_digits(sums, M >> DIGIT_BITS, keys, r, sign)",
        "the mantissa's high half lands one digit too low in the exact sums",
        ("tests/test_preprocessing.py",)),
    Mutation(
        "minmax-strict-count", "skfed/horizontal/_scaling_roles.py",
        'above = [len(k) - np.searchsorted(k, t, side="left")',
        'above = [len(k) - np.searchsorted(k, t, side="right")',
        "min-max clients count values strictly above the threshold: the maximum is "
        "one ulp off",
        ("tests/test_preprocessing.py",)),
    Mutation(
        "minmax-counts-in-clear", "skfed/horizontal/_scaling_roles.py",
        '        agg.upload(_to_ring(np.r_[above, below, counts if tolerant else []]),\n',
        '        ctx.send(server, "minmax_note", np.r_[above, below], kind="plain")\n'
        '        agg.upload(_to_ring(np.r_[above, below, counts if tolerant else []]),\n',
        "a min-max client also sends its tail counts in clear",
        ("tests/test_preprocessing.py",), "unmasked or kinds"),
    Mutation(
        "minmax-no-restart-after-dropout", "skfed/horizontal/_scaling_roles.py",
        "            done, dropped = 0, len(agg.dropouts)\n            continue\n",
        "            dropped = len(agg.dropouts)\n",
        "a client dropping mid-bisection leaves its values in the bounds",
        ("tests/test_preprocessing.py",), "dropping"),
]


def _copy_repo(dest, tests_rev):
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".hypothesis",
                                    ".pytest_cache", "_build", "auto_examples", "generated",
                                    "*.egg-info")
    shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True)
    if tests_rev:
        shutil.rmtree(dest / "tests")
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", tests_rev, "tests"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def _run_tests(dest, tests, keyword, timeout, seed):
    env = dict(os.environ, SKFED_ALLOW_INSECURE_KEYS="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=str(dest))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
           "not slow", f"--hypothesis-seed={seed}", "-rf", "--no-header", *tests]
    if keyword:
        cmd += ["-k", keyword]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, ""
    out = proc.stdout + proc.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.M)
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return proc.returncode, time.monotonic() - start, failed[0] if failed else (
        lines[-1] if lines else "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests-rev", help="take tests/ from this git revision")
    ap.add_argument("-k", dest="select", help="only mutations whose id contains this")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip checking that the unmutated tests pass")
    args = ap.parse_args(argv)
    mutations = [m for m in MUTATIONS if not args.select or args.select in m.id]
    if args.list:
        for m in mutations:
            print(f"{m.id:45s} {m.file:34s} {m.description}")
        return 0
    with tempfile.TemporaryDirectory(prefix="skfed-mutation-") as tmp:
        dest = Path(tmp) / "repo"
        _copy_repo(dest, args.tests_rev)
        where = f"tests of {args.tests_rev}" if args.tests_rev else "this tree's tests"
        print(f"mutation testing in {dest} with {where}; load {_load()}", flush=True)

        def selected(m):
            return [t for t in m.tests if (dest / t).exists()]

        if not args.no_baseline:
            all_tests = sorted({t for m in mutations for t in selected(m)})
            code, secs, info = _run_tests(dest, all_tests, None, 4 * args.timeout, args.seed)
            if code != 0:
                print(f"the unmutated tests fail ({info}); fix them first", flush=True)
                return 2
            print(f"baseline: unmutated tests pass ({secs:.0f} s)", flush=True)
        rows = []
        for m in mutations:
            path = dest / m.file
            source = path.read_text() if path.is_file() else None
            count = source.count(m.original) if source is not None else 0
            tests = selected(m)
            if source is None:
                status, secs, info = "stale", 0.0, f"{m.file} no longer exists"
            elif count != 1:
                status, secs, info = "stale", 0.0, (
                    "original snippet not found" if not count else f"found {count} times")
            elif not tests:
                status, secs, info = "no tests", 0.0, ", ".join(m.tests)
            else:
                path.write_text(source.replace(m.original, m.replacement))
                try:
                    code, secs, info = _run_tests(dest, tests, m.keyword, args.timeout,
                                                  args.seed)
                finally:
                    path.write_text(source)
                status = ("killed (timeout)" if code == "timeout" else
                          "survived" if code == 0 else
                          "error" if code in (2, 3, 4, 5) else "killed")
                if status == "error" and "FAILED" not in str(info):
                    info = f"pytest exit {code}: {info}"
            rows.append((m, status, secs, info))
            print(f"{m.id:45s} {status:17s} {secs:6.0f} s  {info}", flush=True)
    killed = sum(r[1].startswith("killed") for r in rows)
    survived = [r[0].id for r in rows if r[1] == "survived"]
    stale = [r[0].id for r in rows if r[1] in ("stale", "no tests", "error")]
    counted = killed + len(survived)
    print()
    print(f"{len(rows)} mutations: {killed} killed, {len(survived)} survived, "
          f"{len(stale)} stale, untested or broken; survival rate "
          f"{len(survived)}/{counted} = {100.0 * len(survived) / max(counted, 1):.0f}%")
    if survived:
        print("survived: " + ", ".join(survived))
    if stale:
        print("not counted (stale, no tests or a broken mutation): " + ", ".join(stale))
    print(f"load {_load()}")
    return 1 if survived or stale else 0


def _load():
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
