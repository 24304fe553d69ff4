"""Run each party of a deployment in its own thread, as its own process would."""

import threading
import time


def run_parties(work, names, runtimes=(), timeout=120):
    """Call ``work(name)`` for every party name at once; wait at most ``timeout`` s.

    Returns ``(results, errors)``, each a dict by party name: a party's
    exception is collected, not raised, so a test can inspect how each party
    failed. The ``runtimes`` are closed afterwards, whatever happened. A party
    still running after ``timeout`` fails the test (AssertionError naming it):
    a hung protocol must not pass as a party with neither result nor error.
    """
    results, errors = {}, {}

    def target(name):
        try:
            results[name] = work(name)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors[name] = exc

    threads = [threading.Thread(target=target, args=(n,)) for n in names]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    for runtime in runtimes:
        runtime.close()
    hung = [n for n, t in zip(names, threads) if t.is_alive()]
    assert not hung, f"parties still running after {timeout} s: {hung}"
    return results, errors
