"""The first day with real data (issue #16): horizontal data already split by
party, compare_with_centralised with a party column, per-party column names,
alignment warnings and the small things a new user hits."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfed import (
    FederatedSGDClassifier,
    FederatedSGDRegressor,
    HorizontalTopology,
    compare_with_centralised,
)


def _split_data(n=160, seed=0):
    X, y = make_classification(n_samples=n, n_features=5, n_informative=3, n_redundant=0,
                               random_state=seed)
    # Two hospitals with different scales: the party must never become a feature.
    parties = np.where(np.random.RandomState(seed).rand(n) < 0.5, "guest", "host")
    X = X * 10 + 3
    return X, y, parties


# -- 1. data already split by party -------------------------------------------------

def test_parties_equals_the_column_route():
    X, y, parties = _split_data()
    params = dict(loss="log_loss", n_rounds=3, random_state=0)
    by_param = FederatedSGDClassifier(**params).fit(X, y, parties=parties)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(site=parties)
    by_column = FederatedSGDClassifier(topology=HorizontalTopology(partition="site"),
                                       **params).fit(df, y)
    np.testing.assert_array_equal(by_param.coef_, by_column.coef_)
    assert by_param.n_features_in_ == 5
    assert {m.sender for m in by_param.transcript_.filter(tag="update")} == {"guest", "host"}
    # predict takes the features only, in both routes
    np.testing.assert_array_equal(by_param.predict(X), by_column.predict(df.drop(columns="site")))


def test_parties_differ_from_a_random_split():
    X, y, parties = _split_data()
    params = dict(loss="log_loss", n_rounds=3, random_state=0)
    a = FederatedSGDClassifier(**params).fit(X, y, parties=parties)
    b = FederatedSGDClassifier(**params).fit(X, y)
    assert not np.array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize("bad, match", [
    (["a"] * 10, "single party"),
    (["a", "b"] * 3, r"one party per row"),
    (np.r_[np.zeros(9), np.nan], "missing values"),
])
def test_bad_parties_are_refused(bad, match):
    X, y = make_classification(n_samples=10, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    with pytest.raises(ValueError, match=match):
        FederatedSGDRegressor(n_rounds=1).fit(X, y.astype(float), parties=bad)


def test_parties_and_a_column_partition_are_exclusive():
    X, y, parties = _split_data()
    est = FederatedSGDClassifier(topology=HorizontalTopology(partition=0))
    with pytest.raises(ValueError, match="given twice"):
        est.fit(X, y, parties=parties)


def test_pipeline_without_routing_uses_the_step_prefix():
    X, y, parties = _split_data()
    pipe = make_pipeline(StandardScaler(), FederatedSGDClassifier(n_rounds=2, random_state=0))
    pipe.fit(X, y, federatedsgdclassifier__parties=parties)
    assert pipe.score(X, y) > 0.6
    # Without routing, Pipeline refuses an unprefixed parameter with a clear message.
    with pytest.raises((TypeError, ValueError), match="parties"):
        make_pipeline(StandardScaler(), FederatedSGDClassifier(n_rounds=1)).fit(
            X, y, parties=parties)


def test_cross_validation_without_routing():
    X, y, parties = _split_data()
    est = FederatedSGDClassifier(n_rounds=2, random_state=0)
    scores = cross_val_score(est, X, y, cv=3, params={"parties": parties})
    assert scores.shape == (3,)
    search = GridSearchCV(est, {"alpha": [1e-4, 1e-2]}, cv=3).fit(X, y, parties=parties)
    assert search.best_estimator_.n_features_in_ == 5


def test_pipeline_cross_validation_with_routing(routing):
    X, y, parties = _split_data()
    pipe = make_pipeline(StandardScaler(), FederatedSGDClassifier(n_rounds=2, random_state=0))
    pipe.fit(X, y, parties=parties)
    fitted = pipe[-1]
    assert {m.sender for m in fitted.transcript_.filter(tag="update")} == {"guest", "host"}
    scores = cross_val_score(pipe, X, y, cv=3, params={"parties": parties})
    assert scores.shape == (3,) and np.all(scores > 0.5)
    search = GridSearchCV(pipe, {"federatedsgdclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    search.fit(X, y, parties=parties)
    # Each fold's clients are the parties of its training rows.
    best = search.best_estimator_[-1]
    assert {m.sender for m in best.transcript_.filter(tag="update")} == {"guest", "host"}


def test_parties_are_sliced_with_the_rows(routing):
    """A fold holding only one party's rows fails naming the parties, not silently."""
    X, y, _ = _split_data()
    parties = np.r_[np.zeros(80, dtype=int), np.ones(80, dtype=int)]
    est = FederatedSGDClassifier(n_rounds=1, random_state=0)
    with pytest.raises(ValueError, match="single party"):
        est.fit(X[:80], y[:80], parties=parties[:80])
    # KFold without shuffling makes folds whose training rows hold both parties.
    scores = cross_val_score(est, X, y, cv=3, params={"parties": parties})
    assert scores.shape == (3,)


# -- compare_with_centralised and the party column -----------------------------------

class _Spy(SGDClassifier):
    """Records the width of the X its fit receives."""

    seen = []

    def fit(self, X, y, **kw):
        type(self).seen.append(np.shape(X)[1])
        return super().fit(X, y, **kw)


def test_compare_drops_an_integer_party_column_for_the_twin(monkeypatch):
    """The bug: with an int column, the twin trained on the party indicator."""
    X, y, parties = _split_data()
    Xp = np.column_stack([X, (parties == "host").astype(int)])
    est = FederatedSGDClassifier(topology=HorizontalTopology(partition=5), n_rounds=2,
                                 random_state=0)
    _Spy.seen = []
    monkeypatch.setattr(FederatedSGDClassifier, "make_centralised_twin",
                        lambda self: _Spy(max_iter=5, tol=None, random_state=0))
    res = compare_with_centralised(est, Xp, y, cv=2)
    assert _Spy.seen == [5, 5]
    assert res["federated"]["test_score"].shape == (2,)


def test_compare_drops_a_string_party_column():
    X, y, parties = _split_data()
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(site=parties)
    est = FederatedSGDClassifier(topology=HorizontalTopology(partition="site"), n_rounds=2,
                                 random_state=0)
    # It used to fail: the twin could not convert 'guest' to a float.
    res = compare_with_centralised(est, df, y, cv=2)
    assert np.isfinite(res["centralised"]["test_score"]).all()


@pytest.mark.parametrize("with_routing", [False, True])
def test_compare_with_parties(with_routing):
    X, y, parties = _split_data()
    pipe = make_pipeline(StandardScaler(), FederatedSGDClassifier(n_rounds=2, random_state=0))
    with sklearn.config_context(enable_metadata_routing=with_routing):
        res = compare_with_centralised(pipe, X, y, cv=2, parties=parties)
    assert res["federated"]["test_score"].shape == (2,)
    assert np.all(res["federated"]["bytes_exchanged"] > 0)


# -- 2. per-party column names -----------------------------------------------------

def test_align_dataframes_prefixes_shared_names():
    from skfed import VerticalTopology, align_dataframes

    guest = pd.DataFrame({"id": [3, 1, 2], "x0": [1.0, 2.0, 3.0], "x1": [0.1, 0.2, 0.3]})
    host = pd.DataFrame({"id": [1, 2, 4], "x0": [10.0, 20.0, 30.0], "x2": [5.0, 6.0, 7.0]})
    joined, ids = align_dataframes({"guest": guest, "host": host}, id_column="id")
    assert joined.columns.tolist() == ["guest__x0", "x1", "host__x0", "x2"]
    np.testing.assert_array_equal(joined["guest__x0"], [2.0, 3.0])
    np.testing.assert_array_equal(joined["host__x0"], [10.0, 20.0])
    everything = align_dataframes({"guest": guest, "host": host}, id_column="id",
                                  prefix=True)[0]
    assert everything.columns.tolist() == ["guest__x0", "guest__x1", "host__x0", "host__x2"]
    # The topology names each party's columns as the party knows them.
    topo = VerticalTopology({"guest": ["x0", "x1"], "host": ["x0", "x2"]},
                            label_party="guest")
    cols = topo.resolve(feature_names=joined.columns)
    assert {p: c.tolist() for p, c in cols.items()} == {"guest": [0, 1], "host": [2, 3]}


def test_shared_names_fit_like_distinct_names():
    from skfed import VerticalLogisticRegression, VerticalTopology

    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    params = dict(encryption=None, max_iter=5)
    named = pd.DataFrame(X, columns=["guest__x0", "guest__x1", "host__x0", "host__x1"])
    a = VerticalLogisticRegression(VerticalTopology(
        {"guest": ["x0", "x1"], "host": ["x0", "x1"]}, label_party="guest"), **params)
    b = VerticalLogisticRegression(VerticalTopology(
        {"guest": [0, 1], "host": [2, 3]}, label_party="guest"), **params)
    np.testing.assert_array_equal(a.fit(named, y).coef_, b.fit(X, y).coef_)


def test_a_name_really_owned_twice_is_refused_with_a_hint():
    from skfed import VerticalLinearRegression, VerticalTopology

    X = pd.DataFrame(np.random.RandomState(0).randn(20, 3), columns=["x0", "x1", "x2"])
    topo = VerticalTopology({"guest": ["x0", "x1"], "host": ["x0", "x2"]},
                            label_party="guest")
    with pytest.raises(ValueError, match="owned twice.*'guest__x0' and 'host__x0'"):
        VerticalLinearRegression(topo).fit(X, X["x1"])
    with pytest.raises(ValueError, match="lists column 'x0' twice"):
        VerticalTopology({"guest": ["x0", "x0"], "host": ["x1"]}, label_party="guest").validate()


def test_deployment_columns_live_in_each_partys_csv():
    from skfed.deploy import Deployment

    dep = Deployment({
        "estimator": "VerticalLogisticRegression", "topology": {"label_party": "guest"},
        "transport": {"insecure": True},
        "parties": {"arbiter": {"address": "127.0.0.1:1"},
                    "guest": {"address": "127.0.0.1:2", "columns": ["x0", "x1"]},
                    "host": {"address": "127.0.0.1:3", "columns": ["x0", "x1", "x2"]}}})
    topo = dep.topology()
    assert topo.parties == {"guest": ["guest__x0", "guest__x1"],
                            "host": ["host__x0", "host__x1", "host__x2"]}
    assert dep.estimator("host").topology == topo
    dep.config["parties"]["host"]["columns"] = [0, 1]
    dep.config["parties"]["guest"]["columns"] = [0, 1]
    assert dep.topology().parties["host"] == ["host__0", "host__1"]


# -- 5. the small things -------------------------------------------------------------

def test_progress_bar_from_the_readme_works():
    """The README suggests ProgressBar; its rich dependency ships in skfed[progress]
    (and in the test extra, so this fails if the extra loses it)."""
    from sklearn.callback import ProgressBar

    X, y, parties = _split_data(n=60)
    est = FederatedSGDClassifier(n_rounds=2, random_state=0)
    est.set_callbacks(ProgressBar())
    est.fit(X, y, parties=parties)
    assert est.n_iter_ == 2


def test_pyproject_license_is_an_spdx_string():
    import os

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    # A table here makes setuptools print a deprecation warning on every install.
    assert isinstance(project["project"]["license"], str)
    assert "rich>=13" in project["project"]["optional-dependencies"]["progress"]


def test_transcript_records_prediction_and_counts_bytes_as_an_attribute():
    from skfed import VerticalLogisticRegression, VerticalTopology

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    est = VerticalLogisticRegression(topo, encryption=None, max_iter=3).fit(X, y)
    n_fit, bytes_fit = len(est.transcript_), est.transcript_.total_bytes
    assert isinstance(bytes_fit, int) and bytes_fit == est.transcript_.total_bytes()
    est.predict(X[:7])
    new = est.transcript_.messages[n_fit:]
    # The shop's partial scores for the 7 rows went to the bank.
    assert [(m.sender, m.receiver) for m in new] == [("shop", "bank")]
    assert est.transcript_.total_bytes == bytes_fit + new[0].nbytes
    assert est.transcript_.total_bytes(sender="shop", tag=new[0].tag) >= new[0].nbytes


def test_alignment_warns_when_ids_do_not_match():
    from skfed import align_samples

    with pytest.warns(UserWarning, match=r"no record is shared.*bank's IDs are integer; "
                                         r"shop's IDs are str"):
        idx = align_samples({"bank": [1, 2, 3, 4], "shop": ["1", "2", "3"]})
    assert len(idx["bank"]) == 0
    with pytest.warns(UserWarning, match="only 1 record"):
        align_samples({"bank": list(range(20)), "shop": [19, *range(100, 130)]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        align_samples({"bank": list(range(20)), "shop": list(range(15, 40))})


def test_compare_shows_scikit_learns_defaults_too():
    from sklearn.linear_model import LogisticRegression

    from skfed import VerticalLogisticRegression
    from skfed.compare import default_twin

    X, y = make_classification(n_samples=90, n_features=4, random_state=0)
    est = VerticalLogisticRegression(encryption=None, max_iter=5)
    assert est.make_centralised_twin().C == np.inf
    assert default_twin(est).get_params() == LogisticRegression().get_params()
    res = compare_with_centralised(est, X, y, cv=2)
    expected = [LogisticRegression().fit(X[tr], y[tr]).score(X[te], y[te])
                for tr, te in StratifiedKFold(2).split(X, y)]
    np.testing.assert_allclose(res["sklearn_default"]["test_score"], expected)
    assert res["score_gap_default"] == pytest.approx(
        res["federated"]["test_score"].mean() - np.mean(expected))


def test_a_too_small_last_batch_is_explained():
    from skfed import VerticalLogisticRegression

    X, y = make_classification(n_samples=569, n_features=6, random_state=0)
    est = VerticalLogisticRegression(encryption=None, solver="gd", batch_size=8, max_iter=1)
    with pytest.raises(ValueError, match=r"last batch of each epoch \(569 rows = 71 x 8 \+ 1\)"
                                         r", e.g. batch_size=\d+") as info:
        est.fit(X, y)
    # The size it suggests is accepted.
    import re

    suggested = int(re.search(r"batch_size=(\d+) leaves", str(info.value)).group(1))
    assert suggested > 8
    est.set_params(batch_size=suggested).fit(X, y)


def test_transfer_labels_minus_one_are_explained():
    from skfed import FederatedTransferClassifier

    rng = np.random.RandomState(0)
    X = rng.randn(40, 4)
    y = np.where(rng.rand(40) < 0.5, -1, 1)
    with pytest.raises(ValueError, match=r"1 class \(1\).*\{-1, \+1\} leave one class"):
        FederatedTransferClassifier(encryption=None).fit(X, y)


def test_parties_is_for_simulations_only():
    class OneParty:  # a runtime that runs one client, as GrpcRuntime("client0", ...)
        party = "client0"
        parties = ("server", "client0", "client1")

    X, y, parties = _split_data(n=20)
    est = FederatedSGDClassifier(runtime=OneParty())
    with pytest.raises(ValueError, match="parties= applies to simulations"):
        est.fit(X, y, parties=parties)


def test_the_default_column_keeps_the_twins_seed():
    # Without the seed, SGD's defaults shuffle differently on every fit and
    # the demo's "sk default" column changes from run to run.
    from sklearn.linear_model import SGDClassifier

    from skfed import FederatedSGDClassifier, HorizontalTopology
    from skfed.compare import default_twin

    est = FederatedSGDClassifier(topology=HorizontalTopology(n_parties=2, random_state=0),
                                 n_rounds=2, random_state=7)
    twin = default_twin(est)
    assert twin.random_state == 7
    assert {k: v for k, v in twin.get_params().items() if k != "random_state"} == \
        {k: v for k, v in SGDClassifier().get_params().items() if k != "random_state"}
    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    first = compare_with_centralised(est, X, y, cv=2)["sklearn_default"]["test_score"]
    again = compare_with_centralised(est, X, y, cv=2)["sklearn_default"]["test_score"]
    np.testing.assert_array_equal(first, again)
