"""Exceptions every estimator family raises (a layer below the families)."""

__all__ = ["FitDiverged", "DIVERGENCE_FACTOR"]

# An objective that grows this many times above its starting value is
# divergence in every family: no stable optimiser of these convex losses
# climbs that far, and stopping early keeps overflow out of the encodings.
DIVERGENCE_FACTOR = 1e3


class FitDiverged(FloatingPointError):
    """A fit diverged: its objective became non-finite or grew without bound.

    Raised instead of returning a model that would silently predict badly.
    The message names the epoch (or round) and the likely causes, most often
    unscaled features (put a ``StandardScaler`` first) or too large a
    learning rate. A subclass of :class:`FloatingPointError` (an
    :class:`ArithmeticError`), so it ends a command-line run with a non-zero
    exit status.

    Examples
    --------
    >>> from skfed import FitDiverged
    >>> issubclass(FitDiverged, ArithmeticError)
    True
    """
