"""Role functions of the vertical linear protocols (one per kind of party).

The parties are

* the **label party** ("guest"): some feature columns and the labels;
* one or more **feature parties** ("hosts"): other feature columns;
* the **arbiter**: holds the Paillier private key, no data and no model.

One mini-batch ``B`` of training, for a model with ``K`` outputs (``K = 1``
for regression and binary classification, one column per class for
one-vs-rest), reads like the step table of Hardy et al. (2017)::

    arbiter -> all     public key                                (once)
    guest   -> hosts   batch seed, K                             (once, plain)
    host k  -> guest   [[u_k]] = Enc(X_k[B] W_k)                 ciphertext
    guest              [[d]] = Enc(a) + sum_k [[u_k]],  a = X_G[B] W_G - c y
                       (c = 1 linear; c = 2 Taylor logistic with y in {-1, 1},
                       whose residual u/4 - y/2 is d/4)
    guest   -> hosts   [[d]]                                     ciphertext
    party p            [[G_p]] = X_p[B]^T [[d]]   (multi-exponentiation)
    host k  -> guest   re-randomised [[u_k . d + |B| alpha ||W_k||^2 / r]]  ciphertext
    party p -> arbiter [[G_p + R_p]]  (R_p statistically hides G_p)     masked
    arbiter -> party p G_p + R_p                                  masked
    party p            g_p = r G_p / |B| + alpha W_p; own optimizer step
    guest   -> arbiter [[loss]]                                  ciphertext
    arbiter -> all     stop?                                     (per epoch, plain)

``Enc(a)`` is a fresh encryption: its new randomness re-randomises the sum the
guest forwards, so no host can divide its own ``[[u_k]]`` out of ``[[d]]`` and
read ``a`` (the attack FATE prevents with an explicit ``r**n`` factor). As
the guest encrypts ``a`` before the hosts' messages arrive, this costs no
extra pass over the ciphertexts and, on separate machines, overlaps with the
hosts' encryption.

The loss needs no ciphertext multiplication: ``S = a . d + sum_k u_k . d``
equals ``sum(d^2)`` (linear) and ``sum(u^2 - 4 y u + 4)`` (logistic), so the
objective is ``r S / (2|B|)`` (+ ``K (log 2 - 1/2)`` for the Taylor log-loss,
``r = 1/4``), and every party contributes a plaintext-times-ciphertext inner
product folded into the same multi-exponentiation as its gradient.

Roles only talk through ``ctx``; the estimator hands each one its own slice of
the data and an immutable configuration. With ``encryption=None`` the same
messages flow in the clear (kind ``plain``), for debugging and for exact
comparison with centralised gradient descent.
"""

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from ..runtime.layout import check_array, check_encrypted, check_scalar
from ..runtime.local import PartyContext as LocalPartyContext

__all__ = [
    "VerticalConfig",
    "guest_fit",
    "host_fit",
    "arbiter_fit",
    "guest_predict",
    "host_predict",
    "epoch_batches",
    "batch_sizes",
]

# Statistical hiding of masked gradients: the mask is this many bits larger
# than the largest value the gradient can take (at least 40 is required).
MASK_SIGMA_BITS = 80
# Extra fractional bits of the fixed scale at which gradients and loss terms
# leave a party (above the scale of [[d]]); covers plaintext factors down to
# about 2**-30 in magnitude, and the loss's extra 1/(2|B|) factor.
GRADIENT_EXTRA_BITS = 62
LOSS_EXTRA_BITS = 142

# Epochs without improvement (by at least ``tol``) before declaring convergence.
N_ITER_NO_CHANGE = 5


@dataclass(frozen=True)
class VerticalConfig:
    """Hyper-parameters every party agreed on before the run (all public)."""

    task: str                      # "linear" or "logistic"
    label_party: str
    hosts: tuple
    arbiter: str
    n_samples: int
    alpha: float
    fit_intercept: bool
    solver: str
    learning_rate: float
    max_iter: int
    tol: float | None
    batch_size: int | None
    encryption: str | None
    key_size: int
    n_jobs: int | None
    verbose: int


# -- shared pieces: batches and optimizers ------------------------------------

def batch_sizes(n_samples, batch_size):
    """Sizes of the mini-batches of one epoch (public: a function of n and the size)."""
    if batch_size is None or batch_size >= n_samples:
        return [n_samples]
    return [min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size)]


def epoch_batches(rng, n_samples, batch_size):
    """Row indices of each mini-batch of one epoch.

    Every data party calls this with a generator seeded by the shared batch
    seed, so all of them select the same rows without further messages. A
    full batch keeps the rows in order and draws nothing from ``rng``.
    """
    if batch_size is None or batch_size >= n_samples:
        return [np.arange(n_samples)]
    perm = rng.permutation(n_samples)
    return [perm[start:start + batch_size] for start in range(0, n_samples, batch_size)]


class _GD:
    """Plain gradient descent with a constant step."""

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate

    def step(self, w, g):
        return w - self.learning_rate * g


class _Adam:
    """Adam (Kingma & Ba 2015); its state stays with the party that owns ``w``."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate
        self.t = 0
        self.m = self.v = None

    def step(self, w, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return w - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)


def _optimizer(cfg):
    return _Adam(cfg.learning_rate) if cfg.solver == "adam" else _GD(cfg.learning_rate)


def _residual_form(task, K):
    """How the protocol's residual ``d'`` relates to the gradient and the loss.

    Returns ``(r, c, const)``: the parties compute ``d' = u - c y`` and the
    gradient is ``r X^T d' / |B|``; the loss is ``const + r S / (2|B|)`` with
    ``S = sum (u - c y) . d'`` over the batch. Linear: ``d' = u - y`` (r = 1).
    Taylor logistic, y in {-1, 1}: ``d = u/4 - y/2 = (u - 2y)/4``, so
    ``r = 1/4`` and no ciphertext ever needs multiplying by 1/4.
    """
    if task == "logistic":
        return 0.25, 2.0, K * (math.log(2.0) - 0.5)
    return 1.0, 1.0, 0.0


def _with_ones(X):
    return np.hstack([X, np.ones((X.shape[0], 1))])


# -- the two ways of protecting values ---------------------------------------
#
# Roles are written once; a codec decides how a value is protected. The
# Paillier codec encrypts; the plain codec sends the same messages in the
# clear. Data parties hold a public-key codec; only the arbiter can decrypt.

class _PlainCodec:
    """``encryption=None``: identity protection, messages of kind ``plain``."""

    kind_ct = kind_masked = kind_key = "plain"

    def public_key_message(self):
        return None

    def close(self):
        pass

    def idle(self):
        return contextlib.nullcontext()

    def expect(self, count):
        pass

    def encrypt(self, a):
        return np.array(a, dtype=np.float64)

    def add(self, x, y):
        return x + y

    def obfuscate(self, c):
        return c

    def matmul(self, M, c):
        return M @ c

    def affine(self, c, scale, offset):
        return c * scale + offset

    def trace_rows(self, c, start):
        # sum_j c[start + j, j]: the inner products u . d folded into the matmul
        k = c.shape[1]
        return np.asarray([np.trace(c[start:start + k])])

    def publish(self, c, base_scale, extra_bits):
        return c

    def mask(self, c):
        return c, None

    def unmask(self, received, mask):
        return np.asarray(received, dtype=np.float64)

    def to_wire(self, c):
        return c

    def from_wire(self, obj):
        return np.asarray(obj, dtype=np.float64)

    def received(self, obj, sender, tag, shape, extra_bits=0):
        return check_array(obj, sender=sender, tag=tag, shape=shape)

    def received_masked(self, obj, sender, tag, shape):
        return check_array(obj, sender=sender, tag=tag, shape=shape)

    # arbiter side
    def decrypt(self, c):
        return np.asarray(c, dtype=np.float64)

    def decrypt_masked(self, c):
        return c


class _PaillierCodec:
    """Paillier encryption through :mod:`skfed.crypto.paillier`."""

    kind_ct, kind_masked, kind_key = "ciphertext", "masked", "public_key"

    def __init__(self, public_key, private_key=None, n_jobs=None, background=True):
        from ..crypto import paillier

        self._p = paillier
        self.public_key = public_key
        self._private_key = private_key
        self.n_jobs = n_jobs
        # A data party's randomisers, refilled in the background while it
        # waits for the other parties (see _recv), so that its next round of
        # encryptions is one multiplication per value.
        self.pool = None if private_key is not None else paillier.ObfuscatorPool(
            public_key, n_jobs=n_jobs, background=background)

    @classmethod
    def generate(cls, key_size, n_jobs):
        from ..crypto import paillier

        pk, sk = paillier.generate_keypair(n_length=key_size)
        return cls(pk, sk, n_jobs)

    @classmethod
    def from_public_message(cls, obj, n_jobs, background=True):
        from ..crypto import paillier

        return cls(paillier.public_key_from_wire(obj), None, n_jobs, background)

    def public_key_message(self):
        return self._p.public_key_to_wire(self.public_key)

    def close(self):
        if self.pool is not None:
            self.pool.close()

    def idle(self):
        return self.pool.idle() if self.pool is not None else contextlib.nullcontext()

    def expect(self, count):
        # The pool refills (while the party waits) up to exactly what the
        # protocol will take before the party's next big encryption: without
        # this it aims at its largest request so far, and in the fit's last
        # batch computes a whole batch of randomisers nobody uses, on the
        # cores the other parties are computing on.
        if self.pool is not None:
            self.pool.reserve(count)

    def encrypt(self, a):
        return self._p.EncryptedArray.encrypt(self.public_key, np.asarray(a, dtype=np.float64),
                                              n_jobs=self.n_jobs, pool=self.pool)

    def add(self, x, y):
        return x + y

    def obfuscate(self, c):
        return c.obfuscate(n_jobs=self.n_jobs, pool=self.pool)

    def matmul(self, M, c):
        return c.rmatmul(M, n_jobs=self.n_jobs)

    def affine(self, c, scale, offset):
        out = c if scale == 1 else c.multiply(scale, n_jobs=self.n_jobs)
        # Always add an array of the ciphertexts' shape (the engine's encoder
        # works on arrays).
        return out + np.broadcast_to(np.asarray(offset, dtype=np.float64), out.shape)

    def trace_rows(self, c, start):
        k = c.shape[1]
        total = c[start, 0]
        for j in range(1, k):
            total = total + c[start + j, j]
        return total.reshape(1)

    def publish(self, c, base_scale, extra_bits):
        # A product's scale follows the magnitude of its plaintext factor;
        # lift it to a scale fixed by the protocol so it reveals nothing. A
        # scale already above the fixed one would reveal that a factor is tiny:
        # fail closed rather than send it (fit refuses such columns up front).
        target = base_scale + extra_bits
        if c.scale_bits > target:
            raise ValueError(
                "a plaintext factor is too small to encode at the protocol's fixed scale "
                f"(needs 2**-{c.scale_bits - base_scale}); sending it would reveal its "
                "magnitude. Rescale the features (e.g. StandardScaler).")
        return c.rescale(target, n_jobs=self.n_jobs)

    def mask(self, c):
        masked, mask = c.add_random_mask(sigma_bits=MASK_SIGMA_BITS, n_jobs=self.n_jobs,
                                         pool=self.pool)
        return masked, (mask, masked.scale_bits)

    def unmask(self, received, secret):
        mask, scale_bits = secret
        return self._p.decode_masked(received, mask, scale_bits, sigma_bits=MASK_SIGMA_BITS)

    def to_wire(self, c):
        return c.to_wire()

    def from_wire(self, obj):
        return self._p.EncryptedArray.from_wire(self.public_key, obj, n_jobs=self.n_jobs)

    def received(self, obj, sender, tag, shape, extra_bits=0):
        # Fresh encryptions carry the engine's default scale; every other
        # ciphertext leaves its sender at that scale plus public extra bits.
        return check_encrypted(self.from_wire(obj), sender=sender, tag=tag, shape=shape,
                               scale_bits=self._p.DEFAULT_PRECISION_BITS + extra_bits)

    def received_masked(self, obj, sender, tag, shape):
        return check_array(obj, sender=sender, tag=tag, shape=shape, dtype="O")

    def decrypt(self, c):
        return c.decrypt(self._private_key, n_jobs=self.n_jobs)

    def decrypt_masked(self, c):
        return c.decrypt_encoded(self._private_key, n_jobs=self.n_jobs)


def _recv(ctx, codec, frm, tag):
    """Receive a message; a data party precomputes randomisers while it waits."""
    with codec.idle():
        return ctx.recv(frm, tag)


def _data_party_codec(ctx, cfg):
    msg = ctx.recv(cfg.arbiter, "public_key")
    if cfg.encryption is None:
        return _PlainCodec()
    # Every role of a LocalRuntime shares this process: refill only on workers.
    background = "workers" if isinstance(ctx, LocalPartyContext) else True
    return _PaillierCodec.from_public_message(msg, cfg.n_jobs, background)


# -- fit ----------------------------------------------------------------------

def arbiter_fit(ctx, cfg, progress=None):
    """Arbiter: generates the key pair, decrypts masked gradients and the loss.

    Holds no data and no model state. Returns the loss curve, the number of
    epochs and whether the loss converged. ``progress`` is a local object of
    the arbiter's process (a :class:`~skfed._progress.FitProgress`): progress
    lines, and scikit-learn callbacks that may stop the fit.
    """
    if cfg.encryption is None:
        codec = _PlainCodec()
    else:
        codec = _PaillierCodec.generate(cfg.key_size, cfg.n_jobs)
    parties = (cfg.label_party, *cfg.hosts)
    ctx.broadcast(parties, "public_key", codec.public_key_message(), kind=codec.kind_key)
    sizes = batch_sizes(cfg.n_samples, cfg.batch_size)
    loss_curve, converged = [], False
    best_loss, no_improvement = np.inf, 0
    # The arbiter does not know the parties' widths: the first gradient of a
    # party fixes its shape, and every later one must match it.
    grad_shapes = dict.fromkeys(parties, (None, None))
    for epoch in range(cfg.max_iter):
        for _ in sizes:
            for p in parties:
                masked = codec.received(ctx.recv(p, "gradient"), p, "gradient",
                                        grad_shapes[p], GRADIENT_EXTRA_BITS)
                grad_shapes[p] = masked.shape
                ctx.send(p, "gradient", codec.decrypt_masked(masked), kind=codec.kind_masked)
        # One loss per epoch, summed under encryption by the label party: a
        # per-batch loss of a small batch would reveal that batch's labels.
        loss = codec.decrypt(codec.received(ctx.recv(cfg.label_party, "loss"),
                                            cfg.label_party, "loss", (1,), LOSS_EXTRA_BITS))
        epoch_loss = float(np.sum(loss))
        loss_curve.append(epoch_loss)
        asked_to_stop = progress is not None and progress.update(
            epoch + 1, objective=epoch_loss, nbytes=ctx.bytes_sent + ctx.bytes_received)
        # scikit-learn's SGD rule: converged after N_ITER_NO_CHANGE epochs in a
        # row without improving the best loss by tol (one flat epoch is not
        # enough: Adam's loss can pause before falling again).
        if cfg.tol is not None:
            no_improvement = no_improvement + 1 if epoch_loss > best_loss - cfg.tol else 0
            best_loss = min(best_loss, epoch_loss)
            converged = no_improvement >= N_ITER_NO_CHANGE
        finite = bool(np.isfinite(epoch_loss))
        stop = converged or asked_to_stop or epoch + 1 == cfg.max_iter or not finite
        ctx.broadcast(parties, "stop", bool(stop))
        if stop:
            break
    if progress is not None:
        progress.close()
    return {"loss_curve": loss_curve, "n_iter": len(loss_curve), "converged": converged}


def _next_batch_size(cfg, batches, epoch, b):
    """Rows of the batch after batch ``b`` of ``epoch``; 0 after the last one
    ``max_iter`` allows (an early stop wastes at most one batch's refill)."""
    if b + 1 < len(batches):
        return len(batches[b + 1])
    if epoch + 1 < cfg.max_iter:
        return batch_sizes(cfg.n_samples, cfg.batch_size)[0]
    return 0


def _masked_gradient_step(ctx, cfg, codec, enc_grad, W, optimizer, n_batch, penalised):
    """Mask [[G]], let the arbiter decrypt it, unmask, add the L2 term, step."""
    mask = _send_masked_gradient(ctx, cfg, codec, enc_grad)
    return _gradient_step(ctx, cfg, codec, mask, W, optimizer, n_batch, penalised)


def _send_masked_gradient(ctx, cfg, codec, enc_grad):
    masked, mask = codec.mask(enc_grad)
    ctx.send(cfg.arbiter, "gradient", codec.to_wire(masked), kind=codec.kind_masked)
    return mask


def _gradient_step(ctx, cfg, codec, mask, W, optimizer, n_batch, penalised):
    """Receive G + R from the arbiter, unmask, add the L2 term, step."""
    G = codec.received_masked(_recv(ctx, codec, cfg.arbiter, "gradient"), cfg.arbiter,
                              "gradient", W.shape)
    G = codec.unmask(G, mask).reshape(W.shape)
    grad = G / n_batch
    if cfg.alpha:
        grad = grad + cfg.alpha * W * penalised[:, None]
    return optimizer.step(W, grad)


def guest_fit(ctx, X, Y, cfg, seed):
    """Label party: assembles the residual [[d]] and the encrypted loss.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_own_features)
    Y : ndarray of shape (n_samples, K)
        Targets: values (linear) or +-1 one-vs-rest codes (logistic).
    seed : int
        The label party's private randomness, from which it draws the
        mini-batch seed it shares with the hosts.

    Returns
    -------
    W : ndarray of shape (n_own_features + fit_intercept, K)
        Its own coefficients (intercept last).
    """
    codec = _data_party_codec(ctx, cfg)
    batch_seed = int(np.random.RandomState(seed).randint(np.iinfo(np.int32).max))
    K = Y.shape[1]
    ctx.broadcast(cfg.hosts, "batch_seed", batch_seed)
    ctx.broadcast(cfg.hosts, "n_outputs", K)
    Xb = _with_ones(X) if cfg.fit_intercept else X
    penalised = np.ones(Xb.shape[1])
    if cfg.fit_intercept:
        penalised[-1] = 0.0
    W = np.zeros((Xb.shape[1], K))
    optimizer = _optimizer(cfg)
    rng = np.random.default_rng(batch_seed)
    r, c, const = _residual_form(cfg.task, K)
    n = cfg.n_samples
    for epoch in range(cfg.max_iter):
        enc_epoch_loss = None
        batches = epoch_batches(rng, cfg.n_samples, cfg.batch_size)
        for b, idx in enumerate(batches):
            Xk, Yk, nb = Xb[idx], Y[idx], len(idx)
            a = Xk @ W - c * Yk
            # A fresh encryption of the guest's own part, computed before the
            # hosts' parts arrive: its new randomness re-randomises the sum, so
            # a host cannot divide its own [[u_k]] out of [[d]] to read a.
            enc_d = codec.encrypt(a)
            # Randomisers still to take: this batch's mask, the next batch's a.
            codec.expect(Xb.shape[1] * K + _next_batch_size(cfg, batches, epoch, b) * K)
            for h in cfg.hosts:
                enc_d = codec.add(enc_d, codec.received(_recv(ctx, codec, h, "u"), h, "u",
                                                        (nb, K)))
            ctx.broadcast(cfg.hosts, "d", codec.to_wire(enc_d), kind=codec.kind_ct)
            prod = codec.matmul(np.vstack([Xk.T, a.T]), enc_d)
            base = getattr(enc_d, "scale_bits", 0)
            # The gradient leaves before the hosts' loss terms are awaited, so
            # the arbiter decrypts it while the hosts still compute theirs
            # (same messages, the arbiter's order; the step waits for it).
            grad = codec.publish(prod[:Xb.shape[1]], base, GRADIENT_EXTRA_BITS)
            mask = _send_masked_gradient(ctx, cfg, codec, grad)
            enc_S = codec.trace_rows(prod, Xb.shape[1])
            for h in cfg.hosts:
                enc_S = codec.add(enc_S, codec.received(
                    _recv(ctx, codec, h, "loss_term"), h, "loss_term", (1,),
                    GRADIENT_EXTRA_BITS))
            reg = nb * cfg.alpha * float(np.sum((W * penalised[:, None]) ** 2)) / r
            # This batch's mean loss, weighted by its share of the epoch (nb / n).
            enc_loss = codec.affine(enc_S, r / (2 * n), (const + r * reg / (2 * nb)) * nb / n)
            enc_loss = codec.publish(enc_loss, base, LOSS_EXTRA_BITS)
            enc_epoch_loss = (enc_loss if enc_epoch_loss is None
                              else codec.add(enc_epoch_loss, enc_loss))
            W = _gradient_step(ctx, cfg, codec, mask, W, optimizer, nb * 1.0 / r, penalised)
        ctx.send(cfg.arbiter, "loss", codec.to_wire(enc_epoch_loss), kind=codec.kind_ct)
        if check_scalar(_recv(ctx, codec, cfg.arbiter, "stop"), sender=cfg.arbiter, tag="stop",
                        kind="bool"):
            break
    codec.close()
    return W


def host_fit(ctx, X, cfg):
    """Feature party: encrypts its partial scores, computes its own gradient.

    Returns
    -------
    W : ndarray of shape (n_own_features, K)
        Its own coefficients; nobody else ever sees them.
    """
    codec = _data_party_codec(ctx, cfg)
    batch_seed = check_scalar(ctx.recv(cfg.label_party, "batch_seed"),
                              sender=cfg.label_party, tag="batch_seed", kind="int", low=0)
    K = check_scalar(ctx.recv(cfg.label_party, "n_outputs"), sender=cfg.label_party,
                     tag="n_outputs", kind="int", low=1)
    W = np.zeros((X.shape[1], K))
    penalised = np.ones(X.shape[1])
    optimizer = _optimizer(cfg)
    rng = np.random.default_rng(batch_seed)
    d_own = X.shape[1]
    r = _residual_form(cfg.task, K)[0]
    for epoch in range(cfg.max_iter):
        batches = epoch_batches(rng, cfg.n_samples, cfg.batch_size)
        for b, idx in enumerate(batches):
            Xk, nb = X[idx], len(idx)
            u = Xk @ W
            ctx.send(cfg.label_party, "u", codec.to_wire(codec.encrypt(u)), kind=codec.kind_ct)
            # Randomisers still to take: the loss term, the mask, the next u.
            codec.expect(1 + d_own * K + _next_batch_size(cfg, batches, epoch, b) * K)
            enc_d = codec.received(_recv(ctx, codec, cfg.label_party, "d"), cfg.label_party,
                                   "d", (nb, K))
            prod = codec.matmul(np.vstack([Xk.T, u.T]), enc_d)
            reg = nb * cfg.alpha * float(np.sum(W ** 2)) / r
            base = getattr(enc_d, "scale_bits", 0)
            term = codec.affine(codec.trace_rows(prod, d_own), 1.0, reg)
            term = codec.publish(term, base, GRADIENT_EXTRA_BITS)
            # Derived from the guest's own ciphertexts: re-randomise, or the
            # guest could search for the host's small plaintext exponents.
            ctx.send(cfg.label_party, "loss_term", codec.to_wire(codec.obfuscate(term)),
                     kind=codec.kind_ct)
            grad = codec.publish(prod[:d_own], base, GRADIENT_EXTRA_BITS)
            W = _masked_gradient_step(ctx, cfg, codec, grad, W, optimizer, nb * 1.0 / r,
                                      penalised)
        if check_scalar(_recv(ctx, codec, cfg.arbiter, "stop"), sender=cfg.arbiter, tag="stop",
                        kind="bool"):
            break
    codec.close()
    return W


# -- predict ------------------------------------------------------------------

def host_predict(ctx, X, W, label_party):
    """Feature party at prediction: sends its partial scores ``X_k W_k``.

    This discloses the host's per-row partial scores to the label party (not
    its features or coefficients); it is the price of a prediction that only
    the label party can read.
    """
    ctx.send(label_party, "partial_score", X @ W)


def guest_predict(ctx, X, W, hosts, fit_intercept):
    """Label party at prediction: adds the hosts' partial scores to its own."""
    scores = (_with_ones(X) if fit_intercept else X) @ W
    for h in hosts:
        scores = scores + check_array(ctx.recv(h, "partial_score"), sender=h,
                                      tag="partial_score", shape=scores.shape)
    return scores
