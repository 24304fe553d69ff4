"""agree() a second time keeps the first session's cached seal and MAC keys."""
import os

from skfed.crypto.secagg_recovery import RecoveryClient

names = ["a", "b", "c"]
cs = {m: RecoveryClient(m, 2) for m in names}
keys = {m: c.public_keys() for m, c in cs.items()}
s1, s2 = os.urandom(32), os.urandom(32)
for c in cs.values():
    c.agree(keys, s1)
old = cs["a"]._seal_key("b")
try:
    cs["a"].agree(keys, s2)      # a new session for the same client object
except ValueError as exc:
    print("fixed: second agree refused:", exc)
else:
    print("second agree accepted; seal key still the first session's:",
          cs["a"]._seal_key("b") is old)
