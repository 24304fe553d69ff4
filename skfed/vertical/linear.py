"""Vertical federated linear regression."""

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils.validation import validate_data

from ..runtime.party import party_of
from ._base import BaseVerticalLinear

__all__ = ["VerticalLinearRegression"]


class VerticalLinearRegression(RegressorMixin, BaseVerticalLinear):
    """Linear regression trained by parties that hold different columns.

    The label party ("guest") holds some columns and the target; one or more
    feature parties ("hosts") hold the other columns of the same rows; an
    arbiter holds the Paillier private key and nothing else. They minimise

        (1 / (2 n)) ||y - X w - b||^2 + (alpha / 2) ||w||^2

    by conjugate gradients, each party preconditioning its own block of the
    Hessian (the default; no learning rate, a handful of epochs), or by
    (mini-batch) gradient descent or Adam. Every party keeps its own
    coefficients and solver state; the arbiter decrypts only masked
    gradients and sums (the loss; for conjugate gradients two scalars per
    epoch). See :ref:`vertical` for the protocol and what
    each party learns.

    Parameters
    ----------
    topology : VerticalTopology, default=None
        Who holds which columns and the labels. None splits the columns in two
        halves: the first half and the labels to party ``"guest"``, the rest to
        ``"host"`` (``VerticalTopology.halves``).
    alpha : float, default=0.0
        L2 penalty on the coefficients (not on the intercept). The optimum
        equals ``Ridge(alpha=n_samples * alpha)``.
    fit_intercept : bool, default=True
        Fit an intercept; it belongs to the label party.
    solver : {"pcg", "gd", "adam"}, default="pcg"
        ``"pcg"``: conjugate gradients preconditioned with each party's own
        Gram block (full batch, exact steps, no learning rate; see
        :ref:`vertical-solver` for the scalars it discloses). ``"gd"``:
        gradient descent with a constant step; ``"adam"``: Adam; both run on
        each party's own coefficients and take mini-batches.
    learning_rate : float, default=0.1
        Step size of ``"gd"`` and ``"adam"`` (``"pcg"`` needs none). It suits
        standardised features (put a ``StandardScaler`` first: it is
        column-wise, so each party scales its own columns); gradient descent
        diverges when it exceeds ``2 / L``, L the largest eigenvalue of the
        loss Hessian.
    max_iter : int, default=100
        Maximum number of epochs (passes over the rows).
    tol : float or None, default=1e-4
        ``"pcg"`` stops when a step lowers the objective by at most ``tol``;
        ``"gd"`` and ``"adam"`` after 5 epochs without improving the best
        objective by ``tol``. None runs all ``max_iter`` epochs.
    batch_size : int or None, default=None
        Rows per mini-batch (``"gd"`` and ``"adam"`` only); None uses all
        rows. Mini-batches are drawn from a seed the label party shares with
        the hosts.
    encryption : {"paillier"} or None, default="paillier"
        None runs the same protocol with the same messages in the clear, for
        debugging and exact comparison with centralised training.
    key_size : int, default=2048
        Paillier modulus size in bits. Smaller keys are refused unless the
        environment sets ``SKFED_ALLOW_INSECURE_KEYS=1``.
    n_jobs : int, default=None
        Joblib workers for the encrypted arithmetic.
    random_state : int, RandomState instance or None, default=None
        Seeds the mini-batch order. Masks and encryption randomness always
        come from the operating system's CSPRNG.
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
    coef_ : ndarray of shape (n_features,)
        All coefficients, in the columns' order (assembled for the user of the
        simulation; in a deployment each party holds only its own slice).
    intercept_ : float
        Held by the label party.
    coef_by_party_ : dict of str -> ndarray of shape (n_party_features,)
        Each party's own coefficients, in the order of its columns.
    topology_ : VerticalTopology
        The topology used (the default one when ``topology=None``).
    n_iter_ : int
        Epochs run.
    stop_reason_ : {"converged", "max_iter", "callback"}
        Why the fit stopped, as the arbiter announced it. A diverged fit
        raises :class:`~skfed.FitDiverged` instead.
    loss_curve_ : list of float
        The objective of each epoch, as the arbiter knows it: for ``"gd"``
        and ``"adam"`` the mean over the epoch's mini-batches at the weights
        before each step; for ``"pcg"`` the objective at zero, then after
        each step.
    transcript_ : Transcript
        Every message exchanged during ``fit``, then those of each
        collaborative prediction (the feature parties' partial scores).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined when ``X`` has string column names.

    See Also
    --------
    VerticalLogisticRegression : The classifier.
    sklearn.linear_model.LinearRegression : The centralised twin.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skfed import VerticalLinearRegression, VerticalTopology
    >>> X, y = make_regression(n_samples=60, n_features=4, noise=1.0, random_state=0)
    >>> topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    >>> reg = VerticalLinearRegression(topo, key_size=512).fit(X, y)
    >>> round(reg.score(X, y), 3)
    1.0
    >>> sorted(reg.coef_by_party_)
    ['bank', 'shop']
    """

    _task = "linear"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the model through the vertical protocol.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The joined (aligned) table; each party only ever sees its columns.
        y : array-like of shape (n_samples,)
            Targets, held by the label party.

        With a runtime that runs one party (``runtime.party`` set), each
        party passes only what it holds: the label party its columns and
        ``y``, a feature party its columns, the arbiter ``None``; each keeps
        only its own coefficients (``coef_`` then covers its own columns).

        Returns
        -------
        self : object
        """
        if party_of(self.runtime) is not None:
            return self._fit_party(X, y)
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        coef, intercept, by_party = self._fit_protocol(X, self._targets(y))
        self.coef_ = coef[0]
        self.intercept_ = float(intercept[0]) if self.fit_intercept else 0.0
        self.coef_by_party_ = {p: c[0] for p, c in by_party.items()}
        return self

    def _targets(self, y):
        return np.asarray(y, dtype=np.float64)[:, None]

    def _keep_own_model(self, W, intercept):
        self.coef_ = W[0]
        self.coef_by_party_ = {self.runtime.party: W[0].copy()}
        if intercept is not None:
            self.intercept_ = float(intercept[0]) if self.fit_intercept else 0.0

    def predict(self, X):
        """Predict collaboratively; only the label party sees the prediction.

        Each host sends its per-row partial scores ``X_k w_k`` to the label
        party (this discloses those partial scores to it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or None
            None at a feature party of a deployment (it only sends its part).
        """
        scores = self._scores(X)
        return None if scores is None else scores[:, 0]

    def make_centralised_twin(self):
        """The scikit-learn estimator pooled data would be fitted with.

        ``LinearRegression`` when ``alpha == 0``; otherwise ``SGDRegressor``
        with the same per-sample objective (its L2 term is also
        ``alpha/2 ||w||^2`` next to the mean squared loss), since ``Ridge``'s
        equivalent penalty ``n_samples * alpha`` depends on the fold size.
        """
        from sklearn.linear_model import LinearRegression, SGDRegressor

        if self.alpha == 0:
            return LinearRegression(fit_intercept=self.fit_intercept)
        return SGDRegressor(penalty="l2", alpha=self.alpha, fit_intercept=self.fit_intercept,
                            random_state=self.random_state)
