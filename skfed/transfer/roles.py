"""Role functions of secure federated transfer learning (Liu et al., arXiv 1812.03337).

Two parties: the *source* A holds features and labels, the *target* B holds
other features; they share a small set of overlapping rows whose order both
know (from a private set intersection). Each party owns a representation
network (:class:`~skfed.transfer.networks.DenseNet`) and its own Paillier
key pair. Notation (one training step on a batch ``b`` of overlap rows):

* ``u^A_i``, ``u^B_i`` representations; ``Y`` (n, K) labels in {-1, +1}
  (K = 1 for binary, one column per class for one-vs-rest);
* ``Phi = Y_L^T U^A_L / N_L`` (K, d), over all of A's labelled rows;
* scores ``S = U^B Phi^T``; ``w_i = 1`` on overlap rows A has labelled,
  ``c = 1 / sum(w)``;
* loss ``L = c sum_i w_i sum_k [log 2 - y_ik s_ik / 2 + s_ik^2 / 8]``
  ``+ gamma / N_b sum_i ||u^A_i - u^B_i||^2 + alpha/2 (||W^A||^2 + ||W^B||^2)``.

The second-order Taylor form makes every cross-party term linear in one
party's values once the other's are fixed, so additive encryption suffices:

* ``dL/dU^B = T + diag(w) U^B M + 2 gamma / N_b U^B`` with
  ``T = -c/2 diag(w) Y Phi - 2 gamma / N_b U^A`` and ``M = c/4 Phi^T Phi``
  (A encrypts T and M under *its* key; B adds its plaintext terms);
* ``dL/dPhi = c (-1/2 (wY)^T U^B + 1/4 Phi Sigma)`` with the single d x d
  sum ``Sigma = U^B^T diag(w) U^B`` kept in plaintext at B: B evaluates it on
  ``[[Phi]]`` and on the labels ``[[wY]]`` A encrypted once per fit. This is
  where FATE sent ``N_AB * d^2`` ciphertexts per epoch;
* A's alignment gradient ``2 gamma / N_b (U^A - U^B)`` uses ``[[U^B]]``
  under B's key.

Each party pushes its encrypted output gradient through its own network
(backprop is linear in the upstream gradient and the Jacobians are its own
plaintext), adds a statistical mask to the encrypted parameter gradient and
has the key owner decrypt it. Neither side ever decrypts a per-row quantity.

**Representations linear in what is trained** (``hidden_layer_sizes=()``,
``u = [x, 1] theta``; or fixed random hidden layers, ``train_hidden=False``,
with the random features ``f(x)`` in place of ``x`` below) take a protocol
whose per-step cost does not grow with the number of rows, with the same
decryptions. Once per fit each party sends its overlap rows
encrypted under its own key, row-packed
(:class:`~skfed.crypto.packing.PackedRows`): A sends ``[[wY, X^A, 1]]_A``,
B sends ``[[X^B, 1]]_B``. Each then holds the *cross moments* with the
other's rows under the other's key, e.g. B holds
``[[C]]_A = [X^B, 1]^T [[wY, X^A, 1]]_A`` (computed once per batch, so once
per fit at full batch). Since ``U^B = [X^B, 1] theta_B``, per step:

* B sends ``[[U^B^T [wY, X^A, 1]]]_A = theta_B^T [[C]]_A`` with
  ``-Sigma Phi^T / 2`` added into the label slots (from A's
  ``[[Phi]]_A``): A decrypts ``-(Phi Sigma - 2V)^T / 2`` with
  ``V = (wY)^T U^B`` (so ``dL/dPhi = (Phi Sigma - 2V) / (4 N_c)``, as in the
  general protocol) and ``[X^A, 1]^T U^B`` (its alignment term; with its own
  ``theta_A`` also the loss's ``<U^A, U^B>``);
* A sends B's gradient ``[[[X^B, 1]^T (T + diag(w) U^B M)]]_B``, computed
  as ``Lambda [[C']]_B + M [[P^T]]_B`` from its cross moments
  ``[[C']]_B = [wY, X^A, 1]^T [[X^B, 1]]_B``, ``Lambda = [-Phi^T / (2 N_c),
  -2 gamma / n_b theta_A^T]`` and B's per-step ``[[P^T]]_B =
  [[U^B^T diag(w) [X^B, 1]]]_B``; B decrypts exactly its gradient;
* the loss: B sends ``[[Sigma Phi^T + R]]_A`` and
  ``[[Phi . R + 8 N_c L_B]]_A`` (``L_B`` its own plaintext terms); A
  obtains ``Q - 8 N_c L_B`` (``Q = Phi Sigma Phi^T``) and, with
  ``Phi . dL/dPhi`` and ``<U^A, U^B>``, the loss: one scalar, as before.

Every value a party decrypts is one it learns in the general protocol too
(``check_batches`` counts the same equations), the other's masked ``Z``
aside; every ciphertext derived from the other's is re-randomised before it
goes back. Scales and declared bounds on the wire follow from public
constants only, and each party checks every packed message against the
public layout before using it (see the constants below).
"""

import contextlib
import secrets

import numpy as np

from ..crypto.packing import (
    PackedRows,
    add_ints,
    dot_ints,
    fixed_point,
)
from ..crypto.paillier import (
    DEFAULT_PRECISION_BITS,
    EncryptedArray,
    ObfuscatorPool,
    decode_masked,
    generate_keypair,
    public_key_from_wire,
    public_key_to_wire,
)
from ..runtime.layout import check_array, check_encrypted, check_scalar
from ..runtime.local import PartyContext as LocalPartyContext
from ..runtime.party import ProtocolMismatch
from .networks import SGD, Adam, DenseNet, PlainOps, flatten_blocks

__all__ = ["objective", "source", "target", "source_predict", "target_predict",
           "check_batches", "n_parameters"]

LOG2 = float(np.log(2.0))
# The cross-moment protocol's public fixed point. Every scale and every
# declared bound on the wire follows from these and the public sizes, so none
# reveals a magnitude. Encrypted values: 28 fractional bits (features below
# 2**20, Phi below 2**16). Plaintext factors at absolute scales: a party's own
# features 2**-36, parameters (theta, Lambda, M, Sigma) 2**-30, with theta,
# Lambda and M below 2**16 and Sigma below 2**32 (the multi-exponentiation
# takes factors below 2**62). Exceeding a bound means diverging training.
FEATURE_BOUND_BITS = 20
REPRESENTATION_BOUND_BITS = 16
FEATURE_SCALE_BITS = 36
PARAM_SCALE_BITS = 30
PARAM_BOUND_BITS = 16
SIGMA_BOUND_BITS = 32
_ENC_BITS = PackedRows.PRECISION_BITS


# -- encryption: the same messages with or without Paillier ------------------
class _EncOps:
    """``ops`` for :meth:`DenseNet.backward` on encrypted arrays."""

    def __init__(self, n_jobs):
        self.n_jobs = n_jobs

    def matmul(self, X, e):
        return e.rmatmul(X, n_jobs=self.n_jobs)

    def matmul_right(self, e, W):
        return e.matmul(W, n_jobs=self.n_jobs)

    @staticmethod
    def sum0(e):
        return e.sum(axis=0)


class _Channel:
    """One party's view of the cryptography: its own key pair and the peer's key.

    With ``encryption=None`` every "encryption" is the identity and every
    message carries the plaintext, so the message sequence is identical and
    the transcript shows what would be protected.
    """

    def __init__(self, ctx, peer, cfg, pools=False):
        self.ctx, self.peer = ctx, peer
        self.paillier = cfg["encryption"] == "paillier"
        self.n_jobs = cfg.get("n_jobs")
        self.sigma_bits = 80
        self.own_pool = self.peer_pool = None
        if self.paillier:
            self.pk, self.sk = generate_keypair(cfg["key_size"])
            ctx.send(peer, "public_key", public_key_to_wire(self.pk), kind="public_key")
            self.peer_pk = public_key_from_wire(ctx.recv(peer, "public_key"))
            self.ops = _EncOps(self.n_jobs)
            if pools:
                # Randomisers for both keys, refilled in the background while
                # we wait for the peer; only on workers when the peer's role
                # shares this process (LocalRuntime).
                bg = "workers" if isinstance(ctx, LocalPartyContext) else True
                self.own_pool = ObfuscatorPool(self.pk, n_jobs=self.n_jobs, background=bg,
                                               private_key=self.sk)
                self.peer_pool = ObfuscatorPool(self.peer_pk, n_jobs=self.n_jobs, background=bg)
        else:
            self.ops = PlainOps

    def close(self):
        for pool in (self.own_pool, self.peer_pool):
            if pool is not None:
                pool.close()

    def _recv(self, tag):
        """Receive from the peer, precomputing randomisers while we wait."""
        with contextlib.ExitStack() as stack:
            for pool in (self.own_pool, self.peer_pool):
                if pool is not None:
                    stack.enter_context(pool.idle())
            return self.ctx.recv(self.peer, tag)

    @property
    def kind(self):
        return "ciphertext" if self.paillier else "plain"

    def send_encrypted(self, tag, values):
        """Encrypt under our own key and send."""
        values = np.asarray(values, dtype=float)
        if self.paillier:
            payload = EncryptedArray.encrypt(self.pk, values, n_jobs=self.n_jobs,
                                             pool=self.own_pool).to_wire()
        else:
            payload = values
        self.ctx.send(self.peer, tag, payload, kind=self.kind)

    def send_derived(self, tag, enc):
        """Send a value computed from the peer's ciphertexts back to the peer."""
        payload = enc.obfuscate(n_jobs=self.n_jobs, pool=self.peer_pool).to_wire() \
            if self.paillier else enc
        self.ctx.send(self.peer, tag, payload, kind=self.kind)

    def recv_foreign(self, tag, shape=None):
        """Receive fresh ciphertexts under the peer's key, in the public ``shape``."""
        obj = self._recv(tag)
        if not self.paillier:
            return check_array(obj, sender=self.peer, tag=tag, shape=shape)
        return check_encrypted(EncryptedArray.from_wire(self.peer_pk, obj, n_jobs=self.n_jobs),
                               sender=self.peer, tag=tag, shape=shape,
                               scale_bits=DEFAULT_PRECISION_BITS)

    def recv_own(self, tag, shape=None):
        """Receive ciphertexts under our key, check their public shape, decrypt them."""
        obj = self._recv(tag)
        if self.paillier:
            enc = check_encrypted(EncryptedArray.from_wire(self.pk, obj), sender=self.peer,
                                  tag=tag, shape=shape)
            return enc.decrypt(self.sk, n_jobs=self.n_jobs)
        return check_array(obj, sender=self.peer, tag=tag, shape=shape)

    # masked decryption of a vector encrypted under the peer's key ------------
    def send_masked(self, tag, blocks):
        """Mask our encrypted gradient blocks and ask the peer to decrypt them."""
        if not self.paillier:
            self.ctx.send(self.peer, tag, flatten_blocks(blocks), kind="plain")
            return None
        flat = EncryptedArray.concatenate([b.ravel() for b in blocks])
        # The product's scale depends on the magnitude of our plaintext
        # factors; lift it to a multiple of 64 so it reveals almost nothing.
        scale = -(-flat.scale_bits // 64) * 64
        flat = flat.rescale(scale, n_jobs=self.n_jobs)
        masked, mask = flat.add_random_mask(self.sigma_bits, n_jobs=self.n_jobs,
                                            pool=self.peer_pool)
        self.ctx.send(self.peer, tag, masked.to_wire(), kind="ciphertext")
        return mask, scale

    def serve_decrypt(self, tag, size=None):
        """Decrypt the peer's masked vector of public ``size`` and return it (still masked)."""
        obj = self._recv(tag)
        if self.paillier:
            enc = PackedRows.from_wire(self.pk, obj).enc if PackedRows.is_wire(obj) \
                else EncryptedArray.from_wire(self.pk, obj)
            # A masked vector leaves its sender flat, at a multiple of 64 bits.
            check_encrypted(enc, sender=self.peer, tag=tag, shape=(size,))
            if enc.scale_bits % 64:
                check_encrypted(enc, sender=self.peer, tag=tag,
                                scale_bits=-(-enc.scale_bits // 64) * 64)
            ints = enc.decrypt_encoded(self.sk, n_jobs=self.n_jobs)
            self.ctx.send(self.peer, tag + "_decrypted", ints, kind="masked")
        else:
            obj = check_array(obj, sender=self.peer, tag=tag, shape=(size,))
            self.ctx.send(self.peer, tag + "_decrypted", obj, kind="plain")

    def recv_unmasked(self, tag, state):
        obj = self._recv(tag + "_decrypted")
        if not self.paillier:
            return np.asarray(obj, dtype=float)
        mask, scale = state
        return decode_masked(obj, mask, scale, sigma_bits=self.sigma_bits)

    # packed rows (the cross-moment protocol) -----------------------------------
    def send_rows(self, tag, values, slot_bits, bound_bits, precision_bits=None):
        """Encrypt a matrix row-packed under our own key and send it."""
        values = np.asarray(values, dtype=float)
        if self.paillier:
            payload = PackedRows.encrypt(self.pk, values, slot_bits=slot_bits,
                                         bound_bits=bound_bits, precision_bits=precision_bits,
                                         n_jobs=self.n_jobs, pool=self.own_pool).to_wire()
        else:
            _check_bound(values, bound_bits, f"{tag!r}")
            payload = values
        self.ctx.send(self.peer, tag, payload, kind=self.kind)

    def _checked(self, tag, obj, public_key, shape, slot_bits, scale_bits, value_bits=None):
        """Parse a packed matrix and refuse a layout other than the public one.

        A party that declared other sizes, slots or bounds than it sends
        could otherwise slip past :func:`check_batches` (e.g. identity rows
        in place of its features) or size the other's masks.
        """
        if not self.paillier:
            arr = np.asarray(obj, dtype=float)
            got = arr.shape
        else:
            arr = PackedRows.from_wire(public_key, obj, n_jobs=self.n_jobs)
            got = (arr.shape, arr.slot_bits, arr.scale_bits,
                   arr.value_bits if value_bits is not None else None)
        want = (tuple(shape) if not self.paillier else
                (tuple(shape), slot_bits, scale_bits, value_bits))
        if got != want:
            raise ProtocolMismatch(
                f"{self.peer!r} sent {tag!r} as {got}, the protocol's public layout is "
                f"{want} (shape, slot bits, scale, bound)")
        return arr

    def recv_rows(self, tag, shape, slot_bits, scale_bits, value_bits):
        """Receive a row-packed matrix under the peer's key, in the public layout."""
        return self._checked(tag, self._recv(tag), self.peer_pk if self.paillier else None,
                             shape, slot_bits, scale_bits, value_bits)

    def send_derived_rows(self, tag, packed):
        """Send a packed matrix computed from the peer's ciphertexts: re-randomised,
        declaring the public bound ``slot_bits - 2`` rather than the tracked one."""
        if self.paillier:
            packed = packed.with_bound(packed.slot_bits - 2)
            payload = packed.obfuscate(n_jobs=self.n_jobs, pool=self.peer_pool).to_wire()
        else:
            payload = np.asarray(packed, dtype=float)
        self.ctx.send(self.peer, tag, payload, kind=self.kind)

    def recv_own_rows(self, tag, shape, slot_bits, scale_bits):
        """Receive a packed matrix under our key and decrypt it: (slot integers,
        scale) with encryption, (values, None) without."""
        p = self._checked(tag, self._recv(tag), self.pk if self.paillier else None, shape,
                          slot_bits, scale_bits, slot_bits - 2)
        if not self.paillier:
            return p, None
        return p.decrypt_slots(self.sk, n_jobs=self.n_jobs), p.scale_bits

    def recv_own_ints(self, tag, shape, scale_bits):
        """Receive ciphertexts under our key: (signed integers, scale), or (values, None)."""
        obj = self._recv(tag)
        if not self.paillier:
            return np.asarray(obj, dtype=float).reshape(shape), None
        enc = EncryptedArray.from_wire(self.pk, obj)
        if enc.shape != tuple(shape) or enc.scale_bits != scale_bits:
            raise ProtocolMismatch(
                f"{self.peer!r} sent {tag!r} with shape {enc.shape} and scale "
                f"{enc.scale_bits}; the protocol's are {tuple(shape)} and {scale_bits}")
        return enc.decrypt_encoded(self.sk, n_jobs=self.n_jobs), enc.scale_bits


def _optimizer(cfg):
    if cfg["solver"] == "adam":
        return Adam(cfg["learning_rate_init"])
    return SGD(cfg["learning_rate_init"], momentum=cfg["momentum"])


def n_parameters(n_in, hidden_layer_sizes, representation_dim, train_hidden=True):
    """Number of trained parameters of a representation network (weights and biases).

    With ``train_hidden=False`` only the output layer is trained (and sent
    in gradients); the hidden layers are fixed random features.
    """
    sizes = [n_in, *hidden_layer_sizes, representation_dim]
    if not train_hidden:
        # Fixed random features: the output layer sees them and the features.
        sizes = [sizes[-2] + (n_in if hidden_layer_sizes else 0), sizes[-1]]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def min_labelled_per_batch(n_outputs, representation_dim):
    """Fewest labelled overlap rows a batch may carry (if it carries any).

    A decrypts ``dL/dPhi`` (``K d`` values) and the loss (1 value); both are
    functions of B's representations of the labelled rows of the batch only
    (``n_c d`` unknowns), so ``n_c d`` must exceed ``K d + 1``.
    """
    K, d = n_outputs, representation_dim
    return (K * d + 1) // d + 1


def _batches(w, batch_size, n_outputs, representation_dim, seed):
    """The batches of one epoch (positions in the overlap order), from ``seed``.

    Both parties derive the same batches from the public batch seed and the
    public labelled mask ``w``. ``len(w) // batch_size`` batches of nearly
    equal size (the remainder is spread over them, so there is no small last
    batch). The labelled rows are spread over as many batches as can each
    carry at least :func:`min_labelled_per_batch` of them; the other batches
    carry none (batches that would stay empty, for want of unlabelled rows,
    are dropped). The batch sizes and labelled counts do not depend on the
    seed (only which rows go where does), so :func:`check_batches` can check
    them once.
    """
    w = np.asarray(w, dtype=bool)
    n = len(w)
    n_batches = 1 if batch_size is None or batch_size >= n else n // batch_size
    rng = np.random.RandomState(seed % (2**32))
    lab = rng.permutation(np.flatnonzero(w))
    unl = rng.permutation(np.flatnonzero(~w))
    need = min_labelled_per_batch(n_outputs, representation_dim)
    n_lab_batches = min(n_batches, max(len(lab) // need, 1)) if len(lab) else 0
    lab_chunks = np.array_split(lab, n_lab_batches) if n_lab_batches else []
    carriers = np.sort(rng.permutation(n_batches)[:n_lab_batches])
    chunks = [np.empty(0, dtype=int) for _ in range(n_batches)]
    for j, chunk in zip(carriers, lab_chunks):
        chunks[j] = chunk
    # Fill with unlabelled rows, always topping up the smallest batch.
    totals = np.array([len(c) for c in chunks])
    counts = np.zeros(n_batches, dtype=int)
    for _ in range(len(unl)):
        j = int(np.argmin(totals))
        totals[j] += 1
        counts[j] += 1
    parts = np.split(unl, np.cumsum(counts)[:-1])
    batches = [np.sort(np.concatenate([c, u])).astype(int) for c, u in zip(chunks, parts)]
    # With few unlabelled rows, batches carrying no labels may stay empty.
    return [b for b in batches if len(b)]


def _epoch_batches(w, cfg, n_outputs, epoch):
    return _batches(w, cfg["batch_size"], n_outputs, cfg["representation_dim"],
                    cfg["batch_seed"] + epoch)


def check_batches(w, batch_size, n_outputs, representation_dim, n_params_source,
                  n_params_target, source="source", target="target"):
    """Refuse batches in which one party's gradient determines the other's representations.

    Backprop is linear in the upstream gradient and each party knows its own
    Jacobian, so what a party decrypts per batch is a set of *linear
    equations* in the other party's values (see docs/transfer.rst):

    * A decrypts its alignment gradient ``J_A^T vec(2 gamma/n_b (U^A - U^B))``
      (``n_params_source`` equations), ``dL/dPhi`` (``K d``) and the loss
      (1), all in B's ``n_b d`` representation values of the batch;
    * B decrypts ``J_B^T vec(T + ...)`` (``n_params_target`` equations) in
      A's ``n_b d`` values of ``T`` (``-2 gamma/n_b u^A_i`` on unlabelled rows);
    * ``dL/dPhi`` and the loss involve B's labelled rows only.

    Each count of unknowns must exceed its count of equations, for every batch.

    Raises
    ------
    ValueError
        Naming the batch, the counts and what to change.
    """
    K, d = n_outputs, representation_dim
    batches = _batches(w, batch_size, K, d, 0)
    w = np.asarray(w, dtype=bool)
    n_b = min(len(b) for b in batches)
    n_c = [int(w[b].sum()) for b in batches]
    hint = ("use larger batches (batch_size, or 'auto' for all overlap rows) or more "
            "overlap rows, smaller hidden_layer_sizes, or a larger representation_dim")
    eq_a = n_params_source + K * d + 1
    if n_b * d <= eq_a:
        raise ValueError(
            f"a batch of {n_b} overlap rows would let the source {source!r} solve for the "
            f"target's representations: it decrypts {eq_a} values per batch (its "
            f"{n_params_source}-parameter network's gradient, dL/dPhi and the loss), "
            f"equations in the target's {n_b} x {d} = {n_b * d} representation values; "
            f"need at least {eq_a // d + 1} rows per batch: {hint}"
        )
    if n_b * d <= n_params_target:
        raise ValueError(
            f"a batch of {n_b} overlap rows would let the target {target!r} solve for the "
            f"source's representations: its {n_params_target}-parameter network's gradient "
            f"is linear in the source's {n_b} x {d} = {n_b * d} values; need at least "
            f"{n_params_target // d + 1} rows per batch: {hint}"
        )
    need = min_labelled_per_batch(K, d)
    few = [c for c in n_c if 0 < c < need]
    if few:
        raise ValueError(
            f"a batch carries {few[0]} labelled overlap row(s): dL/dPhi ({K} x {d}) and the "
            f"loss that the source {source!r} decrypts would determine the target's "
            f"representations of those rows; need at least {need} labelled overlap rows "
            f"(there are {int(w.sum())})"
        )


def _net(n_in, cfg, seed):
    sizes = [n_in, *cfg["hidden_layer_sizes"], cfg["representation_dim"]]
    # A party's initial network is private: the whole (256-bit) seed enters.
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    fixed = not cfg.get("train_hidden", True)
    # Fixed random features sit beside the features themselves, so the
    # representations include every linear map of a party's columns (the
    # model class of "B alone") and add non-linear directions to it.
    net = DenseNet(sizes, cfg["activation"], rng, skip=fixed)
    if not cfg.get("train_hidden", True):
        # Fixed random features (Rahimi & Recht; Huang's extreme learning
        # machine): unit-variance pre-activations for standardised inputs and
        # biases that spread the units' offsets, rather than Glorot's range,
        # which suits weights that will be trained.
        for W, b in zip(net.coefs[:-1], net.intercepts[:-1]):
            W[...] = rng.normal(0.0, 1.0 / np.sqrt(W.shape[0]), W.shape)
            b[...] = rng.uniform(-1.0, 1.0, b.shape)
    return net


def _output_inputs(n_params, d, who):
    """The peer's output-layer inputs (+1) from its declared parameter count."""
    if n_params % d:
        raise ProtocolMismatch(f"{who!r} declared {n_params} parameters, not a multiple of "
                               f"representation_dim={d}")
    return n_params // d


def _fast_protocol(cfg):
    """Whether the representation is linear in its trained parameters."""
    return not cfg["hidden_layer_sizes"] or not cfg.get("train_hidden", True)


def _trained_mask(net, cfg):
    """1 for the parameters a party trains (all, or the output layer's)."""
    mask = np.ones(net.n_params)
    if not cfg.get("train_hidden", True):
        mask[:net.n_params - net.coefs[-1].size - net.intercepts[-1].size] = 0.0
    return mask


def objective(net_a, net_b, XA, XB, labelled, Y, overlap_a, overlap_b, w, gamma, alpha,
              source_weight=0.0):
    """The training objective and its gradients, centralised (for tests and docs).

    ``XA``/``XB`` are each party's rows, ``labelled`` indexes A's labelled
    rows (labels ``Y``), ``overlap_a``/``overlap_b`` the overlap rows in each
    party's order, ``w`` marks the labelled overlap rows, ``source_weight``
    weighs the source's own logistic loss on its labelled rows.

    Returns
    -------
    loss : float
    grad_a, grad_b : ndarray
        Gradients with respect to ``net_a.get_flat()`` and ``net_b.get_flat()``.
    """
    UA, acts_a = net_a.forward(XA)
    UB_all, acts_b = net_b.forward(XB[overlap_b])
    Y_ov = np.zeros((len(overlap_a), Y.shape[1]))
    pos = {int(r): j for j, r in enumerate(labelled)}
    for i, r in enumerate(overlap_a):
        if int(r) in pos:
            Y_ov[i] = Y[pos[int(r)]]
    n_l, n_b, n_c = len(labelled), len(overlap_a), w.sum()
    c = 1.0 / n_c if n_c > 0 else 0.0
    Phi = Y.T @ UA[labelled] / n_l
    S = UB_all @ Phi.T
    UAo = UA[overlap_a]
    wa, wb_ = net_a.weight_mask(), net_b.weight_mask()
    ta, tb = net_a.get_flat(), net_b.get_flat()
    loss = (c * np.sum(w[:, None] * (LOG2 - 0.5 * Y_ov * S + S ** 2 / 8))
            + gamma / n_b * np.sum((UAo - UB_all) ** 2)
            + 0.5 * alpha * (np.sum((wa * ta) ** 2) + np.sum((wb_ * tb) ** 2)))
    C = c * w[:, None] * (-0.5 * Y_ov + 0.25 * S)         # dL/dS
    g_phi = C.T @ UB_all
    GA = np.zeros_like(UA)
    GA[labelled] += Y @ g_phi / n_l
    GA[overlap_a] += 2 * gamma / n_b * (UAo - UB_all)
    GB = C @ Phi + 2 * gamma / n_b * (UB_all - UAo)
    SA = UA[labelled] @ Phi.T
    loss += source_weight * float(np.sum(np.logaddexp(0.0, -Y * SA))) / n_l
    CA = -source_weight * Y * np.exp(-np.logaddexp(0.0, Y * SA)) / n_l
    GA[labelled] += CA @ Phi + Y @ (CA.T @ UA[labelled]) / n_l
    grad_a = flatten_blocks(net_a.backward(acts_a, GA)) + alpha * wa * ta
    grad_b = flatten_blocks(net_b.backward(acts_b, GB)) + alpha * wb_ * tb
    return float(loss), grad_a, grad_b


# -- one step of training, per party and protocol ---------------------------------
def _with_ones(A):
    return np.hstack([A, np.ones((A.shape[0], 1))])


def _source_step(ch, net, theta, acts, U, Phi, rows, wY, c, gamma, labelled, Y, n_lab, b):
    """A's side of one step for networks with hidden layers (unpacked ciphertexts).

    ``wY`` (K, n_b) are the batch's labels, 0 on unlabelled rows. Returns
    A's gradient without the L2 term and the loss terms that involve B.
    """
    n_b = len(rows)
    ch.send_encrypted("phi_t", Phi.T)
    ch.send_encrypted("m", 0.25 * c * Phi.T @ Phi)
    ch.send_encrypted("t", -0.5 * c * wY.T @ Phi - 2 * gamma / n_b * U[rows])
    # Alignment gradient under B's key, pushed through our network; backprop
    # is linear, so the constant factor applies to the (smaller) result.
    enc_ub = ch.recv_foreign("u_b", (n_b, U.shape[1]))
    acts_rows = [a[rows] for a in acts]
    blocks = [e * (-2 * gamma / n_b) + p for e, p in zip(
        net.backward(acts_rows, enc_ub, ops=ch.ops),
        net.backward(acts_rows, 2 * gamma / n_b * U[rows]))]
    state = ch.send_masked("grad_source", blocks)
    g_phi = ch.recv_own("g_phi", Phi.T.shape).T        # (K, d)
    loss_b = float(ch.recv_own("loss_target", (1,))[0])
    ch.serve_decrypt("grad_target", ch.peer_n_params)
    g_align = ch.recv_unmasked("grad_source", state)
    return _class_gradient(net, acts, U, labelled, Y, g_phi, n_lab) + g_align, loss_b


def _class_gradient(net, acts, U, labelled, Y, g_phi, n_lab):
    # Phi's gradient flows to A's labelled rows: dPhi/du_j = y_j / N_L.
    G_lab = np.zeros_like(U)
    G_lab[labelled] = Y @ g_phi / n_lab
    return flatten_blocks(net.backward(acts, G_lab))


def _source_step_linear(ch, net, theta, acts, U, Phi, rows, wY, c, gamma, labelled, Y,
                        n_lab, lin, b):
    """A's side of one step for linear representations (cross moments).

    Same outputs as :func:`_source_step`; see the module docstring.
    """
    K, d = Phi.shape
    n_b = len(rows)
    _check_bound(Phi, REPRESENTATION_BOUND_BITS, "Phi")
    ch.send_rows("phi", Phi.reshape(-1, 1), lin.slot_bits, REPRESENTATION_BOUND_BITS)
    theta_m = np.vstack([net.coefs[-1], net.intercepts[-1]])        # (p_A + 1, d)
    # B's gradient (transposed): T^T [F^B, 1] = Lam [wY, F^A, 1]^T [F^B, 1],
    # plus M P^T with B's P^T = U^B^T diag(w) [F^B, 1] under B's key.
    Lam = np.hstack([-0.5 * c * Phi.T, -2 * gamma / n_b * theta_m.T])
    M = 0.25 * c * Phi.T @ Phi
    _check_bound(Lam, PARAM_BOUND_BITS, "parameters")
    _check_bound(M, PARAM_BOUND_BITS, "Phi^T Phi")
    enc_pt = ch.recv_rows("p", (d, lin.peer_width), lin.peer_slot_bits,
                          _ENC_BITS + FEATURE_SCALE_BITS, lin.p_value_bits)
    Gt = _mul(Lam, lin.cross(b), PARAM_SCALE_BITS) + _mul(M, enc_pt, PARAM_SCALE_BITS)
    ch.send_derived_rows("grad_target", Gt)
    # U^B^T [wY, F^A, 1] with -Sigma Phi^T / 2 added to the label slots.
    D, s_d = ch.recv_own_rows("d", (d, lin.width), lin.slot_bits, _D_SCALE)
    Z, s_z = ch.recv_own_ints("z", (K * d,), _Z_SCALE)          # Sigma Phi^T + R
    z2, s_2 = ch.recv_own_ints("loss_target", (1,), _Z_SCALE + _ENC_BITS)
    if ch.paillier:
        Y_int = sum(int(a) * int(z) for a, z in zip(fixed_point(Phi.ravel(), _ENC_BITS),
                                                      Z)) - int(z2[0])
        Y_val = Y_int / (1 << (_ENC_BITS + s_z))
        D = _to_float(D, s_d)
        z2 = _to_float(z2, s_2)
    else:
        Y_val = float(Phi.ravel() @ Z - z2[0])
    G1 = -2 * D[:, :K].T                              # Phi Sigma - 2 V
    XU = D[:, K:].T                                   # [F^A, 1]^T U^B
    inner = float(np.sum(theta_m * XU))               # <U^A, U^B> on the batch
    Xa = _with_ones(acts[-2][rows])                   # the output layer's inputs
    g_align = (2 * gamma / n_b * (Xa.T @ U[rows] - XU)).ravel()
    g_phi = 0.25 * c * G1
    loss_b = (0.25 * c * float(np.sum(Phi * G1)) - 0.125 * c * Y_val if c > 0
              else float(z2[0]))
    loss_b -= 2 * gamma / n_b * inner
    grad = _class_gradient(net, acts, U, labelled, Y, g_phi, n_lab)
    grad[-g_align.size:] += g_align       # the output layer closes the flat vector
    return grad, loss_b


# Public scales of what the key owners decrypt (see the constants above).
_D_SCALE = _ENC_BITS + FEATURE_SCALE_BITS + PARAM_SCALE_BITS
_Z_SCALE = _ENC_BITS + PARAM_SCALE_BITS


def _mul(X, V, scale_bits):
    """``X @ V`` for a plaintext ``X``; on ciphertexts (packed or not) with ``X`` at
    a public absolute scale, so the result's scale reveals nothing of ``X``."""
    if isinstance(V, (PackedRows, EncryptedArray)):
        return V.rmatmul(X, scale_bits=scale_bits)
    return X @ V


def _check_bound(values, bits, what):
    """Refuse (in both modes) values beyond the protocol's public bounds."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all() or np.abs(values).max(initial=0) >= 2.0 ** bits:
        raise OverflowError(
            f"{what} of magnitude >= 2**{bits} (or not finite): training has diverged; "
            "lower learning_rate_init, or standardise the features"
        )


def _to_float(ints, scale):
    ints = np.asarray(ints, dtype=object)
    div = 1 << int(scale)
    return np.array([int(v) / div for v in ints.ravel()]).reshape(ints.shape)


def _slot_bits(n_rows, n_inner):
    """Slot width of a party's packed values in the cross-moment protocol.

    Its encrypted rows (features below 2**20 at 28 bits) times the peer's own
    columns (below 2**20 at 36 bits) summed over ``n_rows`` (the cross
    moments), times parameters (below 2**16 at 30 bits) summed over
    ``n_inner``, one addition, and the balanced-digit sign. The other
    products (Sigma Phi^T, M P^T) stay below this; every intermediate's bound
    is tracked and checked (:class:`PackedRows`).
    """
    return (_ENC_BITS + FEATURE_BOUND_BITS + FEATURE_BOUND_BITS + FEATURE_SCALE_BITS
            + int(n_rows).bit_length() + PARAM_BOUND_BITS + PARAM_SCALE_BITS
            + int(n_inner + 1).bit_length() + 1 + 2)


class _CrossMoments:
    """One party's view of the cross-moment protocol's fixed material.

    Sends its rows ``own`` of the overlap (``[.., F, 1]``, ``F`` the output
    layer's inputs) encrypted once per fit, row-packed under its own key, and
    receives the peer's, checking their layout against the public sizes;
    ``cross(b)`` is ``own[b]^T [[peer[b]]]`` under the peer's key, kept while
    the batch does not change (full batch: once per fit).
    """

    def __init__(self, ch, own, peer_width, n_inner, peer_n_inner):
        _check_bound(own, FEATURE_BOUND_BITS, "features")
        n = len(own)
        self.own, self.width, self.peer_width = own, own.shape[1], peer_width
        self.slot_bits = _slot_bits(n, n_inner)
        self.peer_slot_bits = _slot_bits(n, peer_n_inner)
        # P^T = U^T diag(w) [F, 1] (the target's, per step) is below 2**p_bound.
        self.p_bound_bits = REPRESENTATION_BOUND_BITS + FEATURE_BOUND_BITS + n.bit_length()
        self.p_value_bits = _ENC_BITS + FEATURE_SCALE_BITS + self.p_bound_bits
        ch.send_rows("features", own, self.slot_bits, FEATURE_BOUND_BITS)
        self.peer = ch.recv_rows("features", (n, peer_width), self.peer_slot_bits,
                                 _ENC_BITS, _ENC_BITS + FEATURE_BOUND_BITS)
        self._cache = (None, None)

    def cross(self, b):
        key = np.asarray(b).tobytes()
        if self._cache[0] != key:
            self._cache = (key, _mul(self.own[b].T, self.peer[b], FEATURE_SCALE_BITS))
        return self._cache[1]


def _target_step(ch, net, acts, U, wb, c, gamma, own, enc_labels):
    """B's side of one step for networks with hidden layers; returns B's gradient
    without the L2 term. ``own`` is B's plaintext share of the loss."""
    n_b = len(wb)
    ch.send_encrypted("u_b", U)
    d = U.shape[1]
    enc_phi_t = ch.recv_foreign("phi_t", (d, None))    # (d, K)
    enc_m = ch.recv_foreign("m", (d, d))
    enc_t = ch.recv_foreign("t", (n_b, d))
    # dL/dPhi: one d x d plaintext sum Sigma against [[Phi]].
    Uw = wb[:, None] * U
    sigma = Uw.T @ U
    _check_bound(U, REPRESENTATION_BOUND_BITS, "representations")
    _check_bound(sigma, SIGMA_BOUND_BITS, "representations")
    # A decrypts these two: our plaintext factors (constants folded in) enter
    # at the public absolute scale, so the scales A sees say nothing of U^B.
    g_phi_t = (_mul(-0.5 * c * U.T, enc_labels, PARAM_SCALE_BITS)
               + _mul(0.25 * c * sigma, enc_phi_t, PARAM_SCALE_BITS))
    ch.send_derived("g_phi", g_phi_t)
    # Our share of the loss: cross terms under A's key plus own terms.
    loss_part = (_mul(0.5 * sigma.ravel(), enc_m.ravel(), PARAM_SCALE_BITS)
                 + _mul(U.ravel(), enc_t.ravel(), PARAM_SCALE_BITS) + own)
    ch.send_derived("loss_target", loss_part.reshape(1))
    G = enc_t + ch.ops.matmul(Uw, enc_m) + 2 * gamma / n_b * U
    state = ch.send_masked("grad_target", net.backward(acts, G, ops=ch.ops))
    ch.serve_decrypt("grad_source", ch.peer_n_params)
    return ch.recv_unmasked("grad_target", state)


def _target_step_linear(ch, net, acts, U, wb, c, gamma, own, lin, K, b):
    """B's side of one step for linear representations (cross moments)."""
    n_b, d = U.shape
    Uw = wb[:, None] * U
    Xt = lin.own[b]                                   # [F^B, 1] of the batch
    ch.send_rows("p", Uw.T @ Xt, lin.slot_bits, lin.p_bound_bits,
                 precision_bits=_ENC_BITS + FEATURE_SCALE_BITS)
    enc_phi = ch.recv_rows("phi", (K * d, 1), lin.peer_slot_bits, _ENC_BITS,
                           _ENC_BITS + REPRESENTATION_BOUND_BITS)   # [[Phi]], A's key
    theta_m = np.vstack([net.coefs[-1], net.intercepts[-1]])         # (p_B + 1, d)
    sigma = Uw.T @ U
    _check_bound(theta_m, PARAM_BOUND_BITS, "parameters")
    _check_bound(sigma, SIGMA_BOUND_BITS, "representations")
    D = _mul(theta_m.T, lin.cross(b), PARAM_SCALE_BITS)             # U^B^T [wY, F^A, 1]
    E = [_mul(sigma, enc_phi[k * d:(k + 1) * d], PARAM_SCALE_BITS)
         for k in range(K)]                                         # Sigma Phi_k^T
    if ch.paillier:
        for k, e in enumerate(E):
            D = D.add_at(e * -0.5, k)
        Z = EncryptedArray.concatenate([e.enc.ravel() for e in E])
        # R hides Sigma Phi^T from A, which removes Phi . R from the loss
        # term; its width follows from the public bounds, not from Sigma.
        bits = (_ENC_BITS + REPRESENTATION_BOUND_BITS + SIGMA_BOUND_BITS + PARAM_SCALE_BITS
                + int(d + 1).bit_length() + ch.sigma_bits)
        R = np.array([secrets.randbits(bits) for _ in range(Z.size)], dtype=object)
        z2 = (dot_ints(enc_phi.enc.ravel(), R, Z.scale_bits) + 8.0 / c * own if c > 0
              else EncryptedArray.encrypt(ch.peer_pk, [own], pool=ch.peer_pool,
                                          precision_bits=_Z_SCALE + _ENC_BITS))
        Z = add_ints(Z, R, Z.scale_bits)
    else:
        for k, e in enumerate(E):
            D[:, k] += -0.5 * e[:, 0]
        Z = np.concatenate([e[:, 0] for e in E])
        z2 = np.array([8.0 / c * own if c > 0 else own])
    ch.send_derived_rows("d", D)
    ch.send_derived("z", Z)
    ch.send_derived("loss_target", z2)
    Gt, scale = ch.recv_own_rows("grad_target", (d, lin.width), lin.slot_bits, _D_SCALE)
    if ch.paillier:
        Gt = _to_float(Gt, scale)
    grad = np.zeros(net.n_params)
    g = (Gt.T + 2 * gamma / n_b * Xt.T @ U).ravel()
    grad[-g.size:] = g                    # the output layer closes the flat vector
    return grad


def _source_own_loss(net, acts, U, Phi, labelled, Y, weight):
    """The source's own classification term, local to A: ``weight`` times the
    mean logistic loss of ``Phi u^A`` on all of A's labelled rows.

    Without it A's labels reach its network only through ``Phi`` and the
    target's scores on the labelled overlap, so the rows only A holds shape
    nothing but a class mean. With it ``Phi u^A`` is a classifier trained on
    every labelled row A has, and the alignment carries it to the target
    (the overlap rows then teach B soft scores as well as labels). Everything
    here is A's plaintext, so it needs no message and no Taylor form.
    """
    if not weight:
        return 0.0, 0.0
    n_lab = len(labelled)
    S = U[labelled] @ Phi.T
    M = Y * S
    loss = weight * float(np.sum(np.logaddexp(0.0, -M))) / n_lab
    C = -weight * Y * np.exp(-np.logaddexp(0.0, M)) / n_lab        # dL/dS
    G = np.zeros_like(U)
    G[labelled] = C @ Phi + Y @ (C.T @ U[labelled]) / n_lab        # via S and via Phi
    return loss, flatten_blocks(net.backward(acts, G))


# -- training ------------------------------------------------------------------
def source(ctx, X, labelled, Y, overlap, cfg, progress=None):
    """Party A: features ``X`` (its rows), labels ``Y`` (K columns in {-1, +1})
    on rows ``labelled``; ``overlap`` gives the position in ``X`` of each
    overlap row, in the order both parties agreed on.

    Returns the trained network's parameters and ``Phi`` (both stay at A).
    """
    ch = _Channel(ctx, cfg["target_name"], cfg, pools=True)
    gamma, alpha = cfg["gamma"], cfg["alpha"]
    net = _net(X.shape[1], cfg, cfg["network_seed"])
    theta, wmask, trained = net.get_flat(), net.weight_mask(), _trained_mask(net, cfg)
    n_trained = int(trained.sum())
    opt = _optimizer(cfg)
    n_lab, K = len(labelled), Y.shape[1]
    # Overlap rows' labels (0 where A has none): encrypted once per fit.
    lab_pos = {int(r): j for j, r in enumerate(labelled)}
    w = np.array([int(r) in lab_pos for r in overlap], dtype=float)
    Y_ov = np.zeros((len(overlap), K))
    for i, r in enumerate(overlap):
        if int(r) in lab_pos:
            Y_ov[i] = Y[lab_pos[int(r)]]
    # Sizes first: neither side sends anything derived from its
    # representations before both have checked the batches (check_batches).
    ctx.send(ch.peer, "labelled_overlap", w.astype(bool), kind="plain")
    ctx.send(ch.peer, "n_params", n_trained, kind="plain")
    n_params_b = ch.peer_n_params = check_scalar(ctx.recv(ch.peer, "n_params"),
                                                 sender=ch.peer, tag="n_params", kind="int",
                                                 low=1)
    check_batches(w, cfg["batch_size"], K, cfg["representation_dim"], n_trained,
                  n_params_b, cfg["source_name"], cfg["target_name"])
    linear = _fast_protocol(cfg)
    d = cfg["representation_dim"]
    if linear:
        ctx.send(ch.peer, "n_outputs", K, kind="plain")
        # The output layer's inputs: the features, or fixed random features.
        feats = net.forward(X[overlap])[1][-2]
        own = np.hstack([w[:, None] * Y_ov, feats, np.ones((len(overlap), 1))])
        p_b1 = _output_inputs(n_params_b, d, cfg["target_name"])
        # A's slots hold U^B^T [wY, F^A, 1] (B sums over its p_B + 1 inputs),
        # B's hold its gradient (A sums over K + p_A + 1).
        extra = (_CrossMoments(ch, own, p_b1, p_b1, own.shape[1]),)
        step = _source_step_linear
    else:
        ch.send_encrypted("labels", Y_ov)
        extra, step = (), _source_step

    losses, best, stall = [], np.inf, 0
    for epoch in range(cfg["max_iter"]):
        epoch_loss = 0.0
        for b in _epoch_batches(w, cfg, K, epoch):
            net.set_flat(theta)
            U, acts = net.forward(X)
            Phi = Y.T @ U[labelled] / n_lab
            rows = overlap[b]
            wb = w[b]
            n_b, n_c = len(b), wb.sum()
            c = 1.0 / n_c if n_c > 0 else 0.0
            grad, loss_cross = step(ch, net, theta, acts, U, Phi, rows, wb * Y_ov[b].T, c,
                                    gamma, labelled, Y, n_lab, *extra, b)
            loss_src, grad_src = _source_own_loss(net, acts, U, Phi, labelled, Y,
                                                  cfg.get("source_weight", 0.0))
            grad = grad + grad_src
            loss = (loss_cross + loss_src + (K * LOG2 if n_c > 0 else 0.0)
                    + gamma / n_b * float(np.sum(U[rows] ** 2))
                    + 0.5 * alpha * float(np.sum((wmask * theta) ** 2)))
            theta = opt.step(theta, trained * (grad + alpha * wmask * theta))
            epoch_loss += loss * n_b / len(overlap)
        losses.append(epoch_loss)
        # ``progress`` is a local object of A's process: progress lines and
        # scikit-learn callbacks, which may stop the fit.
        asked_to_stop = progress is not None and progress.update(
            epoch + 1, objective=epoch_loss, nbytes=ctx.bytes_sent + ctx.bytes_received)
        if epoch_loss > best - cfg["tol"]:
            stall += 1
        else:
            stall = 0
        best = min(best, epoch_loss)
        stop = stall >= cfg["n_iter_no_change"] or asked_to_stop
        ctx.send(ch.peer, "continue", not stop, kind="plain")
        if stop:
            break
    ch.close()
    if progress is not None:
        progress.close()
    net.set_flat(theta)
    U, _ = net.forward(X)
    return {"coefs": net.coefs, "intercepts": net.intercepts,
            "phi": Y.T @ U[labelled] / n_lab, "loss_curve": losses}


def target(ctx, X, overlap, cfg):
    """Party B: features ``X`` (its rows); ``overlap`` as for :func:`source`.

    Returns B's trained network parameters (they stay at B).
    """
    ch = _Channel(ctx, cfg["source_name"], cfg, pools=True)
    gamma, alpha = cfg["gamma"], cfg["alpha"]
    net = _net(X.shape[1], cfg, cfg["network_seed"])
    theta, wmask, trained = net.get_flat(), net.weight_mask(), _trained_mask(net, cfg)
    n_trained = int(trained.sum())
    opt = _optimizer(cfg)
    w = check_array(ctx.recv(ch.peer, "labelled_overlap"), sender=ch.peer,
                    tag="labelled_overlap", shape=(len(overlap),), dtype="b").astype(float)
    ctx.send(ch.peer, "n_params", n_trained, kind="plain")
    n_params_a = ch.peer_n_params = check_scalar(ctx.recv(ch.peer, "n_params"),
                                                 sender=ch.peer, tag="n_params", kind="int",
                                                 low=1)
    linear = _fast_protocol(cfg)
    if linear:
        enc_labels, K = None, check_scalar(ctx.recv(ch.peer, "n_outputs"), sender=ch.peer,
                                           tag="n_outputs", kind="int", low=1)
    else:
        enc_labels = ch.recv_foreign("labels", (len(overlap), None))  # [[w Y]]_A
        K = enc_labels.shape[1]
    check_batches(w, cfg["batch_size"], K, cfg["representation_dim"], n_params_a,
                  n_trained, cfg["source_name"], cfg["target_name"])
    Xo = X[overlap]
    if linear:
        own = _with_ones(net.forward(Xo)[1][-2])
        width_a = K + _output_inputs(n_params_a, cfg["representation_dim"],
                                     cfg["source_name"])
        extra = _CrossMoments(ch, own, width_a, width_a, own.shape[1])
        step = _target_step_linear
    else:
        extra, step = None, _target_step
    n_iter = 0
    for epoch in range(cfg["max_iter"]):
        for b in _epoch_batches(w, cfg, K, epoch):
            net.set_flat(theta)
            U, acts = net.forward(Xo[b])
            wb = w[b]
            n_c = wb.sum()
            c = 1.0 / n_c if n_c > 0 else 0.0
            own = (gamma / len(b) * float(np.sum(U ** 2))
                   + 0.5 * alpha * float(np.sum((wmask * theta) ** 2)))
            grad = step(ch, net, acts, U, wb, c, gamma, own,
                        *((extra, K, b) if linear else (enc_labels[b],)))
            theta = opt.step(theta, trained * (grad + alpha * wmask * theta))
        n_iter += 1
        if not check_scalar(ctx.recv(ch.peer, "continue"), sender=ch.peer, tag="continue",
                            kind="bool"):
            break
    ch.close()
    net.set_flat(theta)
    return {"coefs": net.coefs, "intercepts": net.intercepts, "n_iter": n_iter}


# -- prediction ------------------------------------------------------------------
def source_predict(ctx, phi, cfg):
    """A's side of prediction: encrypts ``Phi`` and decrypts masked scores.

    A sees only ``[[U^B]] Phi^T + R`` with B's random mask R: nothing of B's
    rows, representations or scores.
    """
    ch = _Channel(ctx, cfg["target_name"], cfg)
    ch.send_encrypted("phi_t", phi.T)
    ch.serve_decrypt("scores")


def target_predict(ctx, X, model, cfg):
    """B's side: scores of its rows ``S = Net^B(X) Phi^T``, learnt only by B."""
    ch = _Channel(ctx, cfg["source_name"], cfg)
    net = _net(X.shape[1], cfg, 0)
    net.coefs, net.intercepts = model["coefs"], model["intercepts"]
    U, _ = net.forward(X)
    enc_phi_t = ch.recv_foreign("phi_t", (U.shape[1], None))
    _check_bound(U, REPRESENTATION_BOUND_BITS, "representations")
    S = _mul(U, enc_phi_t, PARAM_SCALE_BITS)                   # (n, K), public scale
    state = ch.send_masked("scores", [S])
    return ch.recv_unmasked("scores", state).reshape(S.shape)
