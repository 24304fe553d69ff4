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
