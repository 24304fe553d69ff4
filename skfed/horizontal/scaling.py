"""FederatedStandardScaler and FederatedMinMaxScaler: scaling statistics by secure sums."""

import numbers
import time
from functools import partial

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

from ..runtime import LocalRuntime
from ..runtime.party import party_of, public_params
from ..topology import HorizontalTopology, split_by_party
from ._party import gather_setups
from ._scaling_roles import (
    MAX_ROWS,
    minmax_client,
    minmax_server,
    standard_client,
    standard_server,
)
from .dropout import check_min_clients

__all__ = ["FederatedStandardScaler", "FederatedMinMaxScaler"]

_SERVER = "server"


def _is_constant_feature(var, mean, n_samples):
    """scikit-learn's test for a constant feature (see ``StandardScaler``).

    A variance within the rounding error of computing it means a constant
    feature; it gets a scale of 1, as in scikit-learn.
    """
    eps = np.finfo(np.float64).eps
    upper_bound = n_samples * eps * var + (n_samples * mean * eps) ** 2
    return var <= upper_bound


def _handle_zeros_in_scale(scale, constant_mask=None):
    scale = np.array(scale, dtype=np.float64, copy=True)
    if constant_mask is None:
        constant_mask = scale < 10 * np.finfo(scale.dtype).eps
    scale[constant_mask] = 1.0
    return scale


class _BaseFederatedScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Validation, the split by party and running the roles; subclasses publish."""

    _parameter_constraints: dict = {
        "topology": [HorizontalTopology, None],
        "copy": ["boolean"],
        "secure_aggregation": [StrOptions({"masking"}), None],
        "min_clients": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "runtime": "no_validation",
    }
    # As FederatedSGD*: with metadata routing, Pipeline and the CV tools pass
    # the sample-aligned ``parties`` to fit without a set_fit_request call.
    __metadata_request__fit = {"parties": True}

    _client_role = _server_role = None

    def _topology(self):
        topo = (HorizontalTopology() if self.topology is None else self.topology).validate()
        if topo.by_column:
            raise ValueError(
                "a scaler cannot take the party from a column (partition="
                f"{topo.partition!r}): the next step would see the column gone; pass "
                "parties= to fit instead (see the horizontal guide)")
        return topo

    def _check_protection(self, n_clients):
        if self.secure_aggregation is not None and n_clients < 2:
            raise ValueError(
                "secure aggregation needs at least two clients: with one client the "
                "server would learn its sums; use secure_aggregation=None")
        check_min_clients(self.min_clients, n_clients, self.secure_aggregation)

    def _config(self, clients, n_features):
        return {"server": _SERVER, "clients": list(clients), "n_features": int(n_features),
                "secure_aggregation": self.secure_aggregation,
                "min_clients": None if self.min_clients is None else int(self.min_clients),
                **self._protocol_params()}

    def _validate_rows(self, X, reset):
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                             reset=reset)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, parties=None):
        """Compute the pooled statistics of all clients' rows by secure aggregation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            All clients' rows (simulation); each client's role sees only its
            own. With a runtime that runs one party: that client's rows, or
            None at the server.
        y : None
            Ignored (used only by a Dirichlet split of the topology).
        parties : array-like of shape (n_samples,), default=None
            The client that holds each row, for data already split by party
            (see :ref:`horizontal-split-by-party`). It replaces the
            topology's random split.

        Returns
        -------
        self : object
            Fitted scaler.
        """
        if party_of(self.runtime) is not None:
            if parties is not None:
                raise ValueError(
                    "with one party per process each client passes only its own rows; "
                    "parties= applies to simulations")
            result = self._fit_party(X)
        else:
            result = self._fit_simulation(X, y, parties)
        self._publish(result)
        return self

    def _fit_simulation(self, X, y, parties):
        topo = self._topology()
        X = self._validate_rows(X, reset=True)
        n_rows = X.shape[0]
        if n_rows >= MAX_ROWS:
            raise ValueError(f"exact federated scaling supports fewer than {MAX_ROWS} rows")
        if parties is not None:
            parts = split_by_party(parties, n_rows)
        else:
            if n_rows < topo.n_parties:
                raise ValueError(
                    f"n_samples={n_rows} cannot be split among {topo.n_parties} clients: "
                    "every client needs at least one row")
            parts = topo.split(X, y)
        self._check_protection(len(parts))
        empty = np.flatnonzero(np.all(np.isnan(X), axis=0))
        if empty.size:
            raise ValueError(
                f"feature(s) {empty.tolist()} hold no value at any client (all NaN); drop "
                "them before scaling")
        cfg = self._config([name for name, _ in parts], X.shape[1])
        roles = {_SERVER: partial(self._server_role, cfg=cfg)}
        for name, idx in parts:
            roles[name] = partial(self._client_role, X=X[idx], cfg=cfg)
        runtime = LocalRuntime() if self.runtime is None else self.runtime
        start = time.perf_counter()
        results, self.transcript_ = runtime.run(roles)
        self.fit_time_ = time.perf_counter() - start
        return results[_SERVER]

    def _fit_party(self, X):
        """One party of a deployment: a client passes its rows, the server None."""
        me = self.runtime.party
        topo = self.topology if self.topology is not None else HorizontalTopology()
        if topo.validate().by_column:
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
        self._check_protection(len(clients))
        start = time.perf_counter()
        if me == _SERVER:
            if X is not None:
                raise ValueError("the server holds no data: call fit(None)")
            cfg = self._config(clients, 0)
            results, self.transcript_ = self.runtime.run(
                {_SERVER: partial(_server_party, cfg=cfg, server_role=self._server_role)})
            out = results[_SERVER]
            self.n_features_in_ = out["n_features"]
            if out["feature_names"] is not None:
                self.feature_names_in_ = np.asarray(out["feature_names"], dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_  # a refit on unnamed columns
        else:
            X = self._validate_rows(X, reset=True)  # (refuses a client with no rows)
            names = getattr(self, "feature_names_in_", None)
            cfg = self._config(clients, X.shape[1])
            role = partial(_client_party, X=X, cfg=cfg, client_role=self._client_role,
                           feature_names=None if names is None else list(map(str, names)))
            results, self.transcript_ = self.runtime.run({me: role})
            out = results[me]
        self.fit_time_ = time.perf_counter() - start
        return out

    def _n_samples_seen(self, result):
        counts = np.asarray(result["counts"], dtype=np.int64)
        return int(counts[0]) if counts.min() == counts.max() else counts

    def _fitted_input(self, X, copy=None):
        """Rows to (un)scale in place: checked against the fit, copied unless told not to."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, copy=self.copy if copy is None else copy,
                             dtype=FLOAT_DTYPES, force_writeable=True,
                             ensure_all_finite="allow-nan")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


# -- party mode: a set-up exchange around the roles ------------------------------------
_PRIVATE = ("clients", "n_features")


def _public(cfg):
    return public_params({k: v for k, v in cfg.items() if k not in _PRIVATE})


def _client_party(ctx, X, cfg, client_role, feature_names):
    """A client in its own process: announce the columns, then the client role."""
    ctx.send(cfg["server"], "setup", {"n_features": int(X.shape[1]),
                                      "feature_names": feature_names,
                                      "params": _public(cfg)}, kind="plain")
    return client_role(ctx, X, cfg)


def _server_party(ctx, cfg, server_role):
    """The server in its own process: every client must hold the same columns."""
    first, _, _ = gather_setups(ctx, cfg["clients"], _public(cfg), cfg.get("min_clients"))
    out = server_role(ctx, dict(cfg, n_features=int(first["n_features"])))
    return dict(out, n_features=int(first["n_features"]),
                feature_names=first["feature_names"])


_COMMON_PARAMS = """
    secure_aggregation : {"masking"} or None, default="masking"
        How each client's statistics are protected: pairwise masks over
        Z_{2**64} (the server learns only the sums over all clients), or
        nothing (for comparison and debugging only).
    min_clients : int, default=None
        Tolerate clients dropping out (the dropout-tolerant masking of
        :ref:`dropouts`, threshold ``min_clients``): the statistics are then
        those of the clients that completed each sum. None: every client
        must answer.
    runtime : object, default=None
        Runs the roles; None means an in-process :class:`~skfed.runtime.LocalRuntime`.
        A runtime that runs one party (``runtime.party`` set, e.g.
        :class:`~skfed.runtime.grpc.GrpcRuntime`) makes ``fit`` take only
        that party's rows (None at the server); every party ends with the
        federation's statistics and transforms its own rows with them. See
        :ref:`deployment`.
"""

_COMMON_ATTRS = """
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.
    transcript_ : Transcript
        Every message of the fit, with sender, receiver, protection and size.
    fit_time_ : float
        Seconds the protocol took.
"""


class FederatedStandardScaler(_BaseFederatedScaler):
    __doc__ = f"""Standardise features with the mean and variance of all clients' rows.

    The federated twin of :class:`~sklearn.preprocessing.StandardScaler`:
    the statistics are those of the pooled rows of every client, computed by
    secure aggregation, so no client reveals its own sums or counts. They are
    exact: ``mean_`` and ``var_`` are the float64 values nearest to the pooled
    mean and variance, whatever the split (each client sums the 21-bit digits
    of its rows' exact values and squares; the secure sum of these integer
    vectors gives the pooled sums exactly; see :ref:`preprocessing`).
    Missing values are ignored in ``fit`` and kept in ``transform``, as
    scikit-learn does.

    Parameters
    ----------
    topology : HorizontalTopology, default=None
        Which client holds which rows (simulation), or the clients' names
        (one party per process). None means ``HorizontalTopology()``.
    with_mean : bool, default=True
        Centre the data.
    with_std : bool, default=True
        Scale to unit variance.
    copy : bool, default=True
        If False, try to scale in place.
{_COMMON_PARAMS}
    Attributes
    ----------
    mean_ : ndarray of shape (n_features,) or None
        Pooled mean (None when ``with_mean=False`` and ``with_std=False``).
    var_ : ndarray of shape (n_features,) or None
        Pooled population variance (None when ``with_std=False``).
    scale_ : ndarray of shape (n_features,) or None
        ``sqrt(var_)``, with 1 for constant features.
    n_samples_seen_ : int or ndarray of shape (n_features,)
        Rows seen, per feature when missing values make the counts differ.
{_COMMON_ATTRS}
    See Also
    --------
    FederatedMinMaxScaler : Scale to a range with the pooled extremes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skfed import HorizontalTopology
    >>> from skfed.preprocessing import FederatedStandardScaler
    >>> X = np.random.RandomState(0).normal(5, 3, size=(100, 2))
    >>> fed = FederatedStandardScaler(HorizontalTopology(n_parties=3)).fit(X)
    >>> pooled = StandardScaler().fit(X)
    >>> np.allclose(fed.var_, pooled.var_, rtol=1e-14, atol=0)
    True
    >>> fed.transform(X).shape
    (100, 2)
    >>> sorted({{m.kind for m in fed.transcript_.filter(tag="scaler_stats")}})
    ['masked']
    """

    _parameter_constraints: dict = {
        **_BaseFederatedScaler._parameter_constraints,
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
    }
    _client_role = staticmethod(standard_client)
    _server_role = staticmethod(standard_server)

    def __init__(self, topology=None, *, with_mean=True, with_std=True, copy=True,
                 secure_aggregation="masking", min_clients=None, runtime=None):
        self.topology = topology
        self.with_mean = with_mean
        self.with_std = with_std
        self.copy = copy
        self.secure_aggregation = secure_aggregation
        self.min_clients = min_clients
        self.runtime = runtime

    def _protocol_params(self):
        return {"with_mean": bool(self.with_mean), "with_std": bool(self.with_std)}

    def make_centralised_twin(self):
        """The scikit-learn :class:`~sklearn.preprocessing.StandardScaler` it equals
        on the pooled rows."""
        from sklearn.preprocessing import StandardScaler

        return StandardScaler(with_mean=self.with_mean, with_std=self.with_std, copy=self.copy)

    def _publish(self, result):
        self.dropouts_ = result["dropouts"] if "dropouts" in result else []
        self.n_samples_seen_ = self._n_samples_seen(result)
        if not (self.with_mean or self.with_std):
            self.mean_ = self.var_ = self.scale_ = None
            return
        self.mean_ = np.asarray(result["mean"], dtype=np.float64)
        if not self.with_std:
            self.var_ = self.scale_ = None
            return
        self.var_ = np.asarray(result["var"], dtype=np.float64)
        counts = np.asarray(result["counts"], dtype=np.float64)
        constant = _is_constant_feature(self.var_, self.mean_, counts)
        self.scale_ = _handle_zeros_in_scale(np.sqrt(self.var_), constant_mask=constant)

    def transform(self, X, copy=None):
        """Standardise with the federation's statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        copy : bool, default=None
            Copy the input X or not (None: the ``copy`` parameter).

        Returns
        -------
        X_tr : ndarray of shape (n_samples, n_features)
        """
        X = self._fitted_input(X, copy)
        if self.with_mean:
            X -= self.mean_
        if self.with_std:
            X /= self.scale_
        return X

    def inverse_transform(self, X, copy=None):
        """Undo the scaling.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        copy : bool, default=None
            Copy the input X or not (None: the ``copy`` parameter).

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        X = self._fitted_input(X, copy)
        if self.with_std:
            X *= self.scale_
        if self.with_mean:
            X += self.mean_
        return X


class FederatedMinMaxScaler(_BaseFederatedScaler):
    __doc__ = f"""Scale features to a range with the minimum and maximum of all clients' rows.

    The federated twin of :class:`~sklearn.preprocessing.MinMaxScaler`. The
    pooled extremes are found exactly by a bisection on the order-preserving
    integer image of float64: in each of 64 rounds the server publishes a
    threshold per feature and learns, by secure aggregation, how many pooled
    values lie beyond it. The server learns the pooled minimum and maximum
    and those tail counts, never a client's own extremes or counts (see
    :ref:`preprocessing`). Missing values are ignored in ``fit`` and kept in
    ``transform``.

    Parameters
    ----------
    topology : HorizontalTopology, default=None
        Which client holds which rows (simulation), or the clients' names
        (one party per process). None means ``HorizontalTopology()``.
    feature_range : tuple (min, max), default=(0, 1)
        Desired range of transformed data.
    copy : bool, default=True
        If False, try to scale in place.
    clip : bool, default=False
        Clip transformed values of held-out data to ``feature_range``.
{_COMMON_PARAMS}
    Attributes
    ----------
    min_ : ndarray of shape (n_features,)
        Per-feature adjustment for minimum: ``feature_range[0] - data_min_ * scale_``.
    scale_ : ndarray of shape (n_features,)
        Per-feature relative scaling of the data.
    data_min_ : ndarray of shape (n_features,)
        Pooled minimum.
    data_max_ : ndarray of shape (n_features,)
        Pooled maximum.
    data_range_ : ndarray of shape (n_features,)
        ``data_max_ - data_min_``.
    n_samples_seen_ : int
        Rows seen (all clients).
{_COMMON_ATTRS}
    See Also
    --------
    FederatedStandardScaler : Standardise with the pooled mean and variance.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skfed import HorizontalTopology
    >>> from skfed.preprocessing import FederatedMinMaxScaler
    >>> X = np.random.RandomState(0).normal(5, 3, size=(100, 2))
    >>> fed = FederatedMinMaxScaler(HorizontalTopology(n_parties=3)).fit(X)
    >>> bool(np.all(fed.data_max_ == MinMaxScaler().fit(X).data_max_))
    True
    """

    _parameter_constraints: dict = {
        **_BaseFederatedScaler._parameter_constraints,
        "feature_range": [tuple],
        "clip": ["boolean"],
    }
    _client_role = staticmethod(minmax_client)
    _server_role = staticmethod(minmax_server)

    def __init__(self, topology=None, *, feature_range=(0, 1), copy=True, clip=False,
                 secure_aggregation="masking", min_clients=None, runtime=None):
        self.topology = topology
        self.feature_range = feature_range
        self.copy = copy
        self.clip = clip
        self.secure_aggregation = secure_aggregation
        self.min_clients = min_clients
        self.runtime = runtime

    def _protocol_params(self):
        # not used by the protocol, but every party must scale alike: checked at set-up
        return {"feature_range": tuple(float(v) for v in self.feature_range),
                "clip": bool(self.clip)}

    def make_centralised_twin(self):
        """The scikit-learn :class:`~sklearn.preprocessing.MinMaxScaler` it equals on
        the pooled rows."""
        from sklearn.preprocessing import MinMaxScaler

        return MinMaxScaler(feature_range=self.feature_range, copy=self.copy, clip=self.clip)

    def _fit_simulation(self, X, y, parties):
        self._check_range()
        return super()._fit_simulation(X, y, parties)

    def _fit_party(self, X):
        self._check_range()
        return super()._fit_party(X)

    def _check_range(self):
        if len(self.feature_range) != 2 or self.feature_range[0] >= self.feature_range[1]:
            raise ValueError(
                "Minimum of desired feature range must be smaller than maximum. Got "
                f"{self.feature_range!r}.")

    def _publish(self, result):
        self.dropouts_ = result["dropouts"] if "dropouts" in result else []
        self.n_samples_seen_ = int(result["n_rows"])
        data_min = np.asarray(result["min"], dtype=np.float64)
        data_max = np.asarray(result["max"], dtype=np.float64)
        lo, hi = self.feature_range
        # scikit-learn's own formulas, so exact extremes give identical scaling
        data_range = data_max - data_min
        self.scale_ = (hi - lo) / _handle_zeros_in_scale(data_range)
        self.min_ = lo - data_min * self.scale_
        self.data_min_, self.data_max_, self.data_range_ = data_min, data_max, data_range

    def transform(self, X):
        """Scale with the federation's extremes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_tr : ndarray of shape (n_samples, n_features)
        """
        X = self._fitted_input(X)
        X *= self.scale_
        X += self.min_
        if self.clip:
            np.clip(X, self.feature_range[0], self.feature_range[1], out=X)
        return X

    def inverse_transform(self, X):
        """Undo the scaling.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        X = self._fitted_input(X)
        X -= self.min_
        X /= self.scale_
        return X
