"""The vertical default solver across processes: the same model as in one
process, and a diverged fit ends every party's ``python -m skfed party`` with
a non-zero exit status instead of writing out a useless model."""

import numpy as np
from sklearn.datasets import load_breast_cancer

from skfed import VerticalLogisticRegression, VerticalTopology
from skfed.runtime.certs import make_test_pki

from .test_grpc import _check_ok, _finish, _load, _spawn, _write_config, _write_csv


def test_cli_pcg_processes_match_in_process(tmp_path):
    pki = make_test_pki(tmp_path / "pki", ["arbiter", "bank", "shop"])
    X, y = load_breast_cancer(return_X_y=True)
    X = (X[::5, :6] - X[::5, :6].mean(axis=0)) / X[::5, :6].std(axis=0)
    y = y[::5]
    _write_csv(tmp_path / "bank.csv", ["a", "b", "c", "label"],
               [X[:, 0], X[:, 1], X[:, 2], y])
    _write_csv(tmp_path / "shop.csv", ["d", "e", "f"], [X[:, 3], X[:, 4], X[:, 5]])
    params = {"key_size": 512, "max_iter": 6}   # the default solver, encrypted
    config = _write_config(
        tmp_path / "federation.toml", "VerticalLogisticRegression", params,
        {"label_party": "bank", "target": "label"},
        {"arbiter": {}, "bank": {"columns": ["a", "b", "c"]},
         "shop": {"columns": ["d", "e", "f"]}}, pki)
    procs = {"shop": _spawn(config, "shop", tmp_path, tmp_path / "shop.csv"),
             "arbiter": _spawn(config, "arbiter", tmp_path),
             "bank": _spawn(config, "bank", tmp_path, tmp_path / "bank.csv")}
    outputs = _finish(procs)
    _check_ok(outputs)
    topo = VerticalTopology({"bank": [0, 1, 2], "shop": [3, 4, 5]}, label_party="bank")
    ref = VerticalLogisticRegression(topo, **params).fit(X, y)
    bank, shop, arbiter = (_load(tmp_path, p) for p in ("bank", "shop", "arbiter"))
    np.testing.assert_allclose(bank["coef_by_party_"]["bank"], ref.coef_by_party_["bank"],
                               atol=1e-9)
    np.testing.assert_allclose(shop["coef_by_party_"]["shop"], ref.coef_by_party_["shop"],
                               atol=1e-9)
    np.testing.assert_allclose(arbiter["loss_curve_"], ref.loss_curve_, atol=1e-9)
    assert bank["n_iter_"] == shop["n_iter_"] == arbiter["n_iter_"] == ref.n_iter_


def test_cli_exits_nonzero_on_a_diverged_fit(tmp_path):
    pki = make_test_pki(tmp_path / "pki", ["arbiter", "bank", "shop"])
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[::6], y[::6]  # unscaled: columns up to ~4e3; gradient descent diverges
    _write_csv(tmp_path / "bank.csv", ["a", "b", "c", "label"],
               [X[:, 0], X[:, 1], X[:, 2], y])
    _write_csv(tmp_path / "shop.csv", ["d", "e", "f"], [X[:, 3], X[:, 4], X[:, 5]])
    params = {"solver": "gd", "learning_rate": 0.1, "max_iter": 20, "key_size": 512}
    config = _write_config(
        tmp_path / "federation.toml", "VerticalLogisticRegression", params,
        {"label_party": "bank", "target": "label"},
        {"arbiter": {}, "bank": {"columns": ["a", "b", "c"]},
         "shop": {"columns": ["d", "e", "f"]}}, pki)
    procs = {"shop": _spawn(config, "shop", tmp_path, tmp_path / "shop.csv"),
             "arbiter": _spawn(config, "arbiter", tmp_path),
             "bank": _spawn(config, "bank", tmp_path, tmp_path / "bank.csv")}
    outputs = _finish(procs)
    for role, (code, out, err) in outputs.items():
        assert code != 0, f"{role} exited 0 after a diverged fit:\n{out}\n{err}"
        assert not (tmp_path / f"{role}.json").exists()
    # the label party says why and what to do; the arbiter either finds the
    # divergence itself or, when the bank's abort arrives first, relays it
    err = outputs["bank"][2]
    assert "FitDiverged" in err and "StandardScaler" in err, err
    err = outputs["arbiter"][2]
    assert "FitDiverged" in err and ("StandardScaler" in err or "'bank' aborted" in err), err
    assert "learning_rate" in outputs["bank"][2]
