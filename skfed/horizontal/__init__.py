"""Horizontal federated learning: clients share features, hold different rows."""

from .boosting import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
)
from .scaling import FederatedMinMaxScaler, FederatedStandardScaler
from .sgd import FederatedSGDClassifier, FederatedSGDRegressor

__all__ = ["FederatedSGDClassifier", "FederatedSGDRegressor",
           "FederatedHistGradientBoostingClassifier", "FederatedHistGradientBoostingRegressor",
           "FederatedStandardScaler", "FederatedMinMaxScaler"]
