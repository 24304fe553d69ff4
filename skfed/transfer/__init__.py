"""Federated transfer learning: a labelled source helps a target with little overlap."""

from .estimator import FederatedTransferClassifier, OverlapBaseline

__all__ = ["FederatedTransferClassifier", "OverlapBaseline"]
