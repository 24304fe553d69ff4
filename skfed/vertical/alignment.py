"""Encrypted sample alignment: Diffie-Hellman private set intersection.

Before vertical training, the parties must find the records they share
(customers known to the bank *and* the shop) without showing each other the
records they do not share. :func:`align_samples` runs a Diffie-Hellman PSI
over X25519 (primitives in :mod:`skfed.crypto.psi`) through the runtime, one
role per party, and returns each party's indices of the shared records in
one common order. :func:`align_dataframes` does the same for per-party pandas
DataFrames and assembles the aligned joint table, for simulations.

The protocol
------------
Parties ``P_0 ... P_{k-1}`` (in the order given; ``k >= 2``) sit on a ring;
``P_0`` is the *leader*. Each party ``i`` draws a secret scalar ``s_i`` from
the OS CSPRNG and a secret permutation ``pi_i`` of its own rows. Write
``H`` for the hash to a u-coordinate and ``F(x) = H(x)^(s_0 s_1 ... s_{k-1})``
(``^`` is X25519 blinding, which commutes).

1. *Ring blinding* (``k - 1`` hops, all sets travel at once). Party ``i``
   sends ``[H(x)^s_i for x in S_i]`` in the order ``pi_i`` to the next party
   on the ring. On each hop, a party blinds the set it received with its own
   scalar and forwards it, *keeping the order*. After ``k - 1`` hops every
   set has been blinded by every scalar: the party just before ``i`` on the
   ring (its last blinder) holds ``F(S_i)`` in ``pi_i`` order.
2. *Collection*. Each last blinder sends the fully blinded set it holds to
   the leader, except the leader's own set: its last blinder first shuffles
   it with a fresh secret permutation ``sigma``. So the leader holds every
   ``F(S_j)`` in an order it cannot map back to identifiers — even its own.
3. *Intersection*. The leader intersects the ``k`` fully blinded sets and
   sends each party ``j`` the (sorted) positions of the intersection in its
   set, which ``j`` maps back through ``pi_j``. For its own set it sends the
   positions in ``sigma`` order to the last blinder, which maps them through
   ``sigma`` and returns them.
4. *Common order*. Every party now knows which of its own records are
   shared; each sorts them by identifier (integers, then bytes, then strings;
   each by value). The shared identifiers are the same at every party, so
   the orders agree without another message, and the order carries no
   information about any party's row order.

Every blinded set crosses the channel as kind ``masked``; the positions of
the intersection are ``plain`` (the protocol's public output).

What each party learns (semi-honest parties that do not collude)
-----------------------------------------------------------------
* **Every party**: the shared identifiers (the output) and the size of
  every other party's set (the lengths of the sets it blinds). Blinded
  values are pseudo-random under the DDH assumption; the sets arrive in a
  secret random order; positions are only ever sent sorted.
* **The last blinder of the leader's set** additionally learns which
  positions of the leader's shuffled set are shared; it cannot map positions
  to identifiers, so this tells it only the intersection size it learns
  anyway.
* **The leader, with three or more parties**: it compares all fully blinded
  sets, so it also learns the *sizes* of the partial intersections (how many
  records, say, ``P_1`` and ``P_2`` share that ``P_0`` lacks) — the Venn
  diagram's counts, never which identifiers they are: it cannot map any
  fully blinded value outside the intersection to an identifier, not even
  its own (that is what ``sigma`` is for). With two parties the Venn diagram
  is the intersection, so nothing extra is revealed. Avoiding even these
  counts needs heavier machinery (oblivious PRFs or threshold encryption).
* Nobody learns an identifier it does not hold, or whether one of its
  non-shared identifiers is held by some other party.

Colluding parties can pool scalars and permutations and learn more (for
example the leader and its last blinder together can map the leader's fully
blinded set and learn pairwise intersections); malicious parties can lie
about their sets. A ``random_state`` makes the permutations reproducible —
and known to anyone who knows it — so it is for simulations and tests;
deployments leave it ``None``. It never touches the secret scalars.
"""

import numbers
import secrets
import warnings
from functools import partial

import numpy as np
from sklearn.utils import check_random_state

from ..crypto.psi import POINT_BYTES, blind, check_points, encode_ids, generate_scalar, hash_ids
from ..runtime import run_roles
from ..runtime.party import party_of

__all__ = ["align_samples", "align_dataframes"]


# ----------------------------------------------------------------------------
# Roles
# ----------------------------------------------------------------------------

def _check_positions(positions, n, what):
    # The protocol only ever sends sorted, distinct, in-range positions.
    positions = np.asarray(positions)
    if positions.ndim != 1 or (positions.size and (
            positions.dtype.kind not in "iu" or positions[0] < 0 or positions[-1] >= n
            or np.any(np.diff(positions) <= 0))):
        raise ValueError(f"received malformed {what}")
    return positions.astype(np.intp)


def _rows(points):
    blob = points.tobytes()
    return [blob[i:i + POINT_BYTES] for i in range(0, len(blob), POINT_BYTES)]


def _psi_role(ctx, *, encoded, sort_keys, ring, seed, n_jobs):
    """One party's side of the ring DH-PSI. Returns its own row indices.

    ``encoded`` and ``sort_keys`` are this party's own identifiers; ``ring``
    is the public order of the parties (``ring[0]`` leads); ``seed`` drives
    this party's permutations only.
    """
    me, k = ctx.party, len(ring)
    i = ring.index(me)
    nxt, prev, leader = ring[(i + 1) % k], ring[(i - 1) % k], ring[0]
    rng = np.random.default_rng(seed)
    scalar = generate_scalar()  # never derived from the seed

    n = len(encoded)
    pi = rng.permutation(n)
    points = hash_ids([encoded[j] for j in pi], n_jobs=n_jobs)

    # 1. Ring blinding: forward the set in hand, blind the one that arrives.
    current, origin = blind(points, scalar, n_jobs=n_jobs), me
    for t in range(k - 1):
        ctx.send(nxt, f"blinded/{origin}", current, kind="masked")
        origin = ring[(i - 1 - t) % k]
        received = check_points(ctx.recv(prev, f"blinded/{origin}"), f"set of {origin!r}")
        current = blind(received, scalar, n_jobs=n_jobs)
    # Now ``current`` is F(S_nxt) in nxt's secret order.

    # 2. Collection at the leader.
    sigma = None
    if nxt == leader:
        sigma = rng.permutation(len(current))
        ctx.send(leader, f"full/{leader}", current[sigma], kind="masked")
    elif me != leader:
        ctx.send(leader, f"full/{nxt}", current, kind="masked")

    if me == leader:
        full = {nxt: current}
        for p in ring:
            if p not in full:
                full[p] = check_points(ctx.recv(ring[(ring.index(p) - 1) % k], f"full/{p}"),
                                       f"fully blinded set of {p!r}")
        # 3. Intersection of the fully blinded sets, as positions in each.
        rows = {p: _rows(full[p]) for p in ring}
        smallest = min(ring, key=lambda p: len(rows[p]))
        common = set(rows[smallest])
        for p in ring:
            if p != smallest:
                common.intersection_update(rows[p])
        positions = {
            p: np.flatnonzero([r in common for r in rows[p]]).astype(np.int64) for p in ring
        }
        ctx.send(prev, "leader_positions", positions[leader], kind="plain")
        for p in ring[1:]:
            ctx.send(p, "positions", positions[p], kind="plain")
        mine = _check_positions(ctx.recv(prev, "leader_positions_unshuffled"), n,
                                "positions of the intersection")
        if len(mine) != len(positions[leader]):
            raise ValueError("the leader's last blinder returned the wrong number of positions")
    else:
        if sigma is not None:
            shuffled = _check_positions(ctx.recv(leader, "leader_positions"), len(sigma),
                                        "positions of the leader's intersection")
            ctx.send(leader, "leader_positions_unshuffled", np.sort(sigma[shuffled]),
                     kind="plain")
        mine = _check_positions(ctx.recv(leader, "positions"), n,
                                "positions of the intersection")

    # 4. Common order: sort the shared records by identifier.
    return np.array(sorted(pi[mine].tolist(), key=sort_keys.__getitem__), dtype=np.intp)


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

def _sort_key(encoded):
    """Sort key from a canonical encoding: ints by value, then bytes, then strs."""
    tag, body = encoded[:1], encoded[1:]
    if tag == b"i":
        return (0, int.from_bytes(body, "big", signed=True), b"")
    return (1 if tag == b"b" else 2, 0, body)


def _as_id_array(ids, party):
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
        raise ValueError(
            f"identifiers of party {party!r} must be a 1-D array-like of IDs, got "
            f"{type(ids).__name__}"
        )
    if hasattr(ids, "to_numpy"):  # pandas Series / Index: keep pd.NA visible
        ids = ids.to_numpy(dtype=object)
    arr = np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids
    if arr.ndim != 1:
        raise ValueError(
            f"identifiers of party {party!r} must be 1-D, got shape {arr.shape}"
        )
    return arr


def _validate(ids_by_party):
    if not isinstance(ids_by_party, dict):
        raise ValueError(
            "ids_by_party must be a dict mapping party name -> array of IDs, got "
            f"{type(ids_by_party).__name__}"
        )
    if len(ids_by_party) < 2:
        raise ValueError(
            f"sample alignment needs at least two parties, got {len(ids_by_party)}"
        )
    return {party: _encode_party(party, ids) for party, ids in ids_by_party.items()}


def _encode_party(party, ids):
    """One party's identifiers, checked and canonically encoded."""
    if not isinstance(party, str) or not party:
        raise ValueError(f"party names must be non-empty strings, got {party!r}")
    arr = _as_id_array(ids, party)
    if len(arr) == 0:
        raise ValueError(f"party {party!r} has no identifiers")
    try:
        enc = encode_ids(arr.tolist())
    except ValueError as exc:
        raise ValueError(f"party {party!r}: {exc}") from None
    if len(set(enc)) != len(enc):
        seen, dups = set(), []
        for value, e in zip(arr.tolist(), enc, strict=True):
            if e in seen:
                dups.append(value)
            seen.add(e)
        raise ValueError(
            f"party {party!r} has {len(dups)} duplicated identifier(s), e.g. "
            f"{dups[0]!r}; alignment needs unique IDs (deduplicate first)"
        )
    return enc


def _validate_one_party(ids_by_party, me, runtime):
    """With one party per process: only ``me``'s IDs; the others' are None."""
    if not isinstance(ids_by_party, dict) or len(ids_by_party) < 2:
        raise ValueError(
            "ids_by_party must name every party of the alignment (in the same order "
            "at every party), with this party's IDs and None for the others")
    if me not in ids_by_party:
        raise ValueError(f"ids_by_party has no entry for this party {me!r}")
    given = [p for p, ids in ids_by_party.items() if p != me and ids is not None]
    if given:
        raise ValueError(
            f"with one party per process pass only your own IDs; got IDs for {given} "
            "(use None for the other parties)")
    unknown = set(ids_by_party) - set(runtime.parties)
    if unknown:
        raise ValueError(f"parties {sorted(unknown)} are not in the runtime")
    for p in ids_by_party:
        if not isinstance(p, str) or not p:
            raise ValueError(f"party names must be non-empty strings, got {p!r}")
    return _encode_party(me, ids_by_party[me])


def _party_seeds(parties, random_state):
    if random_state is None:
        return {p: secrets.randbits(128) for p in parties}
    rng = check_random_state(random_state)
    return {p: int(rng.randint(np.iinfo(np.int32).max)) for p in parties}


def align_samples(ids_by_party, *, random_state=None, n_jobs=None,
                  return_transcript=False, runtime=None):
    """Find the records all parties share, without revealing the others.

    Runs a Diffie-Hellman private set intersection over X25519 between the
    parties (one role each, through the runtime); see the module docstring
    for the protocol and exactly what each party learns.

    Parameters
    ----------
    ids_by_party : dict of str -> array-like of shape (n_records_party,)
        Each party's record identifiers: integers, strings or bytes, unique
        within the party, no missing values. Types matter: the integer ``1``
        and the string ``"1"`` are different identifiers. The first party
        leads the protocol.
    random_state : int, RandomState instance or None, default=None
        Controls only the parties' secret shuffles of the messages (for
        reproducible transcripts in simulation); the secret scalars always
        come from the OS CSPRNG. The result does not depend on it.
    n_jobs : int, default=None
        joblib workers each party uses for the blinding. ``None`` means 1
        unless in a :func:`joblib.parallel_config` context.
    return_transcript : bool, default=False
        Also return the transcript of the messages exchanged.
    runtime : runtime object, default=None
        Runs the roles (default: a new :class:`~skfed.runtime.LocalRuntime`).
        With a runtime that runs one party (``runtime.party`` set, e.g.
        :class:`~skfed.runtime.grpc.GrpcRuntime`), every party makes the same
        call with the parties in the same order, filling in only its own
        IDs (None for the others), and gets back only its own indices.

    Returns
    -------
    indices : dict of str -> ndarray of shape (n_shared,), dtype intp
        For each party, the positions in its own array of the shared records,
        in one common order (sorted by identifier: integers, then bytes, then
        strings), so that ``ids[a][indices[a]]`` equals ``ids[b][indices[b]]``
        for every two parties ``a`` and ``b``.
    transcript : Transcript
        Only if ``return_transcript=True``.

    Raises
    ------
    ValueError
        Before any message is sent, if there are fewer than two parties, a
        party has no identifiers, duplicated or missing (None, NaN,
        ``pandas.NA``) identifiers, or identifiers of an unsupported type.

    See Also
    --------
    align_dataframes : Align per-party DataFrames and join their columns.

    Examples
    --------
    >>> from skfed import align_samples
    >>> idx = align_samples({"bank": ["ann", "bob", "cat", "dan"],
    ...                      "shop": ["eve", "dan", "bob"]})
    >>> idx["bank"], idx["shop"]
    (array([1, 3]), array([2, 1]))
    >>> idx, transcript = align_samples({"bank": [1, 2, 3], "shop": [3, 2]},
    ...                                 return_transcript=True)
    >>> sorted({m.kind for m in transcript})
    ['masked', 'plain']
    """
    me = party_of(runtime)
    if me is not None:
        encoded = {p: None for p in ids_by_party}
        encoded[me] = _validate_one_party(ids_by_party, me, runtime)
    else:
        encoded = _validate(ids_by_party)
    if n_jobs is not None and (isinstance(n_jobs, bool)
                               or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}")
    ring = list(encoded)
    seeds = _party_seeds(ring, random_state)
    roles = {
        p: partial(_psi_role, encoded=encoded[p],
                   sort_keys=[_sort_key(e) for e in encoded[p]],
                   ring=ring, seed=seeds[p], n_jobs=n_jobs)
        for p in ring if encoded[p] is not None
    }
    results, transcript = run_roles(roles, runtime=runtime)
    indices = {p: results[p] for p in ring if p in results}
    _warn_if_few_shared(indices, {p: ids_by_party[p] for p in indices})
    return (indices, transcript) if return_transcript else indices


# Below this share of the smallest party's records, an intersection is
# more likely a mismatch of ID formats than the data.
TINY_OVERLAP = 0.1


def _id_types(ids):
    values = ids.to_numpy(dtype=object) if hasattr(ids, "to_numpy") else ids
    return sorted({"integer" if isinstance(v, numbers.Integral) else type(v).__name__
                   for v in np.asarray(values, dtype=object).tolist()})


def _warn_if_few_shared(indices, ids):
    """An empty or tiny intersection: say so now, not at the fit's 0-sample error."""
    n_shared = len(next(iter(indices.values())))
    smallest = min(len(v) for v in ids.values())
    if n_shared >= TINY_OVERLAP * smallest and n_shared > 0:
        return
    types = "; ".join(f"{p}'s IDs are {'/'.join(_id_types(v))}" for p, v in ids.items())
    what = ("no record is shared by all parties" if n_shared == 0 else
            f"only {n_shared} record(s) are shared, under {TINY_OVERLAP:.0%} of the smallest "
            f"party's {smallest}")
    warnings.warn(
        f"{what} ({types}). Identifiers of different types never match (the integer 12 "
        "and the string '12' differ): check that every party reads its ID column with "
        "the same type and format.", UserWarning, stacklevel=3)


def align_dataframes(frames, id_column, *, random_state=None, n_jobs=None,
                     return_transcript=False, runtime=None, prefix="auto"):
    """Align per-party DataFrames by an ID column and join their columns.

    A simulation helper: it runs :func:`align_samples` on the ID columns and
    then builds, in one process, the joint table a vertical estimator is fit
    on (each party would in reality keep its own aligned columns). The ID
    columns are dropped. Independent organisations reuse column names
    (``x0``, ``age``): each party has its own namespace, and a name held by
    several parties becomes ``party__name`` in the joint table, as in
    scikit-learn's :class:`~sklearn.compose.ColumnTransformer`. A
    :class:`~skfed.VerticalTopology` may still give each party its plain
    names: it finds ``party__name`` first.

    Parameters
    ----------
    frames : dict of str -> pandas.DataFrame
        Each party's table.
    id_column : str or dict of str -> str
        The ID column, the same name for every party or one per party.
    random_state, n_jobs, return_transcript, runtime
        As in :func:`align_samples`.
    prefix : {"auto", True, False}, default="auto"
        ``"auto"``: prefix the names held by more than one party with
        ``party__``; ``True``: prefix every column; ``False``: keep the names
        and refuse a name held by two parties.

    Returns
    -------
    joined : pandas.DataFrame of shape (n_shared, n_columns)
        The shared records, in the common order, with every party's columns
        (in party order) and a fresh ``RangeIndex``.
    ids : ndarray of shape (n_shared,)
        The shared identifiers, in the same order (taken from the first
        party's ID column).
    transcript : Transcript
        Only if ``return_transcript=True``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skfed import align_dataframes
    >>> bank = pd.DataFrame({"cid": [7, 3, 5], "income": [10.0, 30.0, 50.0]})
    >>> shop = pd.DataFrame({"cid": [5, 9, 7], "visits": [1, 2, 3]})
    >>> joined, ids = align_dataframes({"bank": bank, "shop": shop}, id_column="cid")
    >>> joined
       income  visits
    0    50.0       1
    1    10.0       3
    >>> ids
    array([5, 7])

    Two parties with a column ``x`` each:

    >>> a = pd.DataFrame({"cid": [1, 2], "x": [0.5, 1.5]})
    >>> b = pd.DataFrame({"cid": [2, 1], "x": [7, 8], "z": [0, 1]})
    >>> align_dataframes({"a": a, "b": b}, id_column="cid")[0].columns.tolist()
    ['a__x', 'b__x', 'z']
    """
    import pandas as pd

    if not isinstance(frames, dict) or len(frames) < 2:
        raise ValueError("frames must be a dict of at least two party name -> DataFrame")
    columns = id_column if isinstance(id_column, dict) else dict.fromkeys(frames, id_column)
    if set(columns) != set(frames):
        raise ValueError(
            f"id_column names parties {sorted(columns)} but frames has {sorted(frames)}"
        )
    if prefix not in ("auto", True, False):
        raise ValueError(f"prefix must be 'auto', True or False, got {prefix!r}")
    owner = {}
    for party, df in frames.items():
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"frames[{party!r}] must be a DataFrame, got {type(df).__name__}")
        if columns[party] not in df.columns:
            raise ValueError(f"party {party!r} has no ID column {columns[party]!r}")
        for col in df.columns:
            if col == columns[party]:
                continue
            if col in owner and prefix is False:
                raise ValueError(
                    f"column {col!r} is held by both {owner[col][0]!r} and {party!r}; "
                    "rename it so each column belongs to one party, or let "
                    "align_dataframes prefix it (prefix='auto')"
                )
            owner.setdefault(col, []).append(party)
    shared = {col for col, holders in owner.items() if len(holders) > 1}

    def renamed(party, df):
        df = df.drop(columns=columns[party])
        return df.rename(columns=lambda c: f"{party}__{c}"
                         if prefix is True or c in shared else c)

    out = align_samples({p: df[columns[p]] for p, df in frames.items()},
                        random_state=random_state, n_jobs=n_jobs,
                        return_transcript=return_transcript, runtime=runtime)
    indices = out[0] if return_transcript else out
    joined = pd.concat(
        [renamed(p, df).iloc[indices[p]].reset_index(drop=True) for p, df in frames.items()],
        axis=1,
    )
    if joined.columns.duplicated().any():
        dup = joined.columns[joined.columns.duplicated()][0]
        raise ValueError(f"the joint table would hold column {dup!r} twice; rename it")
    first = next(iter(frames))
    ids = frames[first][columns[first]].to_numpy()[indices[first]]
    return (joined, ids, out[1]) if return_transcript else (joined, ids)
