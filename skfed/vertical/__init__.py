"""Vertical federated learning: parties share rows (customers), not columns."""

from .alignment import align_dataframes, align_samples
from .boosting import VerticalGradientBoostingClassifier, VerticalGradientBoostingRegressor
from .linear import VerticalLinearRegression
from .logistic import VerticalLogisticRegression

__all__ = [
    "VerticalGradientBoostingClassifier",
    "VerticalGradientBoostingRegressor",
    "VerticalLinearRegression",
    "VerticalLogisticRegression",
    "align_dataframes",
    "align_samples",
]
