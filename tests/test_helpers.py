"""The test helpers checked themselves: a reference or a harness that is wrong
would make every test built on it pass or fail for the wrong reason."""

import time

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from skfed.trees.binning import bin_edges

from .gbdt_reference import reference_fit, reference_predict
from .threads import run_parties

PARAMS = dict(learning_rate=0.3, max_iter=8, max_leaf_nodes=6, max_depth=None,
              min_samples_leaf=5, l2_regularization=0.5, max_bins=32)


def _fit_both(X, y, task, n_classes):
    edges = bin_edges(X, PARAMS["max_bins"])
    trees, base = reference_fit(
        X, y, edges, task, n_classes, PARAMS["learning_rate"], PARAMS["max_iter"],
        PARAMS["max_leaf_nodes"], PARAMS["max_depth"], PARAMS["min_samples_leaf"],
        PARAMS["l2_regularization"])
    Est = HistGradientBoostingRegressor if task == "regression" else \
        HistGradientBoostingClassifier
    sk = Est(**PARAMS, early_stopping=False, random_state=0).fit(X, y)
    return reference_predict(trees, base, X), sk


@pytest.mark.parametrize("task,n_classes", [("regression", 0), ("classification", 2),
                                            ("classification", 3)])
def test_the_gbdt_reference_is_scikit_learns_histogram_boosting(task, n_classes):
    # The federated protocols are tested against this reference exactly; here the
    # reference itself meets HistGradientBoosting* (same rule, same bins), up to
    # the fixed-point gradients (2**-26 of the largest).
    rng = np.random.RandomState(0)
    if task == "regression":
        X, y = make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)
    else:
        X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                                   n_redundant=0, n_classes=n_classes, random_state=0)
    X[rng.rand(*X.shape) < 0.05] = np.nan
    raw, sk = _fit_both(X, y, task, n_classes)
    if task == "regression":
        expected = sk.predict(X)[:, None]
        scale = np.std(y)
    else:
        expected = sk._raw_predict(X)
        scale = 1.0
    np.testing.assert_allclose(raw, expected, rtol=0, atol=1e-5 * scale)
    # and it learnt something: far from the constant first prediction
    assert np.std(raw[:, 0]) > 0.1 * scale


def test_the_gbdt_reference_refuses_what_the_protocols_refuse():
    X, y = make_classification(n_samples=60, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    edges = bin_edges(X, 8)
    args = ("classification", 2, 0.3, 2, 4, None, 5, 0.5)
    reference_fit(X, y, edges, *args)   # the valid call the bad ones are built from
    with pytest.raises(AssertionError, match="bad edges"):
        reference_fit(X, y, [edges[0][::-1], *edges[1:]], *args)
    with pytest.raises(AssertionError, match="edge arrays"):
        reference_fit(X, y, edges[:2], *args)
    with pytest.raises(AssertionError, match="labels"):
        reference_fit(X, y + 1, edges, *args)


def test_run_parties_returns_results_and_errors_by_party():
    def work(name):
        if name == "b":
            raise ValueError("b failed")
        return name.upper()

    class Closing:
        closed = False

        def close(self):
            self.closed = True

    runtime = Closing()
    results, errors = run_parties(work, ["a", "b"], [runtime])
    assert results == {"a": "A"}
    assert list(errors) == ["b"] and str(errors["b"]) == "b failed"
    assert runtime.closed


def test_run_parties_fails_on_a_hung_party():
    with pytest.raises(AssertionError, match=r"still running.*\['slow'\]"):
        run_parties(lambda n: time.sleep(1.0 if n == "slow" else 0), ["fast", "slow"],
                    timeout=0.2)
