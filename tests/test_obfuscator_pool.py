"""Obfuscator pool and fixed-base window sizes of the Paillier engine."""

import threading

import gmpy2
import numpy as np
import pytest
from joblib import parallel_config

from skfed.crypto import paillier
from skfed.crypto.paillier import (
    EncryptedArray,
    ObfuscatorPool,
    decode_masked,
    generate_keypair,
)


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


def _as_ints(values):
    return [int(v) for v in np.asarray(values, dtype=object).ravel().tolist()]


def test_take_hands_out_each_randomiser_once(keys):
    pk, _ = keys
    pool = ObfuscatorPool(pk, background=False)
    pool.fill(30)
    seen = []
    for count in (7, 0, 13, 10, 25):
        before = len(pool)
        rho = pool.take(count)
        assert rho.shape == (count,)
        assert len(pool) == max(before - count, 0)
        seen += _as_ints(rho)
    assert len(seen) == len(set(seen)) == 55
    assert (pool.n_taken, pool.n_missed, pool.n_generated) == (55, 25, 30)


def test_randomisers_are_encryptions_of_zero(keys):
    pk, sk = keys
    with ObfuscatorPool(pk, background=False) as pool:
        pool.fill(5)
        rho = pool.take(8)  # 5 stocked, 3 computed on the spot
    n2 = int(pk.n) ** 2
    assert all(0 < r < n2 and gmpy2.gcd(r, pk.n) == 1 for r in _as_ints(rho))
    np.testing.assert_array_equal(EncryptedArray(pk, rho, 0).decrypt(sk), np.zeros(8))


def test_encrypt_with_pool_decrypts_and_never_repeats_a_ciphertext(keys):
    pk, sk = keys
    rng = np.random.default_rng(0)
    x = rng.normal(scale=1e3, size=(4, 6))
    x[0, 0], x[1, 1] = 0.0, -2.5
    with ObfuscatorPool(pk, background=False) as pool:
        pool.fill(30)
        a = EncryptedArray.encrypt(pk, x, pool=pool)
        b = EncryptedArray.encrypt(pk, x, pool=pool)  # 18 of these computed on the spot
        assert pool.n_missed == 18
    np.testing.assert_array_equal(a.decrypt(sk), x)
    np.testing.assert_array_equal(b.decrypt(sk), x)
    cts = _as_ints(a._c) + _as_ints(b._c)
    assert len(set(cts)) == len(cts)


def test_zeros_expose_the_randomisers_and_none_is_reused(keys):
    # Enc(0) = rho, so encrypting zeros shows exactly which randomisers were used.
    pk, _ = keys
    with ObfuscatorPool(pk, background=False) as pool:
        pool.fill(10)
        stocked = set(_as_ints(list(pool._stock)))
        first = _as_ints(EncryptedArray.encrypt(pk, np.zeros(6, dtype=int), pool=pool)._c)
        second = _as_ints(EncryptedArray.encrypt(pk, np.zeros(6, dtype=int), pool=pool)._c)
    assert set(first) <= stocked
    assert len(set(first + second)) == 12
    assert len(set(second) & stocked) == 4


def test_obfuscate_and_mask_with_pool(keys):
    pk, sk = keys
    x = np.array([1.25, -3.0, 7.5])
    enc = EncryptedArray.encrypt(pk, x)
    with ObfuscatorPool(pk, background=False) as pool:
        again = enc.obfuscate(pool=pool)
        masked, mask = (enc * 2.0).add_random_mask(pool=pool)
        assert pool.n_taken == 6
    assert set(_as_ints(again._c)).isdisjoint(_as_ints(enc._c))
    np.testing.assert_array_equal(again.decrypt(sk), x)
    ints = masked.decrypt_encoded(sk)
    np.testing.assert_array_equal(decode_masked(ints, mask, masked.scale_bits), 2 * x)


def test_wire_format_is_unchanged_by_the_pool(keys):
    pk, sk = keys
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    plain = EncryptedArray.encrypt(pk, x).to_wire()
    with ObfuscatorPool(pk, background=False) as pool:
        pooled = EncryptedArray.encrypt(pk, x, pool=pool).to_wire()
    assert plain.keys() == pooled.keys()
    assert len(plain["ciphertexts"]) == len(pooled["ciphertexts"])
    assert (plain["shape"], plain["scale_bits"]) == (pooled["shape"], pooled["scale_bits"])
    back = EncryptedArray.from_wire(pk, pooled)
    np.testing.assert_array_equal(back.decrypt(sk), x)


def test_refill_happens_only_while_idle_or_when_asked(keys):
    pk, _ = keys
    with ObfuscatorPool(pk, n_jobs=1) as pool:
        pool.take(40)                  # learns the demand: target 40
        assert pool.target == 40
        pool.wait()
        assert len(pool) == 0 and pool._thread is None   # no refill outside idle()
        with pool.idle():
            pool.wait()                # a party waiting for a message
        assert len(pool) == 40
        pool.take(40)
        assert pool.n_missed == 40     # only the first request missed
        pool.reserve(55)
        pool.start_refill()
        pool.wait()
        assert len(pool) == 55 and pool.n_generated == 95


def test_leaving_idle_pauses_the_refill(keys):
    pk, _ = keys
    with ObfuscatorPool(pk, n_jobs=1, target=10**6) as pool:
        with pool.idle():
            pass
        pool.wait()                    # returns: the refill stopped after its step
        assert 0 <= len(pool) < 10**6 and pool._thread is None
        stocked = len(pool)
        pool.wait()
        assert len(pool) == stocked


def test_idle_without_background_does_nothing(keys):
    pk, _ = keys
    with ObfuscatorPool(pk, target=5, background=False) as pool:
        with pool.idle():
            pool.wait()
        assert len(pool) == 0


def test_concurrent_takes_during_background_refill_share_nothing(keys):
    pk, sk = keys
    pool = ObfuscatorPool(pk, n_jobs=1, target=64)
    pool.start_refill()
    out, errors = [], []

    def worker():
        try:
            for _ in range(6):
                out.append(_as_ints(pool.take(9)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.wait()
    assert not errors
    flat = [v for chunk in out for v in chunk]
    assert len(flat) == 6 * 6 * 9 == len(set(flat))
    assert pool.n_taken == len(flat)
    # Every stocked randomiser is either still in stock or was handed out once.
    assert pool.n_generated == len(pool) + pool.n_taken - pool.n_missed
    assert len(set(_as_ints(list(pool._stock))) & set(flat)) == 0
    pool.close()
    assert len(pool) == 0
    sample = EncryptedArray(pk, np.array([gmpy2.mpz(v) for v in flat[:5]], dtype=object), 0)
    np.testing.assert_array_equal(sample.decrypt(sk), np.zeros(5))


def test_parallel_generation(keys):
    pk, sk = keys
    with parallel_config(backend="threading"):
        with ObfuscatorPool(pk, n_jobs=2, background=False) as pool:
            rho = paillier._generate_obfuscators(pool._ctx, 9, 2, force_parallel=True)
            pool.fill(12)
            assert len(pool) == 12
    assert len(set(_as_ints(rho))) == 9
    enc = EncryptedArray(pk, np.array(rho, dtype=object), 0)
    np.testing.assert_array_equal(enc.decrypt(sk), np.zeros(9))


def test_pool_errors(keys):
    pk, _ = keys
    other, _ = generate_keypair(512)
    pool = ObfuscatorPool(pk, background=False)
    with pytest.raises(ValueError, match="different public key"):
        EncryptedArray.encrypt(other, [1.0], pool=pool)
    with pytest.raises(ValueError, match="obfuscator='djn'"):
        EncryptedArray.encrypt(pk, [1.0], pool=pool, obfuscator="full")
    with pytest.raises(TypeError, match="ObfuscatorPool"):
        EncryptedArray.encrypt(pk, [1.0], pool=object())
    with pytest.raises(ValueError, match="non-negative"):
        pool.take(-1)
    with pytest.raises(ValueError, match="integer"):
        pool.take(1.5)
    pool.close()
    with pytest.raises(ValueError, match="closed"):
        pool.take(1)


@pytest.mark.parametrize("window", [8, 10, 11, 12])
def test_random_digits_cover_every_window_bit(window):
    d = paillier._random_digits(400, 5, window)
    assert d.shape == (400, 5)
    assert d.min() >= 0 and d.max() < 2**window
    # Each bit of each digit is set about half the time.
    bits = (np.asarray(d, dtype=np.int64)[..., None] >> np.arange(window)) & 1
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.15)


def test_table_upgrades_to_the_large_window_and_stays_correct():
    pk, sk = generate_keypair(384)
    ctx = paillier._context(pk.n)
    assert ctx.djn_table(upcoming=1).window == paillier.DJN_WINDOW_SMALL
    small = EncryptedArray.encrypt(pk, [1.0, -2.0])
    threshold = ctx.upgrade_threshold()
    table = ctx.djn_table(upcoming=int(threshold))
    assert table.window == paillier.DJN_WINDOW_LARGE
    # The exponent is never shorter than ceil(k/2) bits.
    assert table.exponent_bits >= -(-ctx.n_bits // 2)
    assert ctx.djn_table() is table
    x = np.linspace(-5, 5, 7)
    np.testing.assert_array_equal(EncryptedArray.encrypt(pk, x).decrypt(sk), x)
    np.testing.assert_array_equal(small.decrypt(sk), [1.0, -2.0])


def test_a_large_first_request_builds_the_large_table_directly():
    pk, _ = generate_keypair(320)
    ctx = paillier._context(pk.n)
    assert ctx.djn_table(upcoming=int(ctx.upgrade_threshold()) + 1).window == (
        paillier.DJN_WINDOW_LARGE
    )


@pytest.fixture
def recorded_pools(monkeypatch):
    """Every ObfuscatorPool created during the test."""
    pools = []
    init = ObfuscatorPool.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        pools.append(self)

    monkeypatch.setattr(ObfuscatorPool, "__init__", record)
    return pools


def test_vertical_roles_use_and_close_their_pools(recorded_pools):
    from skfed import VerticalLogisticRegression, VerticalTopology

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + X[:, 2] > 0).astype(int)
    topo = VerticalTopology({"guest": [0, 1], "host": [2, 3]}, label_party="guest")
    kw = dict(topology=topo, max_iter=3, tol=None, random_state=0)
    est = VerticalLogisticRegression(key_size=512, **kw).fit(X, y)
    ref = VerticalLogisticRegression(encryption=None, **kw).fit(X, y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    # One pool per data party (the arbiter encrypts nothing), closed at the end.
    assert len(recorded_pools) == 2
    for pool in recorded_pools:
        assert pool._closed and pool._thread is None
        # Per round: 40 encryptions plus the masked gradient (and the host's loss term).
        assert pool.n_taken >= 3 * 40


def test_transfer_roles_use_and_close_their_pools(recorded_pools):
    from skfed import FederatedTransferClassifier, VerticalTopology

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = (X[:, 0] + X[:, 3] > 0).astype(int)
    topo = VerticalTopology({"a": [0, 1], "b": [2, 3]}, label_party="a")
    kw = dict(topology=topo, hidden_layer_sizes=(), representation_dim=2, max_iter=2,
              random_state=0)
    enc = FederatedTransferClassifier(key_size=512, **kw).fit(X, y)
    plain = FederatedTransferClassifier(encryption=None, **kw).fit(X, y)
    np.testing.assert_allclose(enc.loss_curve_, plain.loss_curve_, rtol=1e-7)
    # Each party: one pool for its own key, one for the peer's.
    assert len(recorded_pools) == 4
    assert all(p._closed and p._thread is None for p in recorded_pools)
    assert all(p.n_taken > 0 for p in recorded_pools)
    n_before = len(recorded_pools)
    enc.predict(X)                     # prediction encrypts once: no pools, no threads
    assert len(recorded_pools) == n_before


def test_workers_only_background(keys):
    pk, sk = keys
    with ObfuscatorPool(pk, n_jobs=1, target=6, background="workers") as pool:
        with pool.idle():
            pool.wait()
        assert len(pool) == 0          # one worker: never in this process
    with parallel_config(backend="threading"):
        with ObfuscatorPool(pk, n_jobs=2, target=6, background="workers") as pool:
            with pool.idle():
                pool.wait()
            assert len(pool) == 6
            rho = pool.take(6)
    np.testing.assert_array_equal(EncryptedArray(pk, rho, 0).decrypt(sk), np.zeros(6))
    with pytest.raises(ValueError, match="background"):
        ObfuscatorPool(pk, background="always")


def test_key_owner_pool_uses_crt_and_matches_the_public_computation(keys):
    pk, sk = keys
    other_pk, other_sk = generate_keypair(512)
    with pytest.raises(ValueError, match="does not match"):
        ObfuscatorPool(pk, private_key=other_sk)
    ctx = paillier._owner_context(sk)
    assert isinstance(ctx, paillier._OwnerKeyContext)
    # Same exponent, same randomiser: CRT recombination equals h_s**r mod n**2.
    tp, _ = ctx._crt_tables(3)
    digits = paillier._random_digits(3, tp.n_windows, tp.window)
    rho = ctx.obfuscators(0)
    assert len(rho) == 0
    xp, xq = tp.pow_digits(digits), ctx._crt[1].pow_digits(digits)
    hs, n2 = ctx._base(), int(pk.n) ** 2
    for i, row in enumerate(digits):
        r = sum(int(v) << (tp.window * j) for j, v in enumerate(row))
        combined = int(xp[i]) + int(ctx.p2) * ((int(xq[i]) - int(xp[i])) * int(ctx._p2_inv)
                                                % int(ctx.q2))
        assert combined == pow(int(hs), r, n2)
    with parallel_config(backend="threading"):
        with ObfuscatorPool(pk, private_key=sk, n_jobs=2, background=False) as pool:
            pool.fill(8)
            rho = pool.take(8)
    assert len(set(_as_ints(rho))) == 8
    # n-th residues: they encrypt zero, and a ciphertext made with them decrypts.
    np.testing.assert_array_equal(EncryptedArray(pk, rho, 0).decrypt(sk), np.zeros(8))
    with ObfuscatorPool(pk, private_key=sk, background=False) as pool:
        enc = EncryptedArray.encrypt(pk, [1.5, -2.0], pool=pool)
    np.testing.assert_array_equal(enc.decrypt(sk), [1.5, -2.0])
