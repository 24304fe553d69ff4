"""Deployment files: who the parties are, where they listen, which estimator.

One file describes a federation and is the same on every machine (it holds
no secrets: only paths to each party's own key, which exist on that party's
machine alone). TOML is the format (comments help the humans who must agree
on it; ``tomllib`` is in the standard library from Python 3.11, ``tomli``
on 3.10); a ``.json`` file with the same structure works too.

.. code-block:: toml

    estimator = "VerticalLinearRegression"   # an estimator of skfed

    [params]            # hyper-parameters every party agreed on
    learning_rate = 0.5
    max_iter = 30
    tol = "None"        # TOML has no null: the string "None" means None

    [topology]
    label_party = "bank"     # vertical: who holds y
    arbiter = "arbiter"      # vertical: the key holder (default "arbiter")
    target = "defaulted"     # CSV column with y (for `python -m skfed party`)
    id_column = "customer"   # CSV column to align on (optional)

    [transport]
    cafile = "pki/ca.pem"    # the CA every party trusts
    timeout = 600            # seconds to wait for one message
    connect_timeout = 120    # seconds a peer may be unreachable
    # max_message_bytes = 268435456   # largest message (default 256 MiB)
    # max_peer_bytes = 1073741824     # bytes held per sender (default 1 GiB)
    # insecure = true        # plaintext, for local experiments only (a boolean,
    #                        # not a string; a warning is logged whenever TLS is off)

    [parties.arbiter]
    address = "arbiter.example.org:50050"
    certfile = "pki/arbiter.pem"
    keyfile = "pki/arbiter.key"

    [parties.bank]
    address = "bank.example.org:50051"
    certfile = "pki/bank.pem"
    keyfile = "pki/bank.key"
    columns = ["age", "income"]   # vertical: its feature columns (names or
                                  # indices in its own CSV; other parties may
                                  # use the same names: the topology calls
                                  # them bank__age, bank__income)

Relative paths are relative to the file. For horizontal estimators the
coordinating party must be called ``server`` and every other party is a
client; the federated scalers (``FederatedStandardScaler``,
``FederatedMinMaxScaler``) deploy the same way and need no ``target`` (when
given, that column is left out of the features).
``FederatedTransferClassifier`` has two parties and no coordinator:
``label_party`` is the source, and ``id_column`` (required) names the
record IDs whose intersection is the overlap.
"""

import json
import os

__all__ = ["Deployment"]


def _load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if str(path).endswith(".json"):
        return json.loads(raw)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(raw.decode("utf-8"))


def _boolean(table, key, default):
    # bool("false") is True: a quoted "false" would silently turn TLS off.
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"[transport] {key} must be a boolean (true or false, unquoted), "
                         f"got {value!r}")
    return value


class Deployment:
    """A parsed deployment file; builds each party's runtime, topology and estimator.

    Parameters
    ----------
    config : dict
        The file's content (see the module docstring).
    base_dir : str, default="."
        Directory relative paths are resolved against.

    Examples
    --------
    >>> from skfed.deploy import Deployment
    >>> dep = Deployment({
    ...     "estimator": "VerticalLinearRegression", "params": {"max_iter": 5},
    ...     "topology": {"label_party": "bank"}, "transport": {"insecure": True},
    ...     "parties": {"arbiter": {"address": "127.0.0.1:50050"},
    ...                 "bank": {"address": "127.0.0.1:50051", "columns": [0, 1]},
    ...                 "shop": {"address": "127.0.0.1:50052", "columns": [2]}}})
    >>> est = dep.estimator("shop")
    >>> est.max_iter, est.runtime.party, est.topology.label_party
    (5, 'shop', 'bank')
    """

    def __init__(self, config, base_dir="."):
        if not isinstance(config, dict):
            raise ValueError("a deployment file must hold a table/object")
        self.config = config
        self.base_dir = os.fspath(base_dir)
        parties = config.get("parties")
        if not isinstance(parties, dict) or len(parties) < 2:
            raise ValueError("the deployment file needs a [parties.NAME] table per party "
                             "(at least two)")
        for name, entry in parties.items():
            if not isinstance(entry, dict) or "address" not in entry:
                raise ValueError(f"party {name!r} needs an address = 'host:port'")
        self.estimator_class  # noqa: B018 - fail early on an unknown estimator

    @classmethod
    def from_file(cls, path):
        """Read a TOML (or ``.json``) deployment file."""
        return cls(_load(path), base_dir=os.path.dirname(os.path.abspath(path)))

    # -- pieces -------------------------------------------------------------------
    @property
    def parties(self):
        return list(self.config["parties"])

    @property
    def estimator_class(self):
        import skfed

        name = self.config.get("estimator")
        cls = getattr(skfed, name, None) if isinstance(name, str) else None
        if cls is None or not isinstance(cls, type):
            raise ValueError(f"estimator must name an estimator of skfed, got {name!r}")
        return cls

    @property
    def family(self):
        from ..horizontal.boosting import _BaseFederatedBoosting
        from ..horizontal.scaling import _BaseFederatedScaler
        from ..horizontal.sgd import _BaseFederatedSGD
        from ..transfer.estimator import FederatedTransferClassifier
        from ..vertical._base import BaseVerticalLinear
        from ..vertical.boosting import _BaseVerticalBoosting

        cls = self.estimator_class
        if issubclass(cls, (_BaseFederatedSGD, _BaseFederatedBoosting, _BaseFederatedScaler)):
            return "horizontal"
        if issubclass(cls, BaseVerticalLinear):
            return "vertical"
        if issubclass(cls, _BaseVerticalBoosting):
            return "boosting"
        if issubclass(cls, FederatedTransferClassifier):
            return "transfer"
        raise ValueError(f"{cls.__name__} cannot run one party per process yet")

    @property
    def section(self):
        return dict(self.config.get("topology", {}))

    def _path(self, value):
        if value is None:
            return None
        return value if os.path.isabs(value) else os.path.join(self.base_dir, value)

    def data_parties(self):
        """The parties that hold data (not the server or the arbiter)."""
        return [p for p in self.parties if p != self.coordinator()]

    def coordinator(self):
        """The party that holds no data (None for transfer learning)."""
        if self.family == "horizontal":
            return "server"
        if self.family in ("transfer", "boosting"):  # no data-less party
            return None
        return self.section.get("arbiter", "arbiter")

    def runtime(self, party, **overrides):
        """This party's :class:`~skfed.runtime.grpc.GrpcRuntime`."""
        from ..runtime.grpc import GrpcRuntime

        if party not in self.config["parties"]:
            raise ValueError(f"party {party!r} is not in the deployment file "
                             f"(parties: {self.parties})")
        transport = dict(self.config.get("transport", {}))
        entry = self.config["parties"][party]
        kwargs = {
            "addresses": {p: e["address"] for p, e in self.config["parties"].items()},
            "certfile": self._path(entry.get("certfile")),
            "keyfile": self._path(entry.get("keyfile")),
            "cafile": self._path(transport.get("cafile")),
            "insecure": _boolean(transport, "insecure", False),
            "listen": entry.get("listen"),
        }
        for key in ("timeout", "connect_timeout"):
            if key in transport:
                kwargs[key] = float(transport[key])
        for key in ("max_message_bytes", "max_peer_bytes"):
            if key in transport:
                value = transport[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"[transport] {key} must be an integer number of bytes, "
                                     f"got {value!r}")
                kwargs[key] = value
        kwargs.update(overrides)
        return GrpcRuntime(party, **kwargs)

    def topology(self):
        """The topology every party builds from the file."""
        from ..topology import HorizontalTopology, VerticalTopology

        if self.family == "horizontal":
            if "server" not in self.config["parties"]:
                raise ValueError("a horizontal deployment needs a party called 'server'")
            clients = self.data_parties()
            return HorizontalTopology(n_parties=len(clients), party_names=clients)
        arbiter = self.coordinator()
        if arbiter is not None and arbiter not in self.config["parties"]:
            raise ValueError(f"the arbiter {arbiter!r} has no [parties.{arbiter}] entry")
        columns = {}
        for p in self.data_parties():
            cols = self.config["parties"][p].get("columns")
            if not isinstance(cols, list) or not cols:
                raise ValueError(f"party {p!r} needs columns = [...] (its feature columns)")
            if len(set(map(str, cols))) != len(cols):
                raise ValueError(f"party {p!r} lists a column twice: {cols}")
            # Each party's columns live in its own CSV: names (or indices) may
            # repeat across parties, so the topology names them party__column.
            columns[p] = [f"{p}__{c}" for c in cols]
        label = self.section.get("label_party")
        if arbiter is None:
            return VerticalTopology(columns, label_party=label).validate()
        return VerticalTopology(columns, label_party=label, arbiter=arbiter).validate()

    def estimator(self, party, **runtime_overrides):
        """The estimator ``party`` fits: agreed parameters, topology, its runtime."""
        # TOML has no null: the string "None" stands for Python's None.
        params = {k: None if v == "None" else v
                  for k, v in self.config.get("params", {}).items()}
        return self.estimator_class(topology=self.topology(),
                                    runtime=self.runtime(party, **runtime_overrides),
                                    **params)
