"""Regression tests from the security review of dropout-tolerant masking.

Each test plays an adversary the review found (or ruled out) against
:mod:`skfed.crypto.secagg_recovery` and the horizontal roles.
"""

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)

from skfed.crypto import shamir
from skfed.crypto.secagg_recovery import (
    ConsistencyError,
    RecoveryClient,
    RecoveryServer,
    _survivor_message,
    pair_mask,
    self_mask,
    tolerated_colluders,
)

SIZE = 3


def _session(n, t, seed=0):
    names = [f"c{i}" for i in range(n)]
    cs = {m: RecoveryClient(m, t) for m in names}
    session = os.urandom(32)
    keys = {m: c.public_keys() for m, c in cs.items()}
    for c in cs.values():
        c.agree(keys, session)
    server = RecoveryServer(t, keys, session)
    shared = {m: cs[m].share(1) for m in names}
    relay = {m: server.relay(1, shared, m) for m in names}
    rng = np.random.default_rng(seed)
    x = {m: rng.integers(0, 2**63, size=SIZE, dtype=np.uint64) for m in names}
    y = {m: cs[m].mask(1, x[m], relay[m]) for m in names}
    return names, cs, session, server, shared, x, y


def _split_lists_attack(n, t, n_colluders):
    """Show the victim as a survivor to one group and as dropped to another.

    The colluders confirm both lists and hand over their own shares. Returns
    True when the server reconstructs the victim's update.
    """
    names, cs, session, _, shared, x, y = _session(n, t)
    victim, colluders = names[-1], names[:n_colluders]
    honest = [m for m in names if m not in colluders and m != victim]
    a = [victim] + honest[:max(0, t - n_colluders - 1)]
    b = honest[len(a) - 1:]
    lists = {1: sorted(set(a) | set(colluders)), 2: sorted(set(b) | set(colluders))}
    group = {m: 1 for m in a} | {m: 2 for m in b}
    confirms = {}
    for m, g in group.items():
        try:
            confirms[m] = cs[m].confirm(1, lists[g])
        except ConsistencyError:
            pass  # a list shorter than t is refused outright
    points = {m: i + 1 for i, m in enumerate(sorted(names))}
    b_shares, s_shares = {}, {}
    for m in colluders:
        s, bb = cs[m]._sums[1]["held"][victim]
        b_shares[points[m]], s_shares[points[m]] = bb, s
    for m in confirms:
        lst = lists[group[m]]
        message = _survivor_message(session, 1, lst)
        relayed = {p: confirms[p][m] for p in confirms if p != m and group[p] == group[m]}
        relayed |= {c: cs[c]._mac(m, c, message) for c in colluders}
        try:
            rev = cs[m].reveal(1, relayed)
        except ConsistencyError:
            continue
        if victim in rev["b"]:
            b_shares[points[m]] = rev["b"][victim]
        if victim in rev["s"]:
            s_shares[points[m]] = rev["s"][victim]
    if len(b_shares) < t or len(s_shares) < t:
        return False
    seed = shamir.int_to_secret(shamir.combine(b_shares, t))
    key = X25519PrivateKey.from_private_bytes(shamir.int_to_secret(shamir.combine(s_shares, t)))
    z = y[victim] - self_mask(seed, session, 1, victim, SIZE)
    for v in names:
        if v != victim:
            dh = key.exchange(X25519PublicKey.from_public_bytes(shared[v]["s_pk"]))
            m = pair_mask(dh, session, 1, victim, v, SIZE)
            z = z - m if victim < v else z + m
    return np.array_equal(z, x[victim])


def _all_others_dropped_attack(n, t, n_colluders):
    """Name only the colluders and the victim as survivors: their sum minus the
    colluders' own updates is the victim's. Returns True when that works."""
    names, cs, _, server, _, x, y = _session(n, t)
    victim, colluders = names[-1], names[:n_colluders]
    survivors = sorted(colluders + [victim])
    try:
        server.survivors(1, {m: y[m] for m in survivors})
        confirms = {m: cs[m].confirm(1, survivors) for m in survivors}
        reveals = {m: cs[m].reveal(1, server.confirmations(1, confirms, m))
                   for m in survivors}
    except ConsistencyError:
        return False
    total = server.unmask(1, {m: y[m] for m in survivors}, reveals)
    for m in colluders:
        total = total - x[m]
    return np.array_equal(total, x[victim])


@pytest.mark.parametrize("n, t", [(4, 3), (5, 3), (5, 4), (6, 4), (7, 5), (5, 5)])
def test_tolerated_colluders_is_tight(n, t):
    c = tolerated_colluders(t, n)
    assert not _split_lists_attack(n, t, c)
    assert not _all_others_dropped_attack(n, t, c)
    if c + 1 < n:
        assert _split_lists_attack(n, t, c + 1) or _all_others_dropped_attack(n, t, c + 1)


def test_one_colluder_breaks_five_clients_threshold_three():
    # The configuration of the docs' example: the bound is zero, not t - 1.
    assert tolerated_colluders(3, 5) == 0
    assert _split_lists_attack(5, 3, 1)


def test_tolerated_colluders_refuses_bad_thresholds():
    with pytest.raises(ValueError, match="more than half"):
        tolerated_colluders(2, 5)


def _agreed(names, t, clients=None):
    cs = {m: RecoveryClient(m, t, clients=clients) for m in names}
    session = os.urandom(32)
    keys = {m: c.public_keys() for m, c in cs.items()}
    return cs, keys, session


def test_key_set_naming_unconfigured_clients_is_refused():
    # A server padding the key set with parties of its own makes them colluders.
    configured = ["a", "b", "c"]
    cs, keys, session = _agreed(["a", "b", "c", "sybil"], 2, clients=configured)
    with pytest.raises(ConsistencyError, match="sybil"):
        cs["a"].agree(keys, session)


def test_threshold_checked_against_configured_clients():
    # Relaying only 3 of 6 configured clients must not make t=2 look like a majority.
    configured = ["a", "b", "c", "d", "e", "f"]
    cs, keys, session = _agreed(["a", "b", "c"], 2, clients=configured)
    with pytest.raises(ValueError, match="more than half"):
        cs["a"].agree(keys, session)


def test_subset_of_configured_clients_is_accepted():
    # "d" dropped before the set-up exchange: 3 of 4 still cover t = 3.
    cs, keys, session = _agreed(["a", "b", "c"], 3, clients=["a", "b", "c", "d"])
    cs["a"].agree(keys, session)
    assert cs["a"].clients == ["a", "b", "c"]


@pytest.mark.parametrize("survivors", [None, ["c0", 1], "c0c1c2", {"c0": 1}])
def test_malformed_survivor_list_is_refused_clearly(survivors):
    _, cs, *_ = _session(3, 2)
    with pytest.raises(ConsistencyError, match="list of client names"):
        cs["c0"].confirm(1, survivors)


def test_malformed_relay_is_refused_clearly():
    names = ["c0", "c1", "c2"]
    cs, keys, session = _agreed(names, 2)
    for c in cs.values():
        c.agree(keys, session)
    cs["c0"].share(1)
    with pytest.raises(ValueError, match="malformed relay"):
        cs["c0"].mask(1, np.ones(2, np.uint64), None)


def test_key_set_with_non_string_names_is_refused_clearly():
    cs, keys, session = _agreed(["a", "b", "c"], 2)
    with pytest.raises(ValueError, match="non-strings"):
        cs["a"].agree({**keys, 7: keys["b"]}, session)


def test_a_second_session_on_one_client_is_refused():
    # Cached seal and MAC keys would outlive the session salt that separates them.
    cs, keys, session = _agreed(["a", "b", "c"], 2)
    cs["a"].agree(keys, session)
    with pytest.raises(ConsistencyError, match="already agreed"):
        cs["a"].agree(keys, os.urandom(32))


def test_a_share_replayed_from_an_earlier_sum_is_refused():
    names = ["a", "b", "c"]
    cs, keys, session = _agreed(names, 2)
    for c in cs.values():
        c.agree(keys, session)
    server = RecoveryServer(2, keys, session)
    first = {m: cs[m].share(1) for m in names}
    relay1 = server.relay(1, first, "a")
    second = {m: cs[m].share(2) for m in names}
    relay2 = server.relay(2, second, "a")
    # Sum 2's relay carrying b's share from sum 1 (with sum 1's mask key).
    replay = {"s_pks": dict(relay2["s_pks"], b=relay1["s_pks"]["b"]),
              "shares": dict(relay2["shares"], b=relay1["shares"]["b"])}
    with pytest.raises(ValueError, match="failed authentication"):
        cs["a"].mask(2, np.ones(2, np.uint64), replay)


@pytest.mark.parametrize("bad", [None, {"s": {}, "b": ["x"]}])
def test_malformed_reveal_is_refused_clearly(bad):
    names, cs, _, server, _, _, y = _session(3, 2)
    survivors = server.survivors(1, y)
    confirms = {m: cs[m].confirm(1, survivors) for m in survivors}
    reveals = {m: cs[m].reveal(1, server.confirmations(1, confirms, m)) for m in survivors}
    reveals[names[0]] = bad
    with pytest.raises(ConsistencyError, match="malformed set of shares"):
        server.unmask(1, y, reveals)
