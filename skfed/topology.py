"""Who holds which rows (horizontal) or which columns (vertical).

A topology is a plain, deep-copyable, picklable description. It holds no keys
and no data, so scikit-learn can clone the estimators that take one.
"""

import numbers

import numpy as np

__all__ = ["HorizontalTopology", "VerticalTopology"]


def _check_name(name, what):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")


class HorizontalTopology:
    """Clients share the features and hold different rows.

    Parameters
    ----------
    n_parties : int, default=2
        Number of clients. Ignored when ``partition`` names a column.
    partition : {"iid", "dirichlet"} or int or str, default="iid"
        How rows are assigned to clients:

        - ``"iid"``: a random, stratified-by-nothing equal split;
        - ``"dirichlet"``: label skew, the usual non-IID benchmark: for each
          class, the shares of the clients are drawn from Dirichlet(``alpha``);
        - an int (column index) or str (column name of a DataFrame): the
          column's values name the client of each row. That column is then
          not a feature.
    alpha : float, default=1.0
        Dirichlet concentration; small values give strongly skewed clients.
    party_names : list of str, default=None
        Client names; default ``"client0"``, ``"client1"``, ...
    random_state : int, RandomState instance or None, default=None
        Seeds the split. The split is a pure function of ``(X, y,
        random_state)``, so it is reproducible inside cross-validation.

    Examples
    --------
    >>> import numpy as np
    >>> from skfed import HorizontalTopology
    >>> topo = HorizontalTopology(n_parties=3, random_state=0)
    >>> parts = topo.split(np.zeros((10, 2)))
    >>> [name for name, _ in parts], sum(len(idx) for _, idx in parts)
    (['client0', 'client1', 'client2'], 10)
    """

    def __init__(self, n_parties=2, partition="iid", alpha=1.0, party_names=None,
                 random_state=None):
        self.n_parties = n_parties
        self.partition = partition
        self.alpha = alpha
        self.party_names = party_names
        self.random_state = random_state

    def __repr__(self):
        return (f"HorizontalTopology(n_parties={self.n_parties!r}, "
                f"partition={self.partition!r}, alpha={self.alpha!r}, "
                f"party_names={self.party_names!r}, random_state={self.random_state!r})")

    def __eq__(self, other):
        return type(other) is type(self) and vars(self) == vars(other)

    __hash__ = None

    # -- validation -----------------------------------------------------------
    @property
    def by_column(self):
        """True when ``partition`` names a column that assigns the rows."""
        return not (isinstance(self.partition, str)
                    and self.partition in ("iid", "dirichlet"))

    def validate(self):
        """Check the parameters; raise ``ValueError`` on any inconsistency."""
        if self.by_column:
            if isinstance(self.partition, bool) or not isinstance(
                    self.partition, (numbers.Integral, str)):
                raise ValueError(
                    "partition must be 'iid', 'dirichlet', a column index or a "
                    f"column name; got {self.partition!r}"
                )
        else:
            if (isinstance(self.n_parties, bool)
                    or not isinstance(self.n_parties, numbers.Integral)
                    or self.n_parties < 1):
                raise ValueError(f"n_parties must be an int >= 1, got {self.n_parties!r}")
        if self.partition == "dirichlet" and not (
                isinstance(self.alpha, numbers.Real) and self.alpha > 0):
            raise ValueError(f"alpha must be a positive number, got {self.alpha!r}")
        if self.party_names is not None and not self.by_column:
            names = list(self.party_names)
            for n in names:
                _check_name(n, "party name")
            if len(set(names)) != len(names):
                raise ValueError(f"party_names must be unique, got {names}")
            if len(names) != self.n_parties:
                raise ValueError(
                    f"party_names has {len(names)} names but n_parties={self.n_parties}"
                )
        return self

    def resolve_column(self, feature_names, n_features):
        """Index of the partition column, or None when rows are split randomly."""
        if not self.by_column:
            return None
        col = self.partition
        if isinstance(col, str):
            if feature_names is None:
                raise ValueError(
                    f"partition={col!r} names a column, but X has no column names "
                    "(pass a pandas DataFrame or use a column index)"
                )
            names = list(feature_names)
            if col not in names:
                raise ValueError(f"partition column {col!r} is not among X's columns")
            return names.index(col)
        if not -n_features <= col < n_features:
            raise ValueError(
                f"partition column index {col} is out of range for {n_features} columns"
            )
        return int(col) % n_features

    def names(self, n=None):
        if self.party_names is not None:
            return [str(n) for n in self.party_names]
        return [f"client{i}" for i in range(self.n_parties if n is None else n)]

    # -- the split --------------------------------------------------------------
    def split(self, X, y=None, party_column=None):
        """Assign rows to clients.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), default=None
            Needed by ``partition="dirichlet"``.
        party_column : array-like of shape (n_samples,), default=None
            The values of the partition column, when ``partition`` names one.

        Returns
        -------
        parts : list of (str, ndarray)
            Each client's name and the sorted indices of its rows.
        """
        self.validate()
        n_samples = len(X)
        if self.by_column:
            if party_column is None:
                raise ValueError("the partition column's values are required")
            parts = split_by_party(party_column, n_samples, what="the partition column")
        else:
            k = self.n_parties
            if n_samples < k:
                raise ValueError(
                    f"cannot split {n_samples} sample(s) among {k} parties: more parties than rows"
                )
            rng = np.random.RandomState(_seed(self.random_state))
            if self.partition == "iid":
                perm = rng.permutation(n_samples)
                chunks = np.array_split(perm, k)
            else:
                if y is None:
                    raise ValueError("partition='dirichlet' needs y")
                chunks = _dirichlet_split(np.asarray(y), k, self.alpha, rng)
            parts = [(name, np.sort(c)) for name, c in zip(self.names(k), chunks)]
        for name, idx in parts:
            if len(idx) == 0:
                raise ValueError(f"party {name!r} has no rows")
        return parts


def split_by_party(parties, n_samples, what="parties"):
    """Rows grouped by the party that holds them.

    Parameters
    ----------
    parties : array-like of shape (n_samples,)
        The party of each row (any hashable labels: names or integers).
    n_samples : int
        Number of rows ``parties`` must describe.
    what : str, default="parties"
        How error messages name ``parties``.

    Returns
    -------
    parts : list of (str, ndarray)
        Each party's name (``str`` of its label) and the sorted indices of its
        rows, in the order of the sorted labels.
    """
    values = np.asarray(parties)
    if values.ndim != 1 or len(values) != n_samples:
        raise ValueError(
            f"{what} must give one party per row: expected shape ({n_samples},), "
            f"got {values.shape}")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"{what} has missing values")
    if values.dtype.kind == "O" and any(v is None or v != v for v in values):
        raise ValueError(f"{what} has missing values")
    try:
        labels = np.unique(values)
    except TypeError:
        raise ValueError(f"{what} mixes labels of different types") from None
    names = [str(v) for v in labels]
    if len(set(names)) != len(names):
        raise ValueError(f"{what} has labels that print alike ({names}); use distinct names")
    if len(labels) < 2:
        raise ValueError(
            f"{what} names a single party ({labels.tolist()}); federated learning needs "
            "at least two")
    return [(name, np.flatnonzero(values == v)) for name, v in zip(names, labels)]


def _seed(random_state):
    """A split must not consume a caller's RandomState: derive a fresh int seed."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        # Read the state without advancing the caller's generator.
        return int(random_state.get_state()[1][0])
    raise ValueError(f"random_state must be None, an int or a RandomState, got {random_state!r}")


def _dirichlet_split(y, k, alpha, rng, min_size=1, max_tries=100):
    """Label-skewed split: per class, client shares ~ Dirichlet(alpha)."""
    classes = np.unique(y)
    for _ in range(max_tries):
        chunks = [[] for _ in range(k)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(k, float(alpha)))
            cuts = (np.cumsum(shares) * len(idx)).astype(int)[:-1]
            for j, part in enumerate(np.split(idx, cuts)):
                chunks[j].extend(part.tolist())
        if min(len(c) for c in chunks) >= min_size:
            return [np.asarray(c, dtype=int) for c in chunks]
    raise ValueError(
        f"could not draw a Dirichlet(alpha={alpha}) split in which every one of {k} "
        f"parties gets a row; use fewer parties or a larger alpha"
    )


class VerticalTopology:
    """Parties share the rows (customers) and hold different columns.

    Parameters
    ----------
    parties : dict of str -> list of int or str
        Each party's columns, by index or by DataFrame column name. Every
        column of ``X`` belongs to exactly one party. Each party has its own
        namespace: independent organisations reuse names (``x0``, ``age``),
        so party ``p``'s name ``c`` is ``X``'s column ``p__c`` when there is
        one (the name :func:`~skfed.align_dataframes` gives a shared name),
        else ``c``.
    label_party : str
        The party that holds the labels (the "guest" in FATE's words).
    arbiter : str, default="arbiter"
        The third party that holds the private key in encrypted protocols.

    Examples
    --------
    >>> from skfed import VerticalTopology
    >>> topo = VerticalTopology({"bank": [0, 1], "shop": [2]}, label_party="bank")
    >>> topo.resolve(n_features=3)
    {'bank': array([0, 1]), 'shop': array([2])}

    Both parties call a column ``x0``:

    >>> topo = VerticalTopology({"bank": ["x0", "age"], "shop": ["x0"]}, label_party="bank")
    >>> topo.resolve(feature_names=["bank__x0", "age", "shop__x0"])
    {'bank': array([0, 1]), 'shop': array([2])}
    """

    def __init__(self, parties, label_party, arbiter="arbiter"):
        self.parties = parties
        self.label_party = label_party
        self.arbiter = arbiter

    def __repr__(self):
        return (f"VerticalTopology(parties={self.parties!r}, "
                f"label_party={self.label_party!r}, arbiter={self.arbiter!r})")

    def __eq__(self, other):
        return type(other) is type(self) and vars(self) == vars(other)

    __hash__ = None

    @property
    def party_names(self):
        return list(self.parties)

    @property
    def feature_parties(self):
        """Parties other than the label party (the "hosts")."""
        return [p for p in self.parties if p != self.label_party]

    def validate(self):
        """Check the parameters; raise ``ValueError`` on any inconsistency."""
        if not isinstance(self.parties, dict) or not self.parties:
            raise ValueError("parties must be a non-empty dict: party name -> columns")
        for name, cols in self.parties.items():
            _check_name(name, "party name")
            if isinstance(cols, (str, bytes)) or not hasattr(cols, "__len__"):
                raise ValueError(f"columns of party {name!r} must be a list, got {cols!r}")
            if len(cols) == 0:
                raise ValueError(f"party {name!r} has no columns")
        _check_name(self.arbiter, "arbiter")
        if self.label_party not in self.parties:
            raise ValueError(
                f"label_party {self.label_party!r} is not one of the parties "
                f"{list(self.parties)}"
            )
        if self.arbiter in self.parties:
            raise ValueError(f"arbiter name {self.arbiter!r} is also a data party")
        seen = {}
        for name, cols in self.parties.items():
            mine = set()
            for c in cols:
                key = c.item() if isinstance(c, np.generic) else c
                if key in mine:
                    raise ValueError(f"party {name!r} lists column {key!r} twice")
                mine.add(key)
                # Names live in per-party namespaces (see resolve); indices do not.
                if not isinstance(key, str) and key in seen:
                    raise ValueError(
                        f"column {key!r} is owned twice: by {seen[key]!r} and {name!r}"
                    )
                seen[key] = name
        return self

    def resolve(self, feature_names=None, n_features=None):
        """Map each party to the integer indices of its columns.

        Parameters
        ----------
        feature_names : array-like of str, default=None
            ``X``'s column names (a DataFrame's columns), needed when the
            topology names columns.
        n_features : int, default=None
            Number of columns of ``X``.

        Returns
        -------
        columns : dict of str -> ndarray of int
        """
        self.validate()
        if n_features is None:
            if feature_names is None:
                raise ValueError("need feature_names or n_features")
            n_features = len(feature_names)
        names = None if feature_names is None else [str(f) for f in feature_names]
        out, owner = {}, {}
        for party, cols in self.parties.items():
            idx = []
            for c in cols:
                if isinstance(c, str):
                    if names is None:
                        raise ValueError(
                            f"party {party!r} names column {c!r}, but X has no column "
                            "names (pass a pandas DataFrame or use column indices)"
                        )
                    if f"{party}__{c}" in names:
                        i = names.index(f"{party}__{c}")
                    elif c in names:
                        i = names.index(c)
                    else:
                        raise ValueError(f"unknown column {c!r} for party {party!r}")
                elif isinstance(c, (numbers.Integral, np.integer)) and not isinstance(c, bool):
                    if not -n_features <= c < n_features:
                        raise ValueError(
                            f"column index {c} of party {party!r} is out of range for "
                            f"{n_features} columns"
                        )
                    i = int(c) % n_features
                else:
                    raise ValueError(f"column {c!r} of party {party!r} must be an int or str")
                if i in owner:
                    hint = (f"; if each party has its own {c!r}, name X's columns "
                            f"'{owner[i]}__{c}' and '{party}__{c}' (align_dataframes "
                            "does)" if isinstance(c, str) else "")
                    raise ValueError(
                        f"column {c!r} is owned twice: by {owner[i]!r} and {party!r}{hint}"
                    )
                owner[i] = party
                idx.append(i)
            out[party] = np.asarray(idx, dtype=int)
        missing = sorted(set(range(n_features)) - set(owner))
        if missing:
            shown = [names[i] for i in missing] if names is not None else missing
            raise ValueError(f"columns {shown} belong to no party")
        return out

    @classmethod
    def halves(cls, n_features, label_party="guest", other="host"):
        """Default split: first half of the columns to ``label_party``."""
        if n_features < 2:
            raise ValueError(
                "a vertical split needs at least 2 columns (one per party), "
                f"got {n_features}"
            )
        cut = (n_features + 1) // 2
        return cls({label_party: list(range(cut)), other: list(range(cut, n_features))},
                   label_party=label_party)
