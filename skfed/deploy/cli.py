"""``python -m skfed party`` and ``python -m skfed predict``: one party of a deployment.

Training. The coordinating party (``server`` or the arbiter) needs no data::

    python -m skfed party --role arbiter --config federation.toml

A data party passes its own CSV file (a header row, then one row per record);
the deployment file says which columns are its features, which one holds y
and, optionally, which one holds the record IDs to align on first::

    python -m skfed party --role bank --config federation.toml --data bank.csv \\
        --output bank-model.json

With ``validation_fraction`` in the file's ``[topology]``, the data parties
hold out the same share of the (aligned) rows, and the party that holds the
labels prints a metric on them after the fit (without it, on the training
rows). ``--output`` writes the party's model (:func:`skfed.save`'s JSON, plus
a summary of the fit), which :func:`skfed.load` reads back.

Prediction. Every data party runs, each with its own saved model and new CSV
(aligned by the ID column, as in training); the label party writes the
predictions (and prints a metric when the CSV holds the target). A client
of a horizontal model (federated SGD or histogram boosting) runs it alone:
the model is public to the clients, so each predicts its own rows locally.
A client of a federated scaler too: ``--output`` gets its rows scaled with
the federation's statistics::

    python -m skfed predict --role bank --config federation.toml \\
        --model bank-model.json --data bank-new.csv --output predictions.csv

Errors are printed as one line naming the party; ``--debug`` shows the
traceback.
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
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    q = sub.add_parser("predict", help="collaborative prediction with saved party models")
    q.add_argument("--role", required=True, help="this party's name in the config file")
    q.add_argument("--config", required=True, help="deployment file (TOML or JSON)")
    q.add_argument("--model", help="this party's saved model (party --output)")
    q.add_argument("--data", help="this party's CSV file with the new rows")
    q.add_argument("--output", help="label party: write the predictions as CSV")
    q.add_argument("--debug", action="store_true", help="show tracebacks of errors")
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


def _load_party_data(dep, role, path, need_target=True):
    header, table = _read_csv(path)
    section = dep.section
    target, id_col = section.get("target"), section.get("id_column")
    transformer = not hasattr(dep.estimator_class, "predict")  # the federated scalers
    holds_y = (dep.family == "horizontal" and not transformer) or \
        role == section.get("label_party")
    if holds_y and target is None:
        raise ValueError("the deployment file's [topology] needs target = 'COLUMN'")
    if not need_target and target not in header:
        holds_y = False  # new rows to predict need no labels
    features = _feature_columns(dep, role, header, path)
    for c in features:
        bad = [v for v in table[c] if not _is_number(v)]
        if bad:
            raise ValueError(f"{path}: column {c!r} is a feature but holds {bad[0]!r}, "
                             "not a number")
    X = np.column_stack([np.asarray(table[c], dtype=np.float64) for c in features])
    y = _parse_column(table[_select(header, target, path)]) if holds_y else None
    ids = _parse_column(table[_select(header, id_col, path)]) if id_col else None
    return X, y, ids


def _feature_columns(dep, role, header, path):
    section = dep.section
    if dep.family in ("vertical", "boosting", "transfer"):
        return [_select(header, c, path) for c in dep.config["parties"][role]["columns"]]
    return [h for h in header if h not in (section.get("target"), section.get("id_column"))]


def _is_number(value):
    try:
        float(value)
    except ValueError:
        return False
    return True


def _model_summary(est, role, seconds):
    out = {"party": role, "estimator": type(est).__name__, "fit_seconds": seconds}
    for name in ("n_iter_", "loss_curve_", "coef_", "intercept_", "classes_", "dropouts_",
                 "mean_", "var_", "scale_", "data_min_", "data_max_", "n_samples_seen_"):
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


def _validation_split(dep, n_rows):
    """Training and validation rows, the same at every data party.

    The rows are in the same (aligned) order at every party, and the split is
    a function of the row count and the file's seed only, so every party
    holds out the same records without a message.
    """
    fraction = dep.section.get("validation_fraction")
    if fraction is None:
        return np.arange(n_rows), None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0 < fraction < 1):
        raise ValueError(f"[topology] validation_fraction must be a number in (0, 1), got "
                         f"{fraction!r}")
    n_val = int(round(fraction * n_rows))
    if not 1 <= n_val < n_rows - 1:
        raise ValueError(f"validation_fraction={fraction} leaves {n_val} of {n_rows} rows "
                         "for validation; choose a larger or smaller fraction")
    perm = np.random.RandomState(int(dep.section.get("validation_seed", 0))).permutation(
        n_rows)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _predict(est, X):
    """Predictions (and class probabilities if any) of a party's model.

    A vertical party runs the prediction protocol: every data party makes the
    same calls; the label party gets the result, a feature party None.
    """
    from sklearn.base import is_classifier

    if is_classifier(est) and hasattr(est, "predict_proba"):
        proba = est.predict_proba(X)
        if proba is None:
            return None, None
        return est.classes_[np.argmax(proba, axis=1)], proba
    return est.predict(X), None


def _metrics(est, y, y_pred, proba):
    from sklearn.base import is_classifier
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

    if is_classifier(est):
        out = {"accuracy": float(accuracy_score(y, y_pred))}
        if proba is not None:
            out["log_loss"] = float(log_loss(y, proba, labels=est.classes_))
        return out
    return {"r2": float(r2_score(y, y_pred)),
            "rmse": float(np.sqrt(mean_squared_error(y, y_pred)))}


def _print_metrics(role, metrics, rows, out):
    text = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(f"[{role}] {rows}: {text}", file=out, flush=True)


def _final_objective(est):
    curve = getattr(est, "loss_curve_", None)
    if curve:
        return float(curve[-1])
    history = getattr(est, "history_", None)
    if history and "objective" in history[-1]:
        return float(history[-1]["objective"])
    return None


def _when(dropout):
    where = "set-up" if dropout["sum"] <= 1 else f"round {dropout['sum'] - 1}"
    return f"{where}, {dropout['stage'].replace('_', ' ')}"


def _fit_data_party(dep, role, est, runtime, data, out):
    """Load, align, split, fit and evaluate one data party; returns the metrics."""
    from ..vertical.alignment import align_samples

    X, y, ids = _load_party_data(dep, role, data)
    if dep.family == "transfer":
        if ids is None:
            raise SystemExit("transfer learning needs [topology] id_column: the "
                             "overlap is the intersection of both parties' IDs")
        if dep.section.get("validation_fraction") is not None:
            raise ValueError("validation_fraction is not supported for transfer learning yet")
        idx = align_samples({p: ids if p == role else None
                             for p in dep.data_parties()}, runtime=runtime)[role]
        print(f"[{role}] overlap: {len(idx)} of {len(ids)} records are shared",
              file=out, flush=True)
        est.fit(X, y, overlap=idx)
        return None
    if ids is not None and dep.family in ("vertical", "boosting"):
        idx = align_samples({p: ids if p == role else None for p in dep.data_parties()},
                            runtime=runtime)[role]
        print(f"[{role}] aligned: {len(idx)} of {len(ids)} records are shared",
              file=out, flush=True)
        X = X[idx]
        y = None if y is None else y[idx]
    train, val = _validation_split(dep, len(X))
    est.fit(X[train], None if y is None else y[train])
    if not hasattr(est, "predict"):
        # A federated scaler: the statistics are the federation's, the rows this party's.
        est.transform(X)
        print(f"[{role}] fitted on {len(train)} rows: scaling statistics of the federation "
              f"({est.n_features_in_} features)", file=out, flush=True)
        return None
    rows, name = (train, "training rows") if val is None else (val, "validation rows")
    y_pred, proba = _predict(est, X[rows])
    if y_pred is None or y is None:
        return None
    metrics = _metrics(est, y[rows], y_pred, proba)
    _print_metrics(role, metrics, f"{name} ({len(rows)})", out)
    return metrics


def run(args, out=None):
    from ..persistence import to_dict
    from .config import Deployment

    out = sys.stdout if out is None else out
    if args.command == "predict":
        return run_predict(args, out)
    dep = Deployment.from_file(args.config)
    role = args.role
    est = dep.estimator(role)
    runtime = est.runtime
    start = time.perf_counter()
    metrics = None
    with runtime:
        if role == dep.coordinator():
            if args.data:
                raise SystemExit(f"{role!r} holds no data; drop --data")
            est.fit(None)
        else:
            if not args.data:
                raise SystemExit(f"{role!r} is a data party: pass --data FILE.csv")
            metrics = _fit_data_party(dep, role, est, runtime, args.data, out)
    seconds = time.perf_counter() - start
    summary = _model_summary(est, role, seconds)
    objective = _final_objective(est)
    if objective is not None:
        print(f"[{role}] final objective: {objective:.6f}", file=out, flush=True)
    for d in getattr(est, "dropouts_", None) or ():
        print(f"[{role}] {d['client']} dropped out ({_when(d)}); the fit went on without it",
              file=out, flush=True)
    print(f"[{role}] done in {seconds:.1f} s: sent {summary['bytes_sent']} bytes, received "
          f"{summary['bytes_received']} bytes", file=out, flush=True)
    if args.output:
        try:
            document = to_dict(est)
        except TypeError:  # an estimator skfed.load cannot rebuild yet (transfer)
            document = {}
        document.update(summary)
        if metrics is not None:
            document["metrics"] = metrics
        with open(args.output, "w") as f:
            json.dump(document, f, indent=1)
    return 0


def run_predict(args, out=None):
    """``python -m skfed predict``: collaborative prediction on new rows."""
    from ..persistence import from_dict
    from ..vertical.alignment import align_samples
    from .config import Deployment

    out = sys.stdout if out is None else out
    dep = Deployment.from_file(args.config)
    role = args.role
    if dep.family == "transfer":
        raise ValueError("python -m skfed predict supports the horizontal models (federated "
                         "SGD, histogram boosting, scalers), the vertical linear models and "
                         "vertical boosting (SecureBoost); a transfer model predicts in the "
                         "process that fitted it")
    if role not in dep.parties:
        raise ValueError(f"party {role!r} is not in the deployment file "
                         f"(parties: {dep.parties})")
    if role == dep.coordinator():
        print(f"[{role}] holds no model: prediction needs only the data parties",
              file=out, flush=True)
        return 0
    if not args.model or not args.data:
        raise SystemExit(f"{role!r} is a data party: pass --model MODEL.json --data FILE.csv")
    with open(args.model) as f:
        document = json.load(f)
    saved_by = document.get("party")
    if saved_by is not None and saved_by != role:
        raise ValueError(f"{args.model} is the model of party {saved_by!r}, not {role!r}")
    est = from_dict(document)
    if type(est) is not dep.estimator_class:
        raise ValueError(f"{args.model} holds a {type(est).__name__}, the deployment file "
                         f"names {dep.estimator_class.__name__}")
    X, y, ids = _load_party_data(dep, role, args.data, need_target=False)
    if not hasattr(est, "predict"):
        # a federated scaler: this party's new rows, scaled with the federation's statistics
        X_scaled = est.transform(X)
        print(f"[{role}] scaled {len(X_scaled)} rows", file=out, flush=True)
        if args.output:
            header, _ = _read_csv(args.data)
            _write_scaled(args.output, _feature_columns(dep, role, header, args.data),
                          dep.section.get("id_column"), ids, X_scaled)
        return 0
    runtime = None
    if dep.family in ("vertical", "boosting"):  # collaborative prediction
        runtime = dep.runtime(role)
        est.set_params(runtime=runtime)
    with runtime if runtime is not None else _nothing():
        if ids is not None and runtime is not None:
            idx = align_samples({p: ids if p == role else None
                                 for p in dep.data_parties()}, runtime=runtime)[role]
            print(f"[{role}] aligned: {len(idx)} of {len(ids)} records are shared",
                  file=out, flush=True)
            X, ids = X[idx], ids[idx]
            y = None if y is None else y[idx]
        y_pred, proba = _predict(est, X)
    if y_pred is None:
        print(f"[{role}] sent its partial scores for {len(X)} rows", file=out, flush=True)
        return 0
    print(f"[{role}] predicted {len(y_pred)} rows", file=out, flush=True)
    if y is not None:
        _print_metrics(role, _metrics(est, y, y_pred, proba), f"new rows ({len(y)})", out)
    if args.output:
        _write_predictions(args.output, dep.section.get("id_column"), ids, y_pred, proba,
                           getattr(est, "classes_", None))
    return 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _write_scaled(path, features, id_column, ids, X):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(([str(id_column)] if ids is not None else []) + list(features))
        for i, row in enumerate(X):
            w.writerow(([ids[i]] if ids is not None else []) + [repr(float(v)) for v in row])


def _write_predictions(path, id_column, ids, y_pred, proba, classes):
    header, columns = [], []
    if ids is not None:
        header.append(str(id_column) if isinstance(id_column, str) else "id")
        columns.append(ids.tolist())
    header.append("prediction")
    columns.append(y_pred.tolist())
    if proba is not None:
        header += [f"proba_{c}" for c in classes]
        columns += [proba[:, j].tolist() for j in range(proba.shape[1])]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in zip(*columns):
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])
