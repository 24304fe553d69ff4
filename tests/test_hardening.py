"""Hardening: received messages are checked against their public layout.

Each test here plays a deviating (or buggy) party and checks that the honest
party refuses the message with a clear error instead of finishing with a
wrong result.
"""

import numpy as np
import pytest

import skfed.vertical._base as vbase
from skfed import VerticalLinearRegression, VerticalTopology
from skfed.crypto.paillier import EncryptedArray, generate_keypair, public_key_from_wire
from skfed.runtime import LocalRuntime, RoleError
from skfed.runtime.layout import (
    LayoutMismatch,
    check_array,
    check_attributes,
    check_dict,
    check_encrypted,
    check_scalar,
)
from skfed.runtime.party import ProtocolMismatch
from skfed.vertical import roles

SMALL_KEY = 512


class _Tampering:
    """A party's context that rewrites one outgoing message (a deviating party)."""

    def __init__(self, ctx, tag, rewrite):
        self._ctx, self._tag, self._rewrite = ctx, tag, rewrite
        self.public_key = None

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def recv(self, frm, tag, *args, **kwargs):
        obj = self._ctx.recv(frm, tag, *args, **kwargs)
        if tag == "public_key" and obj is not None:
            self.public_key = public_key_from_wire(obj)
        return obj

    def send(self, to, tag, payload, kind="plain"):
        if tag == self._tag:
            payload = self._rewrite(self, payload)
        return self._ctx.send(to, tag, payload, kind=kind)


def _first_element(party, payload):
    """Send a (1, 1) array where the protocol says (n_batch, K)."""
    if party.public_key is None:
        return np.asarray(payload)[:1, :1]
    return EncryptedArray.from_wire(party.public_key, payload)[:1, :1].to_wire()


def _data(seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=n)
    topo = VerticalTopology({"bank": [0, 1], "shop": [2, 3]}, label_party="bank")
    return X, y, topo


@pytest.mark.parametrize("encryption", [None, "paillier"])
def test_label_party_refuses_partial_scores_of_the_wrong_shape(monkeypatch, encryption):
    # Finding 1: numpy broadcasting absorbed a (1, 1) [[u]] and the fit
    # finished with coefficients off by more than 1 and no error.
    X, y, topo = _data()
    honest_host = roles.host_fit

    def deviating_host(ctx, **kwargs):
        return honest_host(_Tampering(ctx, "u", _first_element), **kwargs)

    monkeypatch.setattr(roles, "host_fit", deviating_host)
    est = VerticalLinearRegression(topology=topo, encryption=encryption, key_size=SMALL_KEY,
                                   max_iter=3, learning_rate=0.1)
    with pytest.raises((RoleError, ProtocolMismatch), match=r"'u' from 'shop' has shape \(1, 1\)"):
        est.fit(X, y)


def test_arbiter_checks_the_scale_of_what_it_decrypts(monkeypatch):
    # A key holder decrypts only values in the public layout: a loss at a
    # scale other than the protocol's is refused before decryption.
    X, y, topo = _data()
    honest_guest = roles.guest_fit

    def rescale(party, payload):
        enc = EncryptedArray.from_wire(party.public_key, payload)
        return enc.rescale(enc.scale_bits + 1).to_wire()

    def deviating_guest(ctx, **kwargs):
        return honest_guest(_Tampering(ctx, "loss", rescale), **kwargs)

    monkeypatch.setattr(roles, "guest_fit", deviating_guest)
    monkeypatch.setattr(vbase, "_make_runtime", lambda: LocalRuntime())
    est = VerticalLinearRegression(topology=topo, encryption="paillier", key_size=SMALL_KEY,
                                   max_iter=2)
    with pytest.raises((RoleError, ProtocolMismatch), match="public scale"):
        est.fit(X, y)


def test_honest_runs_pass_the_checks():
    X, y, topo = _data()
    est = VerticalLinearRegression(topology=topo, encryption="paillier", key_size=SMALL_KEY,
                                   max_iter=30, learning_rate=0.1).fit(X, y)
    assert est.score(X, y) > 0.9


# -- the shared mechanism -------------------------------------------------------

def test_check_array_shapes_kinds_and_finiteness():
    ok = check_array(np.zeros((3, 2), dtype=np.float32), sender="a", tag="t", shape=(3, None))
    assert ok.dtype == np.float64 and ok.shape == (3, 2)
    with pytest.raises(LayoutMismatch, match=r"has shape \(2, 2\)"):
        check_array(np.zeros((2, 2)), sender="a", tag="t", shape=(3, None))
    with pytest.raises(LayoutMismatch, match="NaN"):
        check_array(np.array([np.nan]), sender="a", tag="t", shape=(1,), finite=True)
    with pytest.raises(LayoutMismatch, match="kind"):
        check_array("not an array", sender="a", tag="t")
    with pytest.raises(LayoutMismatch, match="uint64"):
        check_array(np.zeros(3, dtype=np.uint32), sender="a", tag="t", dtype="u",
                    exact_dtype="uint64")
    # a mismatch is a ProtocolMismatch: it names only public values
    assert issubclass(LayoutMismatch, ProtocolMismatch)


def test_check_encrypted_shape_and_scale():
    pk, _ = generate_keypair(SMALL_KEY)
    enc = EncryptedArray.encrypt(pk, np.zeros((2, 1)))
    assert check_encrypted(enc, sender="a", tag="t", shape=(2, 1),
                           scale_bits=enc.scale_bits) is enc
    with pytest.raises(LayoutMismatch, match="shape"):
        check_encrypted(enc, sender="a", tag="t", shape=(1, 1))
    with pytest.raises(LayoutMismatch, match="scale"):
        check_encrypted(enc, sender="a", tag="t", scale_bits=enc.scale_bits + 1)
    with pytest.raises(LayoutMismatch, match="not a ciphertext array"):
        check_encrypted(np.zeros(2).tolist(), sender="a", tag="t")


def test_check_scalar_dict_and_attributes():
    assert check_scalar(3, sender="a", tag="t", kind="int", low=1) == 3
    with pytest.raises(LayoutMismatch, match="bool"):
        check_scalar("false", sender="a", tag="t", kind="bool")
    with pytest.raises(LayoutMismatch, match="int"):
        check_scalar(True, sender="a", tag="t", kind="int")
    with pytest.raises(LayoutMismatch, match="range"):
        check_scalar(0, sender="a", tag="t", kind="int", low=1)
    with pytest.raises(LayoutMismatch, match="fields"):
        check_dict({"done": False}, sender="a", tag="t", keys=("done", "model"))
    with pytest.raises(LayoutMismatch, match="n_values"):
        check_attributes(type("P", (), {"n_values": 2})(), sender="a", tag="t", n_values=3)


def test_encrypted_arrays_do_not_broadcast():
    pk, sk = generate_keypair(SMALL_KEY)
    col = EncryptedArray.encrypt(pk, np.arange(3.0).reshape(3, 1))
    one = EncryptedArray.encrypt(pk, np.ones((1, 1)))
    with pytest.raises(ValueError, match="do not broadcast"):
        col + one
    with pytest.raises(ValueError, match="do not broadcast"):
        one - col
    np.testing.assert_array_equal((col + one.broadcast_to((3, 1))).decrypt(sk),
                                  np.arange(3.0).reshape(3, 1) + 1)


# -- transport: budgets, booleans, key files (findings 5-7) ----------------------

def _serve_and_send(receiver_kwargs, messages):
    """Start ``shop`` (which never consumes) and let ``bank`` send ``messages``."""
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    ports = free_local_ports(2)
    addresses = {"bank": f"127.0.0.1:{ports[0]}", "shop": f"127.0.0.1:{ports[1]}"}

    def bank(ctx):
        for i, payload in enumerate(messages):
            ctx.send("shop", f"m{i}", payload, kind="plain")

    with GrpcRuntime("shop", addresses, insecure=True, **receiver_kwargs) as shop:
        with GrpcRuntime("bank", addresses, insecure=True, connect_timeout=5.0) as rt:
            try:
                rt.run({"bank": bank})
            finally:
                held = dict(shop._held)
    return held


def test_receiver_refuses_messages_above_its_limit():
    from skfed.runtime.grpc import TransportError

    with pytest.raises(TransportError, match="max_message_bytes=2000"):
        _serve_and_send({"max_message_bytes": 2000}, [np.zeros(400)])


def test_receiver_refuses_a_sender_above_its_byte_budget():
    from skfed.runtime.grpc import TransportError

    # Two messages the receiver's role has not consumed: the second would
    # take what it holds for the sender above max_peer_bytes.
    held = _serve_and_send({"max_message_bytes": 2000, "max_peer_bytes": 2000},
                           [np.zeros(100)])
    assert 800 < held["bank"] < 1000
    with pytest.raises(TransportError, match="max_peer_bytes=2000"):
        _serve_and_send({"max_message_bytes": 2000, "max_peer_bytes": 2000},
                        [np.zeros(150), np.zeros(150)])


def test_sender_checks_its_own_limit_and_consumed_bytes_are_released():
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    ports = free_local_ports(2)
    addresses = {"bank": f"127.0.0.1:{ports[0]}", "shop": f"127.0.0.1:{ports[1]}"}
    # No shop runs: the failed role's abort is retried towards it for
    # connect_timeout (it might still be starting), so keep that short.
    with GrpcRuntime("bank", addresses, insecure=True, max_message_bytes=100,
                     connect_timeout=2) as rt:
        with pytest.raises(RoleError, match="raise max_message_bytes on every party"):
            rt.run({"bank": lambda ctx: ctx.send("shop", "big", np.zeros(100))})
    import threading

    ports = free_local_ports(2)
    addresses = {"bank": f"127.0.0.1:{ports[0]}", "shop": f"127.0.0.1:{ports[1]}"}
    with GrpcRuntime("shop", addresses, insecure=True, max_message_bytes=1000,
                     max_peer_bytes=1000) as shop:
        def consume(ctx):
            return [ctx.recv("bank", "m")[0] for _ in range(5)]
        out = {}
        t = threading.Thread(target=lambda: out.update(shop.run({"shop": consume})[0]))
        t.start()
        with GrpcRuntime("bank", addresses, insecure=True) as bank:
            # 5 x ~840 bytes through a 1000-byte budget: each is released
            # when the role consumes it.
            bank.run({"bank": lambda ctx: [ctx.send("shop", "m", np.full(100, float(i)))
                                           for i in range(5)]})
        t.join(30)
        assert out["shop"] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert shop._held["bank"] == 0


def test_budget_parameters_are_validated():
    from skfed.runtime.grpc import GrpcRuntime

    addresses = {"bank": "127.0.0.1:1", "shop": "127.0.0.1:2"}
    with pytest.raises(ValueError, match="max_peer_bytes"):
        GrpcRuntime("bank", addresses, insecure=True, max_message_bytes=10, max_peer_bytes=5)
    with pytest.raises(ValueError, match="positive integer"):
        GrpcRuntime("bank", addresses, insecure=True, max_message_bytes=0)


def _deployment(transport):
    from skfed.deploy import Deployment

    return Deployment({
        "estimator": "VerticalLinearRegression", "topology": {"label_party": "bank"},
        "transport": transport,
        "parties": {"arbiter": {"address": "127.0.0.1:50050"},
                    "bank": {"address": "127.0.0.1:50051", "columns": [0]},
                    "shop": {"address": "127.0.0.1:50052", "columns": [1]}}})


@pytest.mark.parametrize("value", ["false", "true", 0, 1, "no"])
def test_insecure_must_be_a_real_boolean(value):
    # bool("false") is True: a quoted "false" used to turn TLS off.
    from skfed.runtime.grpc import GrpcRuntime

    with pytest.raises(ValueError, match="boolean"):
        _deployment({"insecure": value}).runtime("bank")
    with pytest.raises(ValueError, match="True or False"):
        GrpcRuntime("bank", {"bank": "127.0.0.1:1", "shop": "127.0.0.1:2"}, insecure=value)


def test_deployment_passes_the_budgets_and_refuses_non_integers():
    rt = _deployment({"insecure": True, "max_message_bytes": 1000,
                      "max_peer_bytes": 5000}).runtime("bank")
    assert (rt.max_message_bytes, rt.max_peer_bytes) == (1000, 5000)
    with pytest.raises(ValueError, match="integer number of bytes"):
        _deployment({"insecure": True, "max_message_bytes": "1e9"}).runtime("bank")


def test_running_without_tls_logs_a_warning(caplog):
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    ports = free_local_ports(2)
    addresses = {"bank": f"127.0.0.1:{ports[0]}", "shop": f"127.0.0.1:{ports[1]}"}
    with caplog.at_level("WARNING", logger="skfed"):
        with GrpcRuntime("bank", addresses, insecure=True):
            pass
    assert any("WITHOUT TLS" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_key_files_are_created_afresh_with_owner_only_mode(tmp_path):
    import os
    import stat

    from skfed.runtime.certs import make_test_pki

    target = tmp_path / "elsewhere.txt"
    target.write_text("not a key")
    d = tmp_path / "pki"
    d.mkdir()
    # A symlink planted where a key will go, and a key file with a wider mode.
    os.symlink(target, d / "bank.key")
    (d / "shop.key").write_text("old")
    os.chmod(d / "shop.key", 0o644)
    paths = make_test_pki(d, ["bank", "shop"])
    assert target.read_text() == "not a key"
    for party in ("bank", "shop"):
        key = paths[party]["keyfile"]
        st = os.lstat(key)
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert open(key).read().startswith("-----BEGIN PRIVATE KEY-----")


# -- PSI: hashes land on the prime-order curve, never on the twist (finding 3) ----

def test_psi_hashes_and_blinded_values_are_on_the_curve():
    from skfed.crypto.psi import blind, encode_ids, generate_scalar, hash_ids, on_curve

    def sides(points):
        return {on_curve(int.from_bytes(p.tobytes(), "little")) for p in points}

    points = hash_ids(encode_ids([f"customer-{i}" for i in range(200)]))
    # Before, about half the hashes fell on the twist and blinding kept the
    # side: one public bit per identifier.
    assert sides(points) == {True}
    once = blind(points, generate_scalar())
    assert sides(once) == {True}
    assert sides(blind(once, generate_scalar())) == {True}


def test_psi_receiver_can_refuse_twist_points():
    from skfed.crypto.psi import check_points, on_curve

    twist = np.zeros((1, 32), dtype=np.uint8)
    twist[0, 0] = 2  # u = 2 lies on the twist
    assert not on_curve(2) and on_curve(9)
    assert check_points(twist).shape == (1, 32)
    with pytest.raises(ValueError, match="twist"):
        check_points(twist, "set of 'evil'", curve=True)


def test_server_refuses_an_update_of_the_wrong_size(monkeypatch):
    # Without protection, numpy broadcasting absorbed a one-element update
    # into the sum of the others and the fit finished with a wrong model.
    import skfed.horizontal.sgd as hsgd
    from skfed import FederatedSGDRegressor, HorizontalTopology

    honest = hsgd.client

    def deviating(ctx, **kwargs):
        return honest(_Tampering(ctx, "update", lambda _, p: np.asarray(p)[:1]), **kwargs)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -1.0, 2.0])
    monkeypatch.setattr(hsgd, "client", deviating)
    est = FederatedSGDRegressor(topology=HorizontalTopology(n_parties=2), n_rounds=2,
                                secure_aggregation=None, random_state=0)
    with pytest.raises((RoleError, ProtocolMismatch), match=r"'update' from .* has shape \(1,\)"):
        est.fit(X, y)


def test_transfer_key_holder_checks_what_it_decrypts():
    # A masked gradient of another size than the peer's public parameter
    # count is refused before decryption.
    from skfed.transfer.roles import _Channel

    class Ctx:
        party = "target"

        def __init__(self, payload):
            self.payload = payload

        def recv(self, frm, tag):
            return self.payload

    pk, sk = generate_keypair(SMALL_KEY)
    ch = _Channel.__new__(_Channel)
    ch.ctx, ch.peer, ch.paillier, ch.n_jobs = None, "source", True, None
    ch.pk, ch.sk, ch.own_pool, ch.peer_pool = pk, sk, None, None
    ch.ctx = Ctx(EncryptedArray.encrypt(pk, np.zeros(5)).rescale(128).to_wire())
    with pytest.raises(LayoutMismatch, match=r"has shape \(5,\); .* \(7,\)"):
        ch.serve_decrypt("grad_target", 7)
