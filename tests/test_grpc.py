"""Parties in separate OS processes talking gRPC with mutual TLS on 127.0.0.1.

The same fit run in-process and as one process per party must give the same
model; strangers are refused; a crashed party makes the others stop with an
error that names it. grpcio is imported unconditionally: CI installs the
``test`` extra, and a missing transport must fail here, not skip.
"""

import csv
import json
import os
import subprocess
import sys
import threading
import time

import grpc  # noqa: F401 - fail loudly if the transport is missing
import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from skfed import (
    FederatedSGDClassifier,
    HorizontalTopology,
    VerticalLinearRegression,
    VerticalTopology,
    align_samples,
)
from skfed.runtime import ProtocolTimeout, RoleError
from skfed.runtime.certs import make_test_pki
from skfed.runtime.grpc import (
    CHUNK_BYTES,
    GrpcRuntime,
    PartyAborted,
    PartyUnreachable,
    TransportError,
    free_local_ports,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seconds a party waits for a dead peer in these tests (the default is 120).
CONNECT_TIMEOUT = 4.0
# Upper bound for a subprocess run; only guards against a hang.
PROCESS_LIMIT = 120


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    parties = ["server", "client0", "client1", "arbiter", "bank", "shop", "mallory"]
    return make_test_pki(tmp_path_factory.mktemp("pki"), parties)


def _tls(pki, party):
    return {"certfile": pki[party]["certfile"], "keyfile": pki[party]["keyfile"],
            "cafile": pki["cafile"]}


def _write_csv(path, header, columns):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in zip(*columns):
            w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v
                        for v in row])


def _write_config(path, estimator, params, topology, parties, pki, transport=None):
    """A TOML deployment file (written by hand: the stdlib reads TOML, not writes it)."""
    ports = free_local_ports(len(parties))

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = [f"estimator = {value(estimator)}", "", "[params]"]
    lines += [f"{k} = {value(v)}" for k, v in params.items()]
    lines += ["", "[topology]"] + [f"{k} = {value(v)}" for k, v in topology.items()]
    transport = {"cafile": pki["cafile"], "connect_timeout": CONNECT_TIMEOUT,
                 "timeout": 60.0, **(transport or {})}
    lines += ["", "[transport]"] + [f"{k} = {value(v)}" for k, v in transport.items()]
    for (name, extra), port in zip(parties.items(), ports):
        lines += ["", f"[parties.{name}]", f'address = "127.0.0.1:{port}"',
                  f"certfile = {value(pki[name]['certfile'])}",
                  f"keyfile = {value(pki[name]['keyfile'])}"]
        lines += [f"{k} = {value(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _spawn(config, role, tmp_path, data=None, stdout=subprocess.PIPE):
    cmd = [sys.executable, "-m", "skfed", "party", "--role", role, "--config", str(config),
           "--output", str(tmp_path / f"{role}.json")]
    if data is not None:
        cmd += ["--data", str(data)]
    env = dict(os.environ, SKFED_ALLOW_INSECURE_KEYS="1", PYTHONPATH=ROOT)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=stdout,
                            stderr=subprocess.PIPE, text=True)


def _finish(procs, limit=PROCESS_LIMIT):
    """Each process's (return code, stdout, stderr); the limit only guards a hang."""
    outputs = {}
    for role, p in procs.items():
        try:
            out, err = p.communicate(timeout=limit)
        finally:
            if p.poll() is None:
                p.kill()
        outputs[role] = (p.returncode, out, err)
    return outputs


def _check_ok(outputs):
    for role, (code, out, err) in outputs.items():
        assert code == 0, f"{role} failed:\n{out}\n{err}"


def run_and_kill(config, tmp_path, clients, victim, started):
    """Run the server and ``clients`` as party processes; SIGKILL ``victim`` once
    the server's log (``tmp_path/server.log``) shows ``started``, then let the
    others finish. Checks every survivor exited 0 and the victim was killed."""
    import signal

    log = open(tmp_path / "server.log", "w+")
    procs = {"server": _spawn(config, "server", tmp_path, stdout=log)}
    procs.update({c: _spawn(config, c, tmp_path, tmp_path / f"{c}.csv") for c in clients})
    try:
        for _ in range(PROCESS_LIMIT * 10):
            if started in (tmp_path / "server.log").read_text():
                break
            assert procs["server"].poll() is None, "the server stopped early"
            time.sleep(0.05)
        else:
            pytest.fail("training never started")
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        outputs = _finish({p: procs[p] for p in procs if p != victim})
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        log.close()
    _check_ok(outputs)
    assert procs[victim].returncode == -signal.SIGKILL


def _load(tmp_path, role):
    return json.loads((tmp_path / f"{role}.json").read_text())


# -- the same fit in-process and across processes ---------------------------------

def test_vertical_processes_match_in_process(pki, tmp_path):
    """Alignment and encrypted vertical training, three processes vs one."""
    rng = np.random.RandomState(0)
    X, y = make_regression(n_samples=50, n_features=4, noise=1.0, random_state=0)
    ids = rng.permutation(1000)[:50]
    # The bank and the shop each know some customers the other does not.
    bank_rows, shop_rows = rng.permutation(50)[:44], rng.permutation(50)[:46]
    extra_bank, extra_shop = np.arange(2000, 2005), np.arange(3000, 3004)
    bank_ids = np.concatenate([ids[bank_rows], extra_bank])
    shop_ids = np.concatenate([ids[shop_rows], extra_shop])
    bank_X = np.vstack([X[bank_rows][:, :2], rng.randn(5, 2)])
    bank_y = np.concatenate([y[bank_rows], rng.randn(5)])
    shop_X = np.vstack([X[shop_rows][:, 2:], rng.randn(4, 2)])
    _write_csv(tmp_path / "bank.csv", ["customer", "age", "income", "target"],
               [bank_ids, bank_X[:, 0], bank_X[:, 1], bank_y])
    _write_csv(tmp_path / "shop.csv", ["visits", "customer", "spend"],
               [shop_X[:, 0], shop_ids, shop_X[:, 1]])
    params = {"solver": "gd", "learning_rate": 0.5, "max_iter": 8, "key_size": 512,
              "batch_size": 16, "random_state": 3}
    config = _write_config(
        tmp_path / "federation.toml", "VerticalLinearRegression", params,
        {"label_party": "bank", "target": "target", "id_column": "customer"},
        {"arbiter": {}, "bank": {"columns": ["age", "income"]},
         "shop": {"columns": ["visits", "spend"]}}, pki)
    procs = {"shop": _spawn(config, "shop", tmp_path, tmp_path / "shop.csv"),
             "arbiter": _spawn(config, "arbiter", tmp_path),
             "bank": _spawn(config, "bank", tmp_path, tmp_path / "bank.csv")}
    outputs = _finish(procs)
    _check_ok(outputs)

    # The simulation: align in-process, fit on the joined table.
    idx = align_samples({"bank": bank_ids, "shop": shop_ids})
    joint = np.hstack([bank_X[idx["bank"]], shop_X[idx["shop"]]])
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    ref = VerticalLinearRegression(topo, **params).fit(joint, bank_y[idx["bank"]])

    bank, shop, arbiter = (_load(tmp_path, p) for p in ("bank", "shop", "arbiter"))
    n_shared = len(np.intersect1d(bank_rows, shop_rows))
    assert len(idx["bank"]) == n_shared
    assert f"{n_shared} of 49 records are shared" in outputs["bank"][1]
    np.testing.assert_array_equal(bank["coef_by_party_"]["bank"], ref.coef_by_party_["bank"])
    np.testing.assert_array_equal(shop["coef_by_party_"]["shop"], ref.coef_by_party_["shop"])
    assert bank["intercept_"] == ref.intercept_
    assert arbiter["loss_curve_"] == ref.loss_curve_
    # Each party keeps only its own part of the model.
    assert set(bank["coef_by_party_"]) == {"bank"} and "intercept_" not in shop
    assert "coef_by_party_" not in arbiter and "coef_" not in arbiter
    assert bank["n_iter_"] == shop["n_iter_"] == arbiter["n_iter_"] == ref.n_iter_
    assert shop["bytes_sent"] > 0 and arbiter["bytes_received"] > 0


def test_horizontal_processes_match_in_process(pki, tmp_path):
    X, y = make_classification(n_samples=120, n_features=4, n_informative=3,
                               n_redundant=0, n_classes=3, random_state=1)
    site = np.where(np.random.RandomState(0).rand(len(y)) < 0.5, "client0", "client1")
    header = ["f0", "f1", "f2", "f3", "label"]
    for c in ("client0", "client1"):
        rows = site == c
        _write_csv(tmp_path / f"{c}.csv", header, [*X[rows].T, y[rows]])
    params = {"loss": "log_loss", "n_rounds": 4, "local_epochs": 2, "random_state": 7}
    config = _write_config(tmp_path / "federation.toml", "FederatedSGDClassifier", params,
                           {"target": "label"},
                           {"server": {}, "client0": {}, "client1": {}}, pki)
    procs = {c: _spawn(config, c, tmp_path, tmp_path / f"{c}.csv")
             for c in ("client0", "client1")}
    procs["server"] = _spawn(config, "server", tmp_path)
    outputs = _finish(procs)
    _check_ok(outputs)

    import pandas as pd

    df = pd.DataFrame(X, columns=header[:4]).assign(site=site)
    ref = FederatedSGDClassifier(topology=HorizontalTopology(partition="site"),
                                 **params).fit(df, y)
    for party in ("server", "client0", "client1"):
        got = _load(tmp_path, party)
        np.testing.assert_array_equal(got["coef_"], ref.coef_)
        np.testing.assert_array_equal(got["intercept_"], ref.intercept_)
        assert got["classes_"] == ref.classes_.tolist()
        assert got["n_iter_"] == ref.n_iter_


# -- who may talk -----------------------------------------------------------------

def _two_party_addresses():
    a, b = free_local_ports(2)
    return {"bank": f"127.0.0.1:{a}", "shop": f"127.0.0.1:{b}"}


def test_strangers_are_refused(pki, tmp_path):
    """Only certificates from the federation's CA, naming a party, may send."""
    addresses = _two_party_addresses()
    foreign = make_test_pki(tmp_path / "foreign", ["shop"], ca_name="someone else's CA")
    with GrpcRuntime("bank", addresses, **_tls(pki, "bank"),
                     connect_timeout=60) as bank:
        # A certificate from another CA: the TLS handshake fails.
        with GrpcRuntime("shop", addresses, certfile=foreign["shop"]["certfile"],
                         keyfile=foreign["shop"]["keyfile"], cafile=pki["cafile"],
                         connect_timeout=1.0) as impostor:
            with pytest.raises(PartyUnreachable, match="'bank'"):
                impostor.run({"shop": lambda ctx: ctx.send("bank", "u", [1.0])})
        # A genuine certificate of a party outside the topology, claiming to be shop.
        with GrpcRuntime("shop", addresses, **_tls(pki, "mallory"),
                         connect_timeout=1.0) as mallory:
            with pytest.raises(TransportError, match="PERMISSION_DENIED"):
                mallory.run({"shop": lambda ctx: ctx.send("bank", "u", [1.0])})
        # ... and under its own name.
        addresses_m = dict(addresses, mallory=addresses["shop"])
        del addresses_m["shop"]
        with GrpcRuntime("mallory", addresses_m, **_tls(pki, "mallory"),
                         connect_timeout=1.0) as mallory:
            with pytest.raises(TransportError, match="not a party"):
                mallory.run({"mallory": lambda ctx: ctx.send("bank", "u", [1.0])})
        assert [r["reason"] for r in bank.refused] == [
            "the certificate does not name the claimed sender",
            "not a party of this federation"]
        assert bank.refused[0]["identities"] == ["mallory"]
        # Nothing reached the bank's role.
        with pytest.raises(RoleError, match="ProtocolTimeout") as info:
            bank.run({"bank": lambda ctx: ctx.recv("shop", "u", timeout=0.5)})
        assert isinstance(info.value.__cause__, ProtocolTimeout)


def test_server_identity_is_checked(pki):
    """A party connecting to 'shop' refuses a server that is not shop."""
    addresses = _two_party_addresses()
    # mallory's (CA-signed) certificate listens at shop's address.
    with GrpcRuntime("shop", addresses, **_tls(pki, "mallory")):
        with GrpcRuntime("bank", addresses, **_tls(pki, "bank"), connect_timeout=1.0) as bank:
            with pytest.raises(PartyUnreachable, match="'shop'"):
                bank.run({"bank": lambda ctx: ctx.send("shop", "d", [1.0])})


def test_mutual_tls_is_the_default():
    with pytest.raises(ValueError, match="insecure=True"):
        GrpcRuntime("bank", _two_party_addresses())


# -- failures -----------------------------------------------------------------

def _in_threads(names, work):
    """Run ``work(name)`` for every party in its own thread; the errors by party."""
    errors = {}

    def target(name):
        try:
            work(name)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            errors[name] = exc

    threads = [threading.Thread(target=target, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PROCESS_LIMIT)
    return errors


def _run_threads(runtimes, roles):
    results = {}
    errors = _in_threads(
        roles, lambda name: results.update(runtimes[name].run({name: roles[name]})[0]))
    return results, errors


def test_failing_role_aborts_its_peers(pki):
    """A role that raises tells the others, which stop at once naming it."""
    ports = free_local_ports(3)
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(["arbiter", "bank", "shop"], ports)}
    runtimes = {p: GrpcRuntime(p, addresses, **_tls(pki, p), timeout=60) for p in addresses}

    def shop(ctx):
        ctx.recv("bank", "go")
        raise ValueError("secret row 17 has a NaN")

    roles = {"bank": lambda ctx: (ctx.send("shop", "go", 1), ctx.recv("shop", "never")),
             "arbiter": lambda ctx: ctx.recv("bank", "never"),
             "shop": shop}
    try:
        _, errors = _run_threads(runtimes, roles)
    finally:
        for rt in runtimes.values():
            rt.close()
    assert isinstance(errors["shop"], RoleError) and errors["shop"].party == "shop"
    for p in ("bank", "arbiter"):
        assert isinstance(errors[p], PartyAborted), errors[p]
        assert errors[p].party == "shop"
        # The type travels, not the message (it may quote data).
        assert errors[p].reason == "ValueError" and "secret" not in str(errors[p])


def test_disagreeing_settings_are_named(pki):
    """Parties that typed different hyper-parameters stop before training."""
    X, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    names = ["server", "client0", "client1"]
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(3))}
    topo = HorizontalTopology(n_parties=2, party_names=["client0", "client1"])
    ests = {p: FederatedSGDClassifier(
        topology=topo, n_rounds=2, eta0=0.5 if p == "client1" else 0.01,
        runtime=GrpcRuntime(p, addresses, **_tls(pki, p), timeout=60)) for p in names}
    data = {"server": (None, None), "client0": (X[:20], y[:20]), "client1": (X[20:], y[20:])}
    errors = _in_threads(names, lambda p: ests[p].fit(*data[p]))
    for est in ests.values():
        est.runtime.close()
    assert "eta0: 'client1' has 0.5, 'server' has 0.01" in str(errors["server"])
    for p in ("client0", "client1"):
        assert isinstance(errors[p], PartyAborted) and errors[p].party == "server"
        assert "ProtocolMismatch" in errors[p].reason and "eta0" in errors[p].reason


def test_killed_party_makes_the_others_fail(pki, tmp_path):
    """Kill the shop mid-fit: bank and arbiter exit with an error naming it."""
    X, y = make_regression(n_samples=40, n_features=4, random_state=0)
    _write_csv(tmp_path / "bank.csv", ["a", "b", "y"], [X[:, 0], X[:, 1], y])
    _write_csv(tmp_path / "shop.csv", ["c", "d"], [X[:, 2], X[:, 3]])
    # Unencrypted and very long, so the fit is surely running when the shop dies;
    # the arbiter prints every epoch's loss, which tells when training is under way.
    params = {"encryption": "None", "max_iter": 10 ** 7, "tol": "None",
              "learning_rate": 0.01, "verbose": 1}
    config = _write_config(
        tmp_path / "federation.toml", "VerticalLinearRegression", params,
        {"label_party": "bank", "target": "y"},
        {"arbiter": {}, "bank": {"columns": ["a", "b"]}, "shop": {"columns": ["c", "d"]}},
        pki)
    log = open(tmp_path / "arbiter.log", "w+")
    procs = {"arbiter": _spawn(config, "arbiter", tmp_path, stdout=log),
             "bank": _spawn(config, "bank", tmp_path, tmp_path / "bank.csv"),
             "shop": _spawn(config, "shop", tmp_path, tmp_path / "shop.csv")}
    try:
        for _ in range(PROCESS_LIMIT * 10):
            if "iteration 20/" in (tmp_path / "arbiter.log").read_text():
                break
            assert procs["arbiter"].poll() is None, "the arbiter stopped early"
            time.sleep(0.1)
        else:
            pytest.fail("training never started")
        procs["shop"].kill()
        procs["shop"].wait()
        killed_at = time.monotonic()
        outputs = _finish({p: procs[p] for p in ("bank", "arbiter")})
        # Within the parties' connect_timeout plus process exit, not the 60 s timeout.
        assert time.monotonic() - killed_at < 50
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        log.close()
    for party in ("bank", "arbiter"):
        code, _, err = outputs[party]
        assert code != 0
        last = err.strip().splitlines()[-1]
        assert "'shop'" in last and "unreachable" in last, err


def test_large_messages_travel_in_chunks():
    addresses = _two_party_addresses()
    big = np.arange(3 * CHUNK_BYTES // 8 + 5, dtype=np.float64)  # > 3 chunks
    runtimes = {p: GrpcRuntime(p, addresses, insecure=True) for p in addresses}
    roles = {"bank": lambda ctx: ctx.send("shop", "big", big, kind="plain"),
             "shop": lambda ctx: ctx.recv("bank", "big")}
    try:
        results, errors = _run_threads(runtimes, roles)
    finally:
        for rt in runtimes.values():
            rt.close()
    assert not errors
    np.testing.assert_array_equal(results["shop"], big)


def test_unreachable_peer_is_named():
    addresses = _two_party_addresses()
    with GrpcRuntime("bank", addresses, insecure=True, connect_timeout=0.5) as bank:
        with pytest.raises(PartyUnreachable, match="party 'shop' at 127.0.0.1"):
            bank.run({"bank": lambda ctx: ctx.send("shop", "u", 1)})
    with GrpcRuntime("bank", addresses, insecure=True, connect_timeout=0.5) as bank:
        start = time.monotonic()
        with pytest.raises(PartyUnreachable, match="'shop'.*unreachable"):
            bank.run({"bank": lambda ctx: ctx.recv("shop", "u")})
        assert time.monotonic() - start < 30  # not the 600 s message timeout


def test_collaborative_predict_per_party(pki):
    """After a deployed fit, predict at the label party needs the feature party."""
    from skfed import VerticalLogisticRegression

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    y = np.where(y == 1, "yes", "no")
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    params = dict(topology=topo, encryption=None, max_iter=20, random_state=0)
    ref = VerticalLogisticRegression(**params).fit(X, y)
    names = ["arbiter", "bank", "shop"]
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(3))}
    ests = {p: VerticalLogisticRegression(**params, runtime=GrpcRuntime(
        p, addresses, **_tls(pki, p), timeout=60)) for p in names}
    fit_data = {"arbiter": (None, None), "bank": (X[:, :2], y), "shop": (X[:, 2:], None)}
    new = np.random.RandomState(1).randn(7, 4)
    out = {}

    def party(p):
        ests[p].fit(*fit_data[p])
        if p == "bank":
            out[p] = (ests[p].predict(new[:, :2]), ests[p].predict_proba(new[:, :2]))
        elif p == "shop":
            out[p] = (ests[p].predict(new[:, 2:]), ests[p].predict_proba(new[:, 2:]))

    errors = _in_threads(names, party)
    for est in ests.values():
        est.runtime.close()
    assert not errors, errors
    np.testing.assert_array_equal(out["bank"][0], ref.predict(new))
    np.testing.assert_allclose(out["bank"][1], ref.predict_proba(new), rtol=1e-12)
    assert out["shop"] == (None, None)  # the feature party only sends its part
    assert list(ests["bank"].classes_) == ["no", "yes"] and not hasattr(ests["shop"], "classes_")
    with pytest.raises(ValueError, match="holds no model"):
        ests["arbiter"].predict(new)


def test_transfer_parties_match_the_simulation(pki):
    """Source and target in their own runtimes (gRPC, mTLS): the same models, the
    target's predictions served by the source, as in the simulation."""
    from skfed import FederatedTransferClassifier

    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, random_state=0)
    y = np.where(y == 1, 7, 3)
    X[:50, 3:] = np.nan                     # source only
    X[100:, :3] = np.nan                    # target only
    y_fit = y.copy()
    y_fit[100:] = -1
    topo = VerticalTopology({"bank": [0, 1, 2], "shop": [3, 4, 5]}, label_party="bank")
    params = dict(topology=topo, hidden_layer_sizes=(), representation_dim=4, max_iter=3,
                  key_size=512, random_state=0)
    ref = FederatedTransferClassifier(**params).fit(X, y_fit)

    rows = {"bank": np.arange(100), "shop": np.arange(50, 150)}
    overlap = np.arange(50, 100)
    names = ["bank", "shop"]
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(2))}
    ests = {p: FederatedTransferClassifier(**params, runtime=GrpcRuntime(
        p, addresses, **_tls(pki, p), timeout=60)) for p in names}
    cols = {"bank": [0, 1, 2], "shop": [3, 4, 5]}
    new = X[100:110, 3:]
    out = {}

    def party(p):
        Xp = X[np.ix_(rows[p], cols[p])]
        idx = np.searchsorted(rows[p], overlap)
        ests[p].fit(Xp, y_fit[rows[p]] if p == "bank" else None, overlap=idx)
        out[p] = ests[p].predict(new if p == "shop" else None)

    errors = _in_threads(names, party)
    for est in ests.values():
        est.runtime.close()
    assert not errors, errors
    for attr in ("coefs", "intercepts"):
        for a, b in zip(ests["bank"].source_model_[attr], ref.source_model_[attr]):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        for a, b in zip(ests["shop"].target_model_[attr], ref.target_model_[attr]):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(ests["bank"].loss_curve_, ref.loss_curve_, rtol=1e-12)
    assert not hasattr(ests["bank"], "target_model_")
    assert not hasattr(ests["shop"], "source_model_")
    assert list(ests["shop"].classes_) == [3, 7]
    np.testing.assert_array_equal(out["shop"], ref.predict(X[100:110]))
    assert out["bank"] is None


def test_transfer_parties_that_disagree_are_named(pki):
    from skfed import FederatedTransferClassifier

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    names = ["bank", "shop"]
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(2))}
    ests = {p: FederatedTransferClassifier(
        topo, hidden_layer_sizes=(), gamma=0.5 if p == "shop" else 1.0, encryption=None,
        runtime=GrpcRuntime(p, addresses, **_tls(pki, p), timeout=60)) for p in names}
    data = {"bank": (X[:, :2], y), "shop": (X[:, 2:], None)}
    errors = _in_threads(names, lambda p: ests[p].fit(*data[p], overlap=np.arange(60)))
    for est in ests.values():
        est.runtime.close()
    assert set(errors) == {"bank", "shop"}
    assert any("gamma" in str(e) for e in errors.values())


def test_transfer_processes_with_the_command_line(pki, tmp_path):
    """``python -m skfed party`` for transfer learning: two processes, the overlap
    found by private set intersection on customer IDs, the simulation's models."""
    from skfed import FederatedTransferClassifier

    rng = np.random.RandomState(0)
    X, y = make_classification(n_samples=120, n_features=4, n_informative=3, n_redundant=0,
                               random_state=0)
    ids = rng.permutation(10_000)[:120]
    bank_rows, shop_rows = np.arange(0, 80), np.arange(40, 120)   # overlap: 40..79
    y_bank = y[bank_rows].copy()
    y_bank[rng.rand(80) < 0.2] = -1                               # some unlabelled
    _write_csv(tmp_path / "bank.csv", ["customer", "a", "b", "label"],
               [ids[bank_rows], X[bank_rows, 0], X[bank_rows, 1], y_bank])
    _write_csv(tmp_path / "shop.csv", ["c", "customer", "d"],
               [X[shop_rows, 2], ids[shop_rows], X[shop_rows, 3]])
    params = {"hidden_layer_sizes": [], "representation_dim": 3, "max_iter": 3,
              "key_size": 512, "random_state": 5}
    config = _write_config(
        tmp_path / "transfer.toml", "FederatedTransferClassifier", params,
        {"label_party": "bank", "target": "label", "id_column": "customer"},
        {"bank": {"columns": ["a", "b"]}, "shop": {"columns": ["c", "d"]}}, pki)
    procs = {"shop": _spawn(config, "shop", tmp_path, tmp_path / "shop.csv"),
             "bank": _spawn(config, "bank", tmp_path, tmp_path / "bank.csv")}
    outputs = _finish(procs)
    _check_ok(outputs)
    assert "40 of 80 records are shared" in outputs["bank"][1]

    # The simulation on the same rows, in the order the alignment agreed on.
    idx = align_samples({"bank": ids[bank_rows], "shop": ids[shop_rows]})
    order = bank_rows[idx["bank"]]
    rows = np.concatenate([np.setdiff1d(bank_rows, order), order,
                           np.setdiff1d(shop_rows, order)])
    X_sim = np.full((len(rows), 4), np.nan)
    in_bank, in_shop = np.isin(rows, bank_rows), np.isin(rows, shop_rows)
    X_sim[in_bank, :2] = X[rows[in_bank], :2]
    X_sim[in_shop, 2:] = X[rows[in_shop], 2:]
    y_sim = np.full(len(rows), -1)
    y_sim[in_bank] = y_bank[np.searchsorted(bank_rows, rows[in_bank])]
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    bank, shop = _load(tmp_path, "bank"), _load(tmp_path, "shop")
    assert "target_model_" not in bank and "source_model_" not in shop
    assert bank["n_iter_"] == shop["n_iter_"] == 3
    assert len(bank["loss_curve_"]) == 3 and np.isfinite(bank["loss_curve_"]).all()
    ref = FederatedTransferClassifier(topo, hidden_layer_sizes=(), representation_dim=3,
                                      max_iter=3, key_size=512, random_state=5)
    ref.fit(X_sim, y_sim)
    assert ref.n_overlap_ == 40
    for got, want in ((bank["source_model_"], ref.source_model_),
                      (shop["target_model_"], ref.target_model_)):
        for key in ("coefs", "intercepts"):
            for a, b in zip(got[key], want[key]):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bank["loss_curve_"], ref.loss_curve_, rtol=1e-9)


def test_transfer_setup_compares_normalised_settings(pki):
    """(4,) and [4], 1 and 1.0 are the same settings; predict(None) at the
    target is refused before any message."""
    from skfed import FederatedTransferClassifier

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    names = ["bank", "shop"]
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(2))}
    spelled = {"bank": dict(hidden_layer_sizes=(4,), gamma=1),
               "shop": dict(hidden_layer_sizes=[4], gamma=1.0)}
    ests = {p: FederatedTransferClassifier(
        topo, representation_dim=8, encryption=None, max_iter=2, **spelled[p],
        runtime=GrpcRuntime(p, addresses, **_tls(pki, p), timeout=60)) for p in names}
    data = {"bank": (X[:, :2], y), "shop": (X[:, 2:], None)}
    errors = _in_threads(names, lambda p: ests[p].fit(*data[p], overlap=np.arange(60)))
    try:
        assert not errors, errors
        assert ests["shop"].n_iter_ == ests["bank"].n_iter_ == 2
        with pytest.raises(ValueError, match="predicts its own rows"):
            ests["shop"].predict(None)
    finally:
        for est in ests.values():
            est.runtime.close()


def test_a_cancelled_call_waits_for_the_abort_notice_behind_it(monkeypatch):
    # A failing party cancels the calls in flight before its abort notice
    # lands: the error must name the party that failed and why, not the cancel.
    from types import SimpleNamespace

    from skfed.runtime.grpc import GrpcRuntime, PartyAborted, TransportError

    fake = SimpleNamespace(_cond=threading.Condition(), _aborted=None)

    def notice():
        time.sleep(0.2)
        with fake._cond:
            fake._aborted = ("shop", "ValueError: no column 'spend'", "shop")
            fake._cond.notify_all()

    threading.Thread(target=notice).start()
    err = GrpcRuntime._refused(fake, "shop", "party 'shop' refused Send: CANCELLED")
    assert isinstance(err, PartyAborted)
    assert err.party == "shop" and "no column 'spend'" in str(err)
    # No notice at all: the transport's own error, after the grace period.
    monkeypatch.setattr("skfed.runtime.grpc._ABORT_GRACE", 0.1)
    fake._aborted = None
    err = GrpcRuntime._refused(fake, "shop", "party 'shop' refused Send: CANCELLED")
    assert type(err) is TransportError and "CANCELLED" in str(err)
