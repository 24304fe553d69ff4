"""skfed: scikit-learn compatible federated learning."""

from .compare import compare_with_centralised
from .exceptions import FitDiverged
from .horizontal import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
    FederatedSGDClassifier,
    FederatedSGDRegressor,
)
from .persistence import load, save
from .preprocessing import FederatedMinMaxScaler, FederatedStandardScaler
from .topology import HorizontalTopology, VerticalTopology
from .transfer import FederatedTransferClassifier
from .vertical import (
    VerticalGradientBoostingClassifier,
    VerticalGradientBoostingRegressor,
    VerticalLinearRegression,
    VerticalLogisticRegression,
)
from .vertical.alignment import align_dataframes, align_samples

__version__ = "0.1.0.dev0"

__all__ = [
    "FederatedHistGradientBoostingClassifier",
    "FederatedHistGradientBoostingRegressor",
    "FederatedSGDClassifier",
    "FitDiverged",
    "FederatedTransferClassifier",
    "FederatedSGDRegressor",
    "FederatedStandardScaler",
    "FederatedMinMaxScaler",
    "compare_with_centralised",
    "HorizontalTopology",
    "VerticalTopology",
    "VerticalGradientBoostingClassifier",
    "VerticalGradientBoostingRegressor",
    "VerticalLinearRegression",
    "VerticalLogisticRegression",
    "align_dataframes",
    "align_samples",
    "load",
    "save",
]
