"""Progress of long fits: ``verbose`` lines and scikit-learn's callback API.

A fit reports once per round (horizontal) or iteration (vertical, transfer)
from the party that coordinates it: the objective, the bytes that party has
put on and taken off the wire, and the elapsed time. When the installed
scikit-learn has :mod:`sklearn.callback` (1.9+), callbacks set with
``estimator.set_callbacks(...)`` (for example ``ProgressBar``) receive one
task per round, and a callback may ask the fit to stop. Without it, skfed
works the same, minus the callbacks.
"""

import time

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # pragma: no cover - older scikit-learn has no callback API
    class CallbackSupportMixin:
        """Stand-in: this scikit-learn has no callback API."""


__all__ = ["CallbackSupportMixin", "FitProgress"]


class FitProgress:
    """Reports the rounds of one fit.

    Parameters
    ----------
    estimator : estimator
        The estimator being fitted (its callbacks, if any, are called).
    total : int
        Maximum number of rounds.
    unit : str
        What a round is called in progress lines ("round", "iteration").
    verbose : int
        Print a line per round when > 0.
    reconstruct : callable, optional
        Maps the coordinator's model state to the fitted attributes a
        callback needs to build a usable estimator (``coef_``, ...).
    X, y : array-like, optional
        Passed to callbacks as the training data of the task.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> p = FitProgress(LinearRegression(), total=2, verbose=1)
    >>> p.update(1, objective=0.5, nbytes=2048)
    [skfed] round 1/2: objective 0.500000, 0.002 MB, ...
    False
    """

    def __init__(self, estimator, *, total, unit="round", verbose=0, reconstruct=None,
                 X=None, y=None):
        self.estimator = estimator
        self.total = total
        self.unit = unit
        self.verbose = verbose
        self.reconstruct = reconstruct
        self.X, self.y = X, y
        self.start = time.perf_counter()
        self._ctx = self._task = None
        if getattr(estimator, "_skl_callbacks", None) and hasattr(
                estimator, "_init_callback_context"):
            self._ctx = estimator._init_callback_context(max_subtasks=total)
            self._ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y)
            self._task = self._begin(None)

    def _attributes(self, state):
        if state is None or self.reconstruct is None:
            return None
        # Lazy: scikit-learn calls it only for callbacks that want a fitted estimator.
        return lambda: self.reconstruct(state)

    def _begin(self, state):
        task = self._ctx.subcontext(task_name=self.unit)
        task.call_on_fit_task_begin(estimator=self.estimator, X=self.X, y=self.y,
                                    reconstruction_attributes=self._attributes(state))
        return task

    def update(self, index, *, objective, nbytes=None, state=None):
        """Report the end of round ``index`` (1-based); return True to stop."""
        if self.verbose:
            traffic = "" if nbytes is None else f", {nbytes / 1e6:.3f} MB"
            print(f"[skfed] {self.unit} {index}/{self.total}: objective {objective:.6f}"
                  f"{traffic}, {time.perf_counter() - self.start:.2f} s", flush=True)
        if self._ctx is None:
            return False
        stop = self._task.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y,
            reconstruction_attributes=self._attributes(state))
        if index < self.total and not stop:
            self._task = self._begin(state)
        else:
            self._task = None
        return bool(stop)

    def close(self, state=None):
        """End the fit's task (and a round that was begun but not run)."""
        if self._ctx is None:
            return
        if self._task is not None:
            self._task.call_on_fit_task_end(estimator=self.estimator)
        self._ctx.call_on_fit_task_end(estimator=self.estimator, X=self.X, y=self.y,
                                       reconstruction_attributes=self._attributes(state))
        self._ctx = None
