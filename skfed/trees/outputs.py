"""What a boosted model answers, from its raw scores: shared by both tree families.

The estimators supply ``_raw_predict(X)`` (the raw scores, shape
``(n_samples, n_outputs)``) and ``_staged_raw(X)`` (the same after each
iteration). In a vertical deployment a party that does not hold the labels
gets ``None`` from ``_raw_predict`` and nothing from ``_staged_raw``; every
answer passes that on.
"""

import numpy as np
from scipy.special import expit, softmax

__all__ = ["BoostedClassifierOutputs", "BoostedRegressorOutputs"]

# The hyper-parameters a federated booster shares with scikit-learn's
# HistGradientBoosting*, so its centralised twin is fitted with the same.
TWIN_PARAMS = ("learning_rate", "max_iter", "max_leaf_nodes", "max_depth", "min_samples_leaf",
               "l2_regularization", "max_bins", "early_stopping", "validation_fraction",
               "n_iter_no_change", "tol", "random_state", "verbose")


class _BoostedOutputs:
    def _twin_params(self):
        return {k: getattr(self, k) for k in TWIN_PARAMS}


class BoostedClassifierOutputs(_BoostedOutputs):
    """Scores, probabilities and labels of a boosted classifier, final and staged."""

    def decision_function(self, X):
        """Raw scores (log-odds of ``classes_[1]``, or one column per class)."""
        raw = self._raw_predict(X)
        if raw is None:
            return None
        return raw[:, 0] if raw.shape[1] == 1 else raw

    @staticmethod
    def _proba(raw):
        if raw is None:
            return None
        if raw.shape[1] == 1:
            p = expit(raw[:, 0])
            return np.column_stack([1 - p, p])
        return softmax(raw, axis=1)

    def predict_proba(self, X):
        """Class probabilities.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return self._proba(self._raw_predict(X))

    def predict(self, X):
        """Predicted class labels (in a vertical deployment, at the label party only)."""
        proba = self.predict_proba(X)
        if proba is None:
            return None
        return self.classes_[np.argmax(proba, axis=1)]

    def staged_predict_proba(self, X):
        """Class probabilities after each iteration."""
        for raw in self._staged_raw(X):
            yield self._proba(raw)

    def staged_predict(self, X):
        """Predicted labels after each iteration."""
        for p in self.staged_predict_proba(X):
            yield self.classes_[np.argmax(p, axis=1)]

    def staged_decision_function(self, X):
        """Raw scores after each iteration."""
        for raw in self._staged_raw(X):
            yield raw[:, 0] if raw.shape[1] == 1 else raw

    def make_centralised_twin(self):
        """The scikit-learn estimator pooled data would be fitted with."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**self._twin_params())


class BoostedRegressorOutputs(_BoostedOutputs):
    """Predictions of a boosted regressor, final and staged."""

    def predict(self, X):
        """Predicted values (in a vertical deployment, at the label party only)."""
        raw = self._raw_predict(X)
        return None if raw is None else raw[:, 0]

    def staged_predict(self, X):
        """Predicted values after each iteration."""
        for raw in self._staged_raw(X):
            yield raw[:, 0]

    def make_centralised_twin(self):
        """The scikit-learn estimator pooled data would be fitted with."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(**self._twin_params())
