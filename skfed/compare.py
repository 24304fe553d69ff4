"""Compare a federated estimator against its centralised twin."""

import time

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, indexable

__all__ = ["compare_with_centralised", "centralised_twin", "default_twin"]


def centralised_twin(estimator):
    """The scikit-learn estimator that pooled data would have been fitted with.

    Each skfed estimator knows its twin through ``make_centralised_twin()``;
    a :class:`~sklearn.pipeline.Pipeline` ending in one gets the same pipeline
    with the last step replaced.
    """
    if hasattr(estimator, "steps"):
        steps = list(estimator.steps)
        name, last = steps[-1]
        twin = clone(estimator)
        twin.steps[-1] = (name, centralised_twin(last))
        # federated preprocessing steps (FederatedStandardScaler...) have twins too
        for i, (step_name, step) in enumerate(steps[:-1]):
            if hasattr(step, "make_centralised_twin"):
                twin.steps[i] = (step_name, step.make_centralised_twin())
        return twin
    if not hasattr(estimator, "make_centralised_twin"):
        raise TypeError(
            f"{type(estimator).__name__} has no centralised twin; pass an skfed estimator "
            "(or a Pipeline ending in one)"
        )
    return estimator.make_centralised_twin()


def default_twin(estimator):
    """The twin's scikit-learn class with scikit-learn's default parameters.

    The centralised twin matches the federated objective (e.g. an unpenalised
    ``LogisticRegression(C=inf)`` for an unpenalised vertical logistic
    regression); what a user would fit out of the box is the class's
    defaults (``LogisticRegression()``). None when the two coincide, or when
    the twin is not a scikit-learn estimator.
    """
    twin = centralised_twin(estimator)
    name, last = _final(twin)
    if not type(last).__module__.startswith("sklearn."):
        return None
    default = type(last)()
    if "random_state" in default.get_params():
        # The seed is no hyper-parameter: the twin's keeps the column repeatable
        # (SGD's default shuffles differently on every fit otherwise).
        default.set_params(random_state=last.get_params()["random_state"])
    if default.get_params() == last.get_params():
        return None
    if name is None:
        return default
    twin.steps[-1] = (name, default)
    return twin


def _bytes_exchanged(estimator):
    steps = [s for _, s in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    transcripts = [getattr(s, "transcript_", None) for s in steps]
    return sum(t.total_bytes() for t in transcripts if t is not None)


def _final(estimator):
    return estimator.steps[-1] if hasattr(estimator, "steps") else (None, estimator)


def _party_column(estimator, X):
    """Index of the column that names each row's party (it is no feature), or None."""
    topology = getattr(_final(estimator)[1], "topology", None)
    if topology is None or not getattr(topology, "by_column", False):
        return None
    names = getattr(X, "columns", None)
    n_cols = np.shape(X)[1]
    return topology.resolve_column(None if names is None else list(map(str, names)), n_cols)


def _drop_column(X, col):
    if hasattr(X, "columns"):
        return X.drop(columns=X.columns[col])
    return np.delete(np.asarray(X), col, axis=1)


def _fit(est, X, y, parties):
    if parties is None:
        return est.fit(X, y)
    name, _ = _final(est)
    if name is None:
        return est.fit(X, y, parties=parties)
    from sklearn import get_config

    if get_config().get("enable_metadata_routing", False):
        return est.fit(X, y, parties=parties)
    # every federated step takes the parties (a federated scaler as well)
    takes = [n for n, s in est.steps
             if s not in (None, "passthrough") and _fit_takes_parties(s)]
    return est.fit(X, y, **{f"{n}__parties": parties for n in takes or [name]})


def _fit_takes_parties(step):
    import inspect

    return "parties" in inspect.signature(step.fit).parameters


def compare_with_centralised(estimator, X, y, *, cv=5, scoring=None, parties=None):
    """Fit a federated estimator and its centralised twin on the same folds.

    The centralised twin sees the features only: a partition column
    (``HorizontalTopology(partition=COLUMN)``) is dropped from its ``X``, as
    the federated estimator drops it.

    Parameters
    ----------
    estimator : skfed estimator or Pipeline ending in one
        Cloned for every fold; never modified.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    cv : int, cross-validation generator or iterable, default=5
        As in :func:`sklearn.model_selection.cross_validate` (stratified
        folds for classifiers).
    scoring : str or callable, default=None
        Defaults to the estimators' ``score`` method.
    parties : array-like of shape (n_samples,), default=None
        The party of each row, for horizontal data already split by party:
        each fold's training rows are passed to the federated ``fit`` as
        ``parties=`` (to the last step of a Pipeline). The twin ignores it.

    Returns
    -------
    result : dict
        ``{"federated": {...}, "centralised": {...}}``, each with arrays
        ``test_score``, ``fit_time`` and ``bytes_exchanged`` (one entry per
        fold), plus ``"score_gap"``: mean federated minus mean centralised score.
        When the twin's scikit-learn class has other defaults (see
        :func:`default_twin`), also ``"sklearn_default"`` (the same arrays for
        the class with its defaults, e.g. ``LogisticRegression()``) and
        ``"score_gap_default"``: the gap to what scikit-learn gives out of the
        box.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skfed import FederatedSGDClassifier, compare_with_centralised
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> res = compare_with_centralised(
    ...     FederatedSGDClassifier(n_rounds=5, random_state=0), X, y, cv=3)
    >>> sorted(res)
    ['centralised', 'federated', 'score_gap', 'score_gap_default', 'sklearn_default']
    >>> len(res["federated"]["test_score"])
    3
    """
    X, y, parties = indexable(X, y, parties)
    twin = centralised_twin(estimator)
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    col = _party_column(estimator, X)
    if col is not None and parties is not None:
        raise ValueError("the parties are given twice: by the topology's partition column "
                         "and by parties=; pass one of them")
    X_twin = X if col is None else _drop_column(X, col)
    result = {}
    splits = list(cv.split(X, y))
    runs = [("federated", estimator, X), ("centralised", twin, X_twin)]
    default = default_twin(estimator)
    if default is not None:
        runs.append(("sklearn_default", default, X_twin))
    for label, proto, data in runs:
        scores, times, nbytes = [], [], []
        for train, test in splits:
            est = clone(proto)
            X_train, y_train = _safe_indexing(data, train), _safe_indexing(y, train)
            X_test, y_test = _safe_indexing(data, test), _safe_indexing(y, test)
            fold_parties = (None if parties is None or label != "federated"
                            else _safe_indexing(parties, train))
            start = time.perf_counter()
            _fit(est, X_train, y_train, fold_parties)
            times.append(time.perf_counter() - start)
            scorer = check_scoring(est, scoring=scoring)
            scores.append(scorer(est, X_test, y_test))
            nbytes.append(_bytes_exchanged(est) if label == "federated" else 0)
        result[label] = {"test_score": np.asarray(scores), "fit_time": np.asarray(times),
                         "bytes_exchanged": np.asarray(nbytes)}
    result["score_gap"] = float(result["federated"]["test_score"].mean()
                                - result["centralised"]["test_score"].mean())
    if default is not None:
        result["score_gap_default"] = float(result["federated"]["test_score"].mean()
                                            - result["sklearn_default"]["test_score"].mean())
    return result
