"""Horizontal boosting with clients dropping out (``min_clients``): the fit
completes, every tree is the centralised tree of one set of clients' rows,
and the recovery unmasks no survivor's histogram."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from skfed.horizontal import _boosting_roles as roles
from skfed.horizontal.boosting import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
)
from skfed.horizontal.dropout import TooFewClients
from skfed.runtime import LocalRuntime, RoleError
from skfed.trees.gbdt import PRECISION_BITS

from .gbdt_reference import reference_fit
from .leaks import DEFAULT_SCALES, assert_no_leaks, record_transcripts
from .test_horizontal_boosting import as_reference

Clf, Reg = FederatedHistGradientBoostingClassifier, FederatedHistGradientBoostingRegressor
NAMES = [f"c{i}" for i in range(5)]
PARAMS = dict(max_iter=3, max_depth=3, max_leaf_nodes=None, min_samples_leaf=3, max_bins=16,
              early_stopping=False, random_state=0)


def _data(task, n=200):
    if task == "regression":
        X, y = make_regression(n_samples=n, n_features=4, noise=5.0, random_state=0)
    else:
        X, y = make_classification(n_samples=n, n_features=4, n_informative=3,
                                   n_redundant=0, n_classes=3 if task == "multiclass" else 2,
                                   random_state=0)
    X[::11, 1] = np.nan
    parties = np.array(NAMES)[np.arange(n) % 5]
    return X, y, parties


def _fit(task, drops=None, **kw):
    X, y, parties = _data(task)
    cls = Reg if task == "regression" else Clf
    params = dict(PARAMS, min_clients=3, **kw)
    est = cls(runtime=LocalRuntime(drops=drops), **params)
    return est.fit(X, y, parties=parties), X, y, parties


def _second_sum_of_iteration_1(task):
    """The index of the second histogram sum of iteration 1 (counting every
    secure sum from the set-up's, as the drop checkpoints do)."""
    one, *_ = _fit(task, max_iter=1)
    per_iteration = one.n_rounds_["histograms"] + 1          # + the loss sums
    if task == "regression":
        per_iteration += 1                                   # + the gradient exponent
    first = 1 + one.n_rounds_["binning"] + 1                 # set-up, edges, first loss
    if task == "regression":
        first += 1                                           # the targets' exponent
    return first + per_iteration + (2 if task == "regression" else 1) + 1


def _reference(est, X, y, task, raw=None, max_iter=None):
    n_classes = 0 if task == "regression" else len(est.classes_)
    yy = y.astype(float) if task == "regression" else np.unique(y, return_inverse=True)[1]
    trees, _ = reference_fit(
        X, yy, est.bin_edges_, task if task == "regression" else "classification", n_classes,
        est.learning_rate, max_iter or est.n_iter_, est.max_leaf_nodes, est.max_depth,
        est.min_samples_leaf, est.l2_regularization, baseline=est._baseline, raw=raw)
    return trees


@pytest.mark.parametrize("stage", ["before_upload", "after_upload", "during_unmasking"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_trees_after_a_dropout_are_the_centralised_trees_of_the_survivors(task, stage):
    n = _second_sum_of_iteration_1(task)
    est, X, y, parties = _fit(task, drops={"c2": (stage, n)})
    assert [d["client"] for d in est.dropouts_] == ["c2"]
    assert est.n_rounds_.get("restarts") == 1
    assert est.n_iter_ == PARAMS["max_iter"]
    trees = as_reference(est)
    # before the dropout: the centralised trees of every client's rows
    assert trees[:1] == _reference(est, X, y, task, max_iter=1)
    # from the interrupted iteration on: the survivors' rows, continuing the model
    keep = parties != "c2"
    raw = np.tile(est._baseline, (int(keep.sum()), 1))
    for k, t in enumerate(est.trees_[0]):
        raw[:, k] += roles._apply(t, X[keep])
    assert trees[1:] == _reference(est, X[keep], y[keep], task, raw=raw,
                                   max_iter=est.n_iter_ - 1)
    # and the dropout changed the model (the test can fail)
    full, *_ = _fit(task)
    assert as_reference(full) != trees


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_masked_and_plain_dropout_fits_are_the_same_model(task):
    n = _second_sum_of_iteration_1(task)
    drops = {"c0": ("before_upload", n), "c4": ("before_key_sharing", n + 2)}
    masked, *_ = _fit(task, drops=drops)
    plain, *_ = _fit(task, drops=drops, secure_aggregation=None)
    assert sorted(d["client"] for d in masked.dropouts_) == ["c0", "c4"]
    assert as_reference(masked) == as_reference(plain)


def test_a_dropout_during_set_up_completes():
    est, *_ = _fit("binary", drops={"c1": ("before_upload", 1)})
    assert [d["client"] for d in est.dropouts_] == ["c1"]
    assert est.n_iter_ == PARAMS["max_iter"]
    assert est.score(*_data("binary")[:2]) > 0.7


def test_too_many_dropouts_stop_the_fit():
    drops = {c: ("before_upload", 4) for c in ("c0", "c1", "c2")}
    with pytest.raises((TooFewClients, RoleError), match="min_clients"):
        _fit("binary", drops=drops)


@pytest.mark.parametrize("min_clients, match", [(6, "exceeds"), (2, "more than half")])
def test_min_clients_is_checked_before_any_message(min_clients, match):
    X, y, parties = _data("binary")
    est = Clf(min_clients=min_clients, **PARAMS)
    with pytest.raises(ValueError, match=match), record_transcripts() as t:
        est.fit(X, y, parties=parties)
    assert len(list(t)) == 0


def test_the_dropout_recovery_unmasks_no_survivors_histogram():
    n = _second_sum_of_iteration_1("binary")
    drops = {"c2": ("after_upload", n)}
    with record_transcripts() as plain:
        _fit("binary", drops=drops, secure_aggregation=None)
    with record_transcripts() as t:
        est, *_ = _fit("binary", drops=drops)
    X, y, parties = _data("binary")
    p = 1 / (1 + np.exp(-est._baseline[0]))
    secrets, uploads = {}, {}
    for name in NAMES:
        secrets[f"{name} rows"] = X[parties == name]
        secrets[f"{name} labels"] = y[parties == name].astype(float)
        secrets[f"{name} first gradients"] = p - y[parties == name]
        hists = [np.asarray(m.decoded()) for m in plain if m.sender == name
                 and m.tag == "hist"]
        # the histograms uploaded before, at and after the dropout
        for i in (0, 3, 4, len(hists) - 1):
            if i < len(hists):
                uploads[f"{name} histogram {i}"] = hists[i]
    assert_no_leaks(t, secrets, scales=(*DEFAULT_SCALES, PRECISION_BITS))
    assert_no_leaks(t, uploads, scales=(0,))
    with pytest.raises(AssertionError, match="histogram"):
        assert_no_leaks(plain, uploads, scales=(0,))


# -- drops during the set-up (row counts, targets' exponent, bin edges) ---------------

def _setup_sums(task):
    """The indices of the set-up's secure sums: (targets' exponent,) row counts,
    first bin counts, refinements."""
    one, *_ = _fit(task, max_iter=1)
    n = (2 if task == "regression" else 1) + one.n_rounds_["binning"]
    return list(range(1, n + 1))


def _fit_without(task, victim, **kw):
    """The same fit by a federation in which ``victim`` never took part."""
    X, y, parties = _data(task)
    keep = parties != victim
    cls = Reg if task == "regression" else Clf
    est = cls(runtime=LocalRuntime(), **dict(PARAMS, min_clients=3, **kw))
    return est.fit(X[keep], y[keep], parties=parties[keep])


@pytest.mark.parametrize("stage", ["before_key_sharing", "before_upload", "after_upload",
                                   "during_unmasking"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_drop_in_the_set_up_restarts_it_over_the_survivors(task, stage):
    sums = _setup_sums(task)
    assert len(sums) >= 3          # at least one refinement: the drop lands mid-binning
    # A client that drops after uploading to the last set-up sum contributed to
    # all of them; every earlier drop changes the set between two set-up sums.
    for n in sums[:-1] if stage in ("after_upload", "during_unmasking") else sums[1:]:
        est, X, y, parties = _fit(task, drops={"c2": (stage, n)})
        assert [d["client"] for d in est.dropouts_] == ["c2"]
        assert est.n_rounds_.get("setup_restarts") == 1, n
        assert "restarts" not in est.n_rounds_
        # Edges, baseline and every tree: those of a federation without c2.
        ref = _fit_without(task, "c2")
        for a, b in zip(est.bin_edges_, ref.bin_edges_):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(est._baseline, ref._baseline)
        assert as_reference(est) == as_reference(ref)
    # (the test can fail: c2's rows change the edges)
    full, *_ = _fit(task)
    assert any(a.shape != b.shape or np.any(a != b)
               for a, b in zip(full.bin_edges_, ref.bin_edges_))


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_drop_after_the_last_set_up_upload_keeps_the_set_up(task):
    last = _setup_sums(task)[-1]
    est, X, y, parties = _fit(task, drops={"c2": ("during_unmasking", last)})
    assert [d["client"] for d in est.dropouts_] == ["c2"]
    assert "setup_restarts" not in est.n_rounds_
    full, *_ = _fit(task)
    for a, b in zip(est.bin_edges_, full.bin_edges_):
        np.testing.assert_array_equal(a, b)
    # the trees are the survivors' rows' from the first iteration on
    keep = parties != "c2"
    raw = np.tile(est._baseline, (int(keep.sum()), 1))
    assert as_reference(est) == _reference(est, X[keep], y[keep], task, raw=raw)


def test_masked_and_plain_set_up_restarts_are_the_same_model():
    drops = {"c0": ("before_upload", 2), "c4": ("after_upload", 3)}
    masked, *_ = _fit("binary", drops=drops)
    plain, *_ = _fit("binary", drops=drops, secure_aggregation=None)
    assert sorted(d["client"] for d in masked.dropouts_) == ["c0", "c4"]
    assert masked.n_rounds_["setup_restarts"] == plain.n_rounds_["setup_restarts"] >= 1
    assert as_reference(masked) == as_reference(plain)


@pytest.mark.parametrize("first", [1, 2, 3])
def test_too_many_drops_in_the_set_up_stop_the_fit(first):
    drops = {c: ("before_upload", first + i) for i, c in enumerate(("c0", "c1", "c2"))}
    with pytest.raises((TooFewClients, RoleError), match="min_clients=3"):
        _fit("binary", drops=drops)


def test_a_set_up_restart_unmasks_no_survivors_counts():
    drops = {"c2": ("after_upload", 2)}
    with record_transcripts() as plain:
        _fit("binary", drops=drops, secure_aggregation=None)
    with record_transcripts() as t:
        est, *_ = _fit("binary", drops=drops)
    assert est.n_rounds_["setup_restarts"] == 1
    X, y, parties = _data("binary")
    secrets, uploads = {}, {}
    for name in NAMES:
        secrets[f"{name} rows"] = X[parties == name]
        secrets[f"{name} labels"] = y[parties == name].astype(float)
        # every set-up upload, before and after the restart
        for i, m in enumerate(m for m in plain if m.sender == name
                              and m.tag in ("setup", "bins")):
            uploads[f"{name} {m.tag} upload {i}"] = np.asarray(m.decoded())
    assert len(uploads) > 2 * len(NAMES)
    assert_no_leaks(t, secrets)
    assert_no_leaks(t, uploads, scales=(0,))
    with pytest.raises(AssertionError, match="upload"):
        assert_no_leaks(plain, uploads, scales=(0,))
