"""skfed: scikit-learn compatible federated learning."""

from .topology import HorizontalTopology, VerticalTopology

__version__ = "0.1.0.dev0"

__all__ = [
    "HorizontalTopology",
    "VerticalTopology",
]
