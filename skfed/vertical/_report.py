"""Progress lines at the label party of a vertical fit."""

import math
import sys
import time

import numpy as np

__all__ = ["EpochReport"]


class EpochReport:
    """Prints, after each epoch, what the label party can tell about the fit.

    The objective (the arbiter sends it to the label party), the epoch's
    duration, an estimate of the time left and the bytes this party has sent
    and received so far (the same totals as its rows of
    ``transcript_.summary()``).

    The time left assumes the objective's decrease keeps shrinking at its last
    rate until it falls below ``tol`` (the convergence test of both solvers
    looks at that decrease), and is never more than ``max_iter`` allows.

    Parameters
    ----------
    name : str
        Printed at the start of each line.
    max_iter : int
    tol : float or None
    verbose : int
        Nothing is printed when 0.
    file : file-like, default=None
        Where to print (``sys.stdout`` when None).

    Examples
    --------
    >>> class Ctx:
    ...     bytes_sent, bytes_received = 2_000_000, 1_000_000
    >>> report = EpochReport("guest", max_iter=10, tol=1e-4, verbose=1)
    >>> report.update(1, 0.693147, Ctx())  # doctest: +ELLIPSIS
    [skfed] guest epoch 1/10: objective 0.693147, ... s/epoch, ... sent 2.0 MB, received 1.0 MB
    """

    def __init__(self, name, *, max_iter, tol, verbose, file=None):
        self.name = name
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.file = file
        self.objectives = []
        self.seconds = []
        self.last = time.perf_counter()

    def epochs_left(self):
        """Estimated epochs to convergence, and whether it is only ``max_iter``'s bound."""
        bound = self.max_iter - len(self.objectives)
        decreases = -np.diff(self.objectives)
        if self.tol is None or len(decreases) < 2 or np.any(decreases <= 0):
            return bound, True
        # The decrease's mean rate over the fit (a conjugate-gradient step can
        # gain less than the one after it, so the last two alone mislead).
        rate = (decreases[-1] / decreases[0]) ** (1.0 / (len(decreases) - 1))
        if rate >= 1:
            return bound, True
        needed = max(math.ceil(math.log(self.tol / decreases[-1]) / math.log(rate)), 1)
        return min(bound, needed), needed >= bound

    def update(self, epoch, objective, ctx):
        """Report the end of epoch ``epoch`` (1-based) with the arbiter's objective."""
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        self.objectives.append(float(objective))
        # The first epoch also carries the key exchange and set-up.
        self.seconds = [seconds] if len(self.objectives) <= 2 else self.seconds + [seconds]
        seconds = float(np.mean(self.seconds))
        if not self.verbose:
            return
        left, bound = self.epochs_left()
        epochs = f"{left} epoch{'' if left == 1 else 's'}"
        when = (f"at most {left * seconds:.0f} s left ({epochs})" if bound
                else f"about {left * seconds:.0f} s left ({epochs})")
        print(f"[skfed] {self.name} epoch {epoch}/{self.max_iter}: objective "
              f"{objective:.6f}, {seconds:.2f} s/epoch, {when}, sent "
              f"{ctx.bytes_sent / 1e6:.1f} MB, received {ctx.bytes_received / 1e6:.1f} MB",
              file=self.file or sys.stdout, flush=True)

    def close(self):
        pass
