"""Horizontal histogram gradient boosting over secure aggregation.

The protocol and what each party sees are described in
:mod:`skfed.horizontal._boosting_roles` and on the documentation page
:ref:`horizontal-boosting`.
"""

import copy
import time
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._progress import CallbackSupportMixin, FitProgress
from ..runtime import LocalRuntime
from ..runtime.party import party_of
from ..topology import HorizontalTopology, split_by_party
from ..trees.outputs import BoostedClassifierOutputs, BoostedRegressorOutputs
from . import _boosting_roles as roles
from .dropout import check_min_clients

__all__ = ["FederatedHistGradientBoostingClassifier", "FederatedHistGradientBoostingRegressor"]

# scikit-learn's HistGradientBoosting turns early stopping on above this many rows.
_AUTO_EARLY_STOPPING_ROWS = 10_000
_SERVER = "server"


class _BaseFederatedBoosting(CallbackSupportMixin, BaseEstimator):
    """What the classifier and the regressor share."""

    _task = None
    # What skfed.save keeps besides the fitted attributes: the model itself.
    _saved_state = ("_trees", "_baseline")
    # ``parties`` is sample-aligned metadata, as for FederatedSGD*: with
    # metadata routing on, Pipeline and GridSearchCV slice it with the rows.
    __metadata_request__fit = {"parties": True}

    _parameter_constraints: dict = {
        "topology": [HorizontalTopology, None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "max_leaf_nodes": [Interval(Integral, 2, None, closed="left"), None],
        "max_depth": [Interval(Integral, 1, None, closed="left"), None],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left")],
        "l2_regularization": [Interval(Real, 0, None, closed="left")],
        "max_bins": [Interval(Integral, 2, 255, closed="both")],
        "categorical_features": "no_validation",
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"),
                                Interval(Integral, 1, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "secure_aggregation": [StrOptions({"masking"}), None],
        "min_clients": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "runtime": "no_validation",
    }

    def __init__(self, topology=None, *, learning_rate=0.1, max_iter=100, max_leaf_nodes=31,
                 max_depth=None, min_samples_leaf=20, l2_regularization=0.0, max_bins=255,
                 categorical_features=None, early_stopping="auto", validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-7, secure_aggregation="masking",
                 min_clients=None, random_state=None, verbose=0, runtime=None):
        self.topology = topology
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_bins = max_bins
        self.categorical_features = categorical_features
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.secure_aggregation = secure_aggregation
        self.min_clients = min_clients
        self.random_state = random_state
        self.verbose = verbose
        self.runtime = runtime

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # -- validation -----------------------------------------------------------------
    def _check_params(self):
        if self.categorical_features is not None:
            raise ValueError(
                f"{type(self).__name__} does not support categorical_features: encode "
                "categories as numbers (e.g. OrdinalEncoder) and leave "
                "categorical_features=None")

    def _topology(self):
        rs = self.random_state if isinstance(self.random_state, Integral) else None
        if self.topology is None:
            return HorizontalTopology(random_state=rs)
        if self.topology.random_state is None and rs is not None:
            topo = copy.copy(self.topology)
            topo.random_state = rs
            return topo
        return self.topology

    def _early_stopping(self, n_samples):
        if self.early_stopping == "auto":
            return n_samples > _AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _fraction(self, n_samples, early):
        """The held-out fraction each client applies to its own rows."""
        if not early or self.validation_fraction is None:
            return None
        vf = self.validation_fraction
        if isinstance(vf, Integral) and not isinstance(vf, bool):
            if vf >= n_samples:
                raise ValueError(f"validation_fraction={vf} rows leaves no training rows "
                                 f"of {n_samples}")
            return vf / n_samples
        return float(vf)

    def _check_rows(self, n_samples, fraction):
        n_train = n_samples - (0 if fraction is None else int(np.ceil(fraction * n_samples)))
        if n_train < 2 * self.min_samples_leaf:
            raise ValueError(
                f"{n_train} training row(s) (n_samples = {n_samples}) are too few for "
                f"min_samples_leaf={self.min_samples_leaf}: no tree could split (each "
                f"side needs {self.min_samples_leaf} rows); lower min_samples_leaf")

    def _client_seeds(self, n):
        rng = check_random_state(self.random_state)
        return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n)]

    def _config(self, clients, n_classes, n_features, fraction, early):
        return roles.BoostingConfig(
            task=self._task, server=_SERVER, clients=tuple(clients), n_classes=int(n_classes),
            n_features=int(n_features), learning_rate=float(self.learning_rate),
            max_iter=int(self.max_iter),
            max_leaf_nodes=None if self.max_leaf_nodes is None else int(self.max_leaf_nodes),
            max_depth=None if self.max_depth is None else int(self.max_depth),
            min_samples_leaf=int(self.min_samples_leaf),
            l2_regularization=float(self.l2_regularization), max_bins=int(self.max_bins),
            early_stopping=bool(early), validation_fraction=fraction,
            n_iter_no_change=int(self.n_iter_no_change), tol=float(self.tol),
            secure_aggregation=self.secure_aggregation, verbose=int(self.verbose),
            min_clients=None if self.min_clients is None else int(self.min_clients))

    # -- fit ----------------------------------------------------------------------------
    def _fit(self, X, y_enc, n_classes, parties=None):
        n_samples, n_features = X.shape
        topo = self._topology().validate()
        if topo.by_column:
            raise ValueError(f"{type(self).__name__} takes the clients' rows from an iid or "
                             "dirichlet HorizontalTopology or from parties=, not a partition "
                             "column")
        parts = split_by_party(parties, n_samples) if parties is not None \
            else topo.split(X, y_enc)
        for name, idx in parts:
            if len(idx) < 1:
                raise ValueError(f"client {name!r} holds no rows: every client needs at "
                                 "least one")
        if self.secure_aggregation is not None and len(parts) < 2:
            raise ValueError(
                "secure aggregation needs at least two clients: with one client the "
                "server would learn its histograms; use secure_aggregation=None")
        check_min_clients(self.min_clients, len(parts), self.secure_aggregation)
        early = self._early_stopping(n_samples)
        fraction = self._fraction(n_samples, early)
        self._check_rows(n_samples, fraction)
        clients = [name for name, _ in parts]
        cfg = self._config(clients, n_classes, n_features, fraction, early)
        progress = FitProgress(self, total=int(self.max_iter), unit="iteration",
                               verbose=self.verbose, X=X, y=y_enc)
        role_fns = {_SERVER: partial(roles.server, cfg=cfg, progress=progress)}
        for (name, idx), seed in zip(parts, self._client_seeds(len(parts))):
            role_fns[name] = partial(roles.client, X=X[idx].copy(), y=y_enc[idx].copy(),
                                     cfg=cfg, seed=seed)
        runtime = LocalRuntime() if self.runtime is None else self.runtime
        start = time.perf_counter()
        results, transcript = runtime.run(role_fns)
        self._set_fitted(results[_SERVER], transcript, early)
        self.fit_time_ = time.perf_counter() - start
        self.cpu_seconds_ = {p: float(r["cpu_seconds"]) for p, r in results.items()
                             if isinstance(r, dict) and "cpu_seconds" in r}
        return self

    def _set_fitted(self, out, transcript, early):
        self.transcript_ = transcript
        self._trees = out["trees"]
        self._baseline = np.asarray(out["baseline"], dtype=np.float64)
        self.bin_edges_ = [np.asarray(e) for e in out["edges"]]
        self.n_iter_ = len(self._trees)
        self.n_trees_per_iteration_ = len(self._baseline)
        self.do_early_stopping_ = early
        self.dropouts_ = list(out.get("dropouts", ()))
        if "train_score" in out:
            self.train_score_ = np.asarray(out["train_score"])
            self.validation_score_ = np.asarray(out["validation_score"])
            self.n_rounds_ = dict(out["rounds"])
            self.fit_timings_ = dict(out["timings"])

    def _check_loaded(self):
        """Refuse a loaded model whose trees, baseline, classes and columns do not
        fit together (called by :func:`skfed.load`)."""
        from ..runtime.layout import LayoutMismatch

        where = dict(sender="the saved model", tag="trees")
        missing = [k for k in ("_trees", "_baseline", "n_features_in_")
                   if not hasattr(self, k)]
        if missing:
            raise LayoutMismatch(f"the saved model lacks {missing}")
        self._trees, self._baseline = roles.check_model(
            self._trees, self._baseline, int(self.n_features_in_), **where)
        n_classes = len(getattr(self, "classes_", ()))
        expected = 1 if self._task == "regression" or n_classes == 2 else n_classes
        if self._baseline.size != expected:
            raise LayoutMismatch(f"the saved model has {self._baseline.size} trees per "
                                 f"iteration; its {n_classes or 'regression'} classes "
                                 f"need {expected}")
        if getattr(self, "n_trees_per_iteration_", expected) != expected:
            raise LayoutMismatch(f"the saved model says n_trees_per_iteration_="
                                 f"{self.n_trees_per_iteration_}, its baseline {expected}")
        if getattr(self, "n_iter_", len(self._trees)) != len(self._trees):
            raise LayoutMismatch(f"the saved model says n_iter_={self.n_iter_} but holds "
                                 f"{len(self._trees)} iterations")

    # -- predict ------------------------------------------------------------------------
    def _raw_predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                          reset=False)
        return roles.predict_raw(self._trees, self._baseline, X)

    def _staged_raw(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                          reset=False)
        yield from roles.predict_raw(self._trees, self._baseline, X, staged=True)

    @property
    def trees_(self):
        """The trees: per iteration, one dict of node arrays per output (``left``,
        ``right``, ``feature``, ``bin``, ``threshold``, ``missing_left``, ``value``,
        ``n_samples``, ``gain``; node 0 is the root, a leaf has ``left == -1``)."""
        check_is_fitted(self)
        return self._trees


_PARAMS_DOC = """
    Parameters
    ----------
    topology : HorizontalTopology, default=None
        Which client holds which rows. None means ``HorizontalTopology()``:
        two clients with an IID split seeded by ``random_state``.
    learning_rate : float, default=0.1
        Shrinkage of the leaf values.
    max_iter : int, default=100
        Boosting iterations.
    max_leaf_nodes : int or None, default=31
        Leaves per tree (best-first growth, as scikit-learn's).
    max_depth : int or None, default=None
        Depth limit (edges from the root); None for no limit.
    min_samples_leaf : int, default=20
        Training rows (of the whole federation) every leaf keeps.
    l2_regularization : float, default=0.0
        L2 penalty on the leaf values.
    max_bins : int, default=255
        Bins per column for the non-missing values (2..255). The edges are
        agreed from securely summed counts on a public grid of the floats
        (one bin per value for a column with at most ``max_bins`` distinct
        values; otherwise quantiles at a relative resolution of 2**-8); see
        :ref:`horizontal-boosting`.
    categorical_features : None
        Not supported: anything but None raises.
    early_stopping : "auto" or bool, default="auto"
        Each client holds out ``validation_fraction`` of its rows; stop
        when the federation's held-out loss stops improving. "auto" enables
        it above 10,000 rows.
    validation_fraction : float or int or None, default=0.1
        A fraction of each client's rows, or a number of rows of the whole
        federation (spread over the clients in proportion to their rows).
        None scores the training rows.
    n_iter_no_change : int, default=10
    tol : float, default=1e-7
    secure_aggregation : {"masking"} or None, default="masking"
        Pairwise-mask secure aggregation (the server learns only the sum of
        the clients' histograms); None uploads them in the clear, for
        comparison only.
    min_clients : int, default=None
        Tolerate clients dropping out, as :class:`FederatedSGDClassifier`
        does: every secure sum completes when at least ``min_clients``
        clients take part (with masking, the dropout-tolerant protocol of
        Bonawitz et al.: Shamir shares of each client's mask secrets,
        threshold ``min_clients``, which must exceed half the clients); a
        sum with fewer raises :class:`~skfed.horizontal.dropout.TooFewClients`.
        A dropped client stays out for the rest of the fit. An iteration
        interrupted by a dropout is grown again over the survivors, so every
        tree is the centralised tree of one set of clients' rows; a dropout
        reveals the dropped client's part of the sums computed before and
        after it (see :ref:`horizontal-boosting-dropouts`). None: every
        client must answer every sum (the cheapest protocol).
    random_state : int, RandomState instance or None, default=None
        Seeds the split of the default topology and the clients' held-out
        rows. Cryptographic randomness never comes from it.
    verbose : int, default=0
        Print the training loss of every iteration (at the server).
    runtime : runtime object, default=None
        Runs the roles; None runs them all in this process.
"""

_ATTRS_DOC = """
    n_iter_ : int
    n_trees_per_iteration_ : int
    do_early_stopping_ : bool
    train_score_, validation_score_ : ndarray
        Scores (negative loss) before and after each iteration, when early
        stopping runs (empty otherwise).
    trees_ : list of list of dict
    bin_edges_ : list of ndarray
        The edges the federation agreed on, per column.
    n_rounds_ : dict
        Secure sums of the fit: ``binning`` and ``histograms`` rounds; after
        dropouts (``min_clients``), ``setup_restarts`` (set-ups run again
        over the survivors) and ``restarts`` (iterations grown again).
    transcript_ : Transcript
        Every message of the fit.
    fit_timings_ : dict
        Seconds the server spent binning, growing trees and choosing splits.
    fit_time_ : float
    dropouts_ : list of dict
        The clients that dropped out (``min_clients`` set): name, the
        secure sum and the stage at which each stopped answering.
    cpu_seconds_ : dict of str -> float
        CPU seconds each party's role used (in-process fits): the server's
        plus the busiest client's is the compute a deployment with a core
        per party needs, whatever the machine running the simulation shares.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
"""


class FederatedHistGradientBoostingClassifier(BoostedClassifierOutputs, ClassifierMixin,
                                              _BaseFederatedBoosting):
    __doc__ = f"""Histogram gradient-boosted trees trained by clients that hold different rows.

    Each client builds gradient and hessian histograms of its own rows; the
    histograms are summed by secure aggregation, and the server, which sees
    only the sum, takes every decision of scikit-learn's
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (best-first
    growth, missing values in a bin of their own, log-loss; one tree per
    class per iteration for more than two classes). The sum of the clients'
    histograms is the pooled histogram, so the trees are those a centralised
    histogram GBDT grows on the pooled rows with the same bin edges.
    {_PARAMS_DOC}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    {_ATTRS_DOC}
    See Also
    --------
    sklearn.ensemble.HistGradientBoostingClassifier : The centralised twin.
    FederatedHistGradientBoostingRegressor : The regressor.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skfed import FederatedHistGradientBoostingClassifier, HorizontalTopology
    >>> X, y = make_classification(n_samples=300, n_features=4, random_state=0)
    >>> clf = FederatedHistGradientBoostingClassifier(
    ...     HorizontalTopology(n_parties=3, random_state=0), max_iter=10)
    >>> round(clf.fit(X, y).score(X, y), 2)
    0.95
    """

    _task = "classification"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, parties=None):
        """Train through the federated protocol.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            May contain NaN (missing values).
        y : array-like of shape (n_samples,)
        parties : array-like of shape (n_samples,), default=None
            Which client holds each row (its label names the client);
            replaces the topology's split.

        Returns
        -------
        self : object
        """
        self._check_params()
        if party_of(self.runtime) is not None:
            from ._boosting_party import fit_party

            return fit_party(self, X, y)
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; the data "
                f"contain only one class: {self.classes_[0]!r}")
        return self._fit(X, y_idx, len(self.classes_), parties)

class FederatedHistGradientBoostingRegressor(BoostedRegressorOutputs, RegressorMixin,
                                             _BaseFederatedBoosting):
    __doc__ = f"""Histogram gradient-boosted regression trees trained by clients that hold
    different rows.

    The squared-error twin of :class:`FederatedHistGradientBoostingClassifier`
    (whose documentation describes the protocol), as
    :class:`~sklearn.ensemble.HistGradientBoostingRegressor` is of
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.
    {_PARAMS_DOC}
    Attributes
    ----------
    {_ATTRS_DOC}
    See Also
    --------
    sklearn.ensemble.HistGradientBoostingRegressor : The centralised twin.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skfed import FederatedHistGradientBoostingRegressor
    >>> X, y = make_regression(n_samples=300, n_features=4, random_state=0)
    >>> reg = FederatedHistGradientBoostingRegressor(max_iter=30, random_state=0)
    >>> round(reg.fit(X, y).score(X, y), 2)
    0.96
    """

    _task = "regression"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, parties=None):
        """Train through the federated protocol.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            May contain NaN (missing values).
        y : array-like of shape (n_samples,)
        parties : array-like of shape (n_samples,), default=None
            Which client holds each row (its label names the client);
            replaces the topology's split.

        Returns
        -------
        self : object
        """
        self._check_params()
        if party_of(self.runtime) is not None:
            from ._boosting_party import fit_party

            return fit_party(self, X, y)
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan",
                             y_numeric=True)
        return self._fit(X, np.asarray(y, dtype=np.float64), 0, parties)
