"""Vertical boosting (SecureBoost) models saved as JSON and loaded back. Each
party of a deployment saves only what it holds (the label party its trees,
whose feature-party splits are record ids; a feature party its records) and
predicts collaboratively again with ``python -m skfed predict``."""

import copy
import csv
import json

import numpy as np
import pytest
from sklearn.datasets import make_regression

import skfed
from skfed import (
    VerticalGradientBoostingClassifier,
    VerticalGradientBoostingRegressor,
    VerticalTopology,
)
from skfed.persistence import from_dict, to_dict

from .test_deploy_workflow import _finish, _run_parties, _spawn, _vertical_files
from .test_horizontal_boosting_persistence import saved_and_loaded

TOPO = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
PARAMS = dict(max_iter=3, max_leaf_nodes=5, min_samples_leaf=5, max_bins=16,
              early_stopping=False, random_state=0)


def _as_lists(est):
    # JSON text: NaN thresholds (leaves) compare equal, dtypes do not matter.
    return json.dumps([[{k: np.asarray(v).tolist() for k, v in t.items()} for t in it]
                       for it in est._trees])


@pytest.fixture(scope="module")
def fitted():
    from sklearn.datasets import make_classification

    Xc, yc = make_classification(n_samples=120, n_features=4, n_classes=3, n_informative=3,
                                 n_redundant=0, random_state=0)
    Xc[::7, 3] = np.nan
    labels = np.array(["a", "b", "c"])[yc]
    Xr, yr = make_regression(n_samples=100, n_features=4, noise=2.0, random_state=0)
    return [
        (VerticalGradientBoostingClassifier(TOPO, encryption=None, **PARAMS).fit(Xc, labels),
         Xc),
        (VerticalGradientBoostingRegressor(TOPO, encryption=None, **PARAMS).fit(Xr, yr), Xr),
    ]


def test_loaded_models_predict_as_the_original(fitted, tmp_path):
    for est, X in fitted:
        loaded = saved_and_loaded(est, tmp_path)
        assert _as_lists(loaded) == _as_lists(est)
        assert loaded._records == est._records
        X_new = X[::-1] * 0.9
        np.testing.assert_array_equal(loaded.predict(X_new), est.predict(X_new))
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(X_new), est.predict_proba(X_new))


def _items(doc, name):
    return doc["attributes"][name]


def _tree_arrays(doc):
    return {k: v for k, v in _items(doc, "_trees")[0][0]["__items__"]}


def _first_host_split(a):
    owners = a["owner"]["__ndarray__"]
    return next(i for i, o in enumerate(owners) if o)


def _set(a, key, i, value):
    a[key]["__ndarray__"][i] = value


def _records_of(doc):
    return dict((k, v) for k, v in _items(doc, "_records")["__items__"])


@pytest.mark.parametrize("change, match", [
    (lambda d: _set(_tree_arrays(d), "left", _first_host_split(_tree_arrays(d)), 0),
     "do not form a tree"),
    (lambda d: _set(_tree_arrays(d), "record", _first_host_split(_tree_arrays(d)), 999),
     "record 999"),
    (lambda d: _set(_tree_arrays(d), "owner", _first_host_split(_tree_arrays(d)), "bank"),
     "of 'bank'"),
    (lambda d: _records_of(d)["shop"].__setitem__(0, {"__tuple__": [5, 0.5, True]}),
     "malformed split record"),
    (lambda d: _items(d, "_trees")[0].pop(), "one tree per output"),
    (lambda d: d["attributes"].update(n_iter_=7), "n_iter_=7"),
])
def test_tampered_models_are_refused_on_load(fitted, change, match):
    est, _ = fitted[0]
    doc = json.loads(json.dumps(to_dict(est)))
    from_dict(doc)
    doc = copy.deepcopy(doc)
    change(doc)
    with pytest.raises(ValueError, match=match):
        from_dict(doc)


def _config(tmp_path, transport=None):
    """The linear deployment files of test_deploy_workflow, as a SecureBoost
    deployment (no arbiter)."""
    config, data = _vertical_files(tmp_path, {}, transport=transport)
    doc = json.loads(config.read_text())
    doc["estimator"] = "VerticalGradientBoostingClassifier"
    doc["params"] = dict(PARAMS, encryption="paillier", key_size=512)
    del doc["parties"]["arbiter"]
    config.write_text(json.dumps(doc))
    # The in-process reference on the aligned rows (sorted shared IDs).
    ids = data["ids"]
    shared = np.intersect1d(ids[data["bank_rows"]], ids[data["shop_rows"]])
    order = {v: i for i, v in enumerate(ids)}
    rows = np.asarray([order[v] for v in sorted(shared)])
    ref = VerticalGradientBoostingClassifier(TOPO, **doc["params"]).fit(
        data["X"][rows], data["y"][rows])
    return config, data, ref


def _argv(command, config, tmp_path, p):
    if command == "party":
        return ["party", "--role", p, "--config", str(config), "--output",
                str(tmp_path / f"{p}.json"), "--data", str(tmp_path / f"{p}.csv")]
    return (["predict", "--role", p, "--config", str(config), "--model",
             str(tmp_path / f"{p}.json"), "--data", str(tmp_path / f"{p}-new.csv")]
            + (["--output", str(tmp_path / "pred.csv")] if p == "bank" else []))


def _check(tmp_path, data, ref):
    got = list(csv.DictReader(open(tmp_path / "pred.csv")))
    # Rows 2..9 are the new records both parties hold.
    assert [int(r["cid"]) for r in got] == data["new_ids"][2:10].tolist()
    Xn = data["Xn"][2:10]
    assert [r["prediction"] for r in got] == ref.predict(Xn).tolist()
    np.testing.assert_array_equal([float(r["proba_yes"]) for r in got],
                                  ref.predict_proba(Xn)[:, 1])


def test_train_save_and_predict_with_the_command_line(tmp_path, capsys):
    config, data, ref = _config(tmp_path)
    codes = _run_parties({p: _argv("party", config, tmp_path, p) for p in ("bank", "shop")})
    assert codes == {"bank": 0, "shop": 0}, capsys.readouterr().err
    bank, shop = skfed.load(tmp_path / "bank.json"), skfed.load(tmp_path / "shop.json")
    # Each party saved only its own part.
    assert _as_lists(bank) == _as_lists(ref) and bank._records == {}
    assert shop._records == {"shop": ref._records["shop"]} and not hasattr(shop, "_trees")
    codes = _run_parties({p: _argv("predict", config, tmp_path, p) for p in ("bank", "shop")})
    out = capsys.readouterr()
    assert codes == {"bank": 0, "shop": 0}, out.err
    assert "[shop] sent its partial scores for 8 rows" in out.out
    _check(tmp_path, data, ref)


@pytest.mark.slow
def test_train_save_and_predict_in_separate_processes(tmp_path):
    """Two OS processes with mutual TLS train, save, then predict new records."""
    from skfed.runtime.certs import make_test_pki

    pki = make_test_pki(tmp_path / "pki", ["bank", "shop"])
    config, data, ref = _config(tmp_path, transport={"insecure": False,
                                                     "cafile": pki["cafile"]})
    doc = json.loads(config.read_text())
    for p in ("bank", "shop"):
        doc["parties"][p].update(certfile=pki[p]["certfile"], keyfile=pki[p]["keyfile"])
    config.write_text(json.dumps(doc))
    for command in ("party", "predict"):
        outs = _finish({p: _spawn(_argv(command, config, tmp_path, p))
                        for p in ("bank", "shop")})
        for p, (code, out, err) in outs.items():
            assert code == 0, f"{command} {p} failed:\n{out}\n{err}"
    _check(tmp_path, data, ref)
