"""The leak detector (tests/leaks.py) catches planted leaks of every kind and
passes clean transcripts."""

import numpy as np
import pytest

from skfed.crypto.secagg import FixedPointRing
from skfed.runtime import LocalRuntime, Transcript
from skfed.runtime.wire import encode

from .leaks import DEFAULT_SCALES, LeakFound, assert_no_leaks, find_leaks, record_transcripts

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4))
Y01 = RNG.integers(0, 2, size=120)


def _transcript(*payloads, kind="ciphertext"):
    t = Transcript()
    for i, p in enumerate(payloads):
        data = encode(p)
        t.record("alice", "bob", f"tag{i}", kind, len(data), data)
    return t


def _noise(size=50):
    # what a clean protected message looks like: uniform ring values, big ints
    rng = np.random.default_rng(1)
    return {"masked": rng.integers(0, 2**63, size=size, dtype=np.uint64),
            "ct": np.array([int(x) << 400 | 12345 for x in rng.integers(0, 2**62, size=8)],
                           dtype=object),
            "shape": [30, 4], "round": 3, "lr": 0.01, "flag": True, "name": "update"}


def test_clean_transcript_passes():
    assert_no_leaks(_transcript(_noise(), _noise(7), {"w": RNG.normal(size=5)}),
                    {"features": X, "labels": Y01})


@pytest.mark.parametrize("plant", [
    lambda: {"ct": _noise()["ct"], "u": X[3, 1:3].copy()},                    # exact floats
    lambda: [_noise(), X[7].astype(np.float32)],                              # float32 copy
    lambda: {"v": float(X[2, 2])},                                            # a single float
    lambda: {"enc": [int(np.rint(X[5, 0] * 2.0**64))]},                       # Paillier scale
    lambda: FixedPointRing().encode(X[4]),                                    # ring, mod 2**64
    lambda: np.trunc(X[:, 0] * 2.0**30).astype(np.int64),                    # truncated, 2**30
    lambda: {"blob": b"xx" + X[9].tobytes()[3:20] + b"yy"},                  # raw-row bytes
    lambda: {"s": X[1].tobytes()[5:].decode("latin-1")},                     # inside a string
    lambda: encode({"inner": X[0]}),                                          # nested message
    lambda: {"labels": np.where(Y01 == 1, -1.0, 1.0)},                       # relabelled
    lambda: {"labels": (Y01[10:90] * 2**40).astype(np.int64)},               # labels, scaled
    lambda: {"labels": Y01.tolist()},                                         # list of ints
])
def test_each_kind_of_planted_leak_is_caught(plant):
    with pytest.raises(AssertionError, match=r"(features|labels) leaks in message #\d+ "
                       r"alice -> bob, tag 'tag\d', kind 'ciphertext'"):
        assert_no_leaks(_transcript(_noise(), plant()), {"features": X, "labels": Y01})


def test_report_names_message_path_and_secret():
    t = _transcript({"a": 1}, {"ct": _noise()["ct"], "clear": X[2]}, kind="masked")
    leaks = find_leaks(t, {"host features": X}, first=False)
    assert leaks, "the planted leak must be found"
    assert leaks[0].startswith("host features leaks in message #1 alice -> bob, tag 'tag1', "
                               "kind 'masked' at payload['clear']")
    assert "(2, 0)" in leaks[0]  # the secret's element


def test_trivial_and_public_values_are_not_leaks():
    secret = np.array([0.0, 1.0, -1.0, 0.5, 3.0, 100.0, 0.013])
    payload = {"zero": 0.0, "one": [1.0, -1.0], "half": 0.5, "n": 3, "eta": 0.013,
               "cap": 100.0}
    assert_no_leaks(_transcript(payload), {"x": secret}, public=[0.013])
    with pytest.raises(AssertionError, match="0.013"):
        assert_no_leaks(_transcript(payload), {"x": secret})


def test_public_arrays_are_not_searched_for_label_runs():
    mask = Y01.astype(bool)
    t = _transcript({"labelled": mask})
    with pytest.raises(AssertionError, match="labels"):
        assert_no_leaks(t, {"labels": Y01})
    assert_no_leaks(t, {"labels": Y01}, public=[mask])


def test_short_label_runs_and_constant_arrays_do_not_match():
    # 30 binary values carry < 40 bits: a run of them is not evidence of a leak
    t = _transcript({"bits": Y01[:30], "zeros": np.zeros(500), "ones": np.ones(500, int)})
    assert_no_leaks(t, {"labels": Y01})


def test_identifiers_exact_and_substrings():
    ids = [f"customer-{i:06d}" for i in range(20)] + ["ab"]
    clean = _transcript({"blinded": RNG.integers(0, 256, size=(21, 32), dtype=np.uint8)})
    assert_no_leaks(clean, {"ids": ids})
    with pytest.raises(AssertionError, match="customer-000007"):
        assert_no_leaks(_transcript({"x": ["junk customer-000007 junk"]}), {"ids": ids})
    with pytest.raises(AssertionError, match="'ab'"):
        assert_no_leaks(_transcript({"x": "ab"}), {"ids": ids})
    with pytest.raises(AssertionError, match="identifier"):
        big = 10**15 + 3
        assert_no_leaks(_transcript({"x": np.array([big])}), {"ids": [big, 10**15 + 4]})
    with pytest.raises(AssertionError, match="identifier"):
        assert_no_leaks(_transcript({"x": b"..." + (10**15 + 3).to_bytes(8, "little")}),
                        {"ids": [10**15 + 3, 10**15 + 4]})


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="empty"):
        assert_no_leaks(_transcript(1), {"x": np.array([])})
    with pytest.raises(ValueError, match="no secrets"):
        assert_no_leaks(_transcript(1), {})
    with pytest.raises(ValueError, match="transcript is empty"):
        assert_no_leaks(Transcript(), {"x": X})
    t = Transcript()
    t.record("a", "b", "t", "plain", 3)
    with pytest.raises(ValueError, match="keep_payloads"):
        assert_no_leaks(t, {"x": X})


def test_default_scales_cover_the_library():
    for s in (28, 30, 32, 36, 64, 94):
        assert s in DEFAULT_SCALES


def test_record_transcripts_keeps_payloads_of_every_run():
    def alice(ctx):
        ctx.send("bob", "x", X[0], kind="ciphertext")

    def bob(ctx):
        return ctx.recv("alice", "x")

    with record_transcripts() as t:
        LocalRuntime().run({"alice": alice, "bob": bob})
        LocalRuntime().run({"alice": alice, "bob": bob})
    assert len(t) == 2 and all(m.payload is not None for m in t)
    with pytest.raises(LeakFound, match="tag 'x'"):
        assert_no_leaks(t, {"features": X})
    # outside the block, runs no longer keep payloads
    _, t2 = LocalRuntime().run({"alice": alice, "bob": bob})
    assert t2[0].payload is None
