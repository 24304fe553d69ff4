"""Malformed server messages: which ones give a clear error, which crash obscurely."""
import os

import numpy as np

from skfed.crypto.secagg_recovery import RecoveryClient, RecoveryServer


def fresh(stage):
    names = ["a", "b", "c"]
    cs = {m: RecoveryClient(m, 2) for m in names}
    s = os.urandom(32)
    keys = {m: c.public_keys() for m, c in cs.items()}
    if stage == "agree":
        return cs, keys, s
    for c in cs.values():
        c.agree(keys, s)
    srv = RecoveryServer(2, keys, s)
    sh = {m: cs[m].share(1) for m in names}
    rel = {m: srv.relay(1, sh, m) for m in names}
    if stage == "mask":
        return cs, rel
    y = {m: cs[m].mask(1, np.ones(2, np.uint64), rel[m]) for m in names}
    if stage == "confirm":
        return cs, y
    conf = {m: cs[m].confirm(1, names) for m in names}
    return cs, conf


def attempt(label, fn):
    try:
        fn()
        print(f"{label:45s} ACCEPTED")
    except (ValueError, RuntimeError) as e:
        print(f"{label:45s} clear {type(e).__name__}: {str(e)[:70]}")
    except Exception as e:  # noqa: BLE001
        print(f"{label:45s} OBSCURE {type(e).__name__}: {str(e)[:70]}")


cs, keys, s = fresh("agree")
attempt("agree(keys=list)", lambda: cs["a"].agree(list(keys), s))
attempt("agree(session=str)", lambda: cs["a"].agree(keys, "x" * 32))
attempt("agree(name int)", lambda: cs["a"].agree({**keys, 7: keys["b"]}, s))
cs, rel = fresh("mask")
attempt("mask(relayed=None)", lambda: cs["a"].mask(1, np.ones(2, np.uint64), None))
attempt("mask(s_pks value int)", lambda: cs["a"].mask(
    1, np.ones(2, np.uint64),
    {"s_pks": {**rel["a"]["s_pks"], "b": 5}, "shares": rel["a"]["shares"]}))
cs, y = fresh("confirm")
attempt("confirm(None)", lambda: cs["a"].confirm(1, None))
attempt("confirm([a, 1])", lambda: cs["a"].confirm(1, ["a", 1]))
attempt("confirm('abc')", lambda: cs["a"].confirm(1, "abc"))
cs, conf = fresh("reveal")
attempt("reveal(None)", lambda: cs["a"].reveal(1, None))
attempt("reveal({b: str})", lambda: cs["a"].reveal(1, {"b": "zz"}))
