"""Tests of encrypted sample alignment (skfed.vertical.alignment)."""

import hashlib
from functools import partial

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skfed import align_dataframes, align_samples
from skfed.crypto import psi
from skfed.crypto.psi import LowOrderPointError, encode_id, hash_ids, hash_to_point
from skfed.runtime import LocalRuntime, RoleError, run_roles
from skfed.vertical.alignment import _psi_role, _sort_key

# --- helpers ------------------------------------------------------------------

ID_KINDS = {
    "str": st.text(min_size=0, max_size=8),
    "int": st.integers(min_value=-(2**70), max_value=2**70),
    "mixed": st.one_of(st.text(max_size=4), st.integers(-50, 50), st.binary(max_size=3)),
}


@st.composite
def party_sets(draw, n_parties, kind):
    """Unique-ID sets for ``n_parties`` parties with overlap from none to full."""
    pool = draw(st.lists(ID_KINDS[kind], min_size=1, max_size=30,
                         unique_by=lambda v: encode_id(v)))
    shared_frac = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    n_shared = int(round(shared_frac * len(pool)))
    shared, rest = pool[:n_shared], pool[n_shared:]
    sets = []
    for _ in range(n_parties):
        own = [v for v in rest if draw(st.booleans())]
        ids = shared + own
        if not ids:
            ids = [pool[-1]]
        order = draw(st.permutations(range(len(ids))))
        sets.append([ids[i] for i in order])
    return {f"p{i}": s for i, s in enumerate(sets)}


def expected_intersection(ids_by_party):
    sets = [{encode_id(v) for v in ids} for ids in ids_by_party.values()]
    return set.intersection(*sets)


def check_alignment(ids_by_party, indices):
    assert list(indices) == list(ids_by_party)
    want = expected_intersection(ids_by_party)
    aligned = {}
    for party, ids in ids_by_party.items():
        idx = indices[party]
        assert idx.dtype == np.intp and idx.ndim == 1
        assert len(set(idx.tolist())) == len(idx)
        aligned[party] = [encode_id(ids[i]) for i in idx]
        assert set(aligned[party]) == want
    # The common order: ids[a][idx[a]] == ids[b][idx[b]] for every pair.
    first = next(iter(aligned.values()))
    for rows in aligned.values():
        assert rows == first
    # ... and it is the identifier order.
    assert first == sorted(first, key=_sort_key)


# --- correctness ----------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(ID_KINDS))
@pytest.mark.parametrize("n_parties", [2, 3])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_matches_set_intersection(kind, n_parties, data):
    ids_by_party = data.draw(party_sets(n_parties, kind))
    check_alignment(ids_by_party, align_samples(ids_by_party))


def test_four_parties_and_numpy_and_pandas_inputs():
    ids = {
        "a": np.arange(0, 40),
        "b": pd.Series(np.arange(10, 60)),
        "c": list(range(50, 0, -1)),
        "d": pd.Index(np.arange(5, 35, dtype=np.int32)),
    }
    indices = align_samples(ids, random_state=0)
    check_alignment(ids, indices)
    np.testing.assert_array_equal(np.asarray(ids["a"])[indices["a"]], np.arange(10, 35))


def test_readme_example():
    idx = align_samples({"bank": ["ann", "bob", "cat", "dan"], "shop": ["eve", "dan", "bob"]})
    assert idx["bank"].tolist() == [1, 3] and idx["shop"].tolist() == [2, 1]


def test_integer_and_string_ids_do_not_match():
    idx = align_samples({"a": [1, 2, "3"], "b": ["1", 2, 3]})
    assert idx["a"].tolist() == [1] and idx["b"].tolist() == [1]


def test_empty_intersection_is_a_result_not_an_error():
    idx = align_samples({"a": ["x", "y"], "b": ["z"]})
    assert idx["a"].tolist() == [] and idx["b"].tolist() == []
    assert idx["a"].dtype == np.intp


def test_result_is_deterministic_whatever_the_seed():
    rng = np.random.default_rng(0)
    ids = {"a": rng.permutation(200)[:120], "b": rng.permutation(200)[:90],
           "c": rng.permutation(200)[:150]}
    runs = [align_samples(ids, random_state=seed) for seed in (None, None, 0, 1)]
    for run in runs[1:]:
        for party in ids:
            np.testing.assert_array_equal(run[party], runs[0][party])


def test_parallel_blinding_gives_the_same_result(monkeypatch):
    monkeypatch.setattr(psi, "_MIN_POINTS_PER_JOB", 16)
    ids = {"a": [f"id{i}" for i in range(150)], "b": [f"id{i}" for i in range(100, 300)]}
    serial = align_samples(ids)
    parallel = align_samples(ids, n_jobs=2)
    for party in ids:
        np.testing.assert_array_equal(parallel[party], serial[party])


# --- the transcript -------------------------------------------------------------

def _run(ids, **kw):
    return align_samples(ids, return_transcript=True,
                         runtime=LocalRuntime(keep_payloads=True), **kw)


@pytest.mark.parametrize("n_parties", [2, 3])
def test_no_identifier_or_plain_hash_crosses_the_wire(n_parties):
    # Long identifiers, so a chance match in random bytes is impossible.
    ids = {f"p{k}": [f"customer-{i:06d}-{k % 2}" for i in range(k * 20, k * 20 + 60)]
           + [10**15 + i for i in range(k * 7, k * 7 + 25)]
           for k in range(n_parties)}
    _, transcript = _run(ids, random_state=0)
    secrets_ = set()
    for values in ids.values():
        for v in values:
            enc = encode_id(v)
            secrets_ |= {enc, hash_to_point(enc), hashlib.sha256(enc).digest(),
                         hashlib.sha256(str(v).encode()).digest()}
            if isinstance(v, str):
                secrets_.add(v.encode())
            else:
                secrets_ |= {v.to_bytes(8, "big"), v.to_bytes(8, "little")}
    assert len(transcript) > 0
    for message in transcript:
        for secret in secrets_:
            assert secret not in message.payload, (message.tag, secret)


def test_blinded_sets_are_masked_and_positions_are_sorted():
    ids = {"a": list(range(0, 80)), "b": list(range(40, 100)), "c": list(range(30, 90))}
    _, transcript = _run(ids, random_state=0)
    for message in transcript:
        payload = message.decoded()
        if message.tag.startswith(("blinded/", "full/")):
            assert message.kind == "masked"
            assert payload.dtype == np.uint8 and payload.shape[1] == 32
        else:
            assert message.kind == "plain"
            assert message.tag in ("positions", "leader_positions",
                                   "leader_positions_unshuffled")
            # Sorted positions carry no order information.
            assert payload.tolist() == sorted(payload.tolist())
            assert len(payload) == 40  # the intersection's size only


def test_message_flow_and_sizes():
    ids = {"a": list(range(10)), "b": list(range(5, 25)), "c": list(range(8, 38))}
    _, transcript = _run(ids)
    flow = {(m.sender, m.receiver, m.tag): m for m in transcript}
    ring = ["a", "b", "c"]
    # Hop 1 and 2 of every set, around the ring a -> b -> c -> a.
    for i, origin in enumerate(ring):
        for hop in range(2):
            sender, receiver = ring[(i + hop) % 3], ring[(i + hop + 1) % 3]
            msg = flow[(sender, receiver, f"blinded/{origin}")]
            assert len(msg.decoded()) == len(ids[origin])
    # Each last blinder hands its fully blinded set to the leader.
    assert ("c", "a", "full/a") in flow and ("a", "b", "full/b") not in flow
    assert ("b", "a", "full/c") in flow
    assert {m.tag for m in transcript.filter(receiver="a", kind="plain")} \
        == {"leader_positions_unshuffled"}
    assert len(transcript) == 3 * 2 + 2 + 1 + 2 + 1


def test_scalars_are_fresh_even_with_a_seed():
    ids = {"a": list(range(30)), "b": list(range(10, 40))}
    _, t1 = _run(ids, random_state=0)
    _, t2 = _run(ids, random_state=0)
    # threads interleave differently between runs; compare the multiset of messages
    assert sorted((m.sender, m.receiver, m.tag) for m in t1) == sorted(
        (m.sender, m.receiver, m.tag) for m in t2)
    blinded1 = t1.filter(tag="blinded/a")[0].decoded()
    blinded2 = t2.filter(tag="blinded/a")[0].decoded()
    assert not (blinded1 == blinded2).all(axis=1).any()


def test_shuffled_sets_do_not_follow_the_input_order():
    # Shared records sit at the start of "a"; after the secret shuffle, the
    # positions the leader reports are spread over the whole set.
    ids = {"a": list(range(200)), "b": list(range(20))}
    _, transcript = _run(ids, random_state=0)
    positions = transcript.filter(tag="leader_positions")[0].decoded()
    assert positions.max() > 100


# --- a misbehaving peer -----------------------------------------------------------

def test_low_order_points_from_a_peer_are_refused():
    def evil(ctx):
        ctx.recv("honest", "blinded/honest")
        ctx.send("honest", "blinded/evil", np.zeros((3, 32), dtype=np.uint8), kind="masked")

    enc = [encode_id(i) for i in range(5)]
    honest = partial(_psi_role, encoded=enc, sort_keys=[_sort_key(e) for e in enc],
                     ring=["honest", "evil"], seed=0, n_jobs=None)
    with pytest.raises(RoleError) as info:
        run_roles({"honest": honest, "evil": evil})
    assert info.value.party == "honest"
    assert isinstance(info.value.error, LowOrderPointError)


def test_malformed_sets_from_a_peer_are_refused():
    def evil(ctx):
        ctx.recv("honest", "blinded/honest")
        ctx.send("honest", "blinded/evil", np.zeros((3, 8)), kind="masked")

    enc = [encode_id(i) for i in range(5)]
    honest = partial(_psi_role, encoded=enc, sort_keys=[_sort_key(e) for e in enc],
                     ring=["honest", "evil"], seed=0, n_jobs=None)
    with pytest.raises(RoleError, match="set of 'evil' must be a uint8 array"):
        run_roles({"honest": honest, "evil": evil})


# --- bad input ------------------------------------------------------------------------

class NoMessages:
    """A runtime that fails the test if any role is started."""

    def run(self, roles, transcript=None):
        raise AssertionError("a message would have been sent")


@pytest.mark.parametrize("ids_by_party, match", [
    ({"a": [1, 2]}, "at least two parties"),
    ({}, "at least two parties"),
    ([[1], [2]], "must be a dict"),
    ({"a": [1, 2], "b": []}, "party 'b' has no identifiers"),
    ({"a": [1, 2, 1], "b": [1]}, "party 'a' has 1 duplicated identifier.*e.g. 1"),
    ({"a": [1, np.int64(1)], "b": [1]}, "duplicated"),
    ({"a": ["x", None], "b": ["x"]}, "party 'a': identifier at position 1: missing"),
    ({"a": [1.0, float("nan")], "b": [1]}, "party 'a'.*position 0: float identifiers"),
    ({"a": np.array([1.0, np.nan]), "b": [1]}, "float identifiers"),
    ({"a": pd.Series([1, None], dtype="Int64"), "b": [1]}, "position 1: missing"),
    ({"a": pd.Series(["x", pd.NA], dtype="string"), "b": ["x"]}, "position 1: missing"),
    ({"a": [True, False], "b": [1]}, "boolean"),
    ({"a": [1, frozenset()], "b": [1]}, "unsupported identifier type frozenset"),
    ({"a": "abc", "b": ["a"]}, "1-D array-like"),
    ({"a": 5, "b": [5]}, "1-D array-like"),
    ({"a": np.arange(4).reshape(2, 2), "b": [1]}, "must be 1-D"),
    ({1: [1], "b": [1]}, "party names must be non-empty strings"),
    ({"": [1], "b": [1]}, "party names must be non-empty strings"),
])
def test_bad_input_is_refused_before_any_message(ids_by_party, match):
    with pytest.raises(ValueError, match=match):
        align_samples(ids_by_party, runtime=NoMessages())


@pytest.mark.parametrize("n_jobs", [0, 1.5, True, "2"])
def test_bad_n_jobs(n_jobs):
    with pytest.raises(ValueError, match="n_jobs"):
        align_samples({"a": [1], "b": [1]}, n_jobs=n_jobs, runtime=NoMessages())


# --- DataFrames -------------------------------------------------------------------------

def test_align_dataframes_matches_a_pandas_merge():
    rng = np.random.default_rng(0)
    bank = pd.DataFrame({"cid": rng.permutation(60)[:40], "age": rng.integers(18, 90, 40),
                         "income": rng.normal(size=40)})
    shop = pd.DataFrame({"cid": rng.permutation(60)[:35], "visits": rng.integers(0, 9, 35)})
    telco = pd.DataFrame({"customer": rng.permutation(60)[:50], "minutes": rng.normal(size=50)})
    frames = {"bank": bank, "shop": shop, "telco": telco.rename(columns={})}
    joined, ids, transcript = align_dataframes(
        frames, id_column={"bank": "cid", "shop": "cid", "telco": "customer"},
        return_transcript=True)
    expected = (bank.merge(shop, on="cid")
                .merge(telco.rename(columns={"customer": "cid"}), on="cid")
                .sort_values("cid").reset_index(drop=True))
    np.testing.assert_array_equal(ids, expected["cid"].to_numpy())
    pd.testing.assert_frame_equal(joined, expected.drop(columns="cid"))
    assert list(joined.columns) == ["age", "income", "visits", "minutes"]
    assert len(transcript) > 0


def test_align_dataframes_bad_input():
    a = pd.DataFrame({"id": [1, 2], "x": [0.0, 1.0]})
    b = pd.DataFrame({"id": [2, 3], "x": [0.0, 1.0]})
    with pytest.raises(ValueError, match="column 'x' is held by both 'a' and 'b'"):
        align_dataframes({"a": a, "b": b}, id_column="id", prefix=False)
    with pytest.raises(ValueError, match="party 'b' has no ID column 'key'"):
        align_dataframes({"a": a.rename(columns={"id": "key"}), "b": b}, id_column="key")
    with pytest.raises(ValueError, match="at least two"):
        align_dataframes({"a": a}, id_column="id")
    with pytest.raises(ValueError, match="must be a DataFrame"):
        align_dataframes({"a": a, "b": b.to_numpy()}, id_column="id")
    with pytest.raises(ValueError, match="id_column names parties"):
        align_dataframes({"a": a, "b": b.rename(columns={"x": "y"})}, id_column={"a": "id"})
    with pytest.raises(ValueError, match="duplicated"):
        align_dataframes({"a": pd.DataFrame({"id": [1, 1], "x": [0, 1]}),
                          "b": b.rename(columns={"x": "y"})}, id_column="id")


def test_joined_table_is_ready_for_a_vertical_fit():
    from skfed import VerticalLinearRegression, VerticalTopology

    rng = np.random.default_rng(1)
    ids = rng.permutation(300)
    bank = pd.DataFrame({"cid": ids[:200], "age": rng.normal(size=200),
                         "income": rng.normal(size=200)})
    shop = pd.DataFrame({"cid": ids[100:300], "visits": rng.normal(size=200)})
    joined, _ = align_dataframes({"bank": bank, "shop": shop}, id_column="cid")
    y = 2 * joined["age"] - joined["income"] + 3 * joined["visits"]
    X = joined
    topo = VerticalTopology({"bank": ["age", "income"], "shop": ["visits"]},
                            label_party="bank")
    reg = VerticalLinearRegression(topo, encryption=None, learning_rate=0.5,
                                   max_iter=300).fit(X, y)
    assert len(X) == 100
    assert reg.score(X, y) > 0.99


@pytest.mark.parametrize("bad", [[3, 1], [1, 1], [-1], [99], [0.5]])
def test_malformed_positions_from_the_leader_are_refused(bad):
    # The honest party is the leader's last blinder; the leader sends it
    # positions that are unsorted, repeated, out of range or not integers.
    def evil_leader(ctx):
        ctx.send("honest", "blinded/evil", hash_ids([b"s1", b"s2", b"s3"]), kind="masked")
        ctx.recv("honest", "blinded/honest")
        ctx.recv("honest", "full/evil")
        ctx.send("honest", "leader_positions", np.asarray(bad), kind="plain")

    enc = [encode_id(i) for i in range(5)]
    honest = partial(_psi_role, encoded=enc, sort_keys=[_sort_key(e) for e in enc],
                     ring=["evil", "honest"], seed=0, n_jobs=None)
    with pytest.raises(RoleError, match="malformed positions"):
        run_roles({"evil": evil_leader, "honest": honest})
