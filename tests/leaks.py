"""A shared leak detector for protocol transcripts.

``assert_no_leaks(transcript, secrets)`` decodes every kept payload *whatever
its kind* (a ``"ciphertext"`` message may carry a clear field beside its
ciphertexts), walks every nested list, dict, array, number, string and byte
field, and fails naming the message and the secret when a private value
appears in the clear. :func:`record_transcripts` keeps the payloads of every
run of any estimator (fit *and* predict), without a library hook.

What counts as "in the clear" (and the rules that keep false positives out)
--------------------------------------------------------------------------
Let ``v`` be an element of a numeric secret.

1. **Exact floats.** ``v`` equals a float of the payload (float64 fields and
   arrays; float32 arrays are compared with ``float32(v)``). Only
   *distinctive* values are searched: finite, with more than 12 significant
   mantissa bits (so 0, +-1, 0.5, small integers and other round numbers that
   any protocol sends as counts, flags or hyper-parameters never match), and
   not equal to a value of ``public``. Round values are still covered by rules
   3 and 4.
2. **Fixed-point encodings.** ``round(v * 2**s)`` and ``trunc(v * 2**s)`` for
   every scale ``s`` of ``scales`` (default :data:`DEFAULT_SCALES`, the
   scales the library encodes at), also reduced modulo ``2**64`` (the
   secure-aggregation ring), equal an integer of the payload (ints, integer
   arrays, big-integer object arrays). Encodings below ``2**24`` in
   magnitude are skipped: they collide with counts and sizes, and carry less
   than 24 bits of ``v``. A ciphertext or a uniform mask equals one of these
   integers with negligible probability.
3. **Low-cardinality sequences** (labels, one-hot codes, binary features): a
   secret array with at most 16 distinct values is cut into chunks of at
   least 40 bits of (empirical) information with two distinct values or
   more (a value's first appearance in a chunk counts no bits: up to a
   relabelling it could be anything), overlapping by half (a leaked run of
   1.5 chunks always holds a whole one; declare secrets at the granularity
   a message could carry). A chunk leaks if a run of the same length in any
   payload array equals it *up to a relabelling of the values* (a
   bijection, so ``{0, 1}`` labels sent as ``{-1, +1}`` or scaled to fixed
   point are caught). Both the C-order flattening and each column of a 2-D
   secret are searched. A payload array equal to an array of ``public`` is
   skipped (e.g. a public mask of which overlap rows are labelled).
4. **Raw-row bytes.** Every ``min_bytes``-long window of the float64 bytes
   of each row (a 1-D secret is one row) that holds at least 5 distinct byte
   values (low-entropy windows such as the bytes of 0.0 or 1.0 occur in any
   message) is searched in every bytes and string field, every array's
   buffer and the big-endian bytes of every integer above 64 bits, at any
   offset. Nested skfed messages inside bytes fields are decoded and walked
   as well.

Secrets that are Python lists of strings, bytes or integers (identifiers,
raw records, hashes; numeric data such as labels must be numpy arrays) leak
when a payload string or bytes field equals one, or, for those at least
``min_bytes`` long, contains one (also inside array buffers). Integer
identifiers are compared with payload integers when their magnitude is at
least ``2**16``, and their 8-byte big- and little-endian forms are searched
as bytes.
"""

import contextlib
from itertools import combinations

import numpy as np

from skfed.runtime.transcript import Transcript
from skfed.runtime.wire import WireFormatError, decode

__all__ = ["DEFAULT_SCALES", "LeakFound", "assert_no_leaks", "find_leaks",
           "record_transcripts", "library_scales"]

_MANTISSA_BITS = 12
_MIN_FIXED_POINT = 2 ** 24
_MAX_CARDINALITY = 16
_CHUNK_BITS = 40
_MIN_DISTINCT_BYTES = 5
_MAX_NESTED_DEPTH = 4


def library_scales():
    """The fixed-point scales (fractional bits) the library encodes at.

    Read from the library's own constants, so a change there is followed; a
    constant that moved is simply absent (the literal fallbacks below keep
    the documented values).
    """
    base = {
        32,    # secagg.FixedPointRing default scale_bits
        64,    # paillier.DEFAULT_PRECISION_BITS (encryption)
        28,    # packing.PackedRows.PRECISION_BITS (transfer's encrypted values)
        30,    # transfer PARAM_SCALE_BITS
        36,    # transfer FEATURE_SCALE_BITS
    }
    with contextlib.suppress(Exception):
        import inspect

        from skfed.crypto.secagg import FixedPointRing

        base.add(inspect.signature(FixedPointRing).parameters["scale_bits"].default)
    with contextlib.suppress(Exception):
        from skfed.crypto.paillier import DEFAULT_PLAIN_PRECISION_BITS, DEFAULT_PRECISION_BITS

        base |= {DEFAULT_PRECISION_BITS, DEFAULT_PLAIN_PRECISION_BITS}
    with contextlib.suppress(Exception):
        from skfed.crypto.packing import PackedRows

        base.add(PackedRows.PRECISION_BITS)
    with contextlib.suppress(Exception):
        from skfed.transfer import roles as troles

        base |= {troles.FEATURE_SCALE_BITS, troles.PARAM_SCALE_BITS}
    extra = set()
    with contextlib.suppress(Exception):
        from skfed.vertical import roles as vroles

        # gradients and loss terms leave at the scale of [[d]] (encryption's) plus these
        extra |= {vroles.GRADIENT_EXTRA_BITS, vroles.LOSS_EXTRA_BITS}
    # Products of fixed-point values carry the sum of their scales.
    scales = set(base) | {a + b for a, b in combinations(sorted(base), 2)}
    scales |= {a + b + c for a, b, c in combinations(sorted(base), 3)}
    scales |= {s + e for s in base for e in extra}
    scales |= {2 * s for s in base}
    return tuple(sorted(scales))


DEFAULT_SCALES = library_scales()


class LeakFound(AssertionError):
    """A private value appeared in the clear in a message."""


# -- secrets -------------------------------------------------------------------

def _distinctive(values):
    """Mask of floats that cannot be confused with counts, flags or round numbers."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    m, _ = np.frexp(np.where(finite, v, 0.0))
    scaled = m * 2.0 ** _MANTISSA_BITS
    return finite & (scaled != np.rint(scaled))


def _public_floats(public):
    out = []
    for p in public:
        with contextlib.suppress(TypeError, ValueError):
            arr = np.asarray(p, dtype=np.float64).ravel()
            out.append(arr)
    return np.unique(np.concatenate(out)) if out else np.empty(0)


def _public_arrays(public):
    out = []
    for p in public:
        with contextlib.suppress(TypeError, ValueError):
            arr = np.asarray(p)
            if arr.ndim >= 1 and arr.dtype.kind in "biuf":
                out.append(arr)
    return out


class _Numeric:
    """Search structures of one numeric secret."""

    def __init__(self, name, arr, scales, min_bytes, public_floats):
        self.name = name
        arr = np.asarray(arr)
        if arr.dtype.kind == "b":
            arr = arr.astype(np.int8)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"secret {name!r}: numeric arrays only, got dtype {arr.dtype}")
        self.shape = arr.shape
        flat = arr.astype(np.float64).ravel()
        keep = _distinctive(flat) & ~np.isin(flat, public_floats)
        self.values = flat                          # position -> value, for messages
        self.floats = np.unique(flat[keep])
        self.floats32 = np.unique(flat[keep].astype(np.float32))
        self.fixed = {}
        for s in scales:
            scaled = self.floats * 2.0 ** s
            for how, ints in (("round", np.rint(scaled)), ("trunc", np.trunc(scaled))):
                big = np.abs(ints) >= _MIN_FIXED_POINT
                for v, m in zip(self.floats[big], ints[big]):
                    m = int(m)
                    self.fixed.setdefault(m, (v, s, how))
                    if m < 0 and s <= 62:
                        self.fixed.setdefault(m % 2 ** 64, (v, s, how + ", mod 2**64"))
        self.fixed_u64 = np.array([m for m in self.fixed if 0 <= m < 2 ** 64], dtype=np.uint64)
        self.fixed_i64 = np.array([m for m in self.fixed if -2 ** 63 <= m < 2 ** 63],
                                  dtype=np.int64)
        self.sequences = _chunks(arr) if arr.size else []
        self.windows = _row_windows(arr, min_bytes)


def _chunks(arr):
    """Consecutive chunks of each sequence of a low-cardinality secret."""
    values, codes = np.unique(np.asarray(arr, dtype=np.float64), return_inverse=True)
    if len(values) > _MAX_CARDINALITY or len(values) < 2:
        return []
    codes = codes.reshape(arr.shape)
    freq = np.bincount(codes.ravel()) / codes.size
    info = -np.log2(freq)
    seqs = [("flattened", codes.ravel())]
    if codes.ndim == 2 and codes.shape[1] > 1:
        seqs += [(f"column {j}", codes[:, j]) for j in range(codes.shape[1])]
    out = []
    for where, seq in seqs:
        # Chunks overlap by half, so any leaked run of 1.5 chunks contains one whole.
        start = 0
        while start < len(seq):
            bits, seen, end = 0.0, set(), None
            for i in range(start, len(seq)):
                # Up to relabelling, a value's first appearance in the chunk can
                # map to anything: only its repeats carry information (so a
                # run of distinct values, which any distinct payload run
                # matches, never makes a chunk).
                if int(seq[i]) in seen:
                    bits += info[seq[i]]
                seen.add(int(seq[i]))
                if bits >= _CHUNK_BITS and len(seen) >= 2:
                    end = i + 1
                    break
            if end is None:
                break
            out.append((where, start, seq[start:end].copy()))
            start += max(1, (end - start) // 2)
    return out


def _row_windows(arr, min_bytes):
    """``{window bytes: row}`` over the float64 bytes of each row."""
    a = np.asarray(arr, dtype="<f8")
    if a.size == 0:
        return {}
    rows = a.reshape(1, -1) if a.ndim <= 1 else a.reshape(a.shape[0], -1)
    out = {}
    for i, row in enumerate(rows):
        raw = row.tobytes()
        for o in range(len(raw) - min_bytes + 1):
            w = raw[o:o + min_bytes]
            if len(set(w)) >= _MIN_DISTINCT_BYTES:
                out.setdefault(w, i)
    return out


class _Tokens:
    """A secret list of identifiers: strings, bytes or integers."""

    def __init__(self, name, items, min_bytes):
        self.name = name
        self.exact = {}          # bytes -> original
        self.long = {}           # bytes (>= min_bytes) -> original
        self.ints = {}
        for item in items:
            if isinstance(item, (bool, np.bool_)):
                raise TypeError(f"secret {name!r}: booleans are not identifiers")
            if isinstance(item, (int, np.integer)):
                item = int(item)
                if abs(item) >= 2 ** 16:
                    self.ints[item] = item
                forms = [item.to_bytes(8, order, signed=True) for order in ("big", "little")
                         if -2 ** 63 <= item < 2 ** 63]
            elif isinstance(item, str):
                forms = [item.encode("utf-8")]
            elif isinstance(item, (bytes, bytearray, memoryview)):
                forms = [bytes(item)]
            else:
                raise TypeError(f"secret {name!r}: cannot search for {type(item).__name__}")
            for f in forms:
                self.exact.setdefault(f, item)
                if len(f) >= min_bytes:
                    self.long.setdefault(f, item)


def _compile(secrets, scales, min_bytes, public):
    if not secrets:
        raise ValueError("no secrets to look for")
    public = list(public or ())
    pf = _public_floats(public)
    out = []
    for name, value in secrets.items():
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (str, bytes, bytearray, memoryview, int, np.integer))
                and not isinstance(v, (bool, np.bool_)) for v in value):
            # a Python list of identifiers (labels and other numeric data: numpy arrays)
            out.append(_Tokens(name, value, min_bytes))
            continue
        arr = np.asarray(value)
        if arr.size == 0:
            raise ValueError(f"secret {name!r} is empty: a test must look for something")
        out.append(_Numeric(name, arr, scales, min_bytes, pf))
    return out


# -- payload walking -------------------------------------------------------------

def _leaves(obj, path="payload", depth=0):
    """Yield (path, leaf) for every scalar, string, bytes and array of a payload."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(k, f"{path}.key", depth)
            yield from _leaves(v, f"{path}[{k!r}]", depth)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]", depth)
        nums = [v for v in obj if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(nums) == len(obj) and len(obj) > 1:
            # a list of numbers is a sequence too (for the low-cardinality rule)
            yield f"{path} (as array)", _list_array(obj)
    elif isinstance(obj, (bytes, bytearray)):
        yield path, bytes(obj)
        if depth < _MAX_NESTED_DEPTH and bytes(obj[:4]) == b"SKF1":
            with contextlib.suppress(WireFormatError, RecursionError):
                yield from _leaves(decode(bytes(obj)), f"{path}<decoded>", depth + 1)
    else:
        yield path, obj


def _list_array(obj):
    if all(isinstance(v, int) and abs(v) < 2 ** 63 for v in obj):
        return np.array(obj, dtype=np.int64)
    if all(isinstance(v, int) for v in obj):
        return np.array(obj, dtype=object)
    return np.array([float(v) for v in obj])


def _buffers(path, leaf):
    """Byte views of a leaf, for the raw-bytes and identifier rules."""
    if isinstance(leaf, bytes):
        yield path, leaf
    elif isinstance(leaf, str):
        yield path, leaf.encode("utf-8", "surrogatepass")
        with contextlib.suppress(UnicodeEncodeError):
            yield path + " (latin-1)", leaf.encode("latin-1")
    elif isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biufc":
        yield path, np.ascontiguousarray(leaf).tobytes()
    elif isinstance(leaf, np.ndarray) and leaf.dtype.kind == "O":
        # one buffer for the whole array; eight zero bytes between integers
        big = [v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
               for v in leaf.ravel().tolist() if isinstance(v, int) and v.bit_length() > 64]
        if big:
            yield f"{path} (big integers)", bytes(8).join(big)
    elif isinstance(leaf, int) and not isinstance(leaf, bool) and leaf.bit_length() > 64:
        yield path, leaf.to_bytes((leaf.bit_length() + 8) // 8, "big", signed=True)


class _WindowIndex:
    """Every secret's raw-row windows, searched in one pass per buffer."""

    def __init__(self, compiled, key_len):
        self.windows = {}
        for sec in compiled:
            for w, row in getattr(sec, "windows", {}).items():
                self.windows.setdefault(w, (sec, row))
        self.key_len = key_len
        self.dtype = np.dtype("<u8") if key_len == 8 else np.dtype("<u4")
        self.keys = np.unique(np.frombuffer(
            b"".join(w[:key_len] for w in self.windows), dtype=self.dtype))
        self.length = len(next(iter(self.windows))) if self.windows else 0

    def search(self, buf):
        """First (offset, secret, row) whose window occurs in ``buf``."""
        if not self.windows or len(buf) < self.length:
            return None
        for start in range(self.key_len):
            n = (len(buf) - start) // self.key_len
            if n <= 0:
                continue
            view = np.frombuffer(buf, dtype=self.dtype, count=n, offset=start)
            # The keys are sorted and unique already: a binary search per word
            # (np.isin would sort the whole key set again for every buffer).
            pos = np.minimum(np.searchsorted(self.keys, view), len(self.keys) - 1)
            for hit in np.flatnonzero(self.keys[pos] == view):
                off = start + int(hit) * self.key_len
                found = self.windows.get(buf[off:off + self.length])
                if found:
                    return (off, *found)
        return None


def _float_matches(leaf, sec):
    if isinstance(leaf, float):
        return (0, leaf) if sec.floats.size and np.isin(leaf, sec.floats) else None
    if isinstance(leaf, np.ndarray) and leaf.dtype.kind in "fc" and leaf.size:
        arr = leaf.ravel()
        if arr.dtype.kind == "c":
            arr = np.concatenate([arr.real, arr.imag])
        if arr.dtype == np.float32:
            hits = np.flatnonzero(np.isin(arr, sec.floats32))
        else:
            hits = np.flatnonzero(np.isin(arr.astype(np.float64), sec.floats))
        if hits.size:
            return int(hits[0]), float(arr[hits[0]])
    return None


def _int_matches(leaf, sec):
    if not sec.fixed:
        return None
    if isinstance(leaf, int) and not isinstance(leaf, bool):
        return (0, leaf) if leaf in sec.fixed else None
    if isinstance(leaf, np.ndarray) and leaf.size:
        arr = leaf.ravel()
        if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
            hits = np.flatnonzero(np.isin(arr, sec.fixed_u64))
        elif arr.dtype.kind in "iu":
            hits = np.flatnonzero(np.isin(arr.astype(np.int64), sec.fixed_i64))
        elif arr.dtype.kind == "O":
            hits = [i for i, v in enumerate(arr.tolist()) if v in sec.fixed]
        else:
            return None
        if len(hits):
            return int(hits[0]), int(arr[hits[0]])
    return None


def _codes(leaf):
    if isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biufO" and leaf.size > 1:
        arr = leaf.ravel()
        try:
            return np.unique(arr, return_inverse=True)[1].ravel()
        except TypeError:
            return None
    return None


def _sequence_matches(codes, chunks):
    """First chunk equal (up to a bijection of values) to a run of ``codes``."""
    n = len(codes)
    for where, start, chunk in chunks:
        w = len(chunk)
        if w > n:
            continue
        m = n - w + 1
        _, first = np.unique(chunk, return_index=True)
        rep = np.empty(chunk.max() + 1, dtype=int)
        rep[chunk[first]] = first
        ok = np.ones(m, dtype=bool)
        for j in range(w):
            r = rep[chunk[j]]
            if r != j:
                ok &= codes[j:j + m] == codes[r:r + m]
                if not ok.any():
                    break
        if not ok.any():
            continue
        # the chunk's distinct values must map to distinct payload values
        reps = [codes[r:r + m] for r in first]
        for a, b in combinations(range(len(reps)), 2):
            ok &= reps[a] != reps[b]
        if ok.any():
            return where, start, w, int(np.flatnonzero(ok)[0])
    return None


# -- the detector ----------------------------------------------------------------

def _describe(m):
    return (f"message #{m.seq} {m.sender} -> {m.receiver}, tag {m.tag!r}, "
            f"kind {m.kind!r}")


def _payload_of(m):
    if m.payload is None:
        raise ValueError(
            f"{_describe(m)} has no kept payload: record with "
            "LocalRuntime(keep_payloads=True) or tests.leaks.record_transcripts()")
    return decode(m.payload)


def find_leaks(transcript, secrets, *, scales=None, min_bytes=8, public=(), first=True):
    """The list of leaks (strings) of :func:`assert_no_leaks`; [] when clean."""
    if min_bytes < 4:
        raise ValueError("min_bytes must be at least 4: shorter byte strings match by chance")
    scales = DEFAULT_SCALES if scales is None else tuple(int(s) for s in scales)
    compiled = _compile(secrets, scales, min_bytes, public)
    public_arrays = _public_arrays(public or ())
    messages = list(transcript)
    if not messages:
        raise ValueError("the transcript is empty: nothing was checked")
    index = _WindowIndex(compiled, 8 if min_bytes >= 8 else 4)
    leaks = []

    def report(m, path, sec, detail):
        leaks.append(f"{sec.name} leaks in {_describe(m)} at {path}: {detail}")
        return first

    for m in messages:
        payload = _payload_of(m)
        for path, leaf in _leaves(payload):
            is_public = isinstance(leaf, np.ndarray) and any(
                p.shape == leaf.shape and np.array_equal(p, leaf) for p in public_arrays)
            codes = None
            for sec in compiled:
                if isinstance(sec, _Tokens):
                    hit = _token_match(path, leaf, sec)
                    if hit and report(m, hit[0], sec, hit[1]):
                        return leaks
                    continue
                hit = _float_matches(leaf, sec)
                if hit:
                    pos = int(np.flatnonzero((sec.values == hit[1]) | (
                        sec.values.astype(np.float32) == np.float32(hit[1])))[0])
                    where = tuple(int(i) for i in np.unravel_index(pos, sec.shape))
                    if report(m, path, sec, f"element {hit[0]} = {hit[1]!r} is the "
                              f"secret's element {where}"):
                        return leaks
                hit = _int_matches(leaf, sec)
                if hit:
                    v, s, how = sec.fixed[hit[1]]
                    if report(m, path, sec, f"integer element {hit[0]} is the fixed-point "
                              f"encoding ({how}) of {v!r} at scale 2**{s}"):
                        return leaks
                if sec.sequences and not is_public:
                    if codes is None:
                        codes = _codes(leaf)
                    if codes is not None:
                        hit = _sequence_matches(codes, sec.sequences)
                        if hit and report(m, path, sec, (
                                f"a run of {hit[2]} values at offset {hit[3]} equals (up to "
                                f"relabelling) the {hit[0]} secret's values {hit[1]}:"
                                f"{hit[1] + hit[2]}")):
                            return leaks
            for bpath, buf in _buffers(path, leaf):
                found = index.search(buf)
                if found and report(m, bpath, found[1], (
                        f"bytes at offset {found[0]} are {min_bytes} raw bytes of "
                        f"row {found[2]}")):
                    return leaks
    return leaks


def _token_match(path, leaf, sec):
    if isinstance(leaf, int) and not isinstance(leaf, bool) and leaf in sec.ints:
        return path, f"integer {leaf!r} is an identifier"
    if isinstance(leaf, np.ndarray) and leaf.dtype.kind in "iuO" and sec.ints:
        for i, v in enumerate(leaf.ravel().tolist()):
            if int(v) in sec.ints:
                return f"{path}[{i}]", f"integer {v!r} is an identifier"
    if isinstance(leaf, (str, bytes)):
        raw = leaf.encode("utf-8", "surrogatepass") if isinstance(leaf, str) else leaf
        if raw in sec.exact:
            return path, f"field equals identifier {sec.exact[raw]!r}"
    for bpath, buf in _buffers(path, leaf):
        for tok, item in sec.long.items():
            if tok in buf:
                return bpath, f"contains identifier {item!r}"
    return None


def assert_no_leaks(transcript, secrets, *, scales=None, min_bytes=8, public=()):
    """Fail if any private value appears in the clear in any message.

    Parameters
    ----------
    transcript : Transcript or iterable of Message
        Recorded with kept payloads (``LocalRuntime(keep_payloads=True)`` or
        :func:`record_transcripts`); e.g. a fitted estimator's ``transcript_``.
    secrets : dict
        Description (e.g. ``"guest labels"``) -> private value: a numeric
        array (features, labels, residuals, updates...) or a list of
        identifiers (str, bytes or int).
    scales : iterable of int, optional
        Fixed-point scales (fractional bits) whose encodings count as clear;
        default :data:`DEFAULT_SCALES`.
    min_bytes : int, default=8
        Length of the raw-byte windows searched (at least 4).
    public : iterable, optional
        Values the protocol declares public (hyper-parameters, the global
        model, a public mask): their values never count as a leak of a
        secret element, and a payload array equal to one of them is not
        searched for low-cardinality sequences.

    Raises
    ------
    AssertionError
        Naming the message (sender, receiver, tag, kind), where in the
        payload, and the secret.
    """
    leaks = find_leaks(transcript, secrets, scales=scales, min_bytes=min_bytes,
                       public=public)
    if leaks:
        raise LeakFound(leaks[0])


@contextlib.contextmanager
def record_transcripts():
    """Keep the payloads of every :class:`~skfed.runtime.LocalRuntime` run.

    Yields a :class:`Transcript` that collects the messages of every run
    started inside the block (fits, predictions, alignment), in order, with
    their payloads; the estimator's own ``transcript_`` is untouched.

    Examples
    --------
    >>> from skfed.runtime import LocalRuntime
    >>> def alice(ctx):
    ...     ctx.send("bob", "x", {"ct": b"...", "oops": 0.1234}, kind="ciphertext")
    >>> def bob(ctx):
    ...     ctx.recv("alice", "x")
    >>> with record_transcripts() as t:
    ...     _ = LocalRuntime().run({"alice": alice, "bob": bob})
    >>> print(find_leaks(t, {"features": np.array([[0.1234, 2.5]])})[0])
    features leaks in message #0 alice -> bob, tag 'x', kind 'ciphertext' at
    payload['oops']: element 0 = 0.1234 is the secret's element (0, 0)
    """
    from skfed.runtime.local import LocalRuntime

    collected = Transcript()
    original = LocalRuntime.run

    def run(self, roles, transcript=None):
        self.keep_payloads = True
        before = 0 if transcript is None else len(transcript)
        results, t = original(self, roles, transcript=transcript)
        collected.extend(list(t)[before:])
        return results, t

    LocalRuntime.run = run
    try:
        yield collected
    finally:
        LocalRuntime.run = original
