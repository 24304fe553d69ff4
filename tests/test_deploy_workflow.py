"""Deployments on the first day (issue #16): a party that fails at start stops
its peers at once; train -> predict -> load a saved model; per-party column
names in deployment files; one-line CLI errors."""

import threading
import time

import grpc  # noqa: F401 - fail loudly if the transport is missing
import pytest

from skfed.runtime.grpc import GrpcRuntime, PartyAborted, free_local_ports


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
