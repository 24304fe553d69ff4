"""Vertical federated learning: parties share rows (customers), not columns."""

from .alignment import align_dataframes, align_samples
from .linear import VerticalLinearRegression
from .logistic import VerticalLogisticRegression

__all__ = [
    "VerticalLinearRegression",
    "VerticalLogisticRegression",
    "align_dataframes",
    "align_samples",
]
