"""A diverged vertical fit ends every party's ``python -m skfed party`` with a
non-zero exit status, instead of writing out a useless model."""

from sklearn.datasets import load_breast_cancer

from skfed.runtime.certs import make_test_pki

from .test_grpc import _finish, _spawn, _write_config, _write_csv


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
    # the label party and the arbiter say why, and what to do
    for role in ("bank", "arbiter"):
        err = outputs[role][2]
        assert "FitDiverged" in err and "StandardScaler" in err, err
    assert "learning_rate" in outputs["bank"][2]
