"""Federated preprocessing: scalers whose statistics come from every client's rows.

:class:`FederatedStandardScaler` and :class:`FederatedMinMaxScaler` are the
federated twins of scikit-learn's scalers: fitted by secure aggregation over
the clients of a :class:`~skfed.HorizontalTopology`, they equal
``StandardScaler`` and ``MinMaxScaler`` fitted on the pooled rows, and they
compose with the horizontal estimators in a ``Pipeline``::

    make_pipeline(FederatedStandardScaler(topo), FederatedSGDClassifier(topology=topo))

See :ref:`preprocessing`.
"""

from .horizontal.scaling import FederatedMinMaxScaler, FederatedStandardScaler

__all__ = ["FederatedStandardScaler", "FederatedMinMaxScaler"]
