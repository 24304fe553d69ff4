"""The wire decoder on hostile input: a value or WireFormatError, nothing else."""

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skfed.runtime.wire import WireFormatError, decode, encode

_MAGIC = b"SKF1"


def _decodes_or_refuses(data):
    try:
        decode(data)
    except WireFormatError:
        pass


_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=8), st.binary(max_size=8),
    st.lists(st.floats(allow_nan=False, width=32), max_size=6).map(np.array),
    st.lists(st.integers(min_value=-(2 ** 70), max_value=2 ** 70), max_size=4).map(
        lambda v: np.array(v + [0], dtype=object)),
    st.lists(st.integers(0, 255), max_size=6).map(lambda v: np.array(v, dtype=np.uint8)),
)
_payloads = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_after_the_magic(tail):
    _decodes_or_refuses(_MAGIC + tail)
    _decodes_or_refuses(tail)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_payloads, st.data())
def test_mutated_messages(payload, data):
    raw = bytearray(encode(payload))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    if mutation == "flip":
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif mutation == "truncate":
        del raw[pos:]
    elif mutation == "insert":
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=9))
    else:
        chunk = data.draw(st.binary(min_size=1, max_size=9))
        raw[pos:pos + len(chunk)] = chunk
    _decodes_or_refuses(bytes(raw))


@settings(max_examples=100, deadline=None)
@given(_payloads)
def test_round_trip_still_exact(payload):
    def norm(x):
        if isinstance(x, np.ndarray):
            return ("array", x.dtype.str, x.shape, x.tolist())
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        return x
    assert norm(decode(encode(payload))) == norm(payload)


def _array_message(descr, shape, raw=b""):
    return (_MAGIC + b"A" + struct.pack(">B", len(descr)) + descr + struct.pack(">I", len(shape))
            + b"".join(struct.pack(">Q", s) for s in shape) + struct.pack(">Q", len(raw)) + raw)


@pytest.mark.parametrize("descr", [b",b1", b"(2)f8", b"O", b"V8", b"<M8[s]", b"f8,i4",
                                   b"\xff\xfe", b"", b"<f16", b"S3"])
def test_dtypes_outside_the_list_are_refused(descr):
    # np.dtype(",b1") raises SyntaxError; others parse to dtypes we never send.
    with pytest.raises(WireFormatError):
        decode(_array_message(descr, (1,), b"\0" * 8))


@pytest.mark.parametrize("shape", [(0, 2 ** 63), (2 ** 40, 2 ** 40, 0), (2 ** 64 - 1, 0)])
def test_huge_shapes_are_refused(shape):
    with pytest.raises(WireFormatError):
        decode(_array_message(b"<f8", shape))


def test_integer_arrays_allocate_no_more_than_the_message():
    # A declared count the remaining bytes cannot hold is refused up front;
    # before, 8 bytes per declared element were allocated first.
    count = 1_000_000
    msg = (_MAGIC + b"Z" + struct.pack(">I", 1) + struct.pack(">Q", count)
           + b"\0" * count)
    tracemalloc.start()
    try:
        with pytest.raises(WireFormatError):
            decode(msg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(msg)
