"""FederatedSGDClassifier and FederatedSGDRegressor."""

import copy
import numbers
import time
from functools import partial

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._progress import CallbackSupportMixin, FitProgress
from ..exceptions import FitDiverged
from ..runtime import LocalRuntime
from ..runtime.local import RoleError
from ..runtime.party import party_of
from ..topology import HorizontalTopology, split_by_party
from ._party import client_party, server_party
from .dropout import check_min_clients
from .roles import _unflatten, client, model_layout, server

__all__ = ["FederatedSGDClassifier", "FederatedSGDRegressor"]

_MAX_SEED = np.iinfo(np.int32).max
_SERVER = "server"


class _BaseFederatedSGD(CallbackSupportMixin, BaseEstimator):
    """Shared machinery: validation, topology split, running the roles."""

    _parameter_constraints: dict = {
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "l1_ratio": [Interval(numbers.Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "epsilon": [Interval(numbers.Real, 0, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "optimal", "invscaling", "adaptive"})],
        "eta0": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "average": [Interval(numbers.Integral, 0, None, closed="neither"), "boolean"],
        "topology": [HorizontalTopology, None],
        "n_rounds": [Interval(numbers.Integral, 1, None, closed="left")],
        "local_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "strategy": [StrOptions({"fedavg", "fedprox", "fedadam", "fedsgd"})],
        "mu": [Interval(numbers.Real, 0, None, closed="left")],
        "server_learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "tau": [Interval(numbers.Real, 0, None, closed="neither")],
        "secure_aggregation": [StrOptions({"masking", "paillier"}), None],
        "key_size": [Interval(numbers.Integral, 256, None, closed="left")],
        "min_clients": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "runtime": "no_validation",
    }

    _task = None
    # ``parties`` is sample-aligned metadata: with scikit-learn's metadata
    # routing enabled, Pipeline, cross_val_score and GridSearchCV pass it to
    # fit (and slice it with the rows) without a set_fit_request call.
    __metadata_request__fit = {"parties": True}

    # -- input handling ------------------------------------------------------
    def _topology(self):
        rs = self.random_state if isinstance(self.random_state, numbers.Integral) else None
        if self.topology is None:
            return HorizontalTopology(random_state=rs)
        if self.topology.random_state is None and rs is not None:
            # An unseeded topology follows the estimator's seed, so a fit is reproducible.
            topo = copy.copy(self.topology)
            topo.random_state = rs
            return topo
        return self.topology

    def _split_party_column(self, X, topo, fitting):
        """Take the partition column out of X (it names parties; it is no feature)."""
        if not topo.by_column:
            return X, None
        names = getattr(X, "columns", None)
        n_cols = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else None
        if n_cols is None:
            X = np.asarray(X, dtype=object)
            n_cols = X.shape[1]
        if not fitting and n_cols == self.n_features_in_:
            return X, None
        col = topo.resolve_column(None if names is None else list(map(str, names)), n_cols)
        if names is not None:
            values = np.asarray(X.iloc[:, col])
            return X.drop(columns=names[col]), values
        X = np.asarray(X)
        return np.delete(X, col, axis=1), X[:, col]

    def _validate_fit_input(self, X, y, parties=None):
        topo = self._topology().validate()
        if parties is not None and topo.by_column:
            raise ValueError(
                f"the parties are given twice: by the column partition={topo.partition!r} "
                "and by parties=; pass one of them")
        X, party_values = self._split_party_column(X, topo, fitting=True)
        X, y = validate_data(self, X, y, dtype=np.float64, order="C",
                             y_numeric=self._task == "regression")
        if self._task == "classification":
            check_classification_targets(y)
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"The number of classes has to be greater than one; got 1 class "
                    f"({classes[0]!r}) in y")
        self._check_settings()
        if isinstance(getattr(self, "class_weight", None), dict):
            unknown = set(self.class_weight) - set(classes.tolist())
            if unknown:
                raise ValueError(f"class_weight names classes not in y: {sorted(unknown)}")
        if parties is not None:
            parts = split_by_party(parties, X.shape[0])
        else:
            parts = topo.split(X, y, party_column=party_values)
        for name, idx in parts:
            if len(idx) < 2:
                raise ValueError(
                    f"party {name!r} holds {len(idx)} sample(s); every client needs at "
                    "least 2 rows to train locally")
        if self.secure_aggregation is not None and len(parts) < 2:
            raise ValueError(
                "secure aggregation needs at least two clients: with one client the "
                "server would learn its update; use secure_aggregation=None")
        check_min_clients(self.min_clients, len(parts), self.secure_aggregation)
        return X, y, parts

    def _check_settings(self):
        """Hyper-parameter combinations that cannot work, refused before any message."""
        if self.secure_aggregation == "paillier":
            from ..crypto.paillier import check_key_size

            check_key_size(self.key_size)
        if self.strategy == "fedsgd" and self.learning_rate == "optimal":
            raise ValueError(
                "strategy='fedsgd' takes one full-batch step per round; use "
                "learning_rate='constant', 'invscaling' or 'adaptive' with eta0")

    def _client_seeds(self, n):
        if isinstance(self.random_state, numbers.Integral):
            # One client with an int seed then shuffles exactly as scikit-learn would.
            return [int(self.random_state)] * n
        rng = check_random_state(self.random_state)
        return [int(s) for s in rng.randint(_MAX_SEED, size=n)]

    # -- fitting -----------------------------------------------------------------
    def _config(self, parts, n_features, n_outputs):
        return {
            "task": self._task, "server": _SERVER, "clients": [n for n, _ in parts],
            "loss": self.loss, "penalty": self.penalty, "alpha": float(self.alpha),
            "l1_ratio": float(self.l1_ratio), "fit_intercept": bool(self.fit_intercept),
            "epsilon": float(self.epsilon), "learning_rate": self.learning_rate,
            "eta0": float(self.eta0), "power_t": float(self.power_t),
            "average": self.average, "class_weight": getattr(self, "class_weight", None),
            "n_rounds": int(self.n_rounds), "local_epochs": int(self.local_epochs),
            "strategy": self.strategy, "mu": float(self.mu),
            "server_learning_rate": float(self.server_learning_rate),
            "beta_1": float(self.beta_1), "beta_2": float(self.beta_2), "tau": float(self.tau),
            "secure_aggregation": self.secure_aggregation, "key_size": int(self.key_size),
            "min_clients": None if self.min_clients is None else int(self.min_clients),
            "tol": self.tol, "n_iter_no_change": int(self.n_iter_no_change),
            "n_jobs": self.n_jobs, "verbose": self.verbose,
            "layout": model_layout(n_features, n_outputs, self.average),
        }

    def _run(self, X, y, parts, n_outputs):
        cfg = self._config(parts, X.shape[1], n_outputs)
        seeds = self._client_seeds(len(parts))
        roles = {_SERVER: partial(server, cfg=cfg, progress=self._progress(cfg, X, y))}
        for (name, idx), seed in zip(parts, seeds):
            roles[name] = partial(client, X=X[idx], y=y[idx], cfg=cfg, seed=seed)
        runtime = LocalRuntime() if self.runtime is None else self.runtime
        start = time.perf_counter()
        try:
            results, transcript = runtime.run(roles)
        except RoleError as err:
            # A divergence is the user's to act on (scale, learning rate), not a
            # failure of a party: raise it as what it is, as the other families do.
            if isinstance(err.__cause__, FitDiverged):
                raise FitDiverged(f"{type(self).__name__}: {err.__cause__} "
                                  f"(found by {err.party!r})") from err
            raise
        out = results[_SERVER]
        self.transcript_ = transcript
        self.n_iter_ = out["n_iter"]
        self.dropouts_ = out["dropouts"]
        per_round = _bytes_per_round(transcript, cfg["clients"][0])
        self.history_ = [dict(h, bytes=per_round[i] if i < len(per_round) else 0)
                         for i, h in enumerate(out["history"])]
        self.fit_time_ = time.perf_counter() - start
        return out

    def _progress(self, cfg, X=None, y=None):
        """Progress lines and scikit-learn callbacks, run at the server."""

        def reconstruct(w):
            n_features = X.shape[1] if X is not None else None
            parts = _unflatten(w, cfg["layout"]) if cfg["layout"] else None
            if parts is None or n_features is None:
                return None
            attrs = {"coef_": parts["coef_"].reshape(-1, n_features)
                     if self._task == "classification" else parts["coef_"].reshape(-1),
                     "intercept_": parts["intercept_"].reshape(-1),
                     "n_features_in_": n_features}
            if self._task == "classification":
                attrs["classes_"] = np.unique(y)
            return attrs

        return FitProgress(self, total=int(self.n_rounds), verbose=self.verbose,
                           reconstruct=reconstruct, X=X, y=y)

    def _fit_party(self, X, y):
        """Fit as one party of a deployment (``runtime.party`` is not None).

        A client passes its own rows and keeps the final global model the
        server sends; the server passes ``X=None`` and keeps the same model.
        Returns what the server role returns (model, classes, history).
        """
        me = self.runtime.party
        topo = self._topology().validate()
        if topo.by_column:
            raise ValueError(
                "with one party per process each client passes its own rows; a "
                "partition column only applies to simulations")
        clients = topo.names()
        expected = {_SERVER, *clients}
        if set(self.runtime.parties) != expected:
            raise ValueError(
                f"the runtime's parties {sorted(self.runtime.parties)} do not match the "
                f"topology's server and clients {sorted(expected)} (name the clients "
                "with HorizontalTopology(n_parties=..., party_names=[...]))")
        if self.secure_aggregation is not None and len(clients) < 2:
            raise ValueError("secure aggregation needs at least two clients")
        check_min_clients(self.min_clients, len(clients), self.secure_aggregation)
        self._check_settings()
        parts = [(c, None) for c in clients]
        cfg = self._config(parts, n_features=0, n_outputs=0)
        start = time.perf_counter()
        if me == _SERVER:
            if X is not None or y is not None:
                raise ValueError("the server holds no data: call fit(None)")
            results, transcript = self.runtime.run({_SERVER: partial(
                server_party, cfg=cfg, progress=self._progress(cfg))})
            out = results[_SERVER]
            self.dropouts_ = out["dropouts"]
            self.n_features_in_ = out["n_features"]
            if out["feature_names"] is not None:
                self.feature_names_in_ = np.asarray(out["feature_names"], dtype=object)
            first = clients[0]
        else:
            X, y = validate_data(self, X, y, dtype=np.float64, order="C",
                                 y_numeric=self._task == "regression")
            if self._task == "classification":
                check_classification_targets(y)
            else:
                y = y.astype(np.float64)
            if len(y) < 2:
                raise ValueError(
                    f"party {me!r} holds {len(y)} sample(s); every client needs at least "
                    "2 rows to train locally")
            names = getattr(self, "feature_names_in_", None)
            seed = self._client_seeds(len(clients))[clients.index(me)]
            role = partial(client_party, X=X, y=y, cfg=cfg, seed=seed,
                           feature_names=None if names is None else list(map(str, names)))
            results, transcript = self.runtime.run({me: role})
            out = results[me]
            first = me
        self.transcript_ = transcript
        self.n_iter_ = out["n_iter"]
        per_round = _bytes_per_round(transcript, first)
        self.history_ = [dict(h, bytes=per_round[i] if i < len(per_round) else 0)
                         for i, h in enumerate(out["history"])]
        self.fit_time_ = time.perf_counter() - start
        return out

    # -- prediction ----------------------------------------------------------------
    def _validate_predict_input(self, X):
        check_is_fitted(self)
        X, _ = self._split_party_column(X, self._topology(), fitting=False)
        return validate_data(self, X, dtype=np.float64, reset=False)

    def make_centralised_twin(self):
        """The scikit-learn SGD estimator trained on pooled data for comparison.

        It runs ``n_rounds * local_epochs`` epochs with the same hyper-parameters.
        """
        params = {k: getattr(self, k) for k in (
            "loss", "penalty", "alpha", "l1_ratio", "fit_intercept", "epsilon",
            "learning_rate", "eta0", "power_t", "average", "random_state")}
        if self.strategy == "fedsgd" and self.learning_rate == "optimal":
            params["learning_rate"] = "constant"
        if hasattr(self, "class_weight"):
            params["class_weight"] = self.class_weight
        return self._twin_class(max_iter=self.n_rounds * self.local_epochs, tol=None,
                                **params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _bytes_per_round(transcript, first_client):
    """Bytes exchanged in each round: rounds start when the server sends the model."""
    totals, current = [], None
    for m in transcript:
        if m.sender == _SERVER and m.tag == "model" and m.receiver == first_client:
            if current is not None:
                totals.append(current)
            current = 0
        if current is not None:
            current += m.nbytes
    return totals


_COMMON_DOC = """
    topology : HorizontalTopology, default=None
        Which client holds which rows. None means ``HorizontalTopology()``:
        two clients with an IID split seeded by ``random_state``.
    n_rounds : int, default=10
        Communication rounds.
    local_epochs : int, default=1
        Epochs of scikit-learn SGD each client runs per round.
    strategy : {"fedavg", "fedprox", "fedadam", "fedsgd"}, default="fedavg"
        ``"fedavg"`` averages local models weighted by sample counts;
        ``"fedprox"`` adds a proximal pull ``mu/2 ||w - w_global||^2`` to the
        local objective (applied as a proximal step after each local epoch);
        ``"fedadam"`` treats the averaged change as a pseudo-gradient for a
        server-side Adam step (Reddi et al., 2021); ``"fedsgd"`` uploads each
        client's full-batch gradient and takes one gradient step per round
        (exactly centralised full-batch gradient descent).
    mu : float, default=0.01
        FedProx proximal strength.
    server_learning_rate, beta_1, beta_2, tau : float
        FedAdam's server step size, moment decays and adaptivity.
    secure_aggregation : {"masking", "paillier"} or None, default="masking"
        How updates are protected: pairwise masks over Z_{2**64} (X25519 +
        HKDF + AES-256-CTR), Paillier encryption under a key the server never
        sees, or nothing (for comparison only).
    key_size : int, default=2048
        Paillier modulus bits (``secure_aggregation="paillier"``). Smaller
        keys are refused unless ``SKFED_ALLOW_INSECURE_KEYS=1``.
    min_clients : int, default=None
        Tolerate clients dropping out: a round completes when at least
        ``min_clients`` clients survive it, averaging over the survivors
        (weights re-normalised); a round with fewer raises
        :class:`~skfed.horizontal.dropout.TooFewClients`. With masking this
        runs the dropout-tolerant protocol of Bonawitz et al. (Shamir shares
        of each client's mask secrets, threshold ``min_clients``, which must
        exceed half the clients); Paillier mode does not tolerate dropouts.
        A dropped client stays out for the rest of the fit. None: every
        client must take part in every round (the cheapest protocol). See
        :ref:`dropouts`.
    tol : float, default=None
        Stop when the global objective has not improved by ``tol`` for
        ``n_iter_no_change`` rounds. None runs all rounds.
    n_iter_no_change : int, default=5
    n_jobs : int, default=None
        joblib workers for Paillier encryption.
    random_state : int, RandomState instance or None, default=None
        Seeds the split (when the topology has no seed) and each client's
        shuffling. Cryptographic randomness never comes from it.
    verbose : int, default=0
        Print a progress line per round.
    runtime : object, default=None
        Runs the roles; None means an in-process :class:`~skfed.runtime.LocalRuntime`.
        A runtime that runs one party (``runtime.party`` set, e.g.
        :class:`~skfed.runtime.grpc.GrpcRuntime`) makes ``fit`` take only that
        party's data: a client's own rows, or None at the server. Both end
        with the global model. See :ref:`deployment`.
"""

_FITTED_DOC = """
    n_iter_ : int
        Rounds run.
    history_ : list of dict
        Per round: ``round``, ``objective`` (global objective at the model the
        round started from: weighted mean loss + penalty) and ``bytes`` sent.
    transcript_ : Transcript
        Every message of the fit, with sender, receiver, protection and size.
    dropouts_ : list of dict
        Clients that dropped out (with ``min_clients``): ``client``, ``sum``
        (1 is the set-up sum of sample counts, ``r + 1`` training round ``r``)
        and ``stage`` (the step it did not answer). Empty without dropouts.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.
"""


class FederatedSGDClassifier(ClassifierMixin, _BaseFederatedSGD):
    __doc__ = f"""Linear classifiers trained by federated SGD across clients.

    Each client runs scikit-learn's own :class:`~sklearn.linear_model.SGDClassifier`
    on its rows (``partial_fit``, one call per local epoch); the server
    aggregates protected updates and learns only their sum.

    Parameters
    ----------
    loss, penalty, alpha, l1_ratio, fit_intercept, epsilon, learning_rate, eta0, \
power_t, average, class_weight
        As in :class:`~sklearn.linear_model.SGDClassifier`. ``class_weight="balanced"``
        uses class counts summed securely over all clients.
{_COMMON_DOC}
    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray
        Union of the clients' labels, kept as given (strings too).
{_FITTED_DOC}
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skfed import FederatedSGDClassifier, HorizontalTopology
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = FederatedSGDClassifier(loss="log_loss", topology=HorizontalTopology(n_parties=3),
    ...                              n_rounds=20, random_state=0).fit(X, y)
    >>> clf.classes_
    array([0, 1, 2])
    >>> clf.score(X, y) > 0.85
    True
    >>> sorted({{m.kind for m in clf.transcript_.filter(tag="update")}})
    ['masked']
    """

    _task = "classification"
    _twin_class = SGDClassifier
    _parameter_constraints: dict = {
        **_BaseFederatedSGD._parameter_constraints,
        "loss": [StrOptions({"hinge", "log_loss", "modified_huber", "squared_hinge",
                             "perceptron", "squared_error", "huber", "epsilon_insensitive",
                             "squared_epsilon_insensitive"})],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, loss="hinge", *, penalty="l2", alpha=0.0001, l1_ratio=0.15,
                 fit_intercept=True, epsilon=0.1, learning_rate="optimal", eta0=0.01,
                 power_t=0.5, average=False, class_weight=None, topology=None,
                 n_rounds=10, local_epochs=1, strategy="fedavg", mu=0.01,
                 server_learning_rate=0.01, beta_1=0.9, beta_2=0.99, tau=1e-3,
                 secure_aggregation="masking", key_size=2048, min_clients=None, tol=None,
                 n_iter_no_change=5, n_jobs=None, random_state=None, verbose=0,
                 runtime=None):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.epsilon = epsilon
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.average = average
        self.class_weight = class_weight
        self.topology = topology
        self.n_rounds = n_rounds
        self.local_epochs = local_epochs
        self.strategy = strategy
        self.mu = mu
        self.server_learning_rate = server_learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.tau = tau
        self.secure_aggregation = secure_aggregation
        self.key_size = key_size
        self.min_clients = min_clients
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.runtime = runtime

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, parties=None):
        """Fit by federated SGD over the clients of ``topology``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            All clients' rows (simulation); each client's role sees only its own.
            With a runtime that runs one party: that client's rows, or None
            at the server.
        y : array-like of shape (n_samples,) or None
        parties : array-like of shape (n_samples,), default=None
            The client that holds each row (names or integers), for data that
            arrives already split by party: the rows of each label go to one
            client, named ``str(label)``, and the party stays out of ``X``.
            It replaces the topology's random split. See
            :ref:`horizontal-split-by-party` for its use in pipelines and
            cross-validation.

        Returns
        -------
        self : object
        """
        if party_of(self.runtime) is not None:
            if parties is not None:
                raise ValueError(
                    "with one party per process each client passes only its own rows; "
                    "parties= applies to simulations")
            out = self._fit_party(X, y)
            dtype = None if y is None else np.asarray(y).dtype
            self.classes_ = np.asarray(out["classes"], dtype=dtype)
            model = out["model"]
            self.coef_ = model["coef_"].reshape(-1, self.n_features_in_)
            self.intercept_ = model["intercept_"].reshape(-1)
            return self
        X, y, parts = self._validate_fit_input(X, y, parties)
        n_classes = len(np.unique(y))
        out = self._run(X, y, parts, n_outputs=1 if n_classes == 2 else n_classes)
        self.classes_ = np.asarray(out["classes"], dtype=y.dtype)
        model = out["model"]
        self.coef_ = model["coef_"].reshape(-1, X.shape[1])
        self.intercept_ = model["intercept_"].reshape(-1)
        return self

    def decision_function(self, X):
        """Signed distance to each class's hyperplane.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        X = self._validate_predict_input(X)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def _has_proba(self):
        return self.loss in ("log_loss", "modified_huber")

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities (``loss`` in "log_loss", "modified_huber").

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        scores = self.decision_function(X)
        if self.loss == "log_loss":
            p = expit(scores)
            if p.ndim == 1:
                return np.column_stack([1 - p, p])
            return p / p.sum(axis=1, keepdims=True)
        p = (np.clip(scores, -1, 1) + 1) / 2
        if p.ndim == 1:
            return np.column_stack([1 - p, p])
        norm = p.sum(axis=1, keepdims=True)
        uniform = norm[:, 0] == 0
        p[uniform] = 1.0
        return p / p.sum(axis=1, keepdims=True)

    @available_if(_has_proba)
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def score(self, X, y, sample_weight=None):
        """Mean accuracy; labels never seen by any client are an error."""
        check_is_fitted(self)
        unseen = np.setdiff1d(np.unique(np.asarray(y)), self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains classes seen by no party during fit: {unseen.tolist()}")
        return super().score(X, y, sample_weight=sample_weight)


class FederatedSGDRegressor(RegressorMixin, _BaseFederatedSGD):
    __doc__ = f"""Linear regression trained by federated SGD across clients.

    Each client runs scikit-learn's own :class:`~sklearn.linear_model.SGDRegressor`
    on its rows; the server aggregates protected updates.

    Parameters
    ----------
    loss, penalty, alpha, l1_ratio, fit_intercept, epsilon, learning_rate, eta0, \
power_t, average
        As in :class:`~sklearn.linear_model.SGDRegressor`.
{_COMMON_DOC}
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
{_FITTED_DOC}
    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skfed import FederatedSGDRegressor
    >>> X, y = make_regression(n_samples=300, n_features=5, noise=1.0, random_state=0)
    >>> reg = FederatedSGDRegressor(n_rounds=20, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    _task = "regression"
    _twin_class = SGDRegressor
    _parameter_constraints: dict = {
        **_BaseFederatedSGD._parameter_constraints,
        "loss": [StrOptions({"squared_error", "huber", "epsilon_insensitive",
                             "squared_epsilon_insensitive"})],
    }

    def __init__(self, loss="squared_error", *, penalty="l2", alpha=0.0001, l1_ratio=0.15,
                 fit_intercept=True, epsilon=0.1, learning_rate="invscaling", eta0=0.01,
                 power_t=0.25, average=False, topology=None, n_rounds=10, local_epochs=1,
                 strategy="fedavg", mu=0.01, server_learning_rate=0.01, beta_1=0.9,
                 beta_2=0.99, tau=1e-3, secure_aggregation="masking", key_size=2048,
                 min_clients=None, tol=None, n_iter_no_change=5, n_jobs=None,
                 random_state=None, verbose=0, runtime=None):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.epsilon = epsilon
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.average = average
        self.topology = topology
        self.n_rounds = n_rounds
        self.local_epochs = local_epochs
        self.strategy = strategy
        self.mu = mu
        self.server_learning_rate = server_learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.tau = tau
        self.secure_aggregation = secure_aggregation
        self.key_size = key_size
        self.min_clients = min_clients
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.runtime = runtime

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, parties=None):
        """Fit by federated SGD over the clients of ``topology``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            All rows (simulation), or with a runtime that runs one party that
            client's rows, or None at the server.
        y : array-like of shape (n_samples,) or None
        parties : array-like of shape (n_samples,), default=None
            The client that holds each row (names or integers), for data that
            arrives already split by party: the rows of each label go to one
            client, named ``str(label)``, and the party stays out of ``X``.
            It replaces the topology's random split. See
            :ref:`horizontal-split-by-party` for its use in pipelines and
            cross-validation.

        Returns
        -------
        self : object
        """
        if party_of(self.runtime) is not None:
            if parties is not None:
                raise ValueError(
                    "with one party per process each client passes only its own rows; "
                    "parties= applies to simulations")
            model = self._fit_party(X, y)["model"]
            self.coef_ = model["coef_"].reshape(-1)
            self.intercept_ = model["intercept_"].reshape(1)
            return self
        X, y, parts = self._validate_fit_input(X, y, parties)
        out = self._run(X, y.astype(np.float64), parts, n_outputs=0)
        model = out["model"]
        self.coef_ = model["coef_"].reshape(-1)
        self.intercept_ = model["intercept_"].reshape(1)
        return self

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        X = self._validate_predict_input(X)
        return X @ self.coef_ + self.intercept_[0]
