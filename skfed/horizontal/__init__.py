"""Horizontal federated learning: clients share features, hold different rows."""

from .sgd import FederatedSGDClassifier, FederatedSGDRegressor

__all__ = ["FederatedSGDClassifier", "FederatedSGDRegressor"]
