import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skfed.runtime import (
    LocalRuntime,
    ProtocolTimeout,
    RoleError,
    Transcript,
    WireFormatError,
    decode,
    encode,
)

scalars = (st.none() | st.booleans() | st.integers() | st.text()
           | st.binary() | st.floats(allow_nan=False))
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.uint64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
payloads = st.recursive(
    scalars | arrays,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


def _equal(a, b):
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(payloads)
def test_wire_round_trip(obj):
    assert _equal(obj, decode(encode(obj)))


@given(st.lists(st.integers(min_value=-(2**4096), max_value=2**4096), max_size=20))
def test_wire_big_int_arrays(values):
    arr = np.array(values + [0], dtype=object)
    back = decode(encode(arr))
    assert back.dtype == object and list(back) == list(arr)


@pytest.mark.parametrize("bad", [object(), {1: 2}, np.array(["a"]),
                                 np.array([1.5, "x"], dtype=object), {1.5}])
def test_wire_refuses_unsafe_types(bad):
    with pytest.raises(WireFormatError):
        encode(bad)


def test_wire_never_pickles():
    data = encode({"w": np.arange(3.0)})
    assert b"numpy" not in data and not data.startswith(b"\x80")
    with pytest.raises(WireFormatError):
        decode(pickle.dumps({"w": 1}))


@settings(max_examples=100, deadline=None)
@given(payloads, st.data())
def test_wire_rejects_truncation_and_corruption(obj, data):
    raw = encode(obj)
    # half the cuts land in the last 32 bytes, inside the last field more often than not
    cut = data.draw(st.integers(0, len(raw) - 1)
                    | st.integers(max(0, len(raw) - 32), len(raw) - 1))
    with pytest.raises(WireFormatError):
        decode(raw[:cut])
    with pytest.raises(WireFormatError):
        decode(raw + b"\x00")


def test_wire_rejects_huge_length_fields():
    # a list claiming 2**60 elements must fail fast, not allocate
    raw = b"SKF1L" + (2**60).to_bytes(8, "big")
    with pytest.raises(WireFormatError):
        decode(raw)


# Fixed examples: a message cut anywhere inside its last field, for every field type
# (the random cuts above rarely land inside a trailing bytes or string field).
FIELDS = {
    "none": None, "true": True, "int": 2**70 + 5, "negative int": -(2**40),
    "float": 1.25, "str": "naïve text", "bytes": b"\x00\x01payload-bytes",
    "empty bytes": b"", "list": [1, "a", b"b"], "dict": {"k": b"v", "n": 3},
    "float array": np.arange(6.0).reshape(2, 3), "bool array": np.array([True, False]),
    "int array": np.array([1, -2], dtype=np.int8), "big-int array": np.array(
        [2**300, -(2**70), 0], dtype=object),
}


@pytest.mark.parametrize("last", list(FIELDS), ids=list(FIELDS))
@pytest.mark.parametrize("container", ["top", "list", "dict"])
def test_wire_rejects_every_cut_inside_each_field_type(last, container):
    value = FIELDS[last]
    obj = {"top": value, "list": [7, value], "dict": {"a": 1.5, "z": value}}[container]
    raw = encode(obj)
    # the field's own encoding (without the magic) is the tail of the message
    field_start = len(raw) - (len(encode(value)) - len(b"SKF1"))
    assert raw[field_start:] == encode(value)[len(b"SKF1"):]
    for cut in range(field_start, len(raw)):
        with pytest.raises(WireFormatError):
            decode(raw[:cut])
    assert _equal(obj, decode(raw))


def _array_header(descr, shape):
    out = b"SKF1A" + bytes([len(descr)]) + descr + len(shape).to_bytes(4, "big")
    return out + b"".join(s.to_bytes(8, "big") for s in shape)


def test_wire_refuses_forged_array_headers():
    # more bytes than the shape needs, even when they are all present
    with pytest.raises(WireFormatError, match="byte count"):
        decode(_array_header(b"<f8", (2,)) + (24).to_bytes(8, "big") + bytes(24))
    for descr in (b"|O8", b"|V8", b"<U2", b"|S3"):
        with pytest.raises(WireFormatError, match="not one the wire format carries"):
            decode(_array_header(descr, (1,)) + (8).to_bytes(8, "big") + bytes(8))
    with pytest.raises(WireFormatError, match="too many dimensions"):
        decode(_array_header(b"<f8", (1,) * 33) + (8).to_bytes(8, "big") + bytes(8))
    # an integer array claiming 2**60 elements fails before allocating them
    huge = b"SKF1Z" + (1).to_bytes(4, "big") + (2**60).to_bytes(8, "big")
    with pytest.raises(WireFormatError, match="exceeds message size"):
        decode(huge + bytes(64))


def test_wire_bounds_the_nesting_depth():
    for depth in (10, 64, 65, 500):
        raw = b"SKF1" + (b"L" + (1).to_bytes(8, "big")) * depth + b"N"
        if depth <= 64:
            assert decode(raw) is not None
        else:
            with pytest.raises(WireFormatError, match="nested too deeply"):
                decode(raw)
    obj = None
    for _ in range(100):
        obj = [obj]
    with pytest.raises(WireFormatError, match="nested too deeply"):
        encode(obj)


def test_runtime_runs_roles_and_records_transcript():
    def server(ctx):
        total = sum(ctx.gather(["a", "b"], "x"))
        ctx.broadcast(["a", "b"], "total", total)
        return total

    def client(value):
        def role(ctx):
            ctx.send("server", "x", value, kind="masked")
            return ctx.recv("server", "total")
        return role

    rt = LocalRuntime(keep_payloads=True)
    results, tr = rt.run({"server": server, "a": client(2), "b": client(5)})
    assert results == {"server": 7, "a": 7, "b": 7}
    assert len(tr) == 4
    assert {(m.sender, m.receiver, m.kind) for m in tr.filter(tag="x")} == {
        ("a", "server", "masked"), ("b", "server", "masked")}
    assert tr.filter(tag="total")[0].decoded() == 7
    rows = {(r["sender"], r["receiver"]): r for r in tr.summary()}
    assert rows[("a", "server")]["messages"] == 1
    assert rows[("server", "a")]["bytes"] == len(encode(7))
    assert tr.total_bytes() == sum(m.nbytes for m in tr)


def test_runtime_messages_are_copies():
    arr = np.zeros(3)

    def alice(ctx):
        ctx.send("bob", "arr", arr)
        arr[0] = 99.0  # mutating after send must not change what bob gets
        ctx.send("bob", "go", 1)

    def bob(ctx):
        got = ctx.recv("alice", "arr")
        ctx.recv("alice", "go")
        return got

    results, _ = LocalRuntime().run({"alice": alice, "bob": bob})
    assert results["bob"][0] == 0.0


def test_runtime_surfaces_failure_with_party_name():
    def good(ctx):
        return ctx.recv("bad", "never")

    def bad(ctx):
        raise ValueError("boom")

    with pytest.raises(RoleError, match="party 'bad' failed: ValueError: boom") as info:
        LocalRuntime(timeout=30).run({"good": good, "bad": bad})
    assert info.value.party == "bad"


def test_runtime_detects_a_message_that_never_comes():
    def waiter(ctx):
        return ctx.recv("quiet", "hello")

    def quiet(ctx):
        return None

    with pytest.raises(RoleError, match="finished without sending"):
        LocalRuntime(timeout=30).run({"waiter": waiter, "quiet": quiet})


def test_runtime_times_out():
    def a(ctx):
        return ctx.recv("b", "x")

    def b(ctx):
        return ctx.recv("a", "y")

    with pytest.raises(RoleError) as info:
        LocalRuntime(timeout=0.3).run({"a": a, "b": b})
    assert isinstance(info.value.error, ProtocolTimeout)


def test_send_validates_kind_and_peer():
    def a(ctx):
        with pytest.raises(ValueError, match="kind"):
            ctx.send("b", "x", 1, kind="secret")
        with pytest.raises(ValueError, match="cannot send"):
            ctx.send("nobody", "x", 1)
        return True

    results, _ = LocalRuntime().run({"a": a, "b": lambda ctx: None})
    assert results["a"] is True


def test_transcript_rejects_unknown_kind():
    with pytest.raises(ValueError):
        Transcript().record("a", "b", "t", "encrypted-ish", 3)


def test_context_counts_its_own_traffic():
    def a(ctx):
        ctx.send("b", "x", np.arange(10.0))
        ctx.recv("b", "y")
        return ctx.bytes_sent, ctx.bytes_received

    def b(ctx):
        ctx.recv("a", "x")
        ctx.send("a", "y", "ok")

    results, tr = LocalRuntime().run({"a": a, "b": b})
    assert results["a"] == (tr.total_bytes(sender="a"), tr.total_bytes(receiver="a"))


def test_summary_renders_as_table_html_and_frame():
    t = Transcript()
    t.record("client0", "server", "update", "masked", 1200)
    t.record("server", "client0", "model", "plain", 800)
    t.record("client0", "server", "update", "masked", 1200)
    s = t.summary()
    text = str(s)
    lines = text.splitlines()
    assert lines[0].split() == ["sender", "receiver", "messages", "bytes", "kinds"]
    assert "client0" in lines[2] and "2,400" in lines[2] and "masked" in lines[2]
    assert lines[-1] == "total: 3 messages, 3,200 bytes"
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and "<td>masked</td>" in html
    frame = t.to_frame()
    assert list(frame["bytes"]) == [2400, 800]
