"""Vertical federated logistic regression (binary and one-vs-rest)."""

import numpy as np
from scipy.special import expit
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ..runtime.party import party_of
from ._base import BaseVerticalLinear

__all__ = ["VerticalLogisticRegression"]


class VerticalLogisticRegression(ClassifierMixin, BaseVerticalLinear):
    """Logistic regression trained by parties that hold different columns.

    As in Hardy et al. (2017) and FATE, the encrypted protocol minimises the
    second-order Taylor expansion of the log-loss around 0 (with labels
    ``y`` in {-1, +1} and score ``u``),

        mean(log 2 - y u / 2 + u^2 / 8) + (alpha / 2) ||w||^2,

    whose gradient ``X^T (u/4 - y/2) / n`` needs only additions and
    plaintext multiplications of ciphertexts. More than two classes are
    learnt one-vs-rest, all classes in the same protocol run. Predicted
    probabilities use the logistic function of the learnt scores.

    Parameters
    ----------
    topology : VerticalTopology, default=None
        Who holds which columns and the labels. None splits the columns in two
        halves: the first half and the labels to party ``"guest"``, the rest to
        ``"host"``.
    alpha : float, default=0.0
        L2 penalty on the coefficients (not the intercepts).
    fit_intercept : bool, default=True
        Fit intercepts; they belong to the label party.
    solver : {"pcg", "gd", "adam"}, default="pcg"
        ``"pcg"``: conjugate gradients preconditioned with each party's own
        Gram block (the Taylor objective is quadratic: full batch, exact
        steps, no learning rate; see :ref:`vertical-solver` for the scalars it
        discloses). ``"gd"`` and ``"adam"``: each party's own optimizer, with
        mini-batches.
    learning_rate : float, default=0.1
        Step size of ``"gd"`` and ``"adam"`` (``"pcg"`` needs none). It suits
        standardised features (put a ``StandardScaler`` first: it is
        column-wise, so each party scales its own columns); gradient descent
        diverges when it exceeds ``2 / L``, L the largest eigenvalue of the
        loss Hessian.
    max_iter : int, default=100
        Maximum number of epochs.
    tol : float or None, default=1e-4
        ``"pcg"`` stops when a step lowers the objective by at most ``tol``;
        ``"gd"`` and ``"adam"`` after 5 epochs without improving the best
        objective by ``tol``. None runs all epochs.
    batch_size : int or None, default=None
        Rows per mini-batch (``"gd"`` and ``"adam"`` only); None uses all
        rows.
    encryption : {"paillier"} or None, default="paillier"
        None runs the same protocol in the clear (debugging, exact comparison).
    key_size : int, default=2048
        Paillier modulus size in bits; smaller keys need
        ``SKFED_ALLOW_INSECURE_KEYS=1``.
    n_jobs : int, default=None
        Joblib workers for the encrypted arithmetic.
    random_state : int, RandomState instance or None, default=None
        Seeds the mini-batch order.
    verbose : int, default=0
        Print, at the label party, each epoch's objective, seconds per epoch,
        an estimate of the time left and the bytes sent and received.
    runtime : runtime object, default=None
        Runs the roles; None runs them all in this process. A runtime that
        runs one party (``runtime.party`` set, e.g.
        :class:`~skfed.runtime.grpc.GrpcRuntime`) makes ``fit`` and ``predict``
        take only that party's data; see :ref:`deployment`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Known only to the label party; the hosts learn only their number.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    coef_by_party_ : dict of str -> ndarray of shape (n_outputs, n_party_features)
        Each party's own coefficients.
    topology_ : VerticalTopology
    n_iter_ : int
        Epochs run.
    stop_reason_ : {"converged", "max_iter", "callback"}
        Why the fit stopped. A diverged fit raises
        :class:`~skfed.FitDiverged` instead.
    loss_curve_ : list of float
        The Taylor objective of each epoch (summed over one-vs-rest outputs).
    transcript_ : Transcript
        Every message exchanged during ``fit``, then those of each
        collaborative prediction (the feature parties' partial scores).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    See Also
    --------
    VerticalLinearRegression : The regressor.
    sklearn.linear_model.LogisticRegression : The centralised twin.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skfed import VerticalLogisticRegression
    >>> X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    >>> clf = VerticalLogisticRegression(key_size=512).fit(X, y)
    >>> round(clf.score(X, y), 2), clf.stop_reason_
    (0.85, 'converged')
    >>> clf.coef_by_party_["host"].shape
    (1, 2)
    """

    _task = "logistic"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the classifier through the vertical protocol.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels, held by the label party.

        Returns
        -------
        self : object
        """
        if party_of(self.runtime) is not None:
            return self._fit_party(X, y)
        X, y = validate_data(self, X, y, dtype=np.float64)
        coef, intercept, by_party = self._fit_protocol(X, self._targets(y))
        self.coef_ = coef
        self.intercept_ = np.asarray(intercept, dtype=np.float64)
        self.coef_by_party_ = by_party
        return self

    def _targets(self, y):
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "VerticalLogisticRegression needs samples of at least 2 classes; the "
                f"data contain only one class: {self.classes_[0]!r}"
            )
        if len(self.classes_) == 2:
            return np.where(y_idx == 1, 1.0, -1.0)[:, None]
        return np.where(y_idx[:, None] == np.arange(len(self.classes_)), 1.0, -1.0)

    def _keep_own_model(self, W, intercept):
        self.coef_ = W
        self.coef_by_party_ = {self.runtime.party: W.copy()}
        if intercept is not None:
            self.intercept_ = np.asarray(intercept, dtype=np.float64)

    def decision_function(self, X):
        """Scores assembled collaboratively at the label party.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For binary problems, the score of ``classes_[1]``.
        """
        scores = self._scores(X)
        if scores is None:  # a feature party of a deployment only sends its part
            return None
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities: the logistic function of the scores.

        One-vs-rest probabilities are normalised to sum to one, as
        scikit-learn's ``LogisticRegression`` does for ``ovr``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        scores = self._scores(X)
        if scores is None:
            return None
        p = expit(scores)
        if p.shape[1] == 1:
            return np.hstack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predict class labels (only the label party learns them).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        scores = self._scores(X)
        if scores is None:
            return None
        if scores.shape[1] == 1:
            idx = (scores[:, 0] > 0).astype(int)
        else:
            idx = scores.argmax(axis=1)
        return self.classes_[idx]

    def make_centralised_twin(self):
        """The scikit-learn estimator pooled data would be fitted with.

        ``LogisticRegression`` without penalty when ``alpha == 0`` (the exact
        log-loss, of which the protocol's objective is the Taylor
        approximation); otherwise ``SGDClassifier(loss="log_loss")`` whose L2
        term ``alpha/2 ||w||^2`` next to the mean loss matches ``alpha``.
        """
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        if self.alpha == 0:
            return LogisticRegression(C=np.inf, fit_intercept=self.fit_intercept,
                                      max_iter=1000)
        return SGDClassifier(loss="log_loss", penalty="l2", alpha=self.alpha,
                             fit_intercept=self.fit_intercept,
                             random_state=self.random_state)
