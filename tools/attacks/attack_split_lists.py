"""A lying server plus ONE colluding client unmasks an honest client's update
with n=5, t=3 (which the docs allow: "fewer than t clients colluding").

The server shows survivor list L1 (with victim e) to {a, e} and L2 (e "dropped")
to {b, d}; the colluder c confirms both lists. Each list gathers t=3
confirmations, so {a, c, e} reveal shares of b_e and {b, c, d} shares of s_e.
"""
import os
import sys

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from skfed.crypto import shamir
from skfed.crypto.secagg_recovery import RecoveryClient, _survivor_message, pair_mask, self_mask

n, t = 5, 3
names = ["a", "b", "c", "d", "e"]
cs = {m: RecoveryClient(m, t) for m in names}
session = os.urandom(32)
keys = {m: c.public_keys() for m, c in cs.items()}
for c in cs.values():
    c.agree(keys, session)
shared = {m: cs[m].share(1) for m in names}
pks = {m: shared[m]["s_pk"] for m in names}
relay = {m: {"s_pks": pks, "shares": {u: shared[u]["shares"][m] for u in names if u != m}}
         for m in names}
rng = np.random.default_rng(0)
x = {m: rng.integers(0, 2**63, size=4, dtype=np.uint64) for m in names}
y = {m: cs[m].mask(1, x[m], relay[m]) for m in names}

L1 = ["a", "c", "e"]          # e survived
L2 = ["b", "c", "d"]          # e dropped (after uploading)
conf = {m: cs[m].confirm(1, L1) for m in ["a", "e"]}
conf.update({m: cs[m].confirm(1, L2) for m in ["b", "d"]})
# The colluder c MACs both lists with its own pair keys.
colluder = cs["c"]
def c_conf(lst):
    msg = _survivor_message(session, 1, lst)
    return {p: colluder._mac(p, "c", msg) for p in lst if p != "c"}
c1, c2 = c_conf(L1), c_conf(L2)
rev = {}
rev["a"] = cs["a"].reveal(1, {"c": c1["a"], "e": conf["e"]["a"]})
rev["e"] = cs["e"].reveal(1, {"c": c1["e"], "a": conf["a"]["e"]})
rev["b"] = cs["b"].reveal(1, {"c": c2["b"], "d": conf["d"]["b"]})
rev["d"] = cs["d"].reveal(1, {"c": c2["d"], "b": conf["b"]["d"]})
held_c = colluder._sums[1]["held"]          # c's own shares of everyone's secrets
pt = {m: i + 1 for i, m in enumerate(sorted(names))}
b_e = shamir.int_to_secret(shamir.combine(
    {pt["a"]: rev["a"]["b"]["e"], pt["e"]: rev["e"]["b"]["e"], pt["c"]: held_c["e"][1]}, t))
s_e = shamir.int_to_secret(shamir.combine(
    {pt["b"]: rev["b"]["s"]["e"], pt["d"]: rev["d"]["s"]["e"], pt["c"]: held_c["e"][0]}, t))
key = X25519PrivateKey.from_private_bytes(s_e)
z = y["e"] - self_mask(b_e, session, 1, "e", 4)
for v in names:
    if v == "e":
        continue
    m = pair_mask(key.exchange(X25519PublicKey.from_public_bytes(pks[v])), session, 1, "e", v, 4)
    z = z - m if "e" < v else z + m
print("recovered e's update:", np.array_equal(z, x["e"]))
sys.exit(0 if np.array_equal(z, x["e"]) else 1)
