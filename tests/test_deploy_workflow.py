"""Deployments on the first day (issue #16): a party that fails at start stops
its peers at once; train -> predict -> load a saved model; per-party column
names in deployment files; one-line CLI errors."""

import csv
import functools
import json
import os
import subprocess
import sys
import threading
import time

import grpc  # noqa: F401 - fail loudly if the transport is missing
import numpy as np
import pytest
from sklearn.datasets import make_classification

import skfed
from skfed import VerticalLogisticRegression, VerticalTopology
from skfed.__main__ import main
from skfed.runtime.grpc import GrpcRuntime, PartyAborted, free_local_ports

from .test_grpc import _finish as _finish_processes

# Training, predicting and loading back take longer than the transport tests.
_finish = functools.partial(_finish_processes, limit=300)


def _addresses(names):
    return {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(len(names)))}


# -- 4. fail fast at start ---------------------------------------------------------

def test_party_failing_before_its_role_aborts_a_late_peer():
    """The failing party is up first; its peer starts later and still hears the abort
    (rather than waiting connect_timeout for a party that will never send)."""
    addresses = _addresses(["bank", "shop"])
    errors = {}

    def bank():
        with pytest.raises(KeyError):
            with GrpcRuntime("bank", addresses, insecure=True, connect_timeout=30):
                raise KeyError("column 'income' missing")  # e.g. reading its CSV

    t = threading.Thread(target=bank)
    t.start()
    time.sleep(0.5)  # the shop starts after the bank has failed
    with GrpcRuntime("shop", addresses, insecure=True, connect_timeout=30) as shop:
        try:
            shop.run({"shop": lambda ctx: ctx.recv("bank", "u")})
        except Exception as exc:  # noqa: BLE001 - inspected below
            errors["shop"] = exc
    t.join()
    err = errors["shop"]
    assert isinstance(err, PartyAborted), err
    assert err.party == "bank" and err.reason == "KeyError"
    assert "income" not in str(err)  # the type travels, not the message


def test_explicit_abort_stops_a_peer_retrying_a_send():
    """A peer retrying a send to a party that is not up yet stops with PartyAborted
    when that party comes up only to fail, not with PartyUnreachable later."""
    addresses = _addresses(["bank", "shop"])
    errors = {}

    def shop():
        with GrpcRuntime("shop", addresses, insecure=True, connect_timeout=30) as rt:
            try:
                rt.run({"shop": lambda ctx: ctx.send("bank", "u", 1)})
            except Exception as exc:  # noqa: BLE001 - inspected below
                errors["shop"] = exc

    t = threading.Thread(target=shop)
    t.start()
    time.sleep(0.5)
    bank = GrpcRuntime("bank", addresses, insecure=True, connect_timeout=30)
    bank.abort(ValueError("bad setting"))
    t.join()
    bank.close()
    assert isinstance(errors["shop"], PartyAborted), errors["shop"]
    assert "'bank' aborted the run: ValueError" in str(errors["shop"])


# -- 3. train -> predict -> load ------------------------------------------------------

def _write_csv(path, header, columns):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in zip(*columns):
            w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v
                        for v in row])


def _vertical_files(tmp_path, params, n=90, validation=None, transport=None):
    """Bank (label party) and shop CSVs with IDs they partly share, and a JSON
    deployment file; returns what the in-process reference needs."""
    rng = np.random.RandomState(0)
    X, y = make_classification(n_samples=n, n_features=4, n_informative=3, n_redundant=0,
                               random_state=0)
    y = np.where(y == 1, "yes", "no")
    ids = rng.permutation(10_000)[:n]
    bank_rows, shop_rows = rng.permutation(n)[:n - 4], rng.permutation(n)[:n - 6]
    _write_csv(tmp_path / "bank.csv", ["cid", "age", "income", "default"],
               [ids[bank_rows], *X[bank_rows][:, :2].T, y[bank_rows]])
    _write_csv(tmp_path / "shop.csv", ["visits", "cid", "spend"],
               [X[shop_rows][:, 2], ids[shop_rows], X[shop_rows][:, 3]])
    # New rows for prediction; the bank's CSV holds no target.
    Xn = np.random.RandomState(1).randn(12, 4)
    new_ids = np.arange(50_000, 50_012)
    _write_csv(tmp_path / "bank-new.csv", ["cid", "age", "income"],
               [new_ids[:10], *Xn[:10, :2].T])
    _write_csv(tmp_path / "shop-new.csv", ["visits", "cid", "spend"],
               [Xn[2:, 2], new_ids[2:], Xn[2:, 3]])
    names = ["arbiter", "bank", "shop"]
    topology = {"label_party": "bank", "target": "default", "id_column": "cid"}
    if validation is not None:
        topology["validation_fraction"] = validation
    config = {
        "estimator": "VerticalLogisticRegression", "params": params, "topology": topology,
        "transport": {"insecure": True, "connect_timeout": 30, "timeout": 60,
                      **(transport or {})},
        "parties": {"arbiter": {}, "bank": {"columns": ["age", "income"]},
                    "shop": {"columns": ["visits", "spend"]}},
    }
    for p, port in zip(names, free_local_ports(3)):
        config["parties"][p]["address"] = f"127.0.0.1:{port}"
    path = tmp_path / "federation.json"
    path.write_text(json.dumps(config))
    return path, dict(X=X, y=y, ids=ids, bank_rows=bank_rows, shop_rows=shop_rows,
                      Xn=Xn, new_ids=new_ids)


def _run_parties(argv_by_party):
    """``python -m skfed ...`` for each party, in threads of this process."""
    codes = {}
    threads = [threading.Thread(target=lambda p=p, a=a: codes.__setitem__(p, main(a)))
               for p, a in argv_by_party.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def _reference(data, params, fit_rows=None):
    """The in-process estimator on the aligned joint table."""
    X, y, ids = data["X"], data["y"], data["ids"]
    shared = np.intersect1d(ids[data["bank_rows"]], ids[data["shop_rows"]])
    order = {v: i for i, v in enumerate(ids)}
    rows = np.asarray([order[v] for v in sorted(shared)])
    if fit_rows is not None:
        rows = rows[fit_rows]
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    return VerticalLogisticRegression(topo, **params).fit(X[rows], y[rows]), rows


PARAMS = {"encryption": "None", "max_iter": 15, "learning_rate": 0.5, "random_state": 0}


def test_train_predict_load_in_process(tmp_path, capsys):
    config, data = _vertical_files(tmp_path, PARAMS)
    codes = _run_parties({p: ["party", "--role", p, "--config", str(config),
                              "--output", str(tmp_path / f"{p}.json")]
                          + ([] if p == "arbiter" else ["--data", str(tmp_path / f"{p}.csv")])
                          for p in ("arbiter", "bank", "shop")})
    out = capsys.readouterr()
    assert codes == {"arbiter": 0, "bank": 0, "shop": 0}, out.err
    params = dict(PARAMS, encryption=None)
    ref, rows = _reference(data, params)
    # The metric at the label party, on the training rows (no validation split).
    acc = ref.score(data["X"][rows], data["y"][rows])
    assert f"[bank] training rows ({len(rows)}): accuracy {acc:.4f}" in out.out
    assert "[arbiter] final objective:" in out.out

    # Load each party's model back: its part equals the in-process estimator's.
    bank = skfed.load(tmp_path / "bank.json")
    shop = skfed.load(tmp_path / "shop.json")
    np.testing.assert_array_equal(bank.coef_by_party_["bank"], ref.coef_by_party_["bank"])
    np.testing.assert_array_equal(shop.coef_by_party_["shop"], ref.coef_by_party_["shop"])
    assert set(shop.coef_by_party_) == {"shop"} and not hasattr(shop, "intercept_")

    # Predict new rows through the command line, aligned by the ID column.
    codes = _run_parties({p: ["predict", "--role", p, "--config", str(config),
                              "--model", str(tmp_path / f"{p}.json"),
                              "--data", str(tmp_path / f"{p}-new.csv")]
                          + (["--output", str(tmp_path / "pred.csv")] if p == "bank" else [])
                          for p in ("bank", "shop")})
    out = capsys.readouterr()
    assert codes == {"bank": 0, "shop": 0}, out.err
    got = list(csv.DictReader(open(tmp_path / "pred.csv")))
    # Rows 2..9 are the ones both parties hold.
    assert [int(r["cid"]) for r in got] == data["new_ids"][2:10].tolist()
    Xn = data["Xn"][2:10]
    assert [r["prediction"] for r in got] == ref.predict(Xn).tolist()
    np.testing.assert_allclose([float(r["proba_yes"]) for r in got],
                               ref.predict_proba(Xn)[:, 1], rtol=1e-12)
    assert "[shop] sent its partial scores for 8 rows" in out.out

    # The loaded party models predict collaboratively, in-process, as the reference.
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(("arbiter", "bank", "shop"),
                                                            free_local_ports(3))}
    results = {}

    def party(p, est, X):
        with GrpcRuntime(p, addresses, insecure=True, timeout=60) as rt:
            results[p] = est.set_params(runtime=rt).predict(X)

    threads = [threading.Thread(target=party, args=("bank", bank, Xn[:, :2])),
               threading.Thread(target=party, args=("shop", shop, Xn[:, 2:]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(results["bank"], ref.predict(Xn))
    assert results["shop"] is None


def test_validation_split_metric(tmp_path, capsys):
    config, data = _vertical_files(tmp_path, PARAMS, validation=0.25)
    codes = _run_parties({p: ["party", "--role", p, "--config", str(config),
                              "--output", str(tmp_path / f"{p}.json")]
                          + ([] if p == "arbiter" else ["--data", str(tmp_path / f"{p}.csv")])
                          for p in ("arbiter", "bank", "shop")})
    out = capsys.readouterr()
    assert codes == {"arbiter": 0, "bank": 0, "shop": 0}, out.err
    n_shared = len(np.intersect1d(data["ids"][data["bank_rows"]],
                                  data["ids"][data["shop_rows"]]))
    n_val = int(round(0.25 * n_shared))
    perm = np.random.RandomState(0).permutation(n_shared)
    ref, rows = _reference(data, dict(PARAMS, encryption=None), np.sort(perm[n_val:]))
    shared_rows = _reference(data, dict(PARAMS, encryption=None))[1]
    val_rows = shared_rows[np.sort(perm[:n_val])]
    acc = ref.score(data["X"][val_rows], data["y"][val_rows])
    assert f"[bank] validation rows ({n_val}): accuracy {acc:.4f}" in out.out
    saved = json.loads((tmp_path / "bank.json").read_text())
    assert saved["metrics"]["accuracy"] == pytest.approx(acc)
    bank = skfed.load(tmp_path / "bank.json")
    np.testing.assert_array_equal(bank.coef_by_party_["bank"], ref.coef_by_party_["bank"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    config, _ = _vertical_files(tmp_path, PARAMS)
    code = main(["predict", "--role", "bank", "--config", str(config),
                 "--model", str(tmp_path / "missing.json"), "--data", "x.csv"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("[bank] error: FileNotFoundError")
    with pytest.raises(FileNotFoundError):
        main(["predict", "--role", "bank", "--config", str(config), "--debug",
              "--model", str(tmp_path / "missing.json"), "--data", "x.csv"])


def test_a_party_missing_a_column_stops_every_party(tmp_path, capsys):
    """The shop's CSV lacks a column: it fails at start and the others stop at once
    naming it, instead of waiting connect_timeout (here 60 s) for it."""
    config, _ = _vertical_files(tmp_path, PARAMS, transport={"connect_timeout": 60})
    (tmp_path / "shop.csv").write_text(
        "\n".join(",".join(line.split(",")[:2]) for line in
                  (tmp_path / "shop.csv").read_text().splitlines()) + "\n")
    codes = _run_parties({p: ["party", "--role", p, "--config", str(config)]
                          + ([] if p == "arbiter" else ["--data", str(tmp_path / f"{p}.csv")])
                          for p in ("arbiter", "bank", "shop")})
    err = capsys.readouterr().err
    assert codes == {"arbiter": 1, "bank": 1, "shop": 1}
    assert "[shop] error: ValueError:" in err and "no column 'spend'" in err
    for p in ("arbiter", "bank"):
        line = next(x for x in err.splitlines() if x.startswith(f"[{p}]"))
        assert "PartyAborted" in line and "'shop' aborted the run: ValueError" in line
        assert "unreachable" not in line


def test_horizontal_train_predict_with_the_command_line(tmp_path, capsys):
    X, y = make_classification(n_samples=160, n_features=4, n_informative=3, n_redundant=0,
                               random_state=2)
    site = np.where(np.random.RandomState(0).rand(len(y)) < 0.5, "client0", "client1")
    header = ["f0", "f1", "f2", "f3", "label"]
    for c in ("client0", "client1"):
        _write_csv(tmp_path / f"{c}.csv", header, [*X[site == c].T, y[site == c]])
    config = {"estimator": "FederatedSGDClassifier",
              "params": {"loss": "log_loss", "n_rounds": 3, "random_state": 0},
              "topology": {"target": "label", "validation_fraction": 0.2},
              "transport": {"insecure": True, "connect_timeout": 30, "timeout": 60},
              "parties": {p: {"address": f"127.0.0.1:{port}"} for p, port in
                          zip(("server", "client0", "client1"), free_local_ports(3))}}
    (tmp_path / "fed.json").write_text(json.dumps(config))
    codes = _run_parties({p: ["party", "--role", p, "--config", str(tmp_path / "fed.json"),
                              "--output", str(tmp_path / f"{p}.json")]
                          + ([] if p == "server" else ["--data", str(tmp_path / f"{p}.csv")])
                          for p in ("server", "client0", "client1")})
    out = capsys.readouterr().out
    assert codes == {"server": 0, "client0": 0, "client1": 0}
    models = {p: skfed.load(tmp_path / f"{p}.json") for p in ("server", "client0", "client1")}
    # Every party ends with the same global model; each client scored its own held-out rows.
    np.testing.assert_array_equal(models["server"].coef_, models["client0"].coef_)
    for c in ("client0", "client1"):
        n = int((site == c).sum())
        n_val = int(round(0.2 * n))
        val = np.sort(np.random.RandomState(0).permutation(n)[:n_val])
        acc = models[c].score(X[site == c][val], y[site == c][val])
        assert f"[{c}] validation rows ({n_val}): accuracy {acc:.4f}" in out
    # A client predicts new rows alone: the global model is its own.
    _write_csv(tmp_path / "new.csv", header[:4], [*X[:5].T])
    code = main(["predict", "--role", "client1", "--config", str(tmp_path / "fed.json"),
                 "--model", str(tmp_path / "client1.json"), "--data", str(tmp_path / "new.csv"),
                 "--output", str(tmp_path / "pred.csv")])
    assert code == 0
    got = [int(r["prediction"]) for r in csv.DictReader(open(tmp_path / "pred.csv"))]
    assert got == models["client1"].predict(X[:5]).tolist()


# -- saved models: JSON, versions, no pickle -----------------------------------------

def _fitted():
    from sklearn.datasets import make_regression

    from skfed import FederatedSGDClassifier, FederatedSGDRegressor, VerticalLinearRegression

    Xc, yc = make_classification(n_samples=80, n_features=4, n_informative=3,
                                 n_redundant=0, n_classes=3, random_state=0)
    labels = np.array(["a", "b", "c"])[yc]
    Xr, yr = make_regression(n_samples=80, n_features=4, random_state=0)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    return [
        (FederatedSGDClassifier(loss="log_loss", n_rounds=2, random_state=0).fit(Xc, labels),
         Xc),
        (FederatedSGDRegressor(n_rounds=2, random_state=0).fit(Xr, yr), Xr),
        (VerticalLinearRegression(topo, encryption=None, max_iter=5).fit(Xr, yr), Xr),
        (VerticalLogisticRegression(topo, encryption=None, max_iter=5).fit(Xc, labels), Xc),
    ]


def test_saved_models_predict_as_the_original(tmp_path):
    for est, X in _fitted():
        path = tmp_path / f"{type(est).__name__}.json"
        skfed.save(est, path)
        text = path.read_text()
        assert json.loads(text)["format"] == "skfed-model"
        loaded = skfed.load(path)
        assert type(loaded) is type(est)
        assert loaded.get_params() == est.get_params()
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        if hasattr(est, "classes_"):
            assert loaded.classes_.dtype == est.classes_.dtype


def test_loading_checks_versions_and_the_class(tmp_path):
    est, _ = _fitted()[1]
    doc = skfed.persistence.to_dict(est)
    path = tmp_path / "m.json"

    def write(**changes):
        path.write_text(json.dumps(dict(doc, **changes)))
        return path

    with pytest.raises(ValueError, match="newer than this skfed"):
        skfed.load(write(format_version=doc["format_version"] + 1))
    with pytest.warns(skfed.persistence.InconsistentVersionWarning, match="0.0.1"):
        skfed.load(write(skfed_version="0.0.1"))
    with pytest.raises(ValueError, match="not one of skfed's estimators"):
        skfed.load(write(estimator="os.system"))
    with pytest.raises(ValueError, match="not a saved skfed model"):
        skfed.load(write(format="pickle"))
    with pytest.raises(ValueError, match="not fitted"):
        skfed.save(skfed.FederatedSGDRegressor(), path)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spawn(argv):
    env = dict(os.environ, SKFED_ALLOW_INSECURE_KEYS="1", PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "skfed", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _with_tls(config, tmp_path, connect_timeout=30):
    from skfed.runtime.certs import make_test_pki

    pki = make_test_pki(tmp_path / "pki", ["arbiter", "bank", "shop"])
    doc = json.loads(config.read_text())
    doc["transport"] = {"cafile": pki["cafile"], "connect_timeout": connect_timeout,
                        "timeout": 120}
    for p in ("arbiter", "bank", "shop"):
        doc["parties"][p].update(certfile=pki[p]["certfile"], keyfile=pki[p]["keyfile"])
    config.write_text(json.dumps(doc))


def _train_argv(config, tmp_path, p):
    return (["party", "--role", p, "--config", str(config),
             "--output", str(tmp_path / f"{p}.json")]
            + ([] if p == "arbiter" else ["--data", str(tmp_path / f"{p}.csv")]))


@pytest.mark.slow
def test_train_predict_load_in_three_processes(tmp_path):
    """Three OS processes with mutual TLS: train, predict new rows through the command
    line, then load the saved models: predictions equal the in-process estimator's."""
    params = dict(PARAMS, encryption="paillier", key_size=512)
    config, data = _vertical_files(tmp_path, params)
    _with_tls(config, tmp_path)

    def check(outs):
        for p, (code, out, err) in outs.items():
            assert code == 0, f"{p} failed:\n{out}\n{err}"
        return outs

    check(_finish({p: _spawn(_train_argv(config, tmp_path, p))
                   for p in ("arbiter", "bank", "shop")}))
    outs = check(_finish({p: _spawn(["predict", "--role", p, "--config", str(config),
                                     "--model", str(tmp_path / f"{p}.json"),
                                     "--data", str(tmp_path / f"{p}-new.csv")]
                                    + (["--output", str(tmp_path / "pred.csv")]
                                       if p == "bank" else []))
                          for p in ("bank", "shop")}))
    assert "predicted 8 rows" in outs["bank"][1]
    ref, _ = _reference(data, dict(params, encryption="paillier"))
    Xn = data["Xn"][2:10]
    got = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [r["prediction"] for r in got] == ref.predict(Xn).tolist()
    # Fixed-point encryption: the same model up to encoding error.
    np.testing.assert_allclose([float(r["proba_yes"]) for r in got],
                               ref.predict_proba(Xn)[:, 1], rtol=1e-6)
    bank, shop = skfed.load(tmp_path / "bank.json"), skfed.load(tmp_path / "shop.json")
    np.testing.assert_allclose(bank.coef_by_party_["bank"], ref.coef_by_party_["bank"],
                               rtol=1e-6)
    np.testing.assert_allclose(shop.coef_by_party_["shop"], ref.coef_by_party_["shop"],
                               rtol=1e-6)


@pytest.mark.slow
def test_a_process_missing_a_column_stops_the_others(tmp_path):
    """The shop's process fails reading its CSV, before any message; started after it,
    the bank and the arbiter stop naming it rather than waiting connect_timeout
    (600 s here, far beyond the guard below) and reporting it unreachable."""
    config, _ = _vertical_files(tmp_path, PARAMS)
    _with_tls(config, tmp_path, connect_timeout=600)
    (tmp_path / "shop.csv").write_text(
        "\n".join(",".join(line.split(",")[:2]) for line in
                  (tmp_path / "shop.csv").read_text().splitlines()) + "\n")
    shop = _spawn(_train_argv(config, tmp_path, "shop"))
    time.sleep(2.0)  # the others start late: the abort must wait for them
    procs = {p: _spawn(_train_argv(config, tmp_path, p)) for p in ("arbiter", "bank")}
    procs["shop"] = shop
    outs = _finish(procs, limit=240)
    assert outs["shop"][0] == 1
    assert outs["shop"][2].strip().startswith("[shop] error: ValueError:")
    assert "no column 'spend'" in outs["shop"][2] and "Traceback" not in outs["shop"][2]
    for p in ("arbiter", "bank"):
        code, _, err = outs[p]
        assert code == 1, err
        assert f"[{p}] error: PartyAborted: party 'shop' aborted the run: ValueError" in err
