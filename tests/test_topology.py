import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skfed import HorizontalTopology, VerticalTopology


@settings(max_examples=50, deadline=None)
@given(st.integers(10, 200), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_iid_split_is_a_partition_and_reproducible(n, k, seed):
    X = np.zeros((n, 2))
    topo = HorizontalTopology(n_parties=k, random_state=seed)
    parts = topo.split(X)
    allidx = np.concatenate([idx for _, idx in parts])
    assert sorted(allidx.tolist()) == list(range(n))
    assert len(parts) == k
    again = topo.split(X)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(parts, again))


def test_dirichlet_split_skews_labels():
    rng = np.random.RandomState(0)
    y = rng.randint(0, 5, size=2000)
    X = np.zeros((2000, 1))
    parts = HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.1,
                               random_state=0).split(X, y)
    assert sorted(np.concatenate([i for _, i in parts]).tolist()) == list(range(2000))
    # with strong skew, some client's majority class dominates its rows
    top_share = max(np.bincount(y[i]).max() / len(i) for _, i in parts)
    iid = HorizontalTopology(n_parties=5, random_state=0).split(X, y)
    iid_share = max(np.bincount(y[i]).max() / len(i) for _, i in iid)
    assert top_share > iid_share + 0.2


def test_column_partition():
    topo = HorizontalTopology(partition=0)
    col = np.array(["b", "a", "b", "a", "c"])
    parts = topo.split(np.zeros((5, 2)), party_column=col)
    assert [(n, i.tolist()) for n, i in parts] == [("a", [1, 3]), ("b", [0, 2]), ("c", [4])]
    with pytest.raises(ValueError, match="single party"):
        topo.split(np.zeros((2, 2)), party_column=np.array(["a", "a"]))
    assert HorizontalTopology(partition="region").resolve_column(["x", "region"], 2) == 1
    with pytest.raises(ValueError, match="not among"):
        HorizontalTopology(partition="zone").resolve_column(["x", "region"], 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_parties": 0}, "n_parties"),
    ({"n_parties": 2, "party_names": ["a"]}, "party_names"),
    ({"n_parties": 2, "party_names": ["a", "a"]}, "unique"),
    ({"partition": "dirichlet", "alpha": -1}, "alpha"),
    ({"partition": 1.5}, "partition"),
])
def test_horizontal_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HorizontalTopology(**kwargs).validate()


def test_more_parties_than_rows():
    with pytest.raises(ValueError, match="more parties than rows"):
        HorizontalTopology(n_parties=5).split(np.zeros((3, 1)))


def test_topologies_copy_and_pickle():
    for topo in (HorizontalTopology(n_parties=3, random_state=1),
                 VerticalTopology({"a": ["x"], "b": ["y", "z"]}, label_party="a")):
        assert copy.deepcopy(topo) == topo
        assert pickle.loads(pickle.dumps(topo)) == topo
        assert repr(topo).startswith(type(topo).__name__)


def test_vertical_resolve_by_name_and_index():
    topo = VerticalTopology({"bank": ["age", "income"], "shop": ["spend"]}, label_party="bank")
    cols = topo.resolve(["spend", "age", "income"])
    assert cols["bank"].tolist() == [1, 2] and cols["shop"].tolist() == [0]
    assert topo.feature_parties == ["shop"]
    idx = VerticalTopology({"a": [0, -1], "b": [1]}, label_party="b").resolve(n_features=3)
    assert idx["a"].tolist() == [0, 2]


@pytest.mark.parametrize("parties, label, names, match", [
    ({"a": [0], "b": [0, 1]}, "a", None, "owned twice"),
    ({"a": [0], "b": [1]}, "c", None, "label_party"),
    ({"a": [0], "b": []}, "a", None, "no columns"),
    ({"a": ["x"], "b": ["nope"]}, "a", ["x", "y"], "unknown column"),
    ({"a": ["x"], "b": [1]}, "a", None, "no column names"),
    ({"a": [0]}, "a", None, "belong to no party"),
    ({"a": [0], "b": [7]}, "a", None, "out of range"),
    ({"a": [0], "arbiter": [1]}, "a", None, "arbiter"),
])
def test_vertical_validation(parties, label, names, match):
    with pytest.raises(ValueError, match=match):
        VerticalTopology(parties, label_party=label).resolve(names, n_features=2)
