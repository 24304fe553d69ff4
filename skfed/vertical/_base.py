"""What the two vertical linear estimators share: validation, split, protocol run."""

import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._progress import CallbackSupportMixin, FitProgress
from ..crypto.paillier import check_key_size
from ..exceptions import FitDiverged
from ..runtime import LocalRuntime
from ..runtime.party import party_of
from ..topology import VerticalTopology
from . import roles
from ._party import arbiter_party, data_party
from ._report import EpochReport

__all__ = ["BaseVerticalLinear"]


# Below this, a column's fixed-point encoding needs more than the published
# scale's headroom (2**-30 relative to the protocol's base), see roles.publish.
_MIN_COLUMN_MAGNITUDE = 2.0**-28

def _make_runtime():
    """The runtime the vertical estimators run their roles with.

    A module-level hook rather than a parameter, so the public signature stays
    the one a scikit-learn user expects; tests replace it to keep payloads.
    """
    return LocalRuntime()


class BaseVerticalLinear(CallbackSupportMixin, BaseEstimator):
    """Common machinery; subclasses define the task and the output layout."""

    _task = None  # "linear" or "logistic"

    _parameter_constraints: dict = {
        "topology": [VerticalTopology, None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "solver": [StrOptions({"pcg", "gd", "adam"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "encryption": [StrOptions({"paillier"}), None],
        "key_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "runtime": "no_validation",
    }

    def __init__(self, topology=None, *, alpha=0.0, fit_intercept=True, solver="pcg",
                 learning_rate=0.1, max_iter=100, tol=1e-4, batch_size=None,
                 encryption="paillier", key_size=2048, n_jobs=None, random_state=None,
                 verbose=0, runtime=None):
        self.topology = topology
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.encryption = encryption
        self.key_size = key_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.runtime = runtime

    def _runtime(self):
        return _make_runtime() if self.runtime is None else self.runtime

    # -- validation and split -----------------------------------------------
    def _resolve_topology(self, n_features):
        """The topology and each party's column indices, checked before any message."""
        topology = self.topology
        if topology is None:
            if n_features < 2:
                raise ValueError(
                    f"{type(self).__name__} got 1 feature(s) (n_features = 1): the "
                    "default topology splits the columns in halves between 'guest' "
                    "and 'host' and needs at least 2; pass a VerticalTopology"
                )
            topology = VerticalTopology.halves(n_features)
        feature_names = getattr(self, "feature_names_in_", None)
        named = isinstance(topology.parties, dict) and any(
            isinstance(c, str) for cols in topology.parties.values()
            if hasattr(cols, "__iter__") and not isinstance(cols, str) for c in cols)
        if named and feature_names is None:
            raise ValueError(
                "the topology names columns, but X has no column names: pass a pandas "
                "DataFrame (in a Pipeline, call .set_output(transform='pandas') so the "
                "names survive the transformers) or use column indices"
            )
        columns = topology.resolve(feature_names=feature_names, n_features=n_features)
        if not topology.feature_parties:
            raise ValueError(
                "a vertical protocol needs at least one feature party besides the "
                f"label party {topology.label_party!r}"
            )
        return topology, columns

    def _fit_protocol(self, X, Y):
        """Validate what is left, run the training protocol, keep each party's model."""
        n_samples, n_features = X.shape
        topology, columns = self._resolve_topology(n_features)
        self._check_solver_batches()
        if self.batch_size is not None and self.batch_size > n_samples:
            raise ValueError(
                f"batch_size={self.batch_size} is larger than the number of rows "
                f"({n_samples}); use batch_size=None for full-batch training"
            )
        if self.encryption is not None:
            check_key_size(self.key_size)
        for party, cols in columns.items():
            extra = int(self.fit_intercept) if party == topology.label_party else 0
            self._check_batch_privacy(n_samples, len(cols) + extra, party)
            self._check_magnitudes(X[:, cols], party)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        hosts = tuple(topology.feature_parties)
        cfg = roles.VerticalConfig(
            task=self._task, label_party=topology.label_party, hosts=hosts,
            arbiter=topology.arbiter, n_samples=n_samples, alpha=float(self.alpha),
            fit_intercept=bool(self.fit_intercept), solver=self.solver,
            learning_rate=float(self.learning_rate), max_iter=int(self.max_iter),
            tol=None if self.tol is None else float(self.tol),
            batch_size=None if self.batch_size is None else int(self.batch_size),
            encryption=self.encryption, key_size=int(self.key_size), n_jobs=self.n_jobs,
            verbose=int(self.verbose),
        )
        guest = topology.label_party
        # Each role gets only its own columns (copies: roles share no objects).
        role_fns = {
            guest: partial(roles.guest_fit, X=X[:, columns[guest]].copy(), Y=Y.copy(),
                           cfg=cfg, seed=int(seed), progress=self._report(guest)),
            **{h: partial(roles.host_fit, X=X[:, columns[h]].copy(), cfg=cfg) for h in hosts},
            # The label party prints the progress lines; the arbiter's
            # progress object only serves scikit-learn callbacks here.
            topology.arbiter: partial(roles.arbiter_fit, cfg=cfg,
                                      progress=self._progress(X, Y, verbose=0)),
        }
        results, transcript = self._runtime().run(role_fns)

        info = results[topology.arbiter]
        W_guest = results[guest]["W"]
        if self.fit_intercept:
            W_guest, intercept = W_guest[:-1], W_guest[-1]
        else:
            intercept = np.zeros(W_guest.shape[1])
        K = W_guest.shape[1]
        coef = np.zeros((K, n_features))
        by_party = {}
        for party in (guest, *hosts):
            W = W_guest if party == guest else results[party]["W"]
            coef[:, columns[party]] = W.T
            by_party[party] = W.T.copy()
        self.topology_ = topology
        self._columns = columns
        self.transcript_ = transcript
        self.loss_curve_ = list(info["loss_curve"])
        self.n_iter_ = int(info["n_iter"])
        self._finish(info["stop_reason"], info["detail"], stacklevel=5)
        return coef, intercept, by_party

    def _check_solver_batches(self):
        if self.solver == "pcg" and self.batch_size is not None:
            raise ValueError(
                f"solver='pcg' uses all rows in every epoch; batch_size={self.batch_size} "
                "applies to solver='gd' or 'adam' (or pass batch_size=None)")

    def _finish(self, reason, detail, stacklevel):
        """Record why the fit stopped; refuse a diverged model, warn on max_iter."""
        self.stop_reason_ = reason
        name = type(self).__name__
        if reason == roles.DIVERGED:
            if self.solver == "pcg":
                cause = ("unscaled features (values too large for the protocol's "
                         "fixed-point encoding)")
                hint = ("put a StandardScaler first (it is column-wise, so each party "
                        "scales its own columns)")
            else:
                cause = "unscaled features or too large a learning rate"
                hint = (f"put a StandardScaler first (each party scales its own columns), "
                        f"lower learning_rate={self.learning_rate}, or use solver='pcg', "
                        "which needs no learning rate")
            raise FitDiverged(
                f"{name} diverged {detail or '(announced by the arbiter)'}. The likely "
                f"cause is {cause}: {hint}.")
        if reason == roles.MAX_ITER and self.tol is not None:
            what = ("the last step decreased the objective by more than"
                    if self.solver == "pcg" else "the objective still changed by more than")
            advice = ("increase max_iter or standardise the features" if self.solver == "pcg"
                      else "increase max_iter, standardise the features, or use "
                           "solver='pcg'")
            warnings.warn(
                f"{name} did not converge in max_iter={self.max_iter} epochs ({what} "
                f"tol={self.tol}); {advice}", ConvergenceWarning, stacklevel=stacklevel)

    def _report(self, name):
        """Progress lines at the label party (its own object, in its own process)."""
        return EpochReport(name, max_iter=int(self.max_iter), tol=self.tol,
                           verbose=self.verbose)

    # -- one party per process -----------------------------------------------
    def _targets(self, y):
        """The (n_samples, K) targets the label party trains on (subclasses)."""
        raise NotImplementedError

    def _keep_own_model(self, W, intercept):
        """Store this party's (K, n_own) coefficients and intercepts (subclasses)."""
        raise NotImplementedError

    def _progress(self, X=None, y=None, verbose=None):
        """Progress lines and callbacks, at the arbiter (it holds no model)."""
        return FitProgress(self, total=int(self.max_iter), unit="iteration",
                           verbose=self.verbose if verbose is None else verbose, X=X, y=y)

    def _check_batch_privacy(self, n_samples, n_columns, party):
        """Refuse mini-batches a party's own gradient would solve for.

        A party gets back its gradient ``X_p[B].T d`` for each batch ``B``:
        ``n_columns`` equations in the ``|B|`` per-row residuals. With no more
        rows than that, a host solves for the batch's labels (``d = -2y`` at the
        start) and the label party for the hosts' partial scores. Every batch,
        the last and smallest included, must have more rows than equations.
        """
        sizes = roles.batch_sizes(n_samples, self.batch_size)
        smallest = min(sizes)
        if smallest <= n_columns + 1:
            last = ""
            if sizes[-1] == smallest < sizes[0]:
                # Usually only the remainder batch is too small: say so, and which sizes fit.
                fits = [b for b in range(self.batch_size, n_samples)
                        if min(roles.batch_sizes(n_samples, b)) > n_columns + 1]
                last = (f"; it is the last batch of each epoch ({n_samples} rows = "
                        f"{len(sizes) - 1} x {self.batch_size} + {smallest})"
                        + (f", e.g. batch_size={fits[0]} leaves none that small"
                           if fits else ""))
            raise ValueError(
                f"a mini-batch of {smallest} sample(s) is too small for party {party!r}, which "
                f"holds {n_columns} column(s): its gradient would reveal the other "
                f"parties' per-row values; every batch needs more than {n_columns + 1} "
                f"rows (raise batch_size, or use batch_size=None){last}")

    def _check_magnitudes(self, X, party):
        """Tiny columns would lift the published scale and reveal their magnitude."""
        amax = np.abs(X).max(axis=0) if X.size else np.zeros(0)
        tiny = (amax > 0) & (amax < _MIN_COLUMN_MAGNITUDE)
        if tiny.any():
            raise ValueError(
                f"party {party!r} has column(s) {np.flatnonzero(tiny).tolist()} whose values "
                f"are all below {_MIN_COLUMN_MAGNITUDE:.1e} in magnitude; the encrypted "
                "gradient's scale would reveal it: rescale them (e.g. StandardScaler)")

    def _fit_party(self, X, y):
        """Fit as one party of a deployment (``runtime.party`` is not None).

        The label party passes its columns and ``y``, a feature party its
        columns, the arbiter ``None``; each keeps only its own part.
        """
        me = self.runtime.party
        topology = self.topology
        if topology is None:
            raise ValueError(
                "with one party per process, pass a VerticalTopology naming the parties "
                "(each passes only its own columns, so the halves default cannot apply)")
        topology.validate()
        guest, hosts, arbiter = (topology.label_party, tuple(topology.feature_parties),
                                 topology.arbiter)
        if not hosts:
            raise ValueError("a vertical protocol needs at least one feature party besides "
                             f"the label party {guest!r}")
        expected = {guest, *hosts, arbiter}
        if set(self.runtime.parties) != expected:
            raise ValueError(
                f"the runtime's parties {sorted(self.runtime.parties)} do not match the "
                f"topology's parties and arbiter {sorted(expected)}")
        if self.encryption is not None:
            check_key_size(self.key_size)
        self._check_solver_batches()
        Y = None
        if me == arbiter:
            if X is not None or y is not None:
                raise ValueError(f"the arbiter {me!r} holds no data: call fit(None)")
            n_samples = 0  # learnt from the data parties' set-up messages
        else:
            if me == guest:
                X, y = validate_data(self, X, y, dtype=np.float64,
                                     y_numeric=self._task == "linear")
                Y = self._targets(y)
            else:
                if y is not None:
                    raise ValueError(
                        f"{me!r} is a feature party; only the label party {guest!r} "
                        "passes y")
                X = validate_data(self, X, dtype=np.float64)
            self._check_own_columns(topology, me, X)
            n_samples = X.shape[0]
            if self.batch_size is not None and self.batch_size > n_samples:
                raise ValueError(
                    f"batch_size={self.batch_size} is larger than the number of rows "
                    f"({n_samples}); use batch_size=None for full-batch training")
            self._check_batch_privacy(
                n_samples, X.shape[1] + int(me == guest and self.fit_intercept), me)
            self._check_magnitudes(X, me)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        cfg = roles.VerticalConfig(
            task=self._task, label_party=guest, hosts=hosts, arbiter=arbiter,
            n_samples=n_samples, alpha=float(self.alpha),
            fit_intercept=bool(self.fit_intercept), solver=self.solver,
            learning_rate=float(self.learning_rate), max_iter=int(self.max_iter),
            tol=None if self.tol is None else float(self.tol),
            batch_size=None if self.batch_size is None else int(self.batch_size),
            encryption=self.encryption, key_size=int(self.key_size), n_jobs=self.n_jobs,
            verbose=int(self.verbose),
        )
        if me == arbiter:
            role = partial(arbiter_party, cfg=cfg, progress=self._progress())
        elif me == guest:
            role = partial(data_party, role=partial(roles.guest_fit, X=X, Y=Y, cfg=cfg,
                                                    seed=int(seed), progress=self._report(me)),
                           cfg=cfg)
        else:
            role = partial(data_party, role=partial(roles.host_fit, X=X, cfg=cfg), cfg=cfg)
        results, transcript = self.runtime.run({me: role})
        out = results[me]
        self.topology_ = topology
        self.transcript_ = transcript
        if me == arbiter:
            self.loss_curve_ = list(out["loss_curve"])
            self.n_iter_ = int(out["n_iter"])
            self._finish(out["stop_reason"], out["detail"], stacklevel=4)
            return self
        # A data party knows how many epochs ran from the arbiter's stop flags.
        self.n_iter_ = len(transcript.filter(sender=arbiter, receiver=me, tag="stop"))
        self._finish(out["stop_reason"], "", stacklevel=4)
        W = out["W"]
        intercept = None
        if me == guest and self.fit_intercept:
            W, intercept = W[:-1], W[-1]
        elif me == guest:
            intercept = np.zeros(W.shape[1])
        self._keep_own_model(W.T.copy(), intercept)
        return self

    @staticmethod
    def _check_own_columns(topology, me, X):
        cols = list(topology.parties[me])
        if X.shape[1] != len(cols):
            raise ValueError(
                f"party {me!r} passed {X.shape[1]} column(s) but the topology gives it "
                f"{len(cols)}: {cols}")

    def _validate_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False)

    def _scores(self, X):
        """Collaborative prediction: hosts send partial scores, the label party adds them.

        Returns the (n_samples, K) scores assembled at the label party.
        """
        if party_of(self.runtime) is not None:
            return self._scores_party(X)
        X = self._validate_X_predict(X)
        topology, columns = self.topology_, self._columns
        guest, hosts = topology.label_party, tuple(topology.feature_parties)
        coef_by_party = self._coef_matrices()
        role_fns = {
            guest: partial(roles.guest_predict, X=X[:, columns[guest]].copy(),
                           W=coef_by_party[guest], hosts=hosts,
                           fit_intercept=self.fit_intercept),
            **{h: partial(roles.host_predict, X=X[:, columns[h]].copy(),
                          W=coef_by_party[h], label_party=guest) for h in hosts},
        }
        results, transcript = self._runtime().run(role_fns)
        self._record_prediction(transcript)
        return results[guest]

    def _scores_party(self, X):
        """Collaborative prediction as one party: the label party gets the scores,
        a feature party sends its partial scores and gets None."""
        check_is_fitted(self)
        me, topology = self.runtime.party, self.topology_
        guest, hosts = topology.label_party, tuple(topology.feature_parties)
        if me not in (guest, *hosts):
            raise ValueError(f"{me!r} holds no model; predictions are made by the label "
                             f"party {guest!r} with the feature parties")
        X = self._validate_X_predict(X)
        W = self._coef_matrices()[me]
        if me == guest:
            role = partial(roles.guest_predict, X=X, W=W, hosts=hosts,
                           fit_intercept=self.fit_intercept)
        else:
            role = partial(roles.host_predict, X=X, W=W, label_party=guest)
        results, transcript = self.runtime.run({me: role})
        self._record_prediction(transcript)
        return results[me]

    def _record_prediction(self, transcript):
        # The partial scores leave their parties too: record them with the fit's.
        if hasattr(self, "transcript_"):
            self.transcript_.extend(transcript)

    def _coef_matrices(self):
        """Each party's weights as the (n_own_features [+ 1], K) matrix its role uses."""
        out = {}
        guest = self.topology_.label_party
        # A feature party of a deployment holds no intercept.
        intercept = np.atleast_1d(np.asarray(getattr(self, "intercept_", 0.0),
                                             dtype=np.float64))
        for party, coef in self.coef_by_party_.items():
            W = np.atleast_2d(np.asarray(coef, dtype=np.float64)).T
            if party == guest and self.fit_intercept:
                W = np.vstack([W, intercept[None, :]])
            out[party] = W
        return out

    def _skfed_expected_failed_checks(self):
        return {}
