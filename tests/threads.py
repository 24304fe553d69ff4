"""Run each party of a deployment in its own thread, as its own process would."""

import threading


def run_parties(work, names, runtimes=(), timeout=120):
    """Call ``work(name)`` for every party name at once; wait at most ``timeout`` s.

    Returns ``(results, errors)``, each a dict by party name: a party's
    exception is collected, not raised, so a test can inspect how each party
    failed. The ``runtimes`` are closed afterwards, whatever happened.
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
    for t in threads:
        t.join(timeout)
    for runtime in runtimes:
        runtime.close()
    return results, errors
