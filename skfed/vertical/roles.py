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
    arbiter -> guest   the objective                             (per epoch, plain)
    arbiter -> all     stop reason, "" to go on                  (per epoch, plain)

That is one epoch of ``solver="gd"`` or ``"adam"`` (one optimizer step per
batch). The default ``solver="pcg"`` (full batch) runs it once at zero
weights, then per epoch one iteration of conjugate gradients preconditioned
with each party's own Gram block (see :func:`_pcg_party`)::

    party p -> guest   [[g_p . z_p]], z_p = M_p^-1 g_p           ciphertext (hosts)
    guest   -> arbiter [[rz]] = sum_p [[g_p . z_p]]              ciphertext
    arbiter -> all     beta = rz / rz_prev, s ~ 1/sqrt(rz)       plain
    the batch above at W = s p, labels left out ("curvature pass"): each party
    gets (H s p)_p; "curvature_term"/"curvature" carry [[(s p)^T H (s p)]]
    arbiter -> all     the step a = rz / p^T H p                 plain
    party p            w_p += a p_p;  g_p += a (H p)_p

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

from ..exceptions import DIVERGENCE_FACTOR
from ..runtime.layout import check_array, check_encrypted, check_scalar
from ..runtime.local import PartyContext as LocalPartyContext
from ..runtime.party import ProtocolMismatch

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
# Fractional bits of PCG's per-party scalars g_k . z_k: they shrink towards 0
# as the fit converges, and their ratios set the step, so they keep more
# precision than the default 64 bits.
SCALAR_PRECISION_BITS = 128


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

    def encrypt(self, a, precision_bits=None):
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

    def diag_rows(self, c, start):
        # c[start + j, j] for each output j: the per-output |X p|^2 of PCG
        k = c.shape[1]
        return np.diagonal(c[start:start + k]).copy()

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

    def received(self, obj, sender, tag, shape, extra_bits=0, scale_bits=None):
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

    def encrypt(self, a, precision_bits=None):
        return self._p.EncryptedArray.encrypt(self.public_key, np.asarray(a, dtype=np.float64),
                                              precision_bits=precision_bits,
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

    def diag_rows(self, c, start):
        k = c.shape[1]
        return self._p.EncryptedArray.concatenate([c[start + j, j].reshape(1)
                                                   for j in range(k)])

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

    def received(self, obj, sender, tag, shape, extra_bits=0, scale_bits=None):
        # Fresh encryptions carry the engine's default scale (or a public one
        # named by the protocol); every other ciphertext leaves its sender at
        # that scale plus public extra bits.
        if scale_bits is None:
            scale_bits = self._p.DEFAULT_PRECISION_BITS + extra_bits
        return check_encrypted(self.from_wire(obj), sender=sender, tag=tag, shape=shape,
                               scale_bits=scale_bits)

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
#
# Why the arbiter stopped: the payload of every "stop" message, "" to go on.
# Public to all data parties: each must know whether the model it holds is
# usable (a deployment's label party would otherwise serve a diverged model).
CONTINUE, CONVERGED, MAX_ITER, CALLBACK, DIVERGED = "", "converged", "max_iter", "callback", \
    "diverged"
STOP_REASONS = (CONTINUE, CONVERGED, MAX_ITER, CALLBACK, DIVERGED)

# Both objectives are sums of squares (plus a positive constant): a decrypted
# value below zero means a fixed-point encoding overflowed, not a good fit.
_NEGATIVE_SLACK = 1e-6
# PCG takes no more steps for an output once rz (the squared gradient in the
# preconditioner's norm) has fallen by this factor from its first value: the
# gradient is then at the level of its numerical error, and a step along a
# direction made of that error (with a singular H, partly in H's null space,
# where the curvature is ~0) would be a huge step of noise. In the clear the
# error is float rounding (1e-14 relative); encrypted gradients also carry the
# 32-significant-bit encoding of X in X^T [[d]] (~1e-10 relative).
_RZ_FLOOR = {None: 1e-28, "paillier": 1e-16}


class _Monitor:
    """The arbiter's stopping rule: divergence, convergence, callbacks, max_iter.

    ``update`` records the objective of one epoch and returns the reason to
    stop (:data:`CONTINUE` to go on). With ``decrease`` (the exact decrease of
    a conjugate-gradient step) ``tol`` applies to it; otherwise it is
    scikit-learn's SGD rule (``N_ITER_NO_CHANGE`` epochs without improving the
    best objective by ``tol``), except that a stall above the starting
    objective is divergence, never convergence.
    """

    def __init__(self, cfg, progress, ctx):
        self.cfg, self.progress, self.ctx = cfg, progress, ctx
        self.curve, self.best, self.no_improvement = [], np.inf, 0
        self.detail = ""

    def _diverged(self, loss, invalid):
        f0, epoch = self.curve[0], len(self.curve)
        if invalid:
            why = invalid
        elif not np.isfinite(loss):
            why = f"the objective is {loss}"
        elif loss < -_NEGATIVE_SLACK * max(1.0, abs(f0)):
            why = (f"the decrypted objective {loss:.4g} is negative, which it cannot be: "
                   "an encoding overflowed")
        elif f0 > 0 and loss > DIVERGENCE_FACTOR * f0:
            why = (f"the objective grew from {f0:.6g} to {loss:.4g}, more than "
                   f"{DIVERGENCE_FACTOR:g} times its start")
        else:
            return False
        self.detail = f"at epoch {epoch}: {why}"
        return True

    def update(self, loss, decrease=None, invalid=None):
        cfg = self.cfg
        self.curve.append(float(loss))
        epoch = len(self.curve)
        asked = self.progress is not None and self.progress.update(
            epoch, objective=float(loss),
            nbytes=self.ctx.bytes_sent + self.ctx.bytes_received)
        if self._diverged(loss, invalid):
            return DIVERGED
        if cfg.tol is not None:
            if decrease is not None:
                if decrease <= cfg.tol:
                    return CONVERGED
            else:
                stalled = loss > self.best - cfg.tol
                self.no_improvement = self.no_improvement + 1 if stalled else 0
                self.best = min(self.best, loss)
                if self.no_improvement >= N_ITER_NO_CHANGE:
                    if loss > self.curve[0]:
                        self.detail = (
                            f"at epoch {epoch}: no improvement for {N_ITER_NO_CHANGE} epochs "
                            f"and the objective {loss:.6g} is above its start "
                            f"{self.curve[0]:.6g}")
                        return DIVERGED
                    return CONVERGED
        if asked:
            return CALLBACK
        if epoch >= cfg.max_iter:
            return MAX_ITER
        return CONTINUE


def _announce(ctx, cfg, objective, reason):
    """End an epoch: the objective to the label party (its progress), the stop
    reason to every data party."""
    ctx.send(cfg.label_party, "objective", float(objective), kind="plain")
    ctx.broadcast((cfg.label_party, *cfg.hosts), "stop", reason, kind="plain")


def _decrypt_gradients(ctx, cfg, codec, shapes):
    """Decrypt each party's masked gradient after checking its public layout.

    The arbiter does not know the parties' widths: a party's first gradient
    fixes its shape in ``shapes``, and every later one must match it.
    """
    for p in (cfg.label_party, *cfg.hosts):
        masked = codec.received(ctx.recv(p, "gradient"), p, "gradient",
                                shapes.get(p, (None, None)), GRADIENT_EXTRA_BITS)
        shapes[p] = masked.shape
        ctx.send(p, "gradient", codec.decrypt_masked(masked), kind=codec.kind_masked)


def _decrypt_vector(ctx, codec, frm, tag, shape=None, **scale):
    """Decrypt a per-output vector of scalars (PCG's sums); its layout is public."""
    c = codec.received(ctx.recv(frm, tag), frm, tag, (None,) if shape is None else shape,
                       **scale)
    if np.shape(c)[0] < 1:
        raise ProtocolMismatch(f"{frm!r} sent an empty {tag!r}; the protocol sends one value "
                               "per output")
    return np.asarray(codec.decrypt(c), dtype=np.float64).reshape(-1)


def arbiter_fit(ctx, cfg, progress=None):
    """Arbiter: generates the key pair, decrypts masked gradients and the loss.

    Holds no data and no model state. Returns the loss curve, the number of
    epochs, whether the loss converged and why it stopped (``stop_reason``,
    one of :data:`STOP_REASONS`, with a ``detail`` naming public values).
    ``progress`` is a local object of the arbiter's process (a
    :class:`~skfed._progress.FitProgress`): progress lines, and
    scikit-learn callbacks that may stop the fit.
    """
    if cfg.encryption is None:
        codec = _PlainCodec()
    else:
        codec = _PaillierCodec.generate(cfg.key_size, cfg.n_jobs)
    parties = (cfg.label_party, *cfg.hosts)
    ctx.broadcast(parties, "public_key", codec.public_key_message(), kind=codec.kind_key)
    monitor = _Monitor(cfg, progress, ctx)
    shapes = {}
    if cfg.solver == "pcg":
        reason = _arbiter_pcg(ctx, cfg, codec, monitor, shapes)
    else:
        sizes = batch_sizes(cfg.n_samples, cfg.batch_size)
        reason = CONTINUE
        while not reason:
            for _ in sizes:
                _decrypt_gradients(ctx, cfg, codec, shapes)
            # One loss per epoch, summed under encryption by the label party: a
            # per-batch loss of a small batch would reveal that batch's labels.
            loss = _decrypt_loss(ctx, cfg, codec)
            reason = monitor.update(loss)
            _announce(ctx, cfg, loss, reason)
    if progress is not None:
        progress.close()
    return {"loss_curve": monitor.curve, "n_iter": len(monitor.curve),
            "converged": reason == CONVERGED, "stop_reason": reason,
            "detail": monitor.detail}


def _decrypt_loss(ctx, cfg, codec):
    enc = codec.received(ctx.recv(cfg.label_party, "loss"), cfg.label_party, "loss", (1,),
                         LOSS_EXTRA_BITS)
    return float(np.sum(codec.decrypt(enc)))


def _arbiter_pcg(ctx, cfg, codec, monitor, shapes):
    """The arbiter's side of preconditioned conjugate gradients.

    Per iteration it decrypts two vectors of one scalar per output, both sums
    over the parties: ``rz = sum_k g_k . z_k`` (each party's gradient block
    against its preconditioned block) and the curvature ``p^T H p`` along the
    new direction; it answers with ``beta = rz / rz_previous`` and the exact
    step ``a = rz / p^T H p``. The objective after the step is
    ``f - a rz / 2`` (exact on a quadratic), so it needs no extra pass.
    """
    _decrypt_gradients(ctx, cfg, codec, shapes)
    f = _decrypt_loss(ctx, cfg, codec)
    reason = monitor.update(f, decrease=np.inf)
    _announce(ctx, cfg, f, reason)
    rz_old = rz_first = solved = None
    while not reason:
        rz = _decrypt_vector(ctx, codec, cfg.label_party, "cg_term",
                             None if rz_old is None else rz_old.shape,
                             scale_bits=SCALAR_PRECISION_BITS)
        zeros = np.zeros_like(rz)
        if rz_first is None:
            rz_first, solved = rz, np.zeros(rz.shape, dtype=bool)
            # Both objectives are sums of squares plus a constant: no step
            # can take them below it (K outputs, K = len(rz)).
            f_floor = len(rz) * (math.log(2.0) - 0.5) if cfg.task == "logistic" else 0.0
        # At the optimum (the gradient at its error level) rz / p^T H p is a
        # ratio of errors: an output once solved takes no more steps.
        solved |= (rz <= _RZ_FLOOR[cfg.encryption] * rz_first) | ~np.isfinite(rz)
        done = solved
        beta = zeros if rz_old is None else np.divide(rz, rz_old, out=zeros.copy(),
                                                      where=(rz_old > 0) & ~done)
        # The pass runs at s p, s a power of two near 1 / sqrt(rz): the
        # direction shrinks with the gradient, and its products must stay
        # encodable at the protocol's fixed scales (a power of two also keeps
        # s p and (H s p) / s exact). s = 0 for an output already solved.
        s = np.zeros_like(rz)
        s[~done] = 2.0 ** -np.round(np.log2(rz[~done]) / 2)
        ctx.broadcast((cfg.label_party, *cfg.hosts), "direction",
                      np.vstack([np.where(np.isfinite(beta), beta, 0.0), s]), kind="plain")
        _decrypt_gradients(ctx, cfg, codec, shapes)
        sHs = _decrypt_vector(ctx, codec, cfg.label_party, "curvature", rz.shape,
                              extra_bits=LOSS_EXTRA_BITS)
        pHp = np.divide(sHs, s * s, out=zeros.copy(), where=s > 0)
        # Both are squared norms (H and each party's block are positive
        # semi-definite): a clearly negative one is an overflowed encoding.
        scale = max(1.0, float(np.max(np.abs(rz), initial=0.0)))
        invalid = None
        if not (np.all(np.isfinite(rz)) and np.all(np.isfinite(sHs))):
            invalid = "a conjugate-gradient scalar is not finite"
        elif np.any(rz < -_NEGATIVE_SLACK * scale) or np.any(sHs < -_NEGATIVE_SLACK):
            invalid = ("a conjugate-gradient squared norm decrypted negative: an encoding "
                       "overflowed")
        a = (np.divide(rz, pHp, out=zeros.copy(), where=(pHp > 0) & ~done)
             if invalid is None else zeros)
        # A step claiming to lower the objective below its floor is made of
        # numerical error (see _RZ_FLOOR): the output is solved, no step.
        noise = a * rz / 2.0 > (f - f_floor) * (1 + 1e-9) + 1e-300
        solved |= noise
        a[noise] = 0.0
        ctx.broadcast((cfg.label_party, *cfg.hosts), "step", a, kind="plain")
        decrease = float(np.sum(a * rz)) / 2.0
        f = f - decrease
        # Both objectives are >= 0; rounding at the optimum of an exact fit
        # may leave a -1e-16 that would read as divergence or print as -0.
        f = 0.0 if -_NEGATIVE_SLACK * max(1.0, monitor.curve[0]) < f < 0 else f
        reason = monitor.update(f, decrease=decrease, invalid=invalid)
        _announce(ctx, cfg, f, reason)
        rz_old = rz
    return reason


def _next_batch_size(cfg, batches, epoch, b):
    """Rows of the batch after batch ``b`` of ``epoch``; 0 after the last one
    ``max_iter`` allows (an early stop wastes at most one batch's refill)."""
    if b + 1 < len(batches):
        return len(batches[b + 1])
    if epoch + 1 < cfg.max_iter:
        return batch_sizes(cfg.n_samples, cfg.batch_size)[0]
    return 0


def _send_masked_gradient(ctx, cfg, codec, enc_grad):
    masked, mask = codec.mask(enc_grad)
    ctx.send(cfg.arbiter, "gradient", codec.to_wire(masked), kind=codec.kind_masked)
    return mask


def _recv_gradient(ctx, cfg, codec, mask, W, n_batch, penalised):
    """Receive G + R from the arbiter, unmask, add the L2 term."""
    G = codec.received_masked(_recv(ctx, codec, cfg.arbiter, "gradient"), cfg.arbiter,
                              "gradient", W.shape)
    G = codec.unmask(G, mask).reshape(W.shape)
    grad = G / n_batch
    if cfg.alpha:
        grad = grad + cfg.alpha * W * penalised[:, None]
    return grad


def _recv_stop(ctx, codec, cfg):
    reason = _recv(ctx, codec, cfg.arbiter, "stop")
    if reason not in STOP_REASONS:
        raise ProtocolMismatch(f"the arbiter sent an unknown stop reason {reason!r}; "
                               f"expected one of {STOP_REASONS}")
    return reason


def _recv_scalars(ctx, codec, cfg, tag, shape):
    """PCG's public per-output scalars from the arbiter (beta and scale, the step)."""
    value = check_array(_recv(ctx, codec, cfg.arbiter, tag), sender=cfg.arbiter, tag=tag,
                        shape=shape)
    if not np.all(np.isfinite(value)):
        raise ProtocolMismatch(f"the arbiter sent non-finite {tag!r} values")
    return value


class _BlockPreconditioner:
    """One party's block of the Hessian, inverted: its own columns only.

    The protocol's objectives are quadratic with Hessian
    ``H = r X^T X / n + alpha I`` (``r = 1`` least squares, ``1/4`` Taylor
    log-loss; the intercept unpenalised). Each party knows its diagonal block
    ``r X_k^T X_k / n + alpha I`` in the clear; preconditioning its own
    gradient block with it needs nothing from anyone and makes the solver
    invariant to the scale of each party's columns.
    """

    def __init__(self, X, penalised, alpha, r, n):
        M = r * (X.T @ X) / n + alpha * np.diag(penalised)
        # A pseudo-inverse: a constant or duplicated column (singular block)
        # gets no step along its null space, where the gradient is zero anyway.
        self.inverse = np.linalg.pinv(M, hermitian=True)

    def __call__(self, G):
        return self.inverse @ G


def _pcg_party(ctx, cfg, codec, W, run_pass, send_rz, preconditioner, after_epoch):
    """A data party's side of preconditioned conjugate gradients.

    ``run_pass(V, curvature)`` runs one full-batch pass of the protocol at
    ``V`` and returns this party's gradient block: with ``curvature=False``
    the objective's gradient at ``V``; with ``curvature=True`` the labels are
    left out, so the pass returns ``(H V)_k`` and the curvature ``V^T H V``
    goes to the arbiter. The first epoch is the gradient at zero; each later
    epoch is one conjugate-gradient iteration, the gradient updated along the
    step (``g + a H p``, exact for a quadratic) rather than recomputed.
    """
    K = W.shape[1]
    g = run_pass(W, False)
    reason = after_epoch(ctx, codec, cfg)
    P = np.zeros_like(W)
    while not reason:
        Z = preconditioner(g)
        send_rz(np.sum(g * Z, axis=0))
        beta, s = _recv_scalars(ctx, codec, cfg, "direction", (2, K))
        P = -Z + beta * P
        HP = run_pass(P * s, True)
        HP = np.divide(HP, s, out=np.zeros_like(HP), where=s > 0)
        a = _recv_scalars(ctx, codec, cfg, "step", (K,))
        W = W + a * P
        g = g + a * HP
        reason = after_epoch(ctx, codec, cfg)
    return W, reason


def _guest_pass(ctx, cfg, codec, X, W, Y, n, penalised, next_rows, curvature=False):
    """One batch of the protocol at the label party.

    Returns the mask of the gradient it sent to the arbiter, and this batch's
    share of ``[[objective]]`` (or of ``[[p^T H p]]`` when ``curvature``).
    """
    K = W.shape[1]
    r, c, const = _residual_form(cfg.task, K)
    nb, n_own = X.shape
    a = X @ W if curvature else X @ W - c * Y
    # A fresh encryption of the guest's own part, computed before the hosts'
    # parts arrive: its new randomness re-randomises the sum, so a host cannot
    # divide its own [[u_k]] out of [[d]] to read a.
    enc_d = codec.encrypt(a)
    # Randomisers still to take: this batch's mask, the next batch's a.
    codec.expect(n_own * K + next_rows * K)
    for h in cfg.hosts:
        enc_d = codec.add(enc_d, codec.received(_recv(ctx, codec, h, "u"), h, "u", (nb, K)))
    ctx.broadcast(cfg.hosts, "d", codec.to_wire(enc_d), kind=codec.kind_ct)
    prod = codec.matmul(np.vstack([X.T, a.T]), enc_d)
    base = getattr(enc_d, "scale_bits", 0)
    # The gradient leaves before the hosts' loss terms are awaited, so the
    # arbiter decrypts it while the hosts still compute theirs (same
    # messages, the arbiter's order; the step waits for it).
    grad = codec.publish(prod[:n_own], base, GRADIENT_EXTRA_BITS)
    mask = _send_masked_gradient(ctx, cfg, codec, grad)
    pen_sq = (W * penalised[:, None]) ** 2
    if curvature:
        enc_S = codec.diag_rows(prod, n_own)
        for h in cfg.hosts:
            enc_S = codec.add(enc_S, codec.received(_recv(ctx, codec, h, "curvature_term"), h,
                                                    "curvature_term", (K,), GRADIENT_EXTRA_BITS))
        # p^T H p = r |X p|^2 / n + alpha |p|^2 per output (the hosts' penalty
        # is inside their terms, as n alpha |p_k|^2 / r).
        out = codec.affine(enc_S, r / n, cfg.alpha * pen_sq.sum(axis=0))
    else:
        enc_S = codec.trace_rows(prod, n_own)
        for h in cfg.hosts:
            enc_S = codec.add(enc_S, codec.received(_recv(ctx, codec, h, "loss_term"), h,
                                                    "loss_term", (1,), GRADIENT_EXTRA_BITS))
        reg = nb * cfg.alpha * float(np.sum(pen_sq)) / r
        # This batch's mean loss, weighted by its share of the epoch (nb / n).
        out = codec.affine(enc_S, r / (2 * n), (const + r * reg / (2 * nb)) * nb / n)
    return mask, codec.publish(out, base, LOSS_EXTRA_BITS)


def _host_pass(ctx, cfg, codec, X, W, next_rows, curvature=False):
    """One batch of the protocol at a feature party; returns its gradient's mask."""
    K = W.shape[1]
    r = _residual_form(cfg.task, K)[0]
    nb, n_own = X.shape
    u = X @ W
    ctx.send(cfg.label_party, "u", codec.to_wire(codec.encrypt(u)), kind=codec.kind_ct)
    # Randomisers still to take: the loss term, the mask, the next u.
    codec.expect((K if curvature else 1) + n_own * K + next_rows * K)
    enc_d = codec.received(_recv(ctx, codec, cfg.label_party, "d"), cfg.label_party, "d",
                           (nb, K))
    prod = codec.matmul(np.vstack([X.T, u.T]), enc_d)
    base = getattr(enc_d, "scale_bits", 0)
    if curvature:
        term = codec.affine(codec.diag_rows(prod, n_own), 1.0,
                            nb * cfg.alpha * np.sum(W ** 2, axis=0) / r)
        tag = "curvature_term"
    else:
        term = codec.affine(codec.trace_rows(prod, n_own), 1.0,
                            nb * cfg.alpha * float(np.sum(W ** 2)) / r)
        tag = "loss_term"
    term = codec.publish(term, base, GRADIENT_EXTRA_BITS)
    # Derived from the guest's own ciphertexts: re-randomise, or the guest
    # could search for the host's small plaintext exponents.
    ctx.send(cfg.label_party, tag, codec.to_wire(codec.obfuscate(term)), kind=codec.kind_ct)
    grad = codec.publish(prod[:n_own], base, GRADIENT_EXTRA_BITS)
    return _send_masked_gradient(ctx, cfg, codec, grad)


def _pcg_next_rows(cfg, epoch):
    """Rows the next pass encrypts (0 after the last pass max_iter allows)."""
    return cfg.n_samples if epoch + 1 < cfg.max_iter else 0


def guest_fit(ctx, X, Y, cfg, seed, progress=None):
    """Label party: assembles the residual [[d]] and the encrypted loss.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_own_features)
    Y : ndarray of shape (n_samples, K)
        Targets: values (linear) or +-1 one-vs-rest codes (logistic).
    seed : int
        The label party's private randomness, from which it draws the
        mini-batch seed it shares with the hosts.
    progress : EpochReport, optional
        Local to the label party: prints each epoch's objective (sent by the
        arbiter), duration, time left and traffic.

    Returns
    -------
    result : dict
        ``W``, its own coefficients, of shape
        ``(n_own_features + fit_intercept, K)`` (intercept last), and
        ``stop_reason``, as announced by the arbiter.
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
    r = _residual_form(cfg.task, K)[0]
    n = cfg.n_samples
    epochs = []

    def after_epoch(ctx, codec, cfg):
        # Not required finite: a diverged fit's last objective is reported.
        objective = float(check_array(_recv(ctx, codec, cfg.arbiter, "objective"),
                                      sender=cfg.arbiter, tag="objective", shape=(),
                                      finite=False))
        epochs.append(objective)
        if progress is not None:
            progress.update(len(epochs), objective, ctx)
        return _recv_stop(ctx, codec, cfg)

    if cfg.solver == "pcg":
        def run_pass(V, curvature):
            mask, enc_obj = _guest_pass(ctx, cfg, codec, Xb, V, Y, n, penalised,
                                        _pcg_next_rows(cfg, len(epochs)), curvature)
            ctx.send(cfg.arbiter, "curvature" if curvature else "loss",
                     codec.to_wire(enc_obj), kind=codec.kind_ct)
            return _recv_gradient(ctx, cfg, codec, mask, V, n / r, penalised)

        def send_rz(rz):
            enc = codec.encrypt(rz, precision_bits=SCALAR_PRECISION_BITS)
            for h in cfg.hosts:
                enc = codec.add(enc, codec.received(_recv(ctx, codec, h, "cg_term"), h,
                                                    "cg_term", (K,),
                                                    scale_bits=SCALAR_PRECISION_BITS))
            ctx.send(cfg.arbiter, "cg_term", codec.to_wire(enc), kind=codec.kind_ct)

        W, reason = _pcg_party(ctx, cfg, codec, W, run_pass, send_rz,
                               _BlockPreconditioner(Xb, penalised, cfg.alpha, r, n),
                               after_epoch)
    else:
        optimizer = _optimizer(cfg)
        rng = np.random.default_rng(batch_seed)
        reason = CONTINUE
        epoch = 0
        while not reason:
            enc_epoch_loss = None
            batches = epoch_batches(rng, cfg.n_samples, cfg.batch_size)
            for b, idx in enumerate(batches):
                mask, enc_loss = _guest_pass(ctx, cfg, codec, Xb[idx], W, Y[idx], n, penalised,
                                             _next_batch_size(cfg, batches, epoch, b))
                enc_epoch_loss = (enc_loss if enc_epoch_loss is None
                                  else codec.add(enc_epoch_loss, enc_loss))
                grad = _recv_gradient(ctx, cfg, codec, mask, W, len(idx) / r, penalised)
                W = optimizer.step(W, grad)
            ctx.send(cfg.arbiter, "loss", codec.to_wire(enc_epoch_loss), kind=codec.kind_ct)
            reason = after_epoch(ctx, codec, cfg)
            epoch += 1
    if progress is not None:
        progress.close()
    codec.close()
    return {"W": W, "stop_reason": reason}


def host_fit(ctx, X, cfg):
    """Feature party: encrypts its partial scores, computes its own gradient.

    Returns
    -------
    result : dict
        ``W``, its own coefficients of shape ``(n_own_features, K)`` (nobody
        else ever sees them), and ``stop_reason``, as announced by the arbiter.
    """
    codec = _data_party_codec(ctx, cfg)
    batch_seed = check_scalar(ctx.recv(cfg.label_party, "batch_seed"),
                              sender=cfg.label_party, tag="batch_seed", kind="int", low=0)
    K = check_scalar(ctx.recv(cfg.label_party, "n_outputs"), sender=cfg.label_party,
                     tag="n_outputs", kind="int", low=1)
    W = np.zeros((X.shape[1], K))
    penalised = np.ones(X.shape[1])
    r = _residual_form(cfg.task, K)[0]
    n = cfg.n_samples
    epochs = [0]

    def after_epoch(ctx, codec, cfg):
        epochs[0] += 1
        return _recv_stop(ctx, codec, cfg)

    if cfg.solver == "pcg":
        def run_pass(V, curvature):
            mask = _host_pass(ctx, cfg, codec, X, V, _pcg_next_rows(cfg, epochs[0]),
                              curvature)
            return _recv_gradient(ctx, cfg, codec, mask, V, n / r, penalised)

        def send_rz(rz):
            # A fresh encryption: the label party only adds it to its own.
            enc = codec.encrypt(rz, precision_bits=SCALAR_PRECISION_BITS)
            ctx.send(cfg.label_party, "cg_term", codec.to_wire(enc), kind=codec.kind_ct)

        W, reason = _pcg_party(ctx, cfg, codec, W, run_pass, send_rz,
                               _BlockPreconditioner(X, penalised, cfg.alpha, r, n),
                               after_epoch)
    else:
        optimizer = _optimizer(cfg)
        rng = np.random.default_rng(batch_seed)
        reason = CONTINUE
        while not reason:
            batches = epoch_batches(rng, cfg.n_samples, cfg.batch_size)
            for b, idx in enumerate(batches):
                mask = _host_pass(ctx, cfg, codec, X[idx], W,
                                  _next_batch_size(cfg, batches, epochs[0], b))
                grad = _recv_gradient(ctx, cfg, codec, mask, W, len(idx) / r, penalised)
                W = optimizer.step(W, grad)
            reason = after_epoch(ctx, codec, cfg)
    codec.close()
    return {"W": W, "stop_reason": reason}


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
