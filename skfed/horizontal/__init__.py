"""Horizontal federated learning: clients share features, hold different rows."""

from .scaling import FederatedMinMaxScaler, FederatedStandardScaler
from .sgd import FederatedSGDClassifier, FederatedSGDRegressor

__all__ = ["FederatedSGDClassifier", "FederatedSGDRegressor", "FederatedStandardScaler",
           "FederatedMinMaxScaler"]
