"""``python -m skfed party``: run one party of a deployment from the command line.

The coordinating party (``server`` or the arbiter) needs no data::

    python -m skfed party --role arbiter --config federation.toml

A data party passes its own CSV file (a header row, then one row per record);
the deployment file says which columns are its features, which one holds y
and, optionally, which one holds the record IDs to align on first::

    python -m skfed party --role bank --config federation.toml --data bank.csv \\
        --output bank-model.json
"""

import csv
import json
import sys
import time

import numpy as np

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("party", help="run one party of a deployment (gRPC, mutual TLS)")
    p.add_argument("--role", required=True, help="this party's name in the config file")
    p.add_argument("--config", required=True, help="deployment file (TOML or JSON)")
    p.add_argument("--data", help="this party's CSV file (data parties only)")
    p.add_argument("--output", help="write this party's fitted model and traffic as JSON")
    return p


def _parse_column(values):
    for kind in (int, float):
        try:
            return np.asarray([kind(v) for v in values])
        except ValueError:
            continue
    return np.asarray(values, dtype=object)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and at least one data row")
    header, body = rows[0], rows[1:]
    width = len(header)
    for i, row in enumerate(body, start=2):
        if len(row) != width:
            raise ValueError(f"{path}:{i}: {len(row)} fields, the header has {width}")
    return header, {name: [row[j] for row in body] for j, name in enumerate(header)}


def _select(header, spec, path):
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 0 <= spec < len(header):
            raise ValueError(f"{path}: column {spec} out of range ({len(header)} columns)")
        return header[spec]
    if spec not in header:
        raise ValueError(f"{path}: no column {spec!r} (columns: {header})")
    return spec


def _load_party_data(dep, role, path):
    header, table = _read_csv(path)
    section = dep.section
    target, id_col = section.get("target"), section.get("id_column")
    holds_y = dep.family == "horizontal" or role == section.get("label_party")
    if holds_y and target is None:
        raise ValueError("the deployment file's [topology] needs target = 'COLUMN'")
    if dep.family in ("vertical", "transfer"):
        features = [_select(header, c, path) for c in dep.config["parties"][role]["columns"]]
    else:
        features = [h for h in header if h not in (target, id_col)]
    X = np.column_stack([np.asarray(table[c], dtype=np.float64) for c in features])
    y = _parse_column(table[_select(header, target, path)]) if holds_y else None
    ids = _parse_column(table[_select(header, id_col, path)]) if id_col else None
    return X, y, ids


def _model_summary(est, role, seconds):
    out = {"party": role, "estimator": type(est).__name__, "fit_seconds": seconds}
    for name in ("n_iter_", "loss_curve_", "coef_", "intercept_", "classes_", "dropouts_"):
        if hasattr(est, name):
            value = getattr(est, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
    if hasattr(est, "coef_by_party_"):
        out["coef_by_party_"] = {p: np.asarray(c).tolist()
                                 for p, c in est.coef_by_party_.items()}
    for name in ("source_model_", "target_model_"):      # transfer: this party's network
        if hasattr(est, name):
            out[name] = {k: [np.asarray(a).tolist() for a in v] if isinstance(v, list)
                         else np.asarray(v).tolist() for k, v in getattr(est, name).items()}
    t = est.transcript_
    out["bytes_sent"] = t.total_bytes(sender=role)
    out["bytes_received"] = t.total_bytes(receiver=role)
    out["messages"] = len(t)
    return out


def _when(dropout):
    where = "set-up" if dropout["sum"] <= 1 else f"round {dropout['sum'] - 1}"
    return f"{where}, {dropout['stage'].replace('_', ' ')}"


def run(args, out=sys.stdout):
    from ..vertical.alignment import align_samples
    from .config import Deployment

    dep = Deployment.from_file(args.config)
    role = args.role
    est = dep.estimator(role)
    runtime = est.runtime
    start = time.perf_counter()
    with runtime:
        if role == dep.coordinator():
            if args.data:
                raise SystemExit(f"{role!r} holds no data; drop --data")
            est.fit(None)
        else:
            if not args.data:
                raise SystemExit(f"{role!r} is a data party: pass --data FILE.csv")
            X, y, ids = _load_party_data(dep, role, args.data)
            if dep.family == "transfer":
                if ids is None:
                    raise SystemExit("transfer learning needs [topology] id_column: the "
                                     "overlap is the intersection of both parties' IDs")
                idx = align_samples({p: ids if p == role else None
                                     for p in dep.data_parties()}, runtime=runtime)[role]
                print(f"[{role}] overlap: {len(idx)} of {len(ids)} records are shared",
                      file=out, flush=True)
                est.fit(X, y, overlap=idx)
            elif ids is not None and dep.family == "vertical":
                order = dep.data_parties()
                idx = align_samples({p: ids if p == role else None for p in order},
                                    runtime=runtime)[role]
                print(f"[{role}] aligned: {len(idx)} of {len(ids)} records are shared",
                      file=out, flush=True)
                X = X[idx]
                y = None if y is None else y[idx]
                est.fit(X, y)
            else:
                est.fit(X, y)
    seconds = time.perf_counter() - start
    summary = _model_summary(est, role, seconds)
    for d in getattr(est, "dropouts_", None) or ():
        print(f"[{role}] {d['client']} dropped out ({_when(d)}); the fit went on without it",
              file=out, flush=True)
    print(f"[{role}] done in {seconds:.1f} s: sent {summary['bytes_sent']} bytes, received "
          f"{summary['bytes_received']} bytes", file=out, flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(summary, f, indent=1)
    return 0
