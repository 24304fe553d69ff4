"""Roles of federated scaling: exact pooled statistics from secure sums.

Two protocols, one client and one server role each. Both secure-aggregate
integer vectors through :mod:`.aggregation` (or :mod:`.dropout` with
``min_clients``); no client's own sum, count, minimum or maximum is ever sent
unmasked, and every value the server learns is a function of the pooled rows
only (the same whatever the split).

Integers through the fixed-point ring
-------------------------------------
The secure sums encode floats as ``round(v * 2**32)`` modulo ``2**64`` and the
server decodes the sum back to float64. An integer ``k`` is uploaded as the
float ``k * 2**-32`` (exact: a power-of-two scaling), so it is encoded as
exactly ``k``; the decoded sum is exact as long as it stays below ``2**53``
in magnitude, which :data:`MAX_ROWS` guarantees for everything sent here.

Standard scaling: exact sums of digits
--------------------------------------
A float64 ``x = M * 2**(E - 1126)`` with an integer mantissa ``M < 2**53`` and
``0 <= E <= 2097``, so ``sum(x)`` over any rows is an integer multiple of
``2**-1126`` and ``sum(x**2)`` one of ``2**-2252``. Each client cuts every
row's exact value (and exact square) into 21-bit digits at fixed positions
(:data:`DIGIT_BITS`) and sums each digit position over its rows; the secure
sum of these digit sums gives the pooled digit sums, from which the server
recomposes ``sum(x)`` and ``sum(x**2)`` as exact Python integers and divides
once, rounding correctly: ``mean_`` and ``var_`` are the float64 nearest to
the exact pooled mean and (population) variance. There is no public scale to
choose (the positions cover the whole float64 range) and no cancellation
(the arithmetic is exact), so the result does not depend on the data's
magnitude, on the split, or on the order of the rows.

What the server learns, per feature: the pooled count of non-missing values
and the pooled sum, over rows, of each 21-bit digit of the rows' values and
of their squares (with their signs). These are functions of the pooled rows
alone, like a histogram: they determine ``sum(x)``, ``sum(x**2)`` and say a
little more about the pooled data (how the rows' low- and high-order bits
add up); nothing about which client holds what. Normalising each *client's*
sum into digits instead would reveal the carries between the clients' digits,
which depend on the split; per-row digits do not. With ``with_std=False`` the
squares are not sent; with neither centring nor scaling only the counts are.

Min-max scaling: bisection on the order-preserving integer image
----------------------------------------------------------------
``key(x)`` maps float64 to uint64 preserving order (the sign bit flipped for
positive values, all bits flipped for negative ones). The pooled maximum's
key is found by bisection on ``[0, 2**64)``: each round the server publishes
a threshold per feature, and every client uploads how many of its values
have a key at or above it; the secure sum tells the server whether any
pooled value does. 64 rounds give the exact key, hence the exact maximum;
the minimum is found in the same rounds. The server learns the pooled
minimum and maximum (published anyway: they are the model) and, per round
and feature, how many pooled values lie above (below) the round's
threshold: 64 points of the pooled tails' empirical counts, most of them near
the extremes. No client's own extreme or count is sent. With ``min_clients``,
a client that drops out restarts the bisection over the clients left, so the
extremes and counts are always those of the clients of the last 64 rounds.

Messages (``agg`` protected uploads are masked or, with
``secure_aggregation=None``, plain)::

    standard:  client -> server  scaler_stats  agg: counts, digit sums
               server -> clients scaler_result plain: n_samples_seen, mean, var
    minmax:    client -> server  minmax_counts agg: non-missing counts
               64 x  server -> clients minmax_thresholds plain: uint64 thresholds
                     client -> server  minmax_above      agg: counts beyond them
                                          (with min_clients, the non-missing counts too)
               server -> clients minmax_result plain: n_samples_seen, min, max
"""

import numpy as np

from ..runtime.layout import check_array, check_dict
from ..runtime.party import ProtocolMismatch
from .dropout import client_aggregation, server_aggregation

__all__ = ["standard_client", "standard_server", "minmax_client", "minmax_server",
           "exact_sums", "float_key", "key_float", "DIGIT_BITS", "MAX_ROWS"]

DIGIT_BITS = 21
_DIGIT_MASK = (1 << DIGIT_BITS) - 1
# x = M * 2**(E - _OFFSET) with 0 <= E: the smallest subnormal is 2**52 * 2**-1126.
_OFFSET = 1126
_N_SUM_DIGITS = 105     # positions 0..104 hold E + 21 + 42 <= 2097 + 63 and carries
_N_SQ_DIGITS = 205      # positions of 2E + 84 + 42 <= 4320
# Pooled digit sums stay below MAX_ROWS * 2**21 <= 2**53: exact in float64.
MAX_ROWS = 2 ** (53 - DIGIT_BITS)
_TO_RING = 2.0 ** -32
_SIGN = np.uint64(1 << 63)


def _to_ring(ints):
    """Integers as floats the ring encodes as exactly themselves."""
    return np.asarray(ints, dtype=np.float64) * _TO_RING


def _from_ring(values):
    return np.rint(np.asarray(values, dtype=np.float64) / _TO_RING)


# -- exact digit sums ------------------------------------------------------------
def _mantissas(X):
    """Integer mantissas (int64, < 2**53), exponents (>= 0) and signs of X."""
    f, e = np.frexp(np.abs(X))
    M = np.ldexp(f, 53).astype(np.int64)
    E = e.astype(np.int64) + (_OFFSET - 53)
    E[M == 0] = 0
    return M, E, np.signbit(X)


def _add_digits(out, piece, keys, r, sign):
    """Add ``piece * 2**(21 q + r)`` (0 <= piece < 2**43) to digit sums ``out``.

    ``out`` is flat, (n_features * n_digits); each term lands on at most three
    21-bit positions, so every per-position sum over rows is an exact float.
    (int64 throughout: numpy converts uint64 to float several times slower.)
    """
    v = piece << r                          # < 2**63
    for k in range(3):
        digit = (v >> (DIGIT_BITS * k)) & _DIGIT_MASK
        w = digit.astype(np.float64)
        if sign is not None:
            w *= sign
        out += np.bincount((keys + k).ravel(), weights=w.ravel(), minlength=out.size)


_CHUNK = 1 << 16  # elements per block: a block's temporaries stay in cache (~4x faster)


def exact_sums(X, with_squares=True):
    """Per-feature non-NaN counts and digit sums of the values (and squares).

    Returns ``(counts, sum_digits, sq_digits)``: ``sum(x) = sum_j
    sum_digits[:, j] * 2**(21 j - 1126)`` and ``sum(x**2) = sum_j
    sq_digits[:, j] * 2**(21 j - 2252)`` exactly, over the non-NaN values
    (a NaN counts as a zero: its mantissa is 0).
    """
    X = np.asarray(X, dtype=np.float64)
    rows = max(1, _CHUNK // max(1, X.shape[1]))
    if X.shape[0] <= rows:
        return _exact_sums(X, with_squares)
    # digit sums add exactly over blocks of rows, as they do over clients
    blocks = [_exact_sums(X[i:i + rows], with_squares) for i in range(0, X.shape[0], rows)]
    return tuple(None if blocks[0][k] is None else sum(b[k] for b in blocks)
                 for k in range(3))


def _exact_sums(X, with_squares):
    missing = np.isnan(X)
    counts = (X.shape[0] - missing.sum(axis=0)).astype(np.float64)
    n_features = X.shape[1]
    M, E, neg = _mantissas(np.where(missing, 0.0, X))
    sign = np.where(neg, -1.0, 1.0) if neg.any() else None
    sums = np.zeros(n_features * _N_SUM_DIGITS)
    # ``keys`` index (feature, digit position); ``r`` is the shift within it
    q, r = np.divmod(E, DIGIT_BITS)
    keys = q + np.arange(n_features, dtype=np.int64)[None, :] * _N_SUM_DIGITS
    _add_digits(sums, M & _DIGIT_MASK, keys, r, sign)
    _add_digits(sums, M >> DIGIT_BITS, keys + 1, r, sign)  # < 2**32
    sums = sums.reshape(n_features, _N_SUM_DIGITS)
    if not with_squares:
        return counts, sums, None
    sq = np.zeros(n_features * _N_SQ_DIGITS)
    q, r = np.divmod(2 * E, DIGIT_BITS)
    keys = q + np.arange(n_features, dtype=np.int64)[None, :] * _N_SQ_DIGITS
    parts = [M & _DIGIT_MASK, (M >> DIGIT_BITS) & _DIGIT_MASK, M >> (2 * DIGIT_BITS)]
    for i in range(3):
        for k in range(i, 3):
            prod = parts[i] * parts[k]             # < 2**42
            if k != i:
                prod <<= 1                         # the cross term counts twice
            _add_digits(sq, prod, keys + (i + k), r, None)
    return counts, sums, sq.reshape(n_features, _N_SQ_DIGITS)


def _recompose(digits):
    """The exact integer ``sum_j digits[j] * 2**(21 j)`` (digits: exact floats)."""
    total = 0
    for j, d in enumerate(digits):
        if d:
            total += int(d) << (DIGIT_BITS * j)
    return total


def _divide(num, den):
    """``num / den`` correctly rounded to float64 (inf when it overflows)."""
    try:
        return num / den
    except OverflowError:
        return float("inf") if (num > 0) == (den > 0) else float("-inf")


def pooled_moments(counts, sum_digits, sq_digits):
    """Correctly rounded mean and population variance from pooled digit sums."""
    n_features = len(counts)
    mean = np.full(n_features, np.nan)
    var = None if sq_digits is None else np.full(n_features, np.nan)
    for f in range(n_features):
        n = int(counts[f])
        if n == 0:
            continue
        s = _recompose(sum_digits[f])
        mean[f] = _divide(s, n << _OFFSET)
        if var is not None:
            q = _recompose(sq_digits[f])
            # n * var * n = n * sum(x^2) - sum(x)^2, exactly, in units of 2**-2252
            var[f] = _divide(n * q - s * s, (n * n) << (2 * _OFFSET))
    return mean, var


# -- order-preserving keys -----------------------------------------------------------
def float_key(X):
    """uint64 keys with ``key(a) < key(b)`` iff ``a < b`` (-0.0 below +0.0)."""
    bits = np.ascontiguousarray(X, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_float(keys):
    keys = np.asarray(keys, dtype=np.uint64)
    bits = np.where(keys & _SIGN, keys & ~_SIGN, ~keys)
    return bits.view(np.float64)


# -- aggregation set-up ----------------------------------------------------------------
def _client_agg(ctx, cfg):
    return client_aggregation(ctx, cfg["server"], cfg["clients"], cfg["secure_aggregation"],
                              cfg.get("min_clients"))


def _server_agg(ctx, cfg):
    return server_aggregation(ctx, cfg["clients"], cfg["secure_aggregation"],
                              cfg.get("min_clients"))


def _secure_ints(agg, tag, size):
    return _from_ring(agg.secure_sum(tag, size))


def _check_counts(counts, n_rows):
    if n_rows >= MAX_ROWS:
        raise ProtocolMismatch(
            f"the federation holds {n_rows} rows; exact federated scaling supports fewer "
            f"than {MAX_ROWS}")
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ProtocolMismatch(
            f"feature(s) {empty.tolist()} hold no value at any client (all NaN); drop "
            "them before scaling")


def _layout(cfg):
    n = cfg["n_features"]
    squares = cfg["with_std"]
    moments = cfg["with_mean"] or cfg["with_std"]
    return (1 + n + (n * _N_SUM_DIGITS if moments else 0)
            + (n * _N_SQ_DIGITS if squares else 0)), moments, squares


# -- standard scaling ------------------------------------------------------------------
def standard_client(ctx, X, cfg):
    """A data holder: uploads its protected counts and digit sums, gets the statistics."""
    server = cfg["server"]
    agg = _client_agg(ctx, cfg)
    _, moments, squares = _layout(cfg)
    agg.prepare("scaler_stats")
    counts, sums, sq = exact_sums(X, with_squares=squares) if moments else (
        (~np.isnan(X)).sum(axis=0).astype(np.float64), None, None)
    parts = [[X.shape[0]], counts]
    if moments:
        parts.append(sums.ravel())
    if squares:
        parts.append(sq.ravel())
    agg.upload(_to_ring(np.concatenate(parts)), "scaler_stats")
    return _check_result(ctx.recv(server, "scaler_result"), server, "scaler_result",
                         cfg["n_features"], ("mean", "var"))


def standard_server(ctx, cfg):
    """Learns only the pooled counts and digit sums; publishes mean and variance."""
    n = cfg["n_features"]
    agg = _server_agg(ctx, cfg)
    size, moments, squares = _layout(cfg)
    total = _secure_ints(agg, "scaler_stats", size)
    n_rows, counts = int(total[0]), total[1:1 + n]
    _check_counts(counts, n_rows)
    mean = var = None
    if moments:
        pos = 1 + n
        sums = total[pos:pos + n * _N_SUM_DIGITS].reshape(n, _N_SUM_DIGITS)
        pos += n * _N_SUM_DIGITS
        sq = total[pos:].reshape(n, _N_SQ_DIGITS) if squares else None
        mean, var = pooled_moments(counts, sums, sq)
    result = {"n_rows": n_rows, "counts": counts.astype(np.int64), "mean": mean, "var": var}
    agg.broadcast("scaler_result", result, kind="plain")
    return dict(result, dropouts=list(agg.dropouts))


def _check_result(msg, sender, tag, n, keys):
    msg = check_dict(msg, sender=sender, tag=tag, keys=("n_rows", "counts") + keys)
    out = dict(msg)
    for key in ("counts",) + keys:
        if msg[key] is not None:
            out[key] = check_array(msg[key], sender=sender, tag=tag, shape=(n,), dtype="fiu")
    return out


# -- min-max scaling ---------------------------------------------------------------------
def _sorted_keys(X):
    """Per feature, the sorted keys of the non-missing values."""
    return [np.sort(float_key(col[~np.isnan(col)])) for col in X.T]


def minmax_client(ctx, X, cfg):
    """A data holder: answers the threshold queries with protected counts."""
    server, n = cfg["server"], cfg["n_features"]
    agg = _client_agg(ctx, cfg)
    agg.prepare("minmax_counts")
    keys = _sorted_keys(X)
    counts = np.r_[X.shape[0], [len(k) for k in keys]]
    agg.upload(_to_ring(counts), "minmax_counts")
    tolerant = cfg.get("min_clients") is not None
    # 64 rounds, restarted (with min_clients) each time a client drops out
    for _ in range(64 * (len(cfg["clients"]) + 1) + 1):
        msg = check_dict(ctx.recv(server, "minmax_thresholds"), sender=server,
                         tag="minmax_thresholds", keys=("done", "upper", "lower"))
        if msg["done"]:
            break
        upper = check_array(msg["upper"], sender=server, tag="minmax_thresholds",
                            shape=(n,), dtype="u", exact_dtype="uint64")
        lower = check_array(msg["lower"], sender=server, tag="minmax_thresholds",
                            shape=(n,), dtype="u", exact_dtype="uint64")
        agg.prepare("minmax_above")
        # how many of my values are >= upper (for the max) and < lower (for the min);
        # with dropouts possible, the counts again: the totals of the last round's clients
        above = [len(k) - np.searchsorted(k, t, side="left") for k, t in zip(keys, upper)]
        below = [np.searchsorted(k, t, side="left") for k, t in zip(keys, lower)]
        agg.upload(_to_ring(np.r_[above, below, counts if tolerant else []]),
                   "minmax_above")
    return _check_result(ctx.recv(server, "minmax_result"), server, "minmax_result", n,
                         ("min", "max"))


def minmax_server(ctx, cfg):
    """Bisects on the keys; learns the pooled extremes and tail counts only."""
    n = cfg["n_features"]
    agg = _server_agg(ctx, cfg)
    total = _secure_ints(agg, "minmax_counts", 1 + n)
    _check_counts(total[1:], int(total[0]))
    tolerant = cfg.get("min_clients") is not None
    size = 3 * n + 1 if tolerant else 2 * n
    done, dropped = 0, len(agg.dropouts)
    while done < 64:
        if done == 0:
            # max key in [max_lo, max_hi), min key in [min_lo, min_hi): ints in 0..2**64
            max_lo, max_hi = [0] * n, [1 << 64] * n
            min_lo, min_hi = [0] * n, [1 << 64] * n
        upper = [(lo + hi) // 2 for lo, hi in zip(max_lo, max_hi)]
        lower = [(lo + hi) // 2 for lo, hi in zip(min_lo, min_hi)]
        agg.broadcast("minmax_thresholds", {"done": False,
                                            "upper": np.array(upper, dtype=np.uint64),
                                            "lower": np.array(lower, dtype=np.uint64)})
        found = _secure_ints(agg, "minmax_above", size)
        if len(agg.dropouts) != dropped:
            # (min_clients) someone left: its values may be in the bounds so far;
            # bisect again over the clients that are left
            done, dropped = 0, len(agg.dropouts)
            continue
        for f in range(n):
            if found[f] > 0:
                max_lo[f] = upper[f]
            else:
                max_hi[f] = upper[f]
            if found[n + f] > 0:
                min_hi[f] = lower[f]
            else:
                min_lo[f] = lower[f]
        done += 1
    agg.broadcast("minmax_thresholds", {"done": True, "upper": None, "lower": None})
    if tolerant:
        total = found[2 * n:]
    n_rows, counts = int(total[0]), total[1:]
    _check_counts(counts, n_rows)
    result = {"n_rows": n_rows, "counts": counts.astype(np.int64),
              "min": key_float(np.array(min_lo, dtype=np.uint64)),
              "max": key_float(np.array(max_lo, dtype=np.uint64))}
    agg.broadcast("minmax_result", result, kind="plain")
    return dict(result, dropouts=list(agg.dropouts))
