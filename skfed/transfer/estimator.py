"""FederatedTransferClassifier: secure federated transfer learning (Liu et al.)."""

import hashlib
import secrets
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._progress import CallbackSupportMixin, FitProgress
from ..crypto.paillier import check_key_size
from ..runtime import LocalRuntime
from ..runtime.party import party_of
from ..topology import VerticalTopology
from . import roles
from ._party import setup_params, source_party, target_party

__all__ = ["FederatedTransferClassifier", "OverlapBaseline"]

UNLABELLED = -1


def _make_runtime():
    """Runtime hook (module level so the public signature stays scikit-learn's;
    tests replace it with ``LocalRuntime(keep_payloads=True)``)."""
    return LocalRuntime()


def _default_topology(n_features, who):
    if n_features < 2:
        raise ValueError(
            f"{who} got 1 feature(s) (n_features = 1): the default topology gives "
            "the first half of the columns to 'source' and the rest to 'target' and "
            "needs at least 2; pass a VerticalTopology"
        )
    return VerticalTopology.halves(n_features, label_party="source", other="target")


def _split_parties(topology, feature_names, n_features, who):
    """Resolve a two-party topology: (source name, target name, columns)."""
    if topology is None:
        topology = _default_topology(n_features, who)
    columns = topology.resolve(feature_names=feature_names, n_features=n_features)
    if len(columns) != 2:
        raise ValueError(
            f"{who} needs a VerticalTopology with exactly two parties (the source "
            f"{topology.label_party!r} and one target), got {len(columns)}: "
            f"{list(columns)}"
        )
    src = topology.label_party
    (tgt,) = [p for p in columns if p != src]
    return topology, src, tgt, columns


def _presence(X, cols, party):
    """Rows the party holds: all of its columns present; partial NaN is an error."""
    nan = np.isnan(X[:, cols])
    held = ~nan.any(axis=1)
    partial_rows = np.flatnonzero(nan.any(axis=1) & ~nan.all(axis=1))
    if len(partial_rows):
        raise ValueError(
            f"party {party!r} has NaN inside its present columns in rows "
            f"{partial_rows[:5].tolist()}{'...' if len(partial_rows) > 5 else ''}; "
            "a row a party does not hold must be NaN in all of its columns, and a "
            "row it holds must have none (impute missing values first)"
        )
    return held


class FederatedTransferClassifier(CallbackSupportMixin, ClassifierMixin, BaseEstimator):
    """Secure federated transfer learning between a labelled source and a target.

    Two parties hold different features (a :class:`~skfed.VerticalTopology`
    with exactly two parties). The source A (``topology.label_party``) holds
    labels; the target B shares only a small set of rows with A (the
    *overlap*). Each party learns a representation network; B's rows are
    classified by ``phi(u^B) = Phi^A u^B`` with ``Phi^A`` the label-weighted
    mean of A's representations (Liu et al., "Secure Federated Transfer
    Learning", arXiv 1812.03337). Training minimises the second-order Taylor
    form of the logistic loss on the labelled overlap rows plus ``gamma``
    times the alignment loss ``||u^A - u^B||^2`` on the overlap plus the
    source's own logistic loss on its labelled rows (local to the source)
    plus an L2 penalty; every cross-party term is exchanged under Paillier encryption
    (each party its own key) and each gradient is masked before its owner's
    peer decrypts it. See ``docs/transfer.rst`` for the protocol and what each
    side learns.

    Data convention: in ``X`` a row a party does not hold is NaN in all of
    that party's columns; ``y = -1`` marks an unlabelled row. Labels are the
    source's: a label on a row the source does not hold is not used by
    ``fit`` (so evaluation labels for the target's rows may sit in ``y``).

    Parameters
    ----------
    topology : VerticalTopology, default=None
        Two parties; ``label_party`` is the source. None splits the columns
        in halves between ``"source"`` and ``"target"``: with complete rows
        every row is then in the overlap, so ordinary ``X, y`` work.
    hidden_layer_sizes : tuple of int or "auto", default="auto"
        Hidden layers of both representation networks. "auto" (with
        ``train_hidden_layers=False``): one layer of fixed random features of
        width ``min(32, n_b // 2 - p - 1)``, ``p`` the larger party's number
        of features and ``n_b`` the rows per batch (the whole overlap by
        default), or none when that is below 1; so every batch passes the
        check on what each party's gradient determines (see ``batch_size``)
        with room to spare. ``(16,)`` with ``train_hidden_layers=True``.
    train_hidden_layers : bool, default=False
        False keeps the hidden layers at a fixed random initialisation
        (random features: weights drawn with variance ``1 / fan_in``, biases
        uniform in ``[-1, 1]``) and trains only the output layer, which sees
        the random features and the features themselves (so the
        representations include every linear map of a party's columns). The
        representation is then linear in what is trained, and ``fit`` runs
        the cross-moment protocol of ``hidden_layer_sizes=()`` on the random
        features: ~20x faster per epoch with encryption (a default fit on
        200 overlap rows takes about a minute with 2048-bit keys on 2 cores,
        two at load 7, see docs/transfer.rst), at the price of features that
        do not adapt.
        True trains the hidden layers through the general protocol (~10 s
        per epoch at 2048 bits).
    activation : {"identity", "logistic", "tanh", "relu"}, default="tanh"
    representation_dim : int, default=8
        Dimension ``d`` of the representations.
    gamma : float, default=0.3
        Weight of the alignment loss, the mean over the overlap rows and the
        ``d`` dimensions of ``(u^A_i - u^B_i)^2``. Averaging over dimensions
        keeps its balance with the classification term when
        ``representation_dim`` changes.
    source_weight : float, default=3.0
        Weight of the source's own classification loss: the mean logistic
        loss of ``Phi u^A`` on all of the source's labelled rows. It is
        computed by the source alone, in the clear (no message, no Taylor
        form), and makes ``Phi u^A`` a classifier trained on every labelled
        row the source holds, which the alignment then carries to the
        target. 0 gives the paper's objective, in which the rows only the
        source holds enter through the class mean ``Phi`` alone.
    alpha : float, default=4.0
        L2 penalty on both networks' weights, per overlap row
        (``alpha / (2 N_AB) * ||W||^2`` with ``N_AB`` overlap rows, as
        scikit-learn's MLP scales it): the loss terms are means over the
        overlap, so the penalty's weight falls as the overlap grows.
    solver : {"adam", "sgd"}, default="adam"
        Each party runs its own optimizer on its own parameters.
    learning_rate_init : float, default=0.03
        Full-batch Adam at 0.03 reaches the plateau in about half the epochs
        0.01 takes, at the same accuracy (docs/transfer.rst).
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``.
    max_iter : int, default=200
        Maximum number of epochs over the overlap.
    tol : float, default=1e-4
        Training stops when the loss has not improved by ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
    n_iter_no_change : int, default=10
    batch_size : int or "auto", default="auto"
        Overlap rows per step; "auto" uses all of them (full batch). The
        overlap is cut into ``n_overlap // batch_size`` batches of nearly
        equal size (no small last batch); labelled overlap rows are spread
        so that a batch carries none or at least ``n_outputs + 1`` of them.
        ``fit`` refuses batches too small for the networks: a party's
        gradient would then determine the other party's representations
        (every batch needs more than ``(n_params_A + n_outputs * d + 1) / d``
        and ``n_params_B / d`` rows; see docs/transfer.rst).
    encryption : {"paillier"} or None, default="paillier"
        None sends the same messages unencrypted (for debugging and
        comparison only).
    key_size : int, default=2048
        Paillier modulus bits; smaller keys need ``SKFED_ALLOW_INSECURE_KEYS=1``.
    n_jobs : int, default=None
        joblib workers for the encrypted arithmetic.
    random_state : int, RandomState instance or None, default=None
        Draws the shared batch seed and each party's network seed; a party's
        network seed also hashes the party's own rows, so a peer with the
        same integer (a deployment file's ``random_state`` is shared) cannot
        rebuild its initial network (with linear or random-feature
        representations that would reveal statistics of its features).
    verbose : int, default=0
        Print the loss after every epoch.
    runtime : runtime or None, default=None
        None simulates both parties in this process. A runtime with a
        ``party`` (e.g. :class:`~skfed.runtime.grpc.GrpcRuntime`) runs only
        that party: the source calls ``fit(X_source, y, overlap=idx)``, the
        target ``fit(X_target, overlap=idx)``, each with its own columns
        only; afterwards the target's ``predict(X_target)`` runs the
        prediction protocol with the source serving ``predict(None)``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.
    topology_ : VerticalTopology
    source_model_ : dict
        What stays at A: its network (``coefs``, ``intercepts``) and ``phi``
        of shape (n_outputs, representation_dim).
    target_model_ : dict
        What stays at B: its network.
    loss_curve_ : list of float
        Training loss per epoch.
    n_iter_ : int
    n_overlap_ : int
        Rows held by both parties.
    transcript_ : Transcript
        Every message of the last ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from skfed import FederatedTransferClassifier, VerticalTopology
    >>> X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    >>> X[:40, 3:] = np.nan            # rows only the source holds
    >>> X[80:, :3] = np.nan            # rows only the target holds
    >>> y_fit = y.copy(); y_fit[80:] = -1
    >>> topo = VerticalTopology({"bank": [0, 1, 2], "shop": [3, 4, 5]},
    ...                         label_party="bank")
    >>> clf = FederatedTransferClassifier(topo, max_iter=5, key_size=512,
    ...                                   random_state=0).fit(X, y_fit)
    >>> clf.n_overlap_, clf.predict(X[80:]).shape
    (40, (40,))
    """

    _parameter_constraints: dict = {
        "topology": [VerticalTopology, None],
        "hidden_layer_sizes": ["array-like", StrOptions({"auto"})],
        "train_hidden_layers": ["boolean"],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "representation_dim": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "source_weight": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"adam", "sgd"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "encryption": [StrOptions({"paillier"}), None],
        "key_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "runtime": "no_validation",
    }

    def __init__(self, topology=None, *, hidden_layer_sizes="auto", train_hidden_layers=False,
                 activation="tanh", representation_dim=8, gamma=0.3, source_weight=3.0,
                 alpha=4.0, solver="adam",
                 learning_rate_init=0.03, momentum=0.9, max_iter=200, tol=1e-4,
                 n_iter_no_change=10, batch_size="auto", encryption="paillier",
                 key_size=2048, n_jobs=None, random_state=None, verbose=0, runtime=None):
        self.topology = topology
        self.hidden_layer_sizes = hidden_layer_sizes
        self.train_hidden_layers = train_hidden_layers
        self.activation = activation
        self.representation_dim = representation_dim
        self.gamma = gamma
        self.source_weight = source_weight
        self.alpha = alpha
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.encryption = encryption
        self.key_size = key_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.runtime = runtime

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN only in whole-party blocks (rows a party does not hold); a stray
        # NaN is an error, so the checks that sprinkle NaN do not apply.
        tags.input_tags.allow_nan = False
        # Predictions use only the target's columns (half of X under the
        # default topology), so training accuracy on the checks' toy data
        # can be far below a model that sees every column.
        tags.classifier_tags.poor_score = True
        return tags

    # -- fit --------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, overlap=None):
        """Run the training protocol between the source and the target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Both parties' columns; NaN in all of a party's columns where it
            does not hold the row. With a party ``runtime``: this party's
            rows and columns only.
        y : array-like of shape (n_samples,)
            The source's labels; -1 for unlabelled rows (None at the target
            of a deployment).
        overlap : array-like of int, default=None
            With a party ``runtime`` only: the positions in ``X`` of the rows
            both parties hold, in the order both agreed on (e.g. from
            :func:`skfed.align_samples`). Simulated, the NaN pattern gives it.

        Returns
        -------
        self
        """
        if party_of(self.runtime) is not None:
            return self._fit_party(X, y, overlap)
        if overlap is not None:
            raise ValueError("overlap= is for one party per process (a runtime with a "
                             "party); simulated, the NaN pattern gives the overlap")
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64,
                             y_numeric=False)
        who = type(self).__name__
        self._hidden(1)                      # bad sizes fail before anything else
        topology, src, tgt, columns = _split_parties(
            self.topology, getattr(self, "feature_names_in_", None), X.shape[1], who)
        held_a = _presence(X, columns[src], src)
        held_b = _presence(X, columns[tgt], tgt)
        if not (held_a | held_b).all():
            rows = np.flatnonzero(~(held_a | held_b))[:5].tolist()
            raise ValueError(f"rows {rows} are held by neither party (all NaN)")
        overlap = held_a & held_b
        if not overlap.any():
            raise ValueError(
                f"no overlap rows: no row is held by both {src!r} and {tgt!r}; transfer "
                "learning needs some shared rows to align the representations"
            )
        labelled = ~_unlabelled(y)
        src_lab = labelled & held_a
        if not src_lab.any():
            if (labelled & held_b).any():
                raise ValueError(
                    f"labels are only on rows the target {tgt!r} holds; the labels must "
                    f"be the source's ({src!r}, the topology's label_party)"
                )
            raise ValueError(f"the source {src!r} has no labelled rows (y = -1 everywhere)")
        classes, K, Y = _source_targets(y[src_lab])
        if self.encryption is not None:
            check_key_size(self.key_size)
        n_overlap = int(overlap.sum())
        hidden = self._hidden(n_overlap, [len(c) for c in columns.values()])
        self.classes_ = classes
        seeds = _seeds(self.random_state)
        # Hyper-parameters both parties agree on; the batch seed is the only
        # shared randomness. Each party gets only its own network seed below.
        cfg = self._config(src, tgt, hidden, n_overlap, seeds[0])
        batch_size = cfg["batch_size"]
        rows_a, rows_b = np.flatnonzero(held_a), np.flatnonzero(held_b)
        X_a, X_b = X[np.ix_(rows_a, columns[src])], X[np.ix_(rows_b, columns[tgt])]
        seed_a = _network_seed(seeds[1], src, X_a)
        seed_b = _network_seed(seeds[2], tgt, X_b)
        for party, Xp, held, seed in ((src, X_a, held_a, seed_a), (tgt, X_b, held_b, seed_b)):
            rows_p = np.flatnonzero(held)
            _check_fast_inputs(Xp[np.isin(rows_p, np.flatnonzero(overlap))], cfg, seed, party)
        ov = np.flatnonzero(overlap)  # the order both parties agree on
        pos_a = np.searchsorted(rows_a, ov)
        pos_b = np.searchsorted(rows_b, ov)
        lab_a = np.searchsorted(rows_a, np.flatnonzero(src_lab))
        # Refuse, before any message, batches in which one party's gradient
        # would determine the other's representations (the roles check again).
        roles.check_batches(
            src_lab[ov], batch_size, K, cfg["representation_dim"],
            roles.n_parameters(len(columns[src]), hidden, cfg["representation_dim"],
                               cfg["train_hidden"]),
            roles.n_parameters(len(columns[tgt]), hidden, cfg["representation_dim"],
                               cfg["train_hidden"]),
            src, tgt)
        fns = {
            src: partial(roles.source, X=X_a.copy(),
                         labelled=lab_a, Y=Y, overlap=pos_a,
                         cfg={**cfg, "network_seed": seed_a},
                         progress=FitProgress(self, total=int(self.max_iter),
                                              unit="iteration", verbose=self.verbose)),
            tgt: partial(roles.target, X=X_b.copy(),
                         overlap=pos_b, cfg={**cfg, "network_seed": seed_b}),
        }
        results, transcript = self._runtime().run(fns)
        self.topology_ = topology
        self._parties = (src, tgt, columns)
        self._cfg = cfg
        self.source_model_ = {k: results[src][k] for k in ("coefs", "intercepts", "phi")}
        self.target_model_ = {k: results[tgt][k] for k in ("coefs", "intercepts")}
        self.loss_curve_ = list(results[src]["loss_curve"])
        self.n_iter_ = int(results[tgt]["n_iter"])
        self.n_overlap_ = n_overlap
        self.transcript_ = transcript
        return self

    def _runtime(self):
        return _make_runtime() if self.runtime is None else self.runtime

    def _hidden(self, n_overlap, n_features=(1,)):
        """The hidden layer sizes; "auto" from public sizes (see the docstring)."""
        if isinstance(self.hidden_layer_sizes, str):
            if self.train_hidden_layers:
                return [16]
            return _auto_hidden(n_overlap, self.batch_size, n_features)
        hidden = np.asarray(self.hidden_layer_sizes, dtype=int).ravel().tolist() \
            if np.size(self.hidden_layer_sizes) else []
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive, got {self.hidden_layer_sizes}")
        return hidden

    def _config(self, src, tgt, hidden, n_overlap, batch_seed):
        batch_size = None if self.batch_size == "auto" else int(self.batch_size)
        if batch_size is not None and batch_size > n_overlap:
            batch_size = None
        return {
            "source_name": src, "target_name": tgt,
            "hidden_layer_sizes": hidden, "activation": self.activation,
            "train_hidden": bool(self.train_hidden_layers),
            "representation_dim": int(self.representation_dim),
            # The alignment term is a mean over the d dimensions too, so that
            # its weight against the classification term (whose scores are
            # one d-dimensional product) does not grow with d; the roles' gamma
            # weighs the sum over dimensions.
            "gamma": float(self.gamma) / int(self.representation_dim),
            "source_weight": float(self.source_weight),
            # The L2 penalty per overlap row, as scikit-learn's MLP and its
            # logistic regression (C) weigh it against a sum of row losses:
            # the other terms are means over the overlap, so a fixed penalty
            # would weigh as much against 2000 rows' evidence as against 50's.
            "alpha": float(self.alpha) / n_overlap, "solver": self.solver,
            "learning_rate_init": float(self.learning_rate_init),
            "momentum": float(self.momentum), "max_iter": int(self.max_iter),
            "tol": float(self.tol), "n_iter_no_change": int(self.n_iter_no_change),
            "batch_size": batch_size, "batch_seed": int(batch_seed),
            "encryption": self.encryption, "key_size": int(self.key_size),
            "n_jobs": self.n_jobs, "verbose": int(self.verbose),
        }

    # -- one party per process ------------------------------------------------------
    def _fit_party(self, X, y, overlap):
        """Fit as one party of a deployment (``runtime.party`` is not None)."""
        me, topology = self.runtime.party, self.topology
        if topology is None:
            raise ValueError("with one party per process, pass a VerticalTopology naming "
                             "the source (label_party) and the target")
        topology.validate()
        if len(topology.parties) != 2:
            raise ValueError(f"{type(self).__name__} needs exactly two parties, got "
                             f"{list(topology.parties)}")
        src = topology.label_party
        (tgt,) = [p for p in topology.parties if p != src]
        if me not in (src, tgt) or set(self.runtime.parties) != {src, tgt}:
            raise ValueError(f"the runtime ({me!r} of {sorted(self.runtime.parties)}) does not "
                             f"match the topology's parties {sorted([src, tgt])}")
        self._hidden(1)
        if self.encryption is not None:
            check_key_size(self.key_size)
        X = validate_data(self, X, dtype=np.float64)
        cols = list(topology.parties[me])
        if X.shape[1] != len(cols):
            raise ValueError(f"party {me!r} passed {X.shape[1]} column(s) but the topology "
                             f"gives it {len(cols)}: {cols}")
        if overlap is None:
            raise ValueError("pass overlap=: the positions of the rows both parties hold, "
                             "in the agreed order (e.g. from skfed.align_samples)")
        overlap = np.asarray(overlap)
        if (overlap.ndim != 1 or not len(overlap) or overlap.dtype.kind not in "iu"
                or overlap.min() < 0 or overlap.max() >= len(X)
                or len(np.unique(overlap)) != len(overlap)):
            raise ValueError(f"overlap must be distinct row positions in [0, {len(X)}), "
                             "at least one")
        hidden = self._hidden(len(overlap), [len(c) for c in topology.parties.values()])
        seeds = _seeds(self.random_state)
        cfg = self._config(src, tgt, hidden, len(overlap), seeds[0])
        seed = _network_seed(seeds[1] if me == src else seeds[2], me, X)
        _check_fast_inputs(X[overlap], cfg, seed, me)
        params = setup_params(cfg, topology)
        d = cfg["representation_dim"]
        n_params = {p: roles.n_parameters(len(topology.parties[p]), hidden, d,
                                          cfg["train_hidden"]) for p in (src, tgt)}
        if me == src:
            if y is None:
                raise ValueError(f"the source {me!r} passes its labels y (-1 if unlabelled)")
            y = np.asarray(y)
            if y.shape != (len(X),):
                raise ValueError(f"y has shape {y.shape}, expected ({len(X)},)")
            labelled = ~_unlabelled(y)
            lab = np.flatnonzero(labelled)
            if not len(lab):
                raise ValueError(f"the source {me!r} has no labelled rows (y = -1 everywhere)")
            classes, K, Y = _source_targets(y[lab])
            # Refuse, before any message, batches the roles would refuse.
            roles.check_batches(labelled[overlap], cfg["batch_size"], K, d, n_params[src],
                                n_params[tgt], src, tgt)
            role = partial(source_party, X=X, labelled=lab, Y=Y, overlap=overlap,
                           cfg={**cfg, "network_seed": seed}, params=params,
                           classes=classes.tolist(),
                           progress=FitProgress(self, total=int(self.max_iter),
                                                unit="iteration", verbose=self.verbose))
        else:
            if y is not None:
                raise ValueError(f"{me!r} is the target; only the source {src!r} passes y")
            role = partial(target_party, X=X, overlap=overlap,
                           cfg={**cfg, "network_seed": seed}, params=params)
        results, transcript = self.runtime.run({me: role})
        out = results[me]
        self.topology_ = topology
        self._parties = (src, tgt, {me: np.arange(X.shape[1])})
        self._cfg = cfg
        self.transcript_ = transcript
        self.n_overlap_ = len(overlap)
        if me == src:
            self.classes_ = classes
            self.source_model_ = {k: out[k] for k in ("coefs", "intercepts", "phi")}
            self.loss_curve_ = list(out["loss_curve"])
            self.n_iter_ = len(self.loss_curve_)
        else:
            self.classes_ = np.asarray(out["classes"])
            self.target_model_ = {k: out[k] for k in ("coefs", "intercepts")}
            self.n_iter_ = int(out["n_iter"])
        return self

    def _scores_party(self, X):
        """Prediction as one party: the target gets its scores, the source serves (None)."""
        check_is_fitted(self)
        me, src = self.runtime.party, self._parties[0]
        if me == src:
            if X is not None:
                raise ValueError(f"the source {me!r} serves the target's predictions: call "
                                 "predict(None) while the target predicts its rows")
        elif X is None:
            raise ValueError(f"the target {me!r} predicts its own rows: pass them (the "
                             "source calls predict(None) to serve)")
        if me == src:
            role = partial(roles.source_predict, phi=self.source_model_["phi"], cfg=self._cfg)
            self.runtime.run({me: role})
            return None
        X = validate_data(self, X, reset=False, dtype=np.float64)
        role = partial(roles.target_predict, X=X, model=self.target_model_, cfg=self._cfg)
        return self.runtime.run({me: role})[0][me]

    # -- prediction ---------------------------------------------------------------
    def decision_function(self, X):
        """Scores ``Phi^A u^B`` of the target's rows, computed by the protocol.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The target's columns must be present; the source's may be NaN.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            With a party ``runtime``: at the target; the source passes
            ``X=None``, serves the protocol and gets None.
        """
        if party_of(self.runtime) is not None:
            S = self._scores_party(X)
            return None if S is None else (S[:, 0] if S.shape[1] == 1 else S)
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan",
                          dtype=np.float64)
        src, tgt, columns = self._parties
        Xb = X[:, columns[tgt]]
        if np.isnan(Xb).any():
            rows = np.flatnonzero(np.isnan(Xb).any(axis=1))[:5].tolist()
            raise ValueError(
                f"prediction is for the target {tgt!r}'s rows: its columns have NaN in "
                f"rows {rows}"
            )
        S, _ = self._collaborative_scores(Xb)
        return S[:, 0] if S.shape[1] == 1 else S

    def _collaborative_scores(self, Xb):
        """Run the prediction protocol on the target's columns ``Xb``.

        Returns the scores (n_samples, n_outputs) and the transcript of the
        run, so a caller can audit what crossed (predict itself keeps no state).
        """
        src, tgt, _ = self._parties
        cfg = self._cfg
        fns = {
            src: partial(roles.source_predict, phi=self.source_model_["phi"], cfg=cfg),
            tgt: partial(roles.target_predict, X=Xb.copy(), model=self.target_model_,
                         cfg=cfg),
        }
        results, transcript = self._runtime().run(fns)
        return results[tgt], transcript

    def predict_proba(self, X):
        """Class probabilities: the logistic of the score (one-vs-rest normalised).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        S = self.decision_function(X)
        if S is None:
            return None
        if S.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-np.clip(S, -500, 500)))
            return np.column_stack([1 - p, p])
        P = 1.0 / (1.0 + np.exp(-np.clip(S, -500, 500)))
        return P / P.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted class of each of the target's rows."""
        S = self.decision_function(X)
        if S is None:
            return None
        idx = (S > 0).astype(int) if S.ndim == 1 else S.argmax(axis=1)
        return self.classes_[idx]

    # -- references ------------------------------------------------------------------
    def make_centralised_twin(self, reference="target"):
        """The reference a federation is measured against (unfitted).

        Parameters
        ----------
        reference : {"target", "joined"}, default="target"
            ``"target"``: "B alone", a logistic regression on the target's
            columns of the labelled overlap rows (what B could fit if A only
            shared the overlap's labels). ``"joined"``: a logistic regression
            on both parties' columns of the labelled overlap rows; it needs
            both parties' columns at prediction, so it is an upper reference
            for held-out overlap-like rows (``benchmarks/bench_transfer.py``
            also reports one trained on all rows with all columns).

        Returns
        -------
        OverlapBaseline
        """
        if reference not in ("target", "joined"):
            raise ValueError(f"reference must be 'target' or 'joined', got {reference!r}")
        return OverlapBaseline(self.topology, features=reference)


AUTO_MAX_WIDTH = 32


def _auto_hidden(n_overlap, batch_size, n_features):
    """The random-feature layer of ``hidden_layer_sizes="auto"``: ``[width]`` or ``[]``.

    From public sizes only (both parties compute it): the output layer's
    inputs, a party's ``p`` features plus the random features plus one, are
    at most half the smallest batch ``n_b``, so that each party's decrypted
    gradient stays well short of determining the other's representations
    (``roles.check_batches`` needs fewer than ``n_b - K`` inputs at the
    source and ``n_b`` at the target) for any number of classes
    ``K <= n_b / 2``; and at most ``AUTO_MAX_WIDTH`` random features. With
    no room left the representations are linear in the features.
    """
    n_b = n_overlap if batch_size == "auto" else min(int(batch_size), n_overlap)
    width = min(AUTO_MAX_WIDTH, n_b // 2 - max(n_features) - 1)
    return [int(width)] if width >= 1 else []


def _unlabelled(y):
    """Rows marked unlabelled: -1 (scikit-learn's semi-supervised convention),
    also as the string "-1" among string labels (as a CSV column reads)."""
    y = np.asarray(y)
    if y.dtype.kind in "iuf":
        return y == UNLABELLED
    return np.array([v == UNLABELLED or (isinstance(v, str) and v.strip() == "-1")
                     for v in y.ravel()], dtype=bool).reshape(y.shape)


def _network_seed(base, party, X_party):
    """A party's private network seed: 256 bits hashed from its base and its own rows.

    ``base`` is the party's share of ``random_state`` (an int), or None for
    128 fresh bits from :mod:`secrets`. The rows (in any order) enter so that
    a peer sharing the same integer random_state cannot rebuild this party's
    initial network, which with linear or random-feature representations
    would let it solve for statistics of this party's features from the first
    step. The whole digest is the seed (the network draws from a
    :class:`numpy.random.SeedSequence`): truncated to 31 bits, as it once
    was, a peer could try every initial network.
    """
    if base is None:
        base = secrets.randbits(128)
    rows = np.ascontiguousarray(X_party[np.lexsort(X_party.T[::-1])]) if X_party.size \
        else X_party
    h = hashlib.sha256(b"skfed-ftl-network\0" + str(party).encode() + b"\0"
                       + int(base).to_bytes(16, "little") + rows.tobytes())
    return int.from_bytes(h.digest(), "little")


def _seeds(random_state):
    """The public batch seed and each party's base for its private network seed.

    Without a ``random_state`` the bases are None (fresh entropy at each party).
    """
    if random_state is None:
        return int(np.random.RandomState().randint(np.iinfo(np.int32).max)), None, None
    rs = check_random_state(random_state)
    batch = int(rs.randint(np.iinfo(np.int32).max))
    a, b = (int.from_bytes(rs.bytes(16), "little") for _ in range(2))
    return batch, a, b


def _source_targets(y_lab):
    """Classes, number of outputs K and the (n, K) +-1 targets of labelled rows."""
    check_classification_targets(y_lab)
    classes = np.unique(y_lab)
    if len(classes) < 2:
        raise ValueError(f"the source's labelled rows contain 1 class ({classes.tolist()[0]!r}); "
                         "need at least 2 classes. y = -1 marks an unlabelled row "
                         "(scikit-learn's semi-supervised convention), so labels in "
                         "{-1, +1} leave one class: encode them as {0, 1}")
    K = 1 if len(classes) == 2 else len(classes)
    if K == 1:
        return classes, K, np.where(y_lab == classes[1], 1.0, -1.0)[:, None]
    return classes, K, np.where(y_lab[:, None] == classes[None, :], 1.0, -1.0)


def _check_fast_inputs(X_overlap, cfg, seed, party):
    """The cross-moment protocol sends the output layer's inputs of the overlap rows
    (the features, or fixed random features) encrypted below a public bound."""
    if not roles._fast_protocol(cfg):
        return
    F = roles._net(X_overlap.shape[1], cfg, seed).forward(X_overlap)[1][-2]
    if np.abs(F).max(initial=0) >= 2.0 ** roles.FEATURE_BOUND_BITS:
        what = "random features" if cfg["hidden_layer_sizes"] else "feature values"
        raise ValueError(
            f"party {party!r} has {what} of magnitude >= 2**{roles.FEATURE_BOUND_BITS}; "
            "the overlap rows travel encrypted below that bound: standardise the "
            "features (a StandardScaler in a Pipeline is column-wise: each party scales "
            "its own)")


class OverlapBaseline(ClassifierMixin, BaseEstimator):
    """Logistic regression on the labelled overlap rows, centralised.

    Parameters
    ----------
    topology : VerticalTopology, default=None
        As for :class:`FederatedTransferClassifier`.
    features : {"target", "joined"}, default="target"
        Columns to use: the target's only ("B alone") or both parties'.
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.

    Examples
    --------
    >>> import numpy as np
    >>> from skfed.transfer import OverlapBaseline
    >>> X = np.array([[0., 1.], [1., 0.], [np.nan, 1.], [2., 3.], [1., np.nan]])
    >>> OverlapBaseline().fit(X, [0, 1, 0, 1, 1]).predict([[np.nan, 0.5]]).shape
    (1,)
    """

    _parameter_constraints: dict = {
        "topology": [VerticalTopology, None],
        "features": [StrOptions({"target", "joined"})],
        "C": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, topology=None, *, features="target", C=1.0):
        self.topology = topology
        self.features = features
        self.C = C

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # NaN only in whole-party blocks (rows a party does not hold); a stray
        # NaN is an error, so the checks that sprinkle NaN do not apply.
        tags.input_tags.allow_nan = False
        tags.classifier_tags.poor_score = True
        return tags

    def _cols(self, n_features):
        _, src, tgt, columns = _split_parties(
            self.topology, getattr(self, "feature_names_in_", None), n_features,
            type(self).__name__)
        if self.features == "target":
            return columns[tgt]
        return np.sort(np.concatenate([columns[src], columns[tgt]]))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit on rows with every used column present and a label (y != -1)."""
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)
        cols = self._cols(X.shape[1])
        _, src, tgt, columns = _split_parties(
            self.topology, getattr(self, "feature_names_in_", None), X.shape[1],
            type(self).__name__)
        both = ~np.isnan(X[:, columns[src]]).any(axis=1) & \
            ~np.isnan(X[:, columns[tgt]]).any(axis=1)
        rows = both & ~_unlabelled(y)
        if len(np.unique(y[rows])) < 2:
            raise ValueError("the labelled overlap rows contain 1 class; need at least 2 "
                             "(y = -1 marks an unlabelled row: encode labels {-1, +1} "
                             "as {0, 1})")
        self.cols_ = cols
        self.estimator_ = LogisticRegression(C=self.C, max_iter=1000).fit(X[rows][:, cols],
                                                                           y[rows])
        self.classes_ = self.estimator_.classes_
        return self

    def _X(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan",
                          dtype=np.float64)
        return X[:, self.cols_]

    def decision_function(self, X):
        X = self._X(X)
        return self.estimator_.decision_function(X)

    def predict_proba(self, X):
        X = self._X(X)
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        X = self._X(X)
        return self.estimator_.predict(X)
