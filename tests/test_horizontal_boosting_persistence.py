"""Horizontal boosting models saved as JSON (no pickle) and loaded back; the
command line trains them one party per process and predicts new rows with a
client's saved model (the model is public to the clients)."""

import copy
import csv
import json

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

import skfed
from skfed import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
    HorizontalTopology,
)
from skfed.__main__ import main
from skfed.persistence import from_dict, to_dict
from skfed.runtime.grpc import free_local_ports

from .test_deploy_workflow import _finish, _run_parties, _spawn, _write_csv
from .test_horizontal_boosting import as_reference

PARAMS = dict(max_iter=4, max_leaf_nodes=6, min_samples_leaf=5, max_bins=32,
              early_stopping=False, random_state=0)


def _fitted():
    Xc, yc = make_classification(n_samples=150, n_features=5, n_informative=3,
                                 n_redundant=0, n_classes=3, random_state=0)
    Xc[::9, 2] = np.nan
    labels = np.array(["ant", "bee", "cat"])[yc]
    Xb, yb = make_classification(n_samples=120, n_features=4, random_state=1)
    Xr, yr = make_regression(n_samples=120, n_features=4, noise=3.0, random_state=0)
    Xr[::7, 0] = np.nan
    topo = HorizontalTopology(n_parties=3, random_state=0)
    return [
        (FederatedHistGradientBoostingClassifier(topo, **PARAMS).fit(Xc, labels), Xc),
        (FederatedHistGradientBoostingClassifier(topo, **PARAMS).fit(Xb, yb), Xb),
        (FederatedHistGradientBoostingRegressor(topo, **PARAMS).fit(Xr, yr), Xr),
    ]


def saved_and_loaded(est, tmp_path):
    """``est`` through skfed.save and skfed.load (a JSON file in ``tmp_path``)."""
    path = tmp_path / f"{type(est).__name__}.json"
    skfed.save(est, path)
    loaded = skfed.load(path)
    assert type(loaded) is type(est)
    return loaded


@pytest.fixture(scope="module")
def fitted():
    return _fitted()


def test_loaded_models_predict_as_the_original(fitted, tmp_path):
    for est, X in fitted:
        loaded = saved_and_loaded(est, tmp_path)
        assert loaded.get_params() == est.get_params()
        assert as_reference(loaded) == as_reference(est)
        for a, b in zip(loaded.bin_edges_, est.bin_edges_):
            np.testing.assert_array_equal(a, b)
        X_new = X[::-1] + 0.01
        np.testing.assert_array_equal(loaded.predict(X_new), est.predict(X_new))
        for a, b in zip(loaded.staged_predict(X_new), est.staged_predict(X_new)):
            np.testing.assert_array_equal(a, b)
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(X_new), est.predict_proba(X_new))
            np.testing.assert_array_equal(loaded.decision_function(X_new),
                                          est.decision_function(X_new))
            assert loaded.classes_.dtype == est.classes_.dtype
        # nothing of the fit's traffic is in the file
        saved = json.loads((tmp_path / f"{type(est).__name__}.json").read_text())
        assert "transcript_" not in saved["attributes"]


def _tamper(doc, change):
    doc = copy.deepcopy(doc)
    trees = doc["attributes"]["_trees"]
    tree = trees[0][0]["__items__"]
    arrays = {k: v for k, v in tree}
    change(doc, arrays)
    return doc


def _first_split(arrays):
    return arrays["left"]["__ndarray__"].index(next(v for v in arrays["left"]["__ndarray__"]
                                                    if v >= 0))


@pytest.mark.parametrize("change, match", [
    # a child before its parent: prediction would loop for ever
    (lambda d, a: a["left"]["__ndarray__"].__setitem__(_first_split(a), 0), "form a tree"),
    (lambda d, a: a["right"]["__ndarray__"].__setitem__(_first_split(a), 10_000),
     "form a tree"),
    (lambda d, a: a["feature"]["__ndarray__"].__setitem__(_first_split(a), 7), "outside"),
    (lambda d, a: a["value"].update(__ndarray__=a["value"]["__ndarray__"][:-1],
                                    shape=[len(a["value"]["__ndarray__"]) - 1]), "shape"),
    (lambda d, a: a["value"]["__ndarray__"].__setitem__(-1, float("nan")), "not finite"),
    (lambda d, a: a.pop("threshold") and d["attributes"]["_trees"][0][0]["__items__"].pop(
        [k for k, _ in d["attributes"]["_trees"][0][0]["__items__"]].index("threshold")),
     "needs the arrays"),
    (lambda d, a: d["attributes"]["_trees"][0].pop(), "one tree per output"),
    (lambda d, a: d["attributes"].update(n_iter_=99), "n_iter_=99"),
    (lambda d, a: d["attributes"]["_baseline"].update(
        __ndarray__=[0.0], shape=[1]), "one tree per output"),
])
def test_tampered_trees_are_refused_on_load(fitted, change, match):
    est, X = fitted[0]
    doc = json.loads(json.dumps(to_dict(est)))
    from_dict(doc)  # the untouched document loads
    with pytest.raises(ValueError, match=match):
        from_dict(_tamper(doc, change))


def _files(tmp_path, task, clients=("client0", "client1", "client2"), transport=None,
           ports=None):
    if task == "regression":
        X, y = make_regression(n_samples=180, n_features=4, noise=3.0, random_state=3)
        estimator = "FederatedHistGradientBoostingRegressor"
    else:
        X, y = make_classification(n_samples=180, n_features=4, n_informative=3,
                                   n_redundant=0, n_classes=3, random_state=3)
        estimator = "FederatedHistGradientBoostingClassifier"
    X[::13, 1] = np.nan
    site = np.asarray(clients)[np.random.RandomState(0).randint(0, len(clients), len(y))]
    header = ["f0", "f1", "f2", "f3", "target"]
    for c in clients:
        _write_csv(tmp_path / f"{c}.csv", header, [*X[site == c].T, y[site == c]])
    X_new = X[:12] * 1.1
    _write_csv(tmp_path / "new.csv", header[:4], [*X_new.T])
    params = {k: v for k, v in PARAMS.items()}
    parties = ("server", *clients)
    ports = ports or free_local_ports(len(parties))
    config = {"estimator": estimator, "params": params,
              "topology": {"target": "target"},
              "transport": transport or {"insecure": True, "connect_timeout": 30,
                                         "timeout": 120},
              "parties": {p: {"address": f"127.0.0.1:{port}"}
                          for p, port in zip(parties, ports)}}
    (tmp_path / "fed.json").write_text(json.dumps(config))
    ref_cls = (FederatedHistGradientBoostingRegressor if task == "regression"
               else FederatedHistGradientBoostingClassifier)
    ref = ref_cls(**params).fit(X, y, parties=site)
    return tmp_path / "fed.json", ref, X_new, parties


def _train_argv(config, tmp_path, p):
    return (["party", "--role", p, "--config", str(config),
             "--output", str(tmp_path / f"{p}.json")]
            + ([] if p == "server" else ["--data", str(tmp_path / f"{p}.csv")]))


def _predict_argv(config, tmp_path, p):
    return ["predict", "--role", p, "--config", str(config), "--model",
            str(tmp_path / f"{p}.json"), "--data", str(tmp_path / "new.csv"),
            "--output", str(tmp_path / f"{p}-pred.csv")]


def _check_predictions(tmp_path, p, ref, X_new):
    rows = list(csv.DictReader(open(tmp_path / f"{p}-pred.csv")))
    if hasattr(ref, "predict_proba"):
        assert [int(r["prediction"]) for r in rows] == ref.predict(X_new).tolist()
        proba = np.array([[float(r[f"proba_{c}"]) for c in ref.classes_] for r in rows])
        np.testing.assert_array_equal(proba, ref.predict_proba(X_new))
    else:
        np.testing.assert_array_equal([float(r["prediction"]) for r in rows],
                                      ref.predict(X_new))


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_train_save_and_predict_with_the_command_line(tmp_path, capsys, task):
    config, ref, X_new, parties = _files(tmp_path, task)
    codes = _run_parties({p: _train_argv(config, tmp_path, p) for p in parties})
    assert codes == dict.fromkeys(parties, 0), capsys.readouterr()
    # Every party saved the federation's model: the in-process fit's, exactly.
    for p in parties:
        model = skfed.load(tmp_path / f"{p}.json")
        assert type(model) is type(ref)
        assert as_reference(model) == as_reference(ref)
    # A client predicts new rows alone, with its saved model.
    for p in parties[1:]:
        assert main(_predict_argv(config, tmp_path, p)) == 0
        _check_predictions(tmp_path, p, ref, X_new)
    assert "predicted 12 rows" in capsys.readouterr().out


@pytest.mark.slow
def test_train_save_and_predict_in_separate_processes(tmp_path):
    """Four OS processes train (gRPC), then each client's predict process reads its
    saved model: predictions equal the in-process estimator's."""
    config, ref, X_new, parties = _files(tmp_path, "multiclass")

    def check(outs):
        for p, (code, out, err) in outs.items():
            assert code == 0, f"{p} failed:\n{out}\n{err}"
        return outs

    check(_finish({p: _spawn(_train_argv(config, tmp_path, p)) for p in parties}))
    outs = check(_finish({p: _spawn(_predict_argv(config, tmp_path, p))
                          for p in parties[1:]}))
    for p in parties[1:]:
        assert "predicted 12 rows" in outs[p][1]
        _check_predictions(tmp_path, p, ref, X_new)
