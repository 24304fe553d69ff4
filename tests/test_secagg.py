import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skfed.crypto.secagg import FixedPointRing, MaskingClient, new_session_id, ring_sum


def _clients(names, session=None):
    clients = [MaskingClient(n) for n in names]
    keys = {c.name: c.public_bytes() for c in clients}
    session = new_session_id() if session is None else session
    for c in clients:
        c.agree(keys, session)
    return clients


@settings(max_examples=50, deadline=None)
@given(k=st.integers(2, 6), data=st.data())
def test_masks_cancel_and_sum_is_exact(k, data):
    from fractions import Fraction

    ring = FixedPointRing(n_summands=k)  # the default scale, as the library uses it
    s = ring.scale_bits
    vals = [data.draw(hnp.arrays(np.float64, 7, elements=st.floats(
        -ring.max_abs, ring.max_abs, allow_nan=False, exclude_min=True,
        exclude_max=True))) for _ in range(k)]
    clients = _clients([f"c{i}" for i in range(k)])
    encoded = [ring.encode(v) for v in vals]
    # each encoding is round(v * 2**s) exactly (two's complement in the ring)
    for v, e in zip(vals, encoded):
        assert [int(x) for x in e.view(np.int64)] == [round(Fraction(x) * 2**s) for x in v]
    masked = [c.mask(e, round_index=3) for c, e in zip(clients, encoded)]
    # the masks cancel exactly: the ring sum is the sum of the encodings
    np.testing.assert_array_equal(ring_sum(masked), ring_sum(encoded))
    total = ring.decode(ring_sum(masked))
    for j in range(7):
        exact = sum(Fraction(v[j]) for v in vals)
        S = sum(round(Fraction(v[j]) * 2**s) for v in vals)
        # decoding only rounds the integer sum to a float64 ...
        assert total[j] == float(S) / 2.0**s
        # ... and each term was rounded to 2**-(s+1): the sum is within k of those
        assert abs(Fraction(S, 2**s) - exact) <= Fraction(k, 2 ** (s + 1))


def test_resolution_and_range_documented():
    ring = FixedPointRing(n_summands=10)
    s = ring.scale_bits
    assert s == 32  # the documented default
    x = np.array([1e-9, -3.3e-10, 123.456789012, -7.0 / 3.0])
    err = np.abs(ring.decode(ring.encode(x)) - x)
    assert np.all(err <= 2.0 ** -(s + 1))
    assert err.max() > 2.0 ** -(s + 4)  # rounding really happens at this scale
    assert ring.max_abs == 2.0 ** (63 - s) / 10
    ring.encode(np.array([np.nextafter(ring.max_abs, 0), -np.nextafter(ring.max_abs, 0)]))
    with pytest.raises(OverflowError, match="exceeds the secure-aggregation range"):
        ring.encode(np.array([ring.max_abs]))
    with pytest.raises(OverflowError, match="exceeds the secure-aggregation range"):
        ring.encode(np.array([0.0, -ring.max_abs * 1.01]))
    with pytest.raises(ValueError, match="NaN"):
        ring.encode(np.array([np.nan]))


def test_masks_depend_on_round_pair_and_session():
    a, b, c = _clients(["a", "b", "c"])
    m1 = a.pair_mask("b", 1, 16)
    assert not np.array_equal(m1, a.pair_mask("b", 2, 16))     # per round
    assert not np.array_equal(m1, a.pair_mask("c", 1, 16))     # per pair
    np.testing.assert_array_equal(m1, b.pair_mask("a", 1, 16))  # both ends agree
    a2, b2 = _clients(["a", "b"])
    assert not np.array_equal(a2.pair_mask("b", 1, 16), m1)   # fresh keys/session
    # the same keys in a new session (the server's fresh salt): new masks
    keys = {x.name: x.public_bytes() for x in (a, b, c)}
    a.agree(keys, new_session_id())
    b.agree(keys, a._session)
    assert not np.array_equal(a.pair_mask("b", 1, 16), m1)
    np.testing.assert_array_equal(a.pair_mask("b", 1, 16), b.pair_mask("a", 1, 16))
    # full 64-bit masks, not a 32-bit seed folded into a statistical PRG
    assert (a.pair_mask("b", 1, 4096) >> np.uint64(32)).max() > 2**31


def test_the_streams_of_different_rounds_never_overlap():
    # One key per pair, the round as the CTR nonce: were the round added to
    # the block counter instead, round r + 1 would be round r shifted by a
    # block (two uint64 words) and the sum would reveal differences of updates.
    a, _ = _clients(["a", "b"])
    words = {r: a.pair_mask("b", r, 512) for r in range(4)}
    blocks = {r: {bytes(w[i:i + 2]) for i in range(0, w.size, 2)} for r, w in words.items()}
    for r in range(3):
        assert not blocks[r] & blocks[r + 1]
    assert np.array_equal(a.pair_mask("b", 3, 8), words[3][:8])  # a prefix, same stream
    with pytest.raises(OverflowError):
        a.pair_mask("b", 2**64, 2)


def test_single_masked_vector_reveals_nothing_obvious():
    a, b = _clients(["a", "b"])
    ring = FixedPointRing(n_summands=2)
    zeros = a.mask(ring.encode(np.zeros(20000)), 1)
    top = (zeros >> np.uint64(56)).astype(int)
    counts = np.bincount(top, minlength=256)
    chi2 = ((counts - 20000 / 256) ** 2 / (20000 / 256)).sum()
    assert chi2 < 400  # 255 dof; p ~ 1e-8 beyond


def test_key_agreement_rejects_bad_keys():
    a = MaskingClient("a")
    b = MaskingClient("b")
    session = new_session_id()
    with pytest.raises(ValueError, match="own key"):
        a.agree({"b": b.public_bytes()}, session)
    with pytest.raises(ValueError, match="32 bytes"):
        a.agree({"a": a.public_bytes(), "b": b"short"}, session)
    with pytest.raises(ValueError, match="same public key"):
        a.agree({"a": a.public_bytes(), "b": a.public_bytes()}, session)
    with pytest.raises(ValueError, match="invalid public key"):
        a.agree({"a": a.public_bytes(), "b": bytes(32)}, session)  # low-order point
    with pytest.raises(ValueError, match="session"):
        a.agree({"a": a.public_bytes(), "b": b.public_bytes()}, b"x")
    with pytest.raises(RuntimeError, match="agree"):
        MaskingClient("z").pair_mask("a", 0, 1)


def test_sealed_messages_are_authenticated():
    a, b, c = _clients(["a", "b", "c"])
    sealed = a.seal("b", b"private key bytes", "paillier")
    # a fresh random nonce each time: never the same ciphertext twice
    again = a.seal("b", b"private key bytes", "paillier")
    assert sealed[:12] != again[:12] and sealed[12:] != again[12:]
    assert len({a.seal("b", b"x", "p")[:12] for _ in range(20)}) == 20
    assert b.open("a", sealed, "paillier") == b"private key bytes"
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(ValueError, match="authentication"):
        b.open("a", tampered, "paillier")
    with pytest.raises(ValueError, match="authentication"):
        c.open("a", sealed, "paillier")  # another client cannot read it
    with pytest.raises(ValueError, match="authentication"):
        b.open("a", sealed, "other-purpose")


def test_paillier_slot_sums_reveal_only_the_aggregate():
    """The key holder decrypts whole slot sums: they must carry nothing but the sum."""
    from skfed.crypto.paillier import generate_keypair, pack_encrypt
    from skfed.horizontal.aggregation import _slot_bits, from_slot_sums, to_slots

    pk, sk = generate_keypair(1024)
    ring = FixedPointRing(n_summands=3)
    rng = np.random.RandomState(0)
    vals = [rng.normal(size=12) for _ in range(3)]  # many negative entries
    packed = [pack_encrypt(pk, to_slots(ring.encode(v)), _slot_bits(3)) for v in vals]
    total = packed[0] + packed[1] + packed[2]
    sums = total.decrypt(sk, 12)
    # each whole slot sum is the exact aggregate plus a public constant: no per-client
    # carries (a count of negative uploads) survive in it
    assert [int(s) - 3 * 2**63 for s in sums] == [
        int(sum(int(np.rint(v[j] * 2.0**32)) for v in vals)) for j in range(12)]
    np.testing.assert_allclose(ring.decode(from_slot_sums(sums, 3)),
                               np.sum(vals, axis=0), atol=1e-8)


def test_values_at_the_range_limit_raise():
    ring = FixedPointRing(n_summands=2)
    with pytest.raises(OverflowError):
        ring.encode(np.array([ring.max_abs]))
