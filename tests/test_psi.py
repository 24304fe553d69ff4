"""Tests of the X25519 private-set-intersection primitives (skfed.crypto.psi)."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from skfed.crypto import psi
from skfed.crypto.psi import (
    DOMAIN,
    LOW_ORDER_U,
    LowOrderPointError,
    blind,
    check_points,
    encode_id,
    encode_ids,
    generate_scalar,
    hash_ids,
    hash_to_point,
)

ids_strategy = st.lists(
    st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.text(max_size=12),
              st.binary(max_size=12)),
    min_size=1, max_size=20,
)


def _u_bytes(u):
    return u.to_bytes(32, "little")


# --- canonical encoding -------------------------------------------------------

def test_encoding_is_type_tagged():
    assert encode_id(1) != encode_id("1")
    assert encode_id("1") != encode_id(b"1")
    assert encode_id(1) != encode_id(b"\x01")
    assert len({encode_id(v) for v in (0, "0", b"0", b"", "", -1, "-1")}) == 7


def test_equal_integers_of_different_types_encode_alike():
    assert encode_id(5) == encode_id(np.int64(5)) == encode_id(np.uint8(5))
    assert encode_id(np.str_("a")) == encode_id("a")


@given(st.integers(), st.integers())
def test_integer_encoding_is_injective(a, b):
    assert (encode_id(a) == encode_id(b)) == (a == b)


@given(st.text(), st.text())
def test_string_encoding_is_injective(a, b):
    assert (encode_id(a) == encode_id(b)) == (a == b)


@pytest.mark.parametrize("value, match", [
    (None, "missing"),
    (float("nan"), "missing"),
    (np.float32("nan"), "missing"),
    (pd.NA, "missing"),
    (pd.NaT, "missing"),
    (1.5, "float identifiers"),
    (2.0, "float identifiers"),
    (True, "boolean"),
    (np.bool_(False), "boolean"),
    ((1, 2), "unsupported identifier type tuple"),
    (object(), "unsupported identifier type object"),
])
def test_bad_identifiers_are_refused(value, match):
    with pytest.raises(ValueError, match=match):
        encode_id(value)


def test_encode_ids_names_the_position():
    with pytest.raises(ValueError, match="position 2: missing"):
        encode_ids(["a", "b", None])


# --- hashing to u-coordinates -------------------------------------------------

def test_hash_is_deterministic_canonical_and_domain_separated():
    enc = encode_id("alice")
    u = hash_to_point(enc)
    assert u == hash_to_point(enc) and len(u) == 32
    assert u[-1] & 0x80 == 0  # bit 255 cleared: a canonical X25519 input
    assert u != hash_to_point(encode_id("alicf"))
    # Not the undomain-separated hashes of the same bytes.
    assert u != hashlib.sha256(enc).digest()
    assert u[:31] != hashlib.blake2b(enc, digest_size=32).digest()[:31]
    assert u[:31] != hashlib.blake2b(enc, digest_size=32, person=DOMAIN[::-1]).digest()[:31]


def test_hash_ids_matches_hash_to_point():
    enc = encode_ids(["a", 1, b"x"])
    points = hash_ids(enc)
    assert points.shape == (3, 32) and points.dtype == np.uint8
    assert [bytes(r) for r in points] == [hash_to_point(e) for e in enc]


def test_hash_rehashes_low_order_outputs(monkeypatch):
    # Force the first hash attempt to produce u = 1 (a point of order 4).
    real = hashlib.blake2b

    class Stub:
        def __init__(self, data, *, salt, **kw):
            self._counter = int.from_bytes(salt, "little")
            self._real = real(data, salt=salt, **kw)

        def digest(self):
            return _u_bytes(1) if self._counter == 0 else self._real.digest()

    monkeypatch.setattr(psi.hashlib, "blake2b", Stub)
    u = psi.hash_to_point(b"sany")
    assert int.from_bytes(u, "little") not in LOW_ORDER_U
    # The next counters' hashes, the first one on the curve (not the twist).
    for counter in range(1, 64):
        expected = bytearray(real(b"sany", digest_size=32, person=DOMAIN,
                                  salt=counter.to_bytes(16, "little")).digest())
        expected[-1] &= 0x7F
        if psi.on_curve(int.from_bytes(expected, "little")):
            break
    assert u == bytes(expected)


# --- blinding -----------------------------------------------------------------

@pytest.mark.parametrize("u", sorted(LOW_ORDER_U))
def test_low_order_list_is_what_x25519_refuses(u):
    key = X25519PrivateKey.from_private_bytes(generate_scalar())
    with pytest.raises(ValueError):
        key.exchange(X25519PublicKey.from_public_bytes(_u_bytes(u)))
    points = np.frombuffer(_u_bytes(u), dtype=np.uint8).reshape(1, 32)
    with pytest.raises(LowOrderPointError, match="small order"):
        blind(points, generate_scalar())


def test_low_order_point_is_reported_in_a_batch():
    points = hash_ids(encode_ids(["a", "b", "c"]))
    points[1] = np.frombuffer(_u_bytes(0), dtype=np.uint8)
    with pytest.raises(LowOrderPointError, match="0" * 64):
        blind(points, generate_scalar())


def test_blind_matches_x25519():
    points = hash_ids(encode_ids(range(5)))
    scalar = generate_scalar()
    key = X25519PrivateKey.from_private_bytes(scalar)
    expected = [key.exchange(X25519PublicKey.from_public_bytes(bytes(p))) for p in points]
    assert [bytes(r) for r in blind(points, scalar)] == expected


@settings(max_examples=20, deadline=None)
@given(ids_strategy)
def test_blinding_commutes(ids):
    points = hash_ids(encode_ids(ids))
    a, b, c = generate_scalar(), generate_scalar(), generate_scalar()
    abc = blind(blind(blind(points, a), b), c)
    cab = blind(blind(blind(points, c), a), b)
    np.testing.assert_array_equal(abc, cab)


def test_blinding_hides_and_separates():
    points = hash_ids(encode_ids(["a", "b"]))
    a = generate_scalar()
    blinded = blind(points, a)
    assert not (blinded == points).all(axis=1).any()
    assert not (blinded[0] == blinded[1]).all()
    assert not (blind(points, generate_scalar()) == blinded).all(axis=1).any()


def test_parallel_blinding_equals_sequential(monkeypatch):
    # Small batches so the pool is used without a long test.
    monkeypatch.setattr(psi, "_MIN_POINTS_PER_JOB", 16)
    points = hash_ids(encode_ids(range(100)))
    scalar = generate_scalar()
    np.testing.assert_array_equal(blind(points, scalar, n_jobs=2), blind(points, scalar))


def test_scalars_are_fresh_and_full_length():
    scalars = {generate_scalar() for _ in range(50)}
    assert len(scalars) == 50 and all(len(s) == 32 for s in scalars)


@pytest.mark.parametrize("bad", [
    np.zeros((3, 31), dtype=np.uint8),
    np.zeros((3, 32), dtype=np.int64),
    np.zeros(32, dtype=np.uint8),
    [[0] * 32],
])
def test_check_points_refuses_malformed_batches(bad):
    with pytest.raises(ValueError, match="uint8 array of shape"):
        check_points(bad, "points")
    # blind() validates what it receives (another party's message) the same way
    with pytest.raises(ValueError, match="uint8 array of shape"):
        blind(bad, generate_scalar())


def test_blind_refuses_bad_scalar():
    with pytest.raises(ValueError, match="32 bytes"):
        blind(hash_ids([b"sa"]), b"short")
