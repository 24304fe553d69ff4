"""skfed's wire format: a small, self-describing binary encoding.

Everything a party sends goes through :func:`encode` and is rebuilt by
:func:`decode` on the other side, also in the in-process runtime, so the
simulator exercises exactly the bytes a network transport would carry.

Pickle is never used: unpickling lets the sender run code on the receiver.
The format carries only data:

* ``None``, ``bool``, ``int`` (any size), ``float``, ``str``, ``bytes``;
* ``list`` and ``tuple`` (both decode to ``list``), ``dict`` with ``str`` keys;
* numpy arrays of booleans, integers, floats and complex numbers;
* numpy object arrays whose elements are all Python (or gmpy2) integers,
  the natural container for masked values and big-integer plaintexts.

Decoding validates every length against the remaining buffer before it
allocates anything (so a message can never make the receiver allocate much
more than the message's own size), accepts only a fixed list of dtypes and
bounds the nesting depth: a malformed or hostile message raises
:class:`WireFormatError`, and nothing else.
"""

import struct

import numpy as np

__all__ = ["WireFormatError", "encode", "decode"]

_MAGIC = b"SKF1"
_MAX_DEPTH = 64

_NONE, _TRUE, _FALSE, _INT, _FLOAT, _STR, _BYTES = b"N", b"T", b"F", b"I", b"D", b"S", b"B"
_LIST, _DICT, _ARRAY, _INTARRAY = b"L", b"M", b"A", b"Z"

# Only plain numeric dtypes may travel; object and structured dtypes could
# smuggle arbitrary Python objects. The receiver compares the dtype string
# against this list before numpy parses it: np.dtype() on crafted strings
# raises errors of many kinds (SyntaxError among them) and accepts more than
# we mean to.
_ALLOWED_KINDS = set("biufc")
_DTYPES = {np.dtype(t).newbyteorder("<").str: np.dtype(t).newbyteorder("<")
           for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                     "uint64", "float16", "float32", "float64", "complex64", "complex128")}
# Smallest encoding of one element of an integer (object) array: its length.
_INT_HEADER = 4


class WireFormatError(ValueError):
    """Raised when a payload cannot be encoded or a message is malformed."""


def _int_to_bytes(value):
    value = int(value)
    length = (value.bit_length() + 8) // 8  # room for the sign bit
    return value.to_bytes(length, "big", signed=True)


def _encode(obj, out, depth):
    if depth > _MAX_DEPTH:
        raise WireFormatError("payload nested too deeply")
    if obj is None:
        out.append(_NONE)
    elif obj is True or isinstance(obj, np.bool_) and bool(obj):
        out.append(_TRUE)
    elif obj is False or isinstance(obj, np.bool_):
        out.append(_FALSE)
    elif isinstance(obj, (int, np.integer)) or type(obj).__name__ == "mpz":
        raw = _int_to_bytes(obj)
        out.append(_INT + struct.pack(">Q", len(raw)) + raw)
    elif isinstance(obj, (float, np.floating)):
        out.append(_FLOAT + struct.pack(">d", float(obj)))
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out.append(_STR + struct.pack(">Q", len(raw)) + raw)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        out.append(_BYTES + struct.pack(">Q", len(raw)) + raw)
    elif isinstance(obj, (list, tuple)):
        out.append(_LIST + struct.pack(">Q", len(obj)))
        for item in obj:
            _encode(item, out, depth + 1)
    elif isinstance(obj, dict):
        out.append(_DICT + struct.pack(">Q", len(obj)))
        for key, value in obj.items():
            if not isinstance(key, str):
                raise WireFormatError(f"dict keys must be str, got {type(key).__name__}")
            _encode(key, out, depth + 1)
            _encode(value, out, depth + 1)
    elif isinstance(obj, np.ndarray):
        _encode_array(obj, out)
    else:
        raise WireFormatError(
            f"cannot send an object of type {type(obj).__name__}; the wire format "
            "carries only numbers, strings, bytes, numpy arrays, lists and dicts"
        )


def _encode_array(arr, out):
    shape = struct.pack(">I", arr.ndim) + b"".join(struct.pack(">Q", s) for s in arr.shape)
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        parts = []
        for item in flat:
            if not (isinstance(item, (int, np.integer)) or type(item).__name__ == "mpz"):
                raise WireFormatError(
                    "object arrays may only hold integers, found "
                    f"{type(item).__name__}"
                )
            raw = _int_to_bytes(item)
            parts.append(struct.pack(">I", len(raw)) + raw)
        out.append(_INTARRAY + shape + b"".join(parts))
        return
    if arr.dtype.kind not in _ALLOWED_KINDS:
        raise WireFormatError(f"cannot send numpy arrays of dtype {arr.dtype}")
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
    if dtype.str not in _DTYPES:
        raise WireFormatError(f"cannot send numpy arrays of dtype {arr.dtype}")
    descr = dtype.str.encode("ascii")
    # A view of the array's bytes: encode() joins the parts, the only copy.
    raw = memoryview(np.ascontiguousarray(arr, dtype=dtype).reshape(-1).view(np.uint8))
    out.append(_ARRAY + struct.pack(">B", len(descr)) + descr + shape
               + struct.pack(">Q", raw.nbytes))
    out.append(raw)


def encode(obj):
    """Serialise ``obj`` to bytes.

    Parameters
    ----------
    obj : object
        A payload made of the types listed in the module docstring.

    Returns
    -------
    data : bytes

    Raises
    ------
    WireFormatError
        If ``obj`` holds a type the wire format does not carry.

    Examples
    --------
    >>> import numpy as np
    >>> from skfed.runtime.wire import encode, decode
    >>> decode(encode({"w": np.arange(3.0), "round": 2}))["round"]
    2
    """
    out = [_MAGIC]
    _encode(obj, out, 0)
    return b"".join(out)


class _Reader:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise WireFormatError("message truncated or length field corrupted")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))


def _decode_shape(reader):
    (ndim,) = reader.unpack(">I")
    if ndim > 32:
        raise WireFormatError("array has too many dimensions")
    shape = tuple(reader.unpack(">Q")[0] for _ in range(ndim))
    return shape


def _count(shape):
    count = 1
    for s in shape:
        count *= s
    return count


def _decode(reader, depth):
    if depth > _MAX_DEPTH:
        raise WireFormatError("payload nested too deeply")
    tag = bytes(reader.take(1))
    if tag == _NONE:
        return None
    if tag == _TRUE:
        return True
    if tag == _FALSE:
        return False
    if tag == _INT:
        (n,) = reader.unpack(">Q")
        return int.from_bytes(reader.take(n), "big", signed=True)
    if tag == _FLOAT:
        return reader.unpack(">d")[0]
    if tag == _STR:
        (n,) = reader.unpack(">Q")
        try:
            return str(reader.take(n), "utf-8")
        except UnicodeDecodeError as exc:
            raise WireFormatError("invalid UTF-8 in string") from exc
    if tag == _BYTES:
        (n,) = reader.unpack(">Q")
        return bytes(reader.take(n))
    if tag == _LIST:
        (n,) = reader.unpack(">Q")
        if n > len(reader.data) - reader.pos:
            raise WireFormatError("list length exceeds message size")
        return [_decode(reader, depth + 1) for _ in range(n)]
    if tag == _DICT:
        (n,) = reader.unpack(">Q")
        if 2 * n > len(reader.data) - reader.pos:
            raise WireFormatError("dict length exceeds message size")
        result = {}
        for _ in range(n):
            key = _decode(reader, depth + 1)
            if not isinstance(key, str):
                raise WireFormatError("dict key is not a string")
            result[key] = _decode(reader, depth + 1)
        return result
    if tag == _ARRAY:
        (n,) = reader.unpack(">B")
        dtype = _DTYPES.get(bytes(reader.take(n)).decode("latin-1"))
        if dtype is None:
            raise WireFormatError("array dtype is not one the wire format carries")
        shape = _decode_shape(reader)
        (nbytes,) = reader.unpack(">Q")
        count = _count(shape)
        if count * dtype.itemsize != nbytes:
            raise WireFormatError("array byte count does not match its shape")
        raw = reader.take(nbytes)
        arr = np.frombuffer(raw, dtype=dtype).copy().reshape(shape)
        return arr.astype(dtype.newbyteorder("="), copy=False)
    if tag == _INTARRAY:
        shape = _decode_shape(reader)
        count = _count(shape)
        # Every element takes at least its length field: a count the rest of
        # the message cannot hold is refused before anything is allocated.
        if count * _INT_HEADER > len(reader.data) - reader.pos:
            raise WireFormatError("integer array length exceeds message size")
        items = []
        for _ in range(count):
            (n,) = reader.unpack(">I")
            items.append(int.from_bytes(reader.take(n), "big", signed=True))
        arr = np.empty(count, dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    raise WireFormatError(f"unknown type tag {tag!r}")


def decode(data):
    """Rebuild a payload serialised by :func:`encode`.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    obj : object

    Raises
    ------
    WireFormatError
        If ``data`` is not a well-formed skfed message.
    """
    try:
        reader = _Reader(data)
        if bytes(reader.take(len(_MAGIC))) != _MAGIC:
            raise WireFormatError("not an skfed message (bad magic)")
        obj = _decode(reader, 0)
        if reader.pos != len(reader.data):
            raise WireFormatError("trailing bytes after message")
    except WireFormatError:
        raise
    except (TypeError, ValueError, OverflowError, MemoryError, struct.error) as exc:
        # Whatever else a crafted message trips over (numpy refusing a
        # shape, say) is still a malformed message.
        raise WireFormatError(f"malformed message: {type(exc).__name__}: {exc}") from exc
    return obj
