"""Tests of the Paillier engine: encoding, homomorphic ops, matmul, wire, masking, packing."""

import os

os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")

import math  # noqa: E402

import gmpy2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from skfed.crypto import paillier  # noqa: E402
from skfed.crypto.paillier import (  # noqa: E402
    EncryptedArray,
    PackedCiphertexts,
    check_key_size,
    decode_masked,
    generate_keypair,
    pack_encrypt,
    public_key_from_wire,
    public_key_to_wire,
)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def other_keys():
    return generate_keypair(512)


def finite_floats(lo=1e-8, hi=1e8):
    """Signed floats with zeros and magnitudes spanning many binades."""
    mag = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    return st.one_of(st.just(0.0), mag, mag.map(lambda v: -v))


def float_arrays(shape=None, **kw):
    if shape is None:
        shape = hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)
    return hnp.arrays(np.float64, shape, elements=finite_floats(**kw))


def encoded(x, scale_bits=paillier.DEFAULT_PRECISION_BITS):
    """What the fixed-point encoding should return for x."""
    return np.ldexp(np.rint(np.ldexp(np.asarray(x, dtype=float), scale_bits)), -scale_bits)


# --------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------


def test_key_size_refused_without_opt_in(monkeypatch):
    monkeypatch.delenv("SKFED_ALLOW_INSECURE_KEYS", raising=False)
    with pytest.raises(ValueError, match="insecure"):
        check_key_size(1024)
    with pytest.raises(ValueError, match="insecure"):
        generate_keypair(512)
    check_key_size(2048)
    check_key_size(3072)


def test_key_size_opt_in(monkeypatch):
    monkeypatch.setenv("SKFED_ALLOW_INSECURE_KEYS", "1")
    check_key_size(512)
    with pytest.raises(ValueError):
        check_key_size(128)  # too small even for tests
    for bad in (2048.0, "2048", True, None):
        with pytest.raises(ValueError):
            check_key_size(bad)
    monkeypatch.setenv("SKFED_ALLOW_INSECURE_KEYS", "yes")  # only "1" opts in
    with pytest.raises(ValueError):
        check_key_size(512)


def test_public_key_wire_round_trip(keys):
    pk, _ = keys
    obj = public_key_to_wire(pk)
    assert set(obj) >= {"n"} and isinstance(obj["n"], int)
    pk2 = public_key_from_wire(obj)
    assert pk2 == pk and pk2.g == pk.n + 1


def test_public_key_from_wire_rejects_bad_moduli(keys, monkeypatch):
    pk, _ = keys
    n = pk.n
    p = int(gmpy2.next_prime(2**300))
    bad = [
        None,
        {"m": n},
        {"n": str(n)},
        {"n": True},
        {"n": float(n) if n < 2**1000 else 1.0},
        {"n": n + 1},  # even
        {"n": -n},
        {"n": 3 * int(gmpy2.next_prime(2**600))},  # small factor
        {"n": p * p},  # square
        {"n": int(gmpy2.next_prime(2**700))},  # prime
        {"n": n, "scheme": "rsa"},
    ]
    for obj in bad:
        with pytest.raises(ValueError):
            public_key_from_wire(obj)
    monkeypatch.delenv("SKFED_ALLOW_INSECURE_KEYS", raising=False)
    with pytest.raises(ValueError, match="insecure"):
        public_key_from_wire({"n": n})


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------


@SETTINGS
@given(x=float_arrays(lo=1e-30, hi=1e120))  # 512-bit key: |x| * 2**64 < n / 3
def test_encrypt_decrypt_round_trip(keys, x):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, x)
    assert enc.shape == x.shape and enc.scale_bits == paillier.DEFAULT_PRECISION_BITS
    out = enc.decrypt(sk)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_array_equal(out, encoded(x))
    big = np.abs(x) >= 2.0**-12
    np.testing.assert_array_equal(out[big], x[big])  # 53-bit mantissas survive exactly


@SETTINGS
@given(
    x=hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=5)),
    s=st.integers(min_value=0, max_value=100),
)
def test_integers_are_exact(keys, x, s):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, x, precision_bits=s)
    ints = enc.decrypt_encoded(sk)
    assert ints.dtype == object
    assert [int(v) for v in ints.ravel()] == [int(v) << s for v in x.ravel()]


def test_precision_bits_controls_scale(keys):
    pk, sk = keys
    x = np.array([0.1, -1 / 3, 12345.678])
    for s in (8, 20, 40):
        out = EncryptedArray.encrypt(pk, x, precision_bits=s).decrypt(sk)
        np.testing.assert_array_equal(out, encoded(x, s))
        assert np.all(np.abs(out - x) <= 2.0 ** -(s + 1))


def test_encrypt_rejects_nan_inf_and_overflow(keys):
    pk, _ = keys
    with pytest.raises(ValueError):
        EncryptedArray.encrypt(pk, [1.0, np.nan])
    with pytest.raises(ValueError):
        EncryptedArray.encrypt(pk, [np.inf])
    with pytest.raises(OverflowError):
        EncryptedArray.encrypt(pk, [2.0**460])  # 460 + 64 bits > 512-bit key / 3
    with pytest.raises(TypeError):
        EncryptedArray.encrypt(pk, ["a"])


def test_wrapped_value_raises_overflow(keys):
    pk, sk = keys
    third = pk.n // 3
    enc = EncryptedArray.encrypt(pk, np.array([third], dtype=object), precision_bits=0)
    assert int(enc.decrypt_encoded(sk)[0]) == third
    with pytest.raises(OverflowError):
        (enc + enc).decrypt(sk)  # 2n/3 - 2 lies in the forbidden middle third
    with pytest.raises(OverflowError):
        (enc * 5).decrypt_encoded(sk)  # 5 * (n // 3) mod n is just under 2n/3
    # enc * 2 is exact without wrapping: the factor 2 goes into the scale.
    assert (enc * 2).decrypt(sk)[0] == 2 * third
    neg = -enc
    assert int(neg.decrypt_encoded(sk)[0]) == -third
    with pytest.raises(OverflowError):
        (neg + neg).decrypt(sk)


def test_decode_to_float_overflow(keys):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, np.array([1 << 400], dtype=object), precision_bits=0)
    big = EncryptedArray(pk, enc._c, -700)  # value 2**1100 does not fit a float64
    with pytest.raises(OverflowError):
        big.decrypt(sk)


# --------------------------------------------------------------------------
# homomorphic arithmetic, against plaintext and against phe
# --------------------------------------------------------------------------


@SETTINGS
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
)
def test_ops_match_plaintext(keys, data, shape):
    pk, sk = keys
    x = data.draw(hnp.arrays(np.float64, shape, elements=finite_floats()))
    y = data.draw(hnp.arrays(np.float64, shape, elements=finite_floats()))
    a = data.draw(finite_floats(lo=1e-6, hi=1e6))
    ex, ey = EncryptedArray.encrypt(pk, x), EncryptedArray.encrypt(pk, y)
    X, Y = encoded(x), encoded(y)
    tol = 1e-12 * (np.abs(X) + np.abs(Y) + 1)
    np.testing.assert_allclose((ex + ey).decrypt(sk), X + Y, rtol=0, atol=tol.max())
    np.testing.assert_allclose((ex - ey).decrypt(sk), X - Y, rtol=0, atol=tol.max())
    np.testing.assert_allclose((-ex).decrypt(sk), -X, rtol=0, atol=0)
    np.testing.assert_allclose((ex + y).decrypt(sk), X + Y, rtol=0, atol=tol.max())
    np.testing.assert_allclose((y - ex).decrypt(sk), Y - X, rtol=0, atol=tol.max())
    np.testing.assert_allclose((ex - 1.5).decrypt(sk), X - 1.5, rtol=0, atol=tol.max())
    # Plaintext factors carry 32 significant bits relative to their maximum.
    prod = (ex * a).decrypt(sk)
    np.testing.assert_allclose(prod, X * a, rtol=2.0**-31, atol=1e-300)
    prod = (ex * y).decrypt(sk)
    bound = 2.0**-32 * np.abs(y).max() * np.abs(X) + 1e-15 * np.abs(X * Y)
    assert np.all(np.abs(prod - X * Y) <= bound + 1e-300)
    np.testing.assert_allclose((ex / 4).decrypt(sk), X / 4, rtol=0, atol=0)
    np.testing.assert_allclose(
        ex.sum().decrypt(sk), X.sum(), rtol=1e-12, atol=1e-12 * np.abs(X).sum()
    )
    np.testing.assert_allclose(
        ex.sum(axis=0).decrypt(sk), X.sum(axis=0), rtol=1e-12, atol=1e-12 * np.abs(X).sum()
    )


def test_broadcasting_and_scale_alignment(keys):
    pk, sk = keys
    x = np.arange(6.0).reshape(2, 3) - 2.5
    ex = EncryptedArray.encrypt(pk, x)
    row = EncryptedArray.encrypt(pk, [1.0, 2.0, 3.0], precision_bits=10)
    with pytest.raises(ValueError, match="do not broadcast"):
        ex + row  # a (3,) ciphertext array never stretches silently to (2, 3)
    out = ex + row.broadcast_to(ex.shape)  # scales 64 and 10
    assert out.shape == (2, 3) and out.scale_bits == 64
    np.testing.assert_array_equal(out.decrypt(sk), x + [1, 2, 3])
    col = ex * np.array([[2.0], [0.5]])  # (2, 3) * (2, 1)
    np.testing.assert_array_equal(col.decrypt(sk), x * [[2.0], [0.5]])
    lifted = (ex * 0.3) + ex  # scales differ by the factor's scale
    np.testing.assert_allclose(lifted.decrypt(sk), x * 1.3, rtol=1e-9)
    with pytest.raises(ValueError):
        ex.rescale(ex.scale_bits - 1)


def test_cross_check_with_phe(keys):
    pk, sk = keys
    rng = np.random.default_rng(0)
    x = rng.normal(size=6) * 10.0 ** rng.integers(-5, 6, size=6)
    y = rng.normal(size=6)
    ex, ey = EncryptedArray.encrypt(pk, x), EncryptedArray.encrypt(pk, y)
    px, py = ex.to_phe(), ey.to_phe()
    assert px.shape == (6,)
    for i in range(6):
        # Our ciphertexts decrypt under phe, and phe's arithmetic agrees with ours.
        assert sk.decrypt(px[i]) == pytest.approx(x[i], rel=1e-15, abs=1e-18)
        assert sk.decrypt(px[i] + py[i]) == pytest.approx((ex + ey).decrypt(sk)[i], rel=1e-13)
        assert sk.decrypt(px[i] * 2.5) == pytest.approx((ex * 2.5).decrypt(sk)[i], rel=1e-13)
        assert sk.decrypt(px[i] - 1.25) == pytest.approx((ex - 1.25).decrypt(sk)[i], rel=1e-13)
    # phe ciphertexts (mixed exponents) come in and decrypt with our CRT code.
    nums = [pk.encrypt(float(v)) for v in y] + [pk.encrypt(3), pk.encrypt(-1e-9)]
    back = EncryptedArray.from_phe(pk, nums)
    np.testing.assert_allclose(back.decrypt(sk), [*y, 3, -1e-9], rtol=1e-15)
    summed = (back[:6] + ey).decrypt(sk)
    np.testing.assert_allclose(summed, 2 * y, rtol=1e-14)


def test_different_keys_do_not_mix(keys, other_keys):
    a = EncryptedArray.encrypt(keys[0], [1.0])
    b = EncryptedArray.encrypt(other_keys[0], [1.0])
    with pytest.raises(ValueError):
        a + b
    with pytest.raises(ValueError):
        a.decrypt(other_keys[1])
    with pytest.raises(TypeError):
        a * b


def test_indexing_shape_and_transpose(keys):
    pk, sk = keys
    x = np.arange(12.0).reshape(4, 3)
    ex = EncryptedArray.encrypt(pk, x)
    assert len(ex) == 4 and ex.ndim == 2 and ex.size == 12
    np.testing.assert_array_equal(ex[1].decrypt(sk), x[1])
    np.testing.assert_array_equal(ex[1:3].decrypt(sk), x[1:3])
    np.testing.assert_array_equal(ex[[3, 0, 0]].decrypt(sk), x[[3, 0, 0]])
    np.testing.assert_array_equal(ex[x[:, 0] > 4].decrypt(sk), x[x[:, 0] > 4])
    np.testing.assert_array_equal(ex[2, 1].decrypt(sk), x[2, 1])
    assert ex[2, 1].shape == ()
    np.testing.assert_array_equal(ex.T.decrypt(sk), x.T)
    np.testing.assert_array_equal(ex.reshape(6, 2).decrypt(sk), x.reshape(6, 2))
    np.testing.assert_array_equal(ex.sum(axis=1).decrypt(sk), x.sum(axis=1))
    cat = EncryptedArray.concatenate([ex, ex[:1] * 2])
    np.testing.assert_array_equal(cat.decrypt(sk), np.vstack([x, 2 * x[:1]]))
    with pytest.raises(TypeError):
        len(ex[0, 0])
    with pytest.raises(TypeError):
        bool(ex)
    assert "EncryptedArray" in repr(ex) and str(int(ex._c[0, 0])) not in repr(ex)


def test_obfuscate_rerandomises(keys):
    pk, sk = keys
    x = np.array([0.0, 1.0, -2.0])
    ex = EncryptedArray.encrypt(pk, x)
    for mode in ("djn", "full"):
        ob = ex.obfuscate(obfuscator=mode)
        assert all(int(a) != int(b) for a, b in zip(ob._c, ex._c))
        np.testing.assert_array_equal(ob.decrypt(sk), x)
    full = EncryptedArray.encrypt(pk, x, obfuscator="full")
    np.testing.assert_array_equal(full.decrypt(sk), x)
    # Encryptions of equal values are distinct (randomised).
    twice = EncryptedArray.encrypt(pk, [5.0, 5.0])
    assert int(twice._c[0]) != int(twice._c[1])
    with pytest.raises(ValueError):
        EncryptedArray.encrypt(pk, x, obfuscator="none")


# --------------------------------------------------------------------------
# plaintext-matrix products (the multi-exponentiation)
# --------------------------------------------------------------------------


def _matmul_bound(X, x, B=paillier.DEFAULT_PLAIN_PRECISION_BITS):
    """Per-output error bound: B significant bits per row of X, plus float error."""
    X = np.atleast_2d(X)
    row_max = np.abs(X).max(axis=1, keepdims=True) if X.shape[1] else np.zeros((len(X), 1))
    quant = 2.0**-B * row_max * np.abs(x).sum(axis=0)
    return quant + 1e-13 * (np.abs(X) @ np.abs(x)) + 1e-300


@SETTINGS
@given(data=st.data())
def test_xt_at_enc_matches_plaintext(keys, data):
    pk, sk = keys
    n = data.draw(st.integers(1, 40))
    d = data.draw(st.integers(1, 4))
    X = data.draw(hnp.arrays(np.float64, (n, d), elements=finite_floats(lo=1e-6, hi=1e6)))
    x = data.draw(hnp.arrays(np.float64, (n,), elements=finite_floats(lo=1e-6, hi=1e6)))
    enc = EncryptedArray.encrypt(pk, x)
    out = (X.T @ enc).decrypt(sk)
    expect = X.T @ encoded(x)
    assert out.shape == (d,)
    assert np.all(np.abs(out - expect) <= _matmul_bound(X.T, encoded(x)[:, None]).ravel())


@SETTINGS
@given(data=st.data())
def test_matmul_2d_and_integer_exact(keys, data):
    pk, sk = keys
    n = data.draw(st.integers(1, 12))
    k = data.draw(st.integers(1, 3))
    m = data.draw(st.integers(1, 5))
    x = data.draw(hnp.arrays(np.float64, (n, k), elements=finite_floats(lo=1e-3, hi=1e3)))
    Xi = data.draw(hnp.arrays(np.int64, (m, n), elements=st.integers(-(2**40), 2**40)))
    Mi = data.draw(hnp.arrays(np.int64, (k, m), elements=st.integers(-1000, 1000)))
    enc = EncryptedArray.encrypt(pk, x)
    ints = np.array([[int(v) for v in row] for row in np.rint(np.ldexp(x, 64))], dtype=object)
    # Integer factors are exact: compare encoded integers. Common trailing
    # zero bits of the factor are folded into the scale, never lost.

    def exact(out):
        assert out.scale_bits <= 64
        return np.asarray(out.decrypt_encoded(sk) * 2 ** (64 - out.scale_bits), dtype=object)

    got = exact(Xi @ enc)
    assert got.shape == (m, k)
    assert (got == Xi.astype(object) @ ints).all()
    got = exact(enc @ Mi)
    assert got.shape == (n, m)
    assert (got == ints @ Mi.astype(object)).all()
    got = exact(enc @ Mi[:, 0])
    assert got.shape == (n,) and (got == ints @ Mi[:, 0].astype(object)).all()
    got = exact(Xi[0] @ enc[:, 0])
    assert got.shape == () and got[()] == Xi[0].astype(object) @ ints[:, 0]


def test_power_of_two_factors_are_cheap_and_exact(keys):
    pk, sk = keys
    x = np.array([1.5, -2.25, 1e-3])
    enc = EncryptedArray.encrypt(pk, x)
    q = enc * 0.25
    assert q.scale_bits == enc.scale_bits + 2  # a 1-bit exponent, not a 32-bit one
    np.testing.assert_array_equal(q.decrypt(sk), encoded(x) * 0.25)
    d = enc * 8
    assert d.scale_bits == enc.scale_bits - 3
    np.testing.assert_array_equal((d + enc).decrypt(sk), encoded(x) * 9)
    onehot = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.25, 0.0]])
    out = onehot @ enc
    np.testing.assert_array_equal(out.decrypt(sk), onehot @ encoded(x))


def test_matmul_heterogeneous_rows_keep_relative_precision(keys):
    pk, sk = keys
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)) * np.array([1e-6, 1.0, 1e6])  # unscaled features
    x = rng.normal(size=50)
    out = (X.T @ EncryptedArray.encrypt(pk, x)).decrypt(sk)
    expect = X.T @ x
    rel = np.abs(out - expect) / (np.abs(X.T) @ np.abs(x))
    assert rel.max() < 1e-9  # each feature keeps its own 32 significant bits


def test_matmul_shape_errors(keys):
    pk, _ = keys
    enc = EncryptedArray.encrypt(pk, np.zeros(4))
    with pytest.raises(ValueError):
        np.ones((3, 5)) @ enc
    with pytest.raises(ValueError):
        enc.reshape(2, 2) @ np.ones((3, 1))
    with pytest.raises(ValueError):
        enc.rmatmul(np.ones((1, 4)), precision_bits=80)
    with pytest.raises(TypeError):
        enc @ enc


def test_matmul_zero_matrix_and_extremes(keys):
    pk, sk = keys
    x = np.array([1e30, -1e-30, 0.0, 5.0])
    enc = EncryptedArray.encrypt(pk, x)
    np.testing.assert_array_equal((np.zeros((2, 4)) @ enc).decrypt(sk), [0.0, 0.0])
    # Rows of very different magnitude each keep their precision...
    X = np.array([[0.0, 0.0, 1e-20, 1e-20], [1.0, 0.0, 0.0, 0.0]])
    out = (X @ enc).decrypt(sk)
    np.testing.assert_allclose(out, [5e-20, 1e30], rtol=1e-9)
    # ...but within a row, entries 2**32 below the row maximum round to zero.
    X = np.array([[0.0, 0.0, 1.0, 1e-20]])
    np.testing.assert_array_equal((X @ enc).decrypt(sk), [0.0])


@pytest.mark.parametrize("method", ["bucket", "table", "naive"])
def test_multiexp_strategies_agree(method):
    from skfed.crypto._multiexp import multiexp

    rng = np.random.default_rng(3)
    m = gmpy2.mpz(int(gmpy2.next_prime(2**200)) * int(gmpy2.next_prime(2**201))) ** 2
    bases = [gmpy2.mpz(int(v)) for v in rng.integers(2, 2**62, size=25)]
    K = rng.integers(-(2**45), 2**45, size=(6, 25))
    K[rng.random(K.shape) < 0.3] = 0
    K[0] = 0
    K[1, :] = -(2**61)  # extreme exponents
    mi = int(m)
    want = [math.prod(pow(int(b), int(k), mi) for b, k in zip(bases, row)) % mi for row in K]
    for window in ([3, 8, 11] if method != "naive" else [0]):
        got = multiexp(bases, K, m, method, window)
        assert [int(v) for v in got] == want


@pytest.mark.parametrize("variant", ["split", "shared"])
@pytest.mark.parametrize("signs", ["mixed", "non-negative"])
def test_bucket_variants_agree(variant, signs):
    # Positive and negative bucket sets vs. bases inverted once (batch inversion).
    from skfed.crypto import _multiexp as me

    rng = np.random.default_rng(5)
    m = gmpy2.mpz(int(gmpy2.next_prime(2**150)) * int(gmpy2.next_prime(2**151))) ** 2
    bases = [gmpy2.mpz(int(v)) for v in rng.integers(2, 2**62, size=30)]
    lo = 0 if signs == "non-negative" else -(2**40)
    K = rng.integers(lo, 2**40, size=(5, 30))
    K[rng.random(K.shape) < 0.2] = 0
    mi = int(m)
    want = [math.prod(pow(int(b), int(k), mi) for b, k in zip(bases, row)) % mi for row in K]
    for c in (2, 5, 9):
        digits = me.signed_digits(K, c)
        if variant == "split":
            got = me._bucket_split(bases, K, m, c, digits)
        else:
            got = me._bucket_shared(bases, K, m, c, digits, me.batch_invert(bases, m))
        assert [int(v) for v in got] == want


def test_batch_invert():
    from skfed.crypto._multiexp import batch_invert

    m = gmpy2.mpz(1009 * 1013) ** 2
    vals = [gmpy2.mpz(v) for v in (2, 3, 5, 7, 1, 1008 * 1012)]
    assert [int(v) * int(w) % int(m) for v, w in zip(vals, batch_invert(vals, m))] == [1] * 6
    assert batch_invert([], m) == []
    with pytest.raises(ZeroDivisionError):
        batch_invert([gmpy2.mpz(3), gmpy2.mpz(1009)], m)


# --------------------------------------------------------------------------
# wire format
# --------------------------------------------------------------------------


@SETTINGS
@given(x=float_arrays())
def test_wire_round_trip(keys, x):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, x)
    obj = enc.to_wire()
    assert isinstance(obj["ciphertexts"], bytes)
    assert len(obj["ciphertexts"]) == x.size * ((2 * pk.n.bit_length() + 7) // 8)
    back = EncryptedArray.from_wire(pk, obj)
    assert back.shape == enc.shape and back.scale_bits == enc.scale_bits
    assert [int(a) for a in back._c.ravel()] == [int(a) for a in enc._c.ravel()]
    np.testing.assert_array_equal(back.decrypt(sk), encoded(x))


def _tamper(obj, index, value, width):
    blob = bytearray(obj["ciphertexts"])
    blob[index * width : (index + 1) * width] = value.to_bytes(width, "big")
    return dict(obj, ciphertexts=bytes(blob))


def test_from_wire_rejects_tampering(keys, other_keys):
    pk, sk = keys
    n = pk.n
    n2 = n * n
    width = (n2.bit_length() + 7) // 8
    obj = EncryptedArray.encrypt(pk, [1.0, 2.0, 3.0]).to_wire()
    p = sk.p
    cases = {
        "zero": _tamper(obj, 1, 0, width),
        "n^2": _tamper(obj, 0, n2, width),
        "above n^2": _tamper(obj, 2, 2 ** (8 * width) - 1, width),
        "multiple of p": _tamper(obj, 1, p * 12345, width),
        "multiple of n": _tamper(obj, 0, n * 7, width),
        "short blob": dict(obj, ciphertexts=obj["ciphertexts"][:-1]),
        "long blob": dict(obj, ciphertexts=obj["ciphertexts"] + b"\x01" * width),
        "wrong shape": dict(obj, shape=[2, 2]),
        "negative shape": dict(obj, shape=[-3]),
        "bool shape": dict(obj, shape=[True, 3]),
        "float scale": dict(obj, scale_bits=64.0),
        "huge scale": dict(obj, scale_bits=10**9),
        "str blob": dict(obj, ciphertexts="abc"),
        "missing key": {k: v for k, v in obj.items() if k != "shape"},
        "wrong scheme": dict(obj, scheme="elgamal"),
    }
    for name, bad in cases.items():
        with pytest.raises(ValueError):
            EncryptedArray.from_wire(pk, bad)
            pytest.fail(name)
    # A ciphertext under another key has the wrong width or is not a unit.
    with pytest.raises(ValueError):
        EncryptedArray.from_wire(generate_keypair(640)[0], obj)
    # The untouched object still loads.
    np.testing.assert_array_equal(EncryptedArray.from_wire(pk, obj).decrypt(sk), [1, 2, 3])


# --------------------------------------------------------------------------
# masking for decryption at a third party
# --------------------------------------------------------------------------


@SETTINGS
@given(x=float_arrays(shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)))
def test_mask_round_trip(keys, x):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, x) * 3.0 + 1.0
    masked, mask = enc.add_random_mask()
    assert mask.shape == x.shape and mask.dtype == object
    assert masked.scale_bits == enc.scale_bits
    # The third party decrypts without learning the scale-free value.
    wire = EncryptedArray.from_wire(pk, masked.to_wire())
    ints = wire.decrypt_encoded(sk)
    assert ints.dtype == object and ints.shape == x.shape
    out = decode_masked(ints, mask, wire.scale_bits)
    np.testing.assert_array_equal(out, enc.decrypt(sk))


def test_masked_values_look_uniform(keys):
    pk, sk = keys
    n_bits = pk.n.bit_length()
    rng = np.random.default_rng(5)
    x = np.concatenate([np.zeros(100), rng.normal(size=100) * 1e6])
    enc = EncryptedArray.encrypt(pk, x)
    masked, mask = enc.add_random_mask(sigma_bits=80)
    ints = masked.decrypt_encoded(sk)
    # Every masked value sits in [-2**(n_bits-4), 2**(n_bits-3)), mostly high.
    u = np.array([int(v) / 2.0 ** (n_bits - 4) for v in ints])
    assert u.min() > -1e-6 and u.max() < 1.0 + 1e-6
    assert 0.35 < u.mean() < 0.65 and 0.2 < u.std() < 0.4
    # No visible relation with the secret values.
    assert abs(np.corrcoef(u, x)[0, 1]) < 0.3
    assert abs(u[:100].mean() - u[100:].mean()) < 0.15
    # The masked ciphertexts are re-randomised, not enc * g**mask.
    n2 = pk.n * pk.n
    plain_add = [int(c) * (1 + int(r) * pk.n) % n2 for c, r in zip(enc._c, mask)]
    assert all(int(a) != b for a, b in zip(masked._c, plain_add))


def test_mask_parameters_and_overflow(keys):
    pk, sk = keys
    enc = EncryptedArray.encrypt(pk, [1.0, 2.0])
    with pytest.raises(ValueError):
        enc.add_random_mask(sigma_bits=20)
    with pytest.raises(ValueError):
        enc.add_random_mask(sigma_bits=500)  # 512-bit key leaves no room
    masked, mask = enc.add_random_mask(sigma_bits=40)
    ints = masked.decrypt_encoded(sk)
    with pytest.raises(ValueError):
        decode_masked(ints, mask[:1], masked.scale_bits)
    # A value too large for its mask is reported rather than silently decoded.
    huge = np.array([int(ints[0]) + (1 << 500), int(ints[1])], dtype=object)
    with pytest.raises(OverflowError):
        decode_masked(huge, mask, masked.scale_bits, sigma_bits=40)


# --------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------


@SETTINGS
@given(
    data=st.data(),
    slot_bits=st.sampled_from([8, 17, 64, 100]),
    n_clients=st.integers(1, 5),
)
def test_packing_sums(keys, data, slot_bits, n_clients):
    pk, sk = keys
    n = data.draw(st.integers(0, 40))
    headroom = math.ceil(math.log2(n_clients)) if n_clients > 1 else 0
    top = 2 ** (slot_bits - headroom) - 1
    vecs = [
        data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n)) for _ in range(n_clients)
    ]
    packed = [pack_encrypt(pk, np.array(v, dtype=object), slot_bits) for v in vecs]
    spc = (pk.n.bit_length() - 1) // slot_bits
    assert len(packed[0]) == -(-n // spc)
    total = sum(packed)
    assert total.n_summands == n_clients
    total = PackedCiphertexts.from_wire(pk, total.to_wire())
    out = total.decrypt(sk)
    expect = [sum(col) for col in zip(*vecs)] if n else []
    assert [int(v) for v in out] == expect
    assert out.dtype == (np.uint64 if slot_bits <= 64 else object)
    assert [int(v) for v in total.decrypt(sk, n // 2)] == expect[: n // 2]


def test_packing_uint64_full_range_and_errors(keys):
    pk, sk = keys
    vals = np.array([0, 1, 2**63, 2**64 - 1] * 5, dtype=np.uint64)
    packed = pack_encrypt(pk, vals, 64)
    np.testing.assert_array_equal(packed.decrypt(sk), vals)
    with pytest.raises(OverflowError):
        (packed + packed).decrypt(sk)  # top slot carries out
    with pytest.raises(ValueError):
        pack_encrypt(pk, [2**8], 8)
    with pytest.raises(ValueError):
        pack_encrypt(pk, [-1], 8)
    with pytest.raises(ValueError):
        pack_encrypt(pk, [1.5], 8)
    with pytest.raises(ValueError):
        pack_encrypt(pk, [1], 600)
    with pytest.raises(ValueError):
        packed + pack_encrypt(pk, vals, 32)
    ob = packed.obfuscate()
    assert int(ob._c[0]) != int(packed._c[0])
    np.testing.assert_array_equal(ob.decrypt(sk), vals)
    bad = packed.to_wire()
    with pytest.raises(ValueError):
        PackedCiphertexts.from_wire(pk, dict(bad, n_values=bad["n_values"] + 100))
    with pytest.raises(ValueError):
        PackedCiphertexts.from_wire(pk, dict(bad, ciphertexts=b"\x00" * len(bad["ciphertexts"])))


# --------------------------------------------------------------------------
# parallel execution (loky workers) gives the same results
# --------------------------------------------------------------------------


def test_parallel_paths_agree(keys, monkeypatch):
    pk, sk = keys
    monkeypatch.setattr(paillier, "PARALLEL_MIN_SECONDS", 0.0)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 2))
    enc = EncryptedArray.encrypt(pk, x, n_jobs=2)
    assert enc.n_jobs == 2
    np.testing.assert_array_equal(enc.decrypt(sk, n_jobs=2), encoded(x))
    X = rng.normal(size=(30, 3))
    ref = (X.T @ EncryptedArray(pk, enc._c, enc.scale_bits)).decrypt_encoded(sk)  # serial
    assert ((X.T @ enc).decrypt_encoded(sk) == ref).all()  # split over the 2 columns
    ref1 = X.T @ EncryptedArray(pk, enc._c[:, 0], enc.scale_bits)
    got1 = X.T @ enc[:, 0]  # one base vector, rows split
    assert (got1.decrypt_encoded(sk) == ref1.decrypt_encoded(sk)).all()
    got2 = X[:, :1].T @ enc[:, 0]  # one row, bases split
    ref2 = X[:, :1].T @ EncryptedArray(pk, enc._c[:, 0], enc.scale_bits)
    assert (got2.decrypt_encoded(sk) == ref2.decrypt_encoded(sk)).all()
    np.testing.assert_allclose((enc * X[:, :2]).decrypt(sk), encoded(x) * X[:, :2], atol=1e-8)
    np.testing.assert_array_equal(enc.obfuscate().decrypt(sk), encoded(x))
    packed = pack_encrypt(pk, np.arange(100, dtype=np.uint64), 16, n_jobs=2)
    np.testing.assert_array_equal(packed.decrypt(sk, n_jobs=2), np.arange(100))


# --------------------------------------------------------------------------
# production key size
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_2048_bit_end_to_end(monkeypatch):
    monkeypatch.delenv("SKFED_ALLOW_INSECURE_KEYS", raising=False)
    pk, sk = generate_keypair(2048)
    assert pk.n.bit_length() == 2048
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 4))
    d = rng.normal(size=200)
    enc = EncryptedArray.from_wire(pk, EncryptedArray.encrypt(pk, d).to_wire())
    g = X.T @ enc + 0.1 * np.ones(4)
    masked, mask = g.add_random_mask()
    out = decode_masked(masked.decrypt_encoded(sk), mask, masked.scale_bits)
    np.testing.assert_allclose(out, X.T @ d + 0.1, rtol=1e-9, atol=1e-9)
    packed = sum(pack_encrypt(pk, np.full(100, 2**60, dtype=np.uint64), 64) for _ in range(3))
    np.testing.assert_array_equal(packed.decrypt(sk), np.full(100, 3 * 2**60, dtype=np.uint64))


def test_oversized_public_key_from_a_peer_is_refused_fast():
    from skfed.crypto.paillier import check_key_size, public_key_from_wire

    with pytest.raises(ValueError, match="maximum"):
        check_key_size(16384)
    with pytest.raises(ValueError, match="maximum"):
        public_key_from_wire({"scheme": "paillier", "n": (1 << 32767) + 1})
