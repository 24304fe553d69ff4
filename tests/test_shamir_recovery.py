"""Shamir sharing and the dropout-tolerant secure-aggregation steps, without learning."""

import os
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skfed.crypto import shamir
from skfed.crypto.secagg import FixedPointRing
from skfed.crypto.secagg_recovery import (
    ConsistencyError,
    RecoveryClient,
    RecoveryServer,
    check_threshold,
    pair_mask,
)


# -- Shamir --------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(secret=st.integers(0, shamir.PRIME - 1), n=st.integers(1, 7), data=st.data())
def test_any_threshold_subset_reconstructs(secret, n, data):
    t = data.draw(st.integers(1, n))
    shares = shamir.split(secret, range(1, n + 1), t)
    subset = data.draw(st.lists(st.sampled_from(sorted(shares)), min_size=t, max_size=n,
                                unique=True))
    assert shamir.combine({x: shares[x] for x in subset}, t) == secret


def test_fewer_than_threshold_shares_say_nothing():
    secret = shamir.secret_to_int(os.urandom(32))
    shares = shamir.split(secret, [1, 2, 3, 4, 5], 3)
    # Interpolating t-1 shares as if they were enough gives an unrelated value...
    assert shamir.combine({1: shares[1], 2: shares[2]}, 2) != secret
    with pytest.raises(ValueError, match="need 3 shares"):
        shamir.combine({1: shares[1], 2: shares[2]}, 3)
    # ...and two sharings of different secrets give t-1 shares of the same
    # distribution: the shares of one point are uniform over the field.
    values = [shamir.split(0, [1, 2, 3], 2)[1] for _ in range(200)]
    assert max(values).bit_length() > 510 and len(set(values)) == 200


def test_shamir_refuses_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        shamir.split(5, [1, 1, 2], 2)
    with pytest.raises(ValueError, match=r"\[1, p-1\]"):
        shamir.split(5, [0, 1, 2], 2)
    with pytest.raises(ValueError, match="threshold"):
        shamir.split(5, [1, 2, 3], 4)
    with pytest.raises(ValueError, match=r"\[0, p\)"):
        shamir.split(shamir.PRIME, [1, 2], 2)
    with pytest.raises(ValueError, match="outside the field"):
        shamir.combine({1: shamir.PRIME, 2: 3}, 2)
    with pytest.raises(ValueError, match="not a secret of this length"):
        shamir.int_to_secret(2**256)
    raw = os.urandom(32)
    assert shamir.int_to_secret(shamir.secret_to_int(raw)) == raw


# -- the protocol steps ----------------------------------------------------------------
NAMES = ["a", "b", "c", "d", "e"]


def _session(threshold=3, names=NAMES):
    clients = {n: RecoveryClient(n, threshold) for n in names}
    keys = {n: c.public_keys() for n, c in clients.items()}
    session = os.urandom(32)
    for c in clients.values():
        c.agree(keys, session)
    return clients, RecoveryServer(threshold, keys, session)


def _run(clients, server, values, index=1, drop_share=(), drop_upload=(), drop_reveal=()):
    ring = FixedPointRing(n_summands=len(clients))
    shared = {n: c.share(index) for n, c in clients.items() if n not in drop_share}
    relays = {n: server.relay(index, shared, n) for n in shared}
    uploads = {n: clients[n].mask(index, ring.encode(values[n]), relays[n])
               for n in shared if n not in drop_upload}
    survivors = server.survivors(index, uploads)
    confirms = {n: clients[n].confirm(index, survivors) for n in survivors}
    relayed = {n: server.confirmations(index, confirms, n) for n in survivors}
    assert all(len(r) == server.threshold - 1 for r in relayed.values())
    reveals = {n: clients[n].reveal(index, relayed[n]) for n in survivors
               if n not in drop_reveal}
    return ring.decode(server.unmask(index, uploads, reveals)), survivors, uploads


@pytest.mark.parametrize("drops", [
    {}, {"drop_share": ("b",)}, {"drop_upload": ("c",)}, {"drop_reveal": ("d",)},
    {"drop_share": ("a",), "drop_upload": ("e",)},
    {"drop_upload": ("b",), "drop_reveal": ("c",)},
])
def test_survivors_sum_is_recovered(drops):
    rng = np.random.default_rng(0)
    values = {n: rng.normal(size=6) for n in NAMES}
    clients, server = _session()
    total, survivors, _ = _run(clients, server, values, **drops)
    gone = set(drops.get("drop_share", ())) | set(drops.get("drop_upload", ()))
    assert survivors == [n for n in NAMES if n not in gone]
    expected = np.sum([values[n] for n in survivors], axis=0)
    np.testing.assert_allclose(total, expected, atol=1e-8)


def test_three_sums_in_a_row_with_a_client_coming_back():
    # Per-sum mask keys: a client whose key was revealed in sum 1 takes part
    # again in sum 2 without the server learning its vector.
    values = {n: np.arange(3.0) + i for i, n in enumerate(NAMES)}
    clients, server = _session()
    t1, s1, _ = _run(clients, server, values, index=1, drop_upload=("b",))
    t2, s2, _ = _run(clients, server, values, index=2)
    assert "b" not in s1 and s2 == NAMES
    np.testing.assert_allclose(t2, np.sum(list(values.values()), axis=0), atol=1e-8)


def test_too_few_survivors_fail_at_every_step():
    clients, server = _session()
    values = {n: np.ones(2) for n in NAMES}
    with pytest.raises(ConsistencyError, match="only 2 clients shared"):
        _run(clients, server, values, drop_share=("a", "b", "c"))
    clients, server = _session()
    with pytest.raises(ConsistencyError, match="only 2 clients uploaded"):
        _run(clients, server, values, drop_upload=("a", "b", "c"))
    clients, server = _session()
    with pytest.raises(ConsistencyError, match="only 2 clients revealed"):
        _run(clients, server, values, drop_reveal=("a", "b", "c"))


def test_threshold_must_exceed_half():
    check_threshold(3, 5)
    check_threshold(5, 5)
    for bad in (2, 6, 0):
        with pytest.raises(ValueError, match="more than half"):
            check_threshold(bad, 5)
    with pytest.raises(ValueError, match="more than half"):
        _session(threshold=2)


def test_a_client_never_reveals_both_secrets_of_one_peer():
    clients, server = _session()
    ring = FixedPointRing(n_summands=5)
    shared = {n: c.share(1) for n, c in clients.items()}
    uploads = {n: clients[n].mask(1, ring.encode(np.ones(3)), server.relay(1, shared, n))
               for n in NAMES if n != "e"}
    survivors = server.survivors(1, uploads)
    confirms = {n: clients[n].confirm(1, survivors) for n in survivors}
    for n in survivors:
        out = clients[n].reveal(1, server.confirmations(1, confirms, n))
        assert set(out["b"]) == set(survivors)   # self-mask seeds of the survivors
        assert set(out["s"]) == {"e"}            # mask key of the one that dropped
        assert not set(out["b"]) & set(out["s"])
        with pytest.raises(ConsistencyError, match="not waiting"):
            clients[n].reveal(1, server.confirmations(1, confirms, n))  # once per sum
    with pytest.raises(ConsistencyError, match="not waiting"):
        clients["a"].confirm(1, survivors)       # a second list is refused


def test_server_showing_different_survivor_lists_gets_no_share():
    # The attack the consistency check stops: "e" uploaded; the server tells
    # a, b that e dropped (to collect shares of its mask key) and c, d, e
    # that it survived (to collect shares of its self-mask seed).
    clients, server = _session()
    ring = FixedPointRing(n_summands=5)
    shared = {n: c.share(1) for n, c in clients.items()}
    for n in NAMES:
        clients[n].mask(1, ring.encode(np.ones(3)), server.relay(1, shared, n))
    short, full = ["a", "b", "c", "d"], NAMES
    confirms = {n: clients[n].confirm(1, short) for n in ("a", "b")}
    confirms.update({n: clients[n].confirm(1, full) for n in ("c", "d", "e")})
    # Relaying every confirmation: the other group's do not match the list.
    for n in ("a", "b"):
        mixed = {u: confirms[u][n] for u in ("a", "b", "c", "d") if u != n}
        with pytest.raises(ConsistencyError, match="did not confirm this survivor list"):
            clients[n].reveal(1, mixed)
    for n in ("c", "d"):
        mixed = {u: confirms[u][n] for u in NAMES if u != n}
        with pytest.raises(ConsistencyError, match="did not confirm this survivor list"):
            clients[n].reveal(1, mixed)
    # Relaying each group only its own: too few to vouch for either list.
    with pytest.raises(ConsistencyError, match="only 2 survivors vouched"):
        clients["a"].reveal(1, {"b": confirms["b"]["a"]})
    # A confirmation is bound to its sender: b cannot stand in for c.
    with pytest.raises(ConsistencyError, match="did not confirm"):
        clients["d"].reveal(1, {"c": confirms["e"]["d"], "e": confirms["e"]["d"]})


def test_server_claiming_an_uploader_dropped_cannot_unmask_it():
    # Consistent lie to everyone: the server learns e's mask key, never its
    # self-mask seed, and e's vector stays hidden.
    clients, server = _session()
    ring = FixedPointRing(n_summands=5)
    secret = np.array([0.125, -3.5, 7.25])
    shared = {n: c.share(1) for n, c in clients.items()}
    relays = {n: server.relay(1, shared, n) for n in NAMES}
    y_e = clients["e"].mask(1, ring.encode(secret), relays["e"])
    for n in NAMES[:-1]:
        clients[n].mask(1, ring.encode(np.zeros(3)), relays[n])
    lie = NAMES[:-1]
    assert server.survivors(1, dict.fromkeys(lie)) == lie   # as if e's upload never came
    confirms = {n: clients[n].confirm(1, lie) for n in lie}
    reveals = {n: clients[n].reveal(1, server.confirmations(1, confirms, n)) for n in lie}
    assert all("e" not in r["b"] for r in reveals.values())
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

    lam = shamir.lagrange_at_zero([1, 2, 3])
    s_e = shamir.int_to_secret(shamir.combine(
        {i + 1: reveals[n]["s"]["e"] for i, n in enumerate(NAMES[:3])}, 3, lam))
    key = X25519PrivateKey.from_private_bytes(s_e)
    assert key.public_key().public_bytes_raw() == shared["e"]["s_pk"]  # the lie "worked"
    # Remove every pairwise mask of e: what is left is still self-masked.
    stripped = y_e.copy()
    for v in lie:
        dh = key.exchange(X25519PublicKey.from_public_bytes(shared[v]["s_pk"]))
        stripped += pair_mask(dh, server.session, 1, "e", v, 3)  # e > v subtracted it
    assert not np.array_equal(stripped, ring.encode(secret))
    assert np.all(np.abs(ring.decode(stripped)) > 1e3)


def test_tampered_or_misdirected_shares_are_refused():
    clients, server = _session()
    shared = {n: c.share(1) for n, c in clients.items()}
    relay = server.relay(1, shared, "a")
    bad = dict(relay, shares=dict(relay["shares"]))
    bad["shares"]["b"] = bad["shares"]["b"][:-1] + bytes([bad["shares"]["b"][-1] ^ 1])
    with pytest.raises(ValueError, match="failed authentication"):
        clients["a"].mask(1, np.zeros(2, np.uint64), bad)
    clients, server = _session()
    shared = {n: c.share(1) for n, c in clients.items()}
    swapped = server.relay(1, shared, "a")
    swapped["shares"]["b"] = shared["b"]["shares"]["c"]  # sealed for c, not a
    with pytest.raises(ValueError, match="failed authentication|not for this client"):
        clients["a"].mask(1, np.zeros(2, np.uint64), swapped)
    relay = server.relay(1, shared, "d")
    with pytest.raises(ConsistencyError, match="own key"):
        clients["d"].mask(1, np.zeros(2, np.uint64),
                          dict(relay, s_pks=dict(relay["s_pks"], d=os.urandom(32))))


def test_inconsistent_revealed_shares_are_detected():
    clients, server = _session()
    ring = FixedPointRing(n_summands=5)
    shared = {n: c.share(1) for n, c in clients.items()}
    uploads = {n: clients[n].mask(1, ring.encode(np.ones(2)), server.relay(1, shared, n))
               for n in NAMES if n != "a"}
    survivors = server.survivors(1, uploads)
    confirms = {n: clients[n].confirm(1, survivors) for n in survivors}
    reveals = {n: clients[n].reveal(1, server.confirmations(1, confirms, n))
               for n in survivors}
    reveals["b"]["b"]["c"] = (reveals["b"]["b"]["c"] + 1) % shamir.PRIME
    with pytest.raises(ConsistencyError, match="inconsistent"):
        server.unmask(1, uploads, reveals)


def test_every_threshold_subset_of_revealers_gives_the_same_sum():
    values = {n: np.full(2, float(i)) for i, n in enumerate(NAMES)}
    for keep in combinations(NAMES, 3):
        clients, server = _session()
        total, _, _ = _run(clients, server, values,
                           drop_reveal=tuple(n for n in NAMES if n not in keep))
        np.testing.assert_allclose(total, [10.0, 10.0], atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 7), data=st.data())
def test_any_drop_pattern_within_the_threshold_gives_the_survivors_sum(n, data):
    names = [f"p{i}" for i in range(n)]
    t = data.draw(st.integers(n // 2 + 1, n))
    # Up to n - t clients drop, each at one of the steps; at least t reveal.
    order = data.draw(st.permutations(names))
    k = data.draw(st.integers(0, n - t))
    steps = dict.fromkeys(names)
    for m in order[:k]:
        steps[m] = data.draw(st.sampled_from(["share", "upload", "reveal"]))
    gone = [steps[m] in ("share", "upload") for m in names]
    values = {m: np.arange(4.0) * (i + 1) - i for i, m in enumerate(names)}
    clients, server = _session(t, names)
    total, survivors, _ = _run(
        clients, server, values,
        drop_share=tuple(m for m in names if steps[m] == "share"),
        drop_upload=tuple(m for m in names if steps[m] == "upload"),
        drop_reveal=tuple(m for m in names if steps[m] == "reveal"))
    assert survivors == [m for m, g in zip(names, gone) if not g]
    np.testing.assert_allclose(total, np.sum([values[m] for m in survivors], axis=0),
                               atol=1e-8)
