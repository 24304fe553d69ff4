"""Command line: ``python -m skfed demo``, ``party`` and ``predict``."""

import argparse
import importlib
import importlib.util
import sys
import time

FAMILIES = ("horizontal", "vertical", "transfer")


def _demo_cases(quick):
    """Each family contributes its cases from ``skfed/<family>/_demo.py``."""
    for family in FAMILIES:
        name = f"skfed.{family}._demo"
        if importlib.util.find_spec(f"skfed.{family}") is None:
            continue
        if importlib.util.find_spec(name) is None:
            continue
        yield from importlib.import_module(name).demo_cases(quick=quick)


def demo(quick=False, out=sys.stdout):
    from .compare import compare_with_centralised

    print("skfed demo: federated vs centralised (same folds, same hyper-parameters)",
          file=out)
    cases = list(_demo_cases(quick))
    width = max(len(c["name"]) for c in cases)
    header = (f"{'task':<{width}} {'federated':>10} {'central':>9} {'gap':>7} "
              f"{'sk default':>10} {'fed fit s':>9} {'cen fit s':>9} {'MB sent':>8}")
    print(header, file=out)
    print("-" * len(header), file=out)
    start = time.perf_counter()
    for case in cases:
        res = compare_with_centralised(case["estimator"], case["X"], case["y"],
                                       cv=case.get("cv", 3), scoring=case.get("scoring"))
        fed, cen = res["federated"], res["centralised"]
        dflt = res.get("sklearn_default", cen)["test_score"].mean()
        print(f"{case['name']:<{width}} {fed['test_score'].mean():>10.4f} "
              f"{cen['test_score'].mean():>9.4f} {res['score_gap']:>+7.4f} {dflt:>10.4f} "
              f"{fed['fit_time'].mean():>9.2f} {cen['fit_time'].mean():>9.3f} "
              f"{fed['bytes_exchanged'].mean() / 1e6:>8.2f}", file=out, flush=True)
    print(f"done in {time.perf_counter() - start:.1f} s "
          "(scores: accuracy for classifiers, R^2 for regressors, unless noted; "
          "'central' is the twin with the federated objective, 'sk default' its "
          "scikit-learn class with default parameters)", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skfed")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="federated vs centralised comparison table")
    p_demo.add_argument("--quick", action="store_true", help="smaller data, fewer folds")
    from .deploy import cli as party_cli

    party_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(quick=args.quick)
        return 0
    try:
        return party_cli.run(args)
    except Exception as exc:
        if args.debug:
            raise
        # One line a user can act on; the traceback only with --debug.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"[{args.role}] error: {type(exc).__name__}: {message} "
              "(--debug shows the traceback)", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
