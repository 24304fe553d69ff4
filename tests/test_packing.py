"""Row-packed Paillier matrices: exact products, slot masks, overflow and tampering."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skfed.crypto.packing import (
    PackedRows,
    add_ints,
    dot_ints,
    fixed_point,
    slots_per_ciphertext,
    unpack_ints,
    unpack_masked,
)
from skfed.crypto.paillier import EncryptedArray, generate_keypair

KEY = 1024
SLOT = PackedRows.slot_bits_for(64, 48, 80)


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(KEY)


def test_layout_saves_ciphertexts(keys):
    pk, sk = keys
    V = np.random.RandomState(0).randn(4, 13)
    P = PackedRows.encrypt(pk, V, slot_bits=SLOT)
    n_slots = slots_per_ciphertext(KEY, SLOT)
    assert n_slots >= 4
    assert P.enc.shape == (4, -(-13 // n_slots))
    np.testing.assert_allclose(P.decrypt(sk), V, atol=2.0 ** -27)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 9), st.integers(1, 12), st.integers(1, 5), st.integers(0, 2**31))
def test_products_and_sums_match_numpy(keys, rows, width, m, seed):
    pk, sk = keys
    rng = np.random.RandomState(seed)
    V, W = rng.randn(rows, width) * 10, rng.randn(rows, width)
    X = rng.randn(m, rows) * rng.choice([1e-3, 1.0, 50.0])
    PV = PackedRows.encrypt(pk, V, slot_bits=SLOT)
    PW = PackedRows.encrypt(pk, W, slot_bits=SLOT)
    out = X @ (PV * -0.5 + PW) + X @ V          # plaintext added slot-wise
    expected = X @ (-0.5 * V + W) + X @ V
    np.testing.assert_allclose(out.decrypt(sk), expected, rtol=1e-6,
                               atol=1e-6 * np.abs(expected).max() + 1e-9)


def test_masked_decryption_round_trip_hides_and_checks(keys):
    pk, sk = keys
    rng = np.random.RandomState(1)
    V = rng.randn(3, 7)
    P = np.ones((2, 3)) @ PackedRows.encrypt(pk, V, slot_bits=SLOT)
    masked, mask = P.add_random_mask(80)
    ints = masked.enc.decrypt_encoded(sk)
    seen = unpack_ints(ints, 7, SLOT, P.n_slots)
    # Every slot the decrypting party sees is the value plus a mask >> value.
    assert min(abs(int(v)) for v in seen.ravel()) > 2 ** (P.value_bits + 40)
    got = unpack_masked(ints, mask, P.scale_bits, 7, SLOT, P.n_slots, P.value_bits)
    np.testing.assert_allclose(got, np.ones((2, 3)) @ V, atol=1e-7)
    # A tampered plaintext (a slot pushed out of its bound) is detected.
    bad = ints.copy()
    bad[0, 0] = int(bad[0, 0]) + (1 << (P.value_bits + 90))
    with pytest.raises(OverflowError, match="bound"):
        unpack_masked(bad, mask, P.scale_bits, 7, SLOT, P.n_slots, P.value_bits)


def test_overflow_is_refused_before_arithmetic(keys):
    pk, _ = keys
    with pytest.raises(OverflowError, match="packing bound"):
        PackedRows.encrypt(pk, np.array([[1e6]]), slot_bits=SLOT)
    narrow = PackedRows.encrypt(pk, np.ones((3, 2)), slot_bits=60)
    with pytest.raises(OverflowError, match="cannot hold"):
        PackedRows.encrypt(pk, np.ones((3, 2)), slot_bits=44)
    with pytest.raises(OverflowError, match="cannot hold"):
        np.array([[0.3, -1.7, 2.1]]) @ narrow
    with pytest.raises(OverflowError, match="cannot hold"):
        narrow.add_random_mask(80)


def test_wire_round_trip_and_bad_layouts(keys):
    pk, sk = keys
    P = PackedRows.encrypt(pk, np.arange(6.0).reshape(2, 3), slot_bits=SLOT)
    Q = PackedRows.from_wire(pk, P.to_wire())
    np.testing.assert_allclose(Q.decrypt(sk), np.arange(6.0).reshape(2, 3))
    obj = P.to_wire()
    for key, value in [("width", 40), ("slot_bits", 1), ("value_bits", SLOT), ("kind", "x")]:
        with pytest.raises(ValueError):
            PackedRows.from_wire(pk, {**obj, key: value})


def test_exact_integer_helpers(keys):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, [0.5, -1.25, 2.0], precision_bits=20)
    big = [3 << 150, -(5 << 140), 7]                   # beyond rmatmul's 62 bits
    dot = dot_ints(enc, big, 10).decrypt_encoded(sk)[0]
    assert dot == sum(int(a) * b for a, b in zip(fixed_point([0.5, -1.25, 2.0], 20), big))
    shifted = add_ints(enc, [1 << 100, 0, -3], 5).decrypt_encoded(sk)
    assert list(shifted) == [int(fixed_point(0.5, 20)) + (1 << 115), int(fixed_point(-1.25, 20)),
                             int(fixed_point(2.0, 20)) - (3 << 15)]


def test_rows_rescale_and_add_at_a_slot_offset(keys):
    pk, sk = keys
    rng = np.random.RandomState(2)
    V = rng.randn(5, 4)
    P = PackedRows.encrypt(pk, V, slot_bits=SLOT)
    sub = P[np.array([0, 2, 3])]
    np.testing.assert_allclose(sub.decrypt(sk), V[[0, 2, 3]], atol=1e-8)
    lifted = sub.rescale(sub.scale_bits + 7)
    assert lifted.scale_bits == sub.scale_bits + 7
    np.testing.assert_allclose(lifted.decrypt(sk), V[[0, 2, 3]], atol=1e-8)
    col = np.array([[0.5], [-1.5], [2.0]]) @ PackedRows.encrypt(pk, rng.randn(1, 1),
                                                                  slot_bits=SLOT)
    for offset in (0, 2):
        got = sub.add_at(col * -0.5, offset).decrypt(sk)
        expected = V[[0, 2, 3]].copy()
        expected[:, offset] += -0.5 * col.decrypt(sk)[:, 0]
        np.testing.assert_allclose(got, expected, atol=1e-7)
    with pytest.raises(ValueError, match="do not fit"):
        sub.add_at(col, 4)


def test_decrypted_slots_beyond_the_declared_bound_are_refused(keys):
    pk, sk = keys
    P = PackedRows.encrypt(pk, np.array([[3.0, -1.0]]), slot_bits=SLOT)
    np.testing.assert_array_equal(P.decrypt(sk), [[3.0, -1.0]])
    understated = PackedRows(P.enc, 2, SLOT, value_bits=PackedRows.PRECISION_BITS)
    with pytest.raises(OverflowError, match="declared bound"):
        understated.decrypt_slots(sk)
    with pytest.raises(ValueError, match="below the tracked"):
        P.with_bound(P.value_bits - 1)
    assert P.with_bound(SLOT - 2).value_bits == SLOT - 2


def test_absolute_scale_products_have_a_public_scale(keys):
    pk, sk = keys
    P = PackedRows.encrypt(pk, np.random.RandomState(3).randn(4, 3), slot_bits=SLOT)
    for X in (np.full((2, 4), 1e-3), np.full((2, 4), 50.0)):
        out = P.rmatmul(X, scale_bits=30)
        assert out.scale_bits == P.scale_bits + 30
        np.testing.assert_allclose(out.decrypt(sk), X @ P.decrypt(sk), rtol=1e-6, atol=1e-8)
