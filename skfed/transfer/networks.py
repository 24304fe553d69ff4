"""Small dense representation networks in numpy, with backprop.

Each party owns one :class:`DenseNet` mapping its features to a
``representation_dim``-dimensional representation ``u = Net(x)``. The output
layer is linear. Backprop is written against a tiny "ops" interface so the
same code runs on plaintext arrays and, in the encrypted protocol, pushes an
encrypted output gradient through the party's own (plaintext) network: the
gradient is linear in the upstream gradient, so additive encryption suffices.
"""

import numpy as np

__all__ = ["DenseNet", "Adam", "SGD", "ACTIVATIONS"]


def _identity(z):
    return z


def _relu(z):
    return np.maximum(z, 0.0)


def _logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


ACTIVATIONS = {"identity": _identity, "relu": _relu, "tanh": np.tanh,
               "logistic": _logistic}


def _derivative(name, a):
    """Derivative of the activation, written in terms of its output ``a``."""
    if name == "identity":
        return np.ones_like(a)
    if name == "relu":
        return (a > 0).astype(float)
    if name == "tanh":
        return 1.0 - a * a
    return a * (1.0 - a)


class PlainOps:
    """The ops interface on plaintext numpy arrays."""

    @staticmethod
    def matmul(X, e):
        """``X @ e`` with ``X`` plaintext."""
        return X @ e

    @staticmethod
    def matmul_right(e, W):
        """``e @ W`` with ``W`` plaintext."""
        return e @ W

    @staticmethod
    def sum0(e):
        return e.sum(axis=0)


class DenseNet:
    """A dense network ``n_in -> hidden... -> n_out`` with a linear output layer.

    Parameters
    ----------
    layer_sizes : list of int
        ``[n_in, *hidden_layer_sizes, n_out]``.
    activation : {"identity", "relu", "tanh", "logistic"}
        Hidden-layer activation.
    rng : numpy.random.Generator or numpy.random.RandomState
        Draws the Glorot-uniform initial weights (as scikit-learn's MLP).
    skip : bool, default=False
        The output layer also sees the input: its inputs are
        ``[last hidden layer, x]`` (with hidden layers), so the
        representations include every linear map of ``x``.
    """

    def __init__(self, layer_sizes, activation, rng, skip=False):
        self.layer_sizes = list(layer_sizes)
        self.activation = activation
        self.skip = bool(skip) and len(self.layer_sizes) > 2
        self.coefs = []
        self.intercepts = []
        fan_ins = list(self.layer_sizes[:-1])
        if self.skip:
            fan_ins[-1] += self.layer_sizes[0]
        for fan_in, fan_out in zip(fan_ins, self.layer_sizes[1:]):
            factor = 2.0 if activation == "logistic" else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            self.intercepts.append(rng.uniform(-bound, bound, fan_out))

    # -- parameters as one flat vector (for the optimizers and the protocol) --
    @property
    def n_params(self):
        return sum(W.size + b.size for W, b in zip(self.coefs, self.intercepts))

    def get_flat(self):
        return np.concatenate([np.concatenate([W.ravel(), b])
                               for W, b in zip(self.coefs, self.intercepts)])

    def set_flat(self, theta):
        pos = 0
        for W, b in zip(self.coefs, self.intercepts):
            W[...] = theta[pos:pos + W.size].reshape(W.shape)
            pos += W.size
            b[...] = theta[pos:pos + b.size]
            pos += b.size

    def weight_mask(self):
        """1 for weights, 0 for biases: the L2 penalty applies to weights only."""
        return np.concatenate([np.concatenate([np.ones(W.size), np.zeros(b.size)])
                               for W, b in zip(self.coefs, self.intercepts)])

    # -- forward / backward ---------------------------------------------------
    def forward(self, X):
        """Return the representation and the layer activations (for backprop)."""
        acts = [np.asarray(X, dtype=float)]
        act = ACTIVATIONS[self.activation]
        last = len(self.coefs) - 1
        for i, (W, b) in enumerate(zip(self.coefs, self.intercepts)):
            if i == last and self.skip:
                # The output layer's inputs (acts[-2] for every caller).
                acts[-1] = np.hstack([acts[-1], acts[0]])
            z = acts[-1] @ W + b
            acts.append(z if i == last else act(z))
        return acts[-1], acts

    def backward(self, acts, G, ops=PlainOps):
        """Gradient of ``sum_i G_i . u_i`` with respect to the flat parameters.

        ``G`` (n_samples, n_out) may be plaintext or encrypted; ``ops`` says
        how to multiply it by plaintext matrices. Returns the list of blocks
        ``[dW_0, db_0, dW_1, db_1, ...]`` in :meth:`get_flat` order, each
        plaintext or encrypted like ``G``.
        """
        blocks = []
        delta = G
        for layer in range(len(self.coefs) - 1, -1, -1):
            A = acts[layer]
            blocks.append((ops.matmul(A.T, delta), ops.sum0(delta)))
            if layer > 0:
                W = self.coefs[layer]
                a = acts[layer]
                if self.skip and layer == len(self.coefs) - 1:
                    # Only the hidden units' part of the output layer's inputs.
                    h = self.layer_sizes[layer]
                    W, a = W[:h], a[:, :h]
                delta = ops.matmul_right(delta, W.T)
                delta = delta * _derivative(self.activation, a)
        out = []
        for dW, db in reversed(blocks):
            out.extend([dW, db])
        return out


def flatten_blocks(blocks):
    """Concatenate plaintext gradient blocks into one flat vector."""
    return np.concatenate([np.ravel(b) for b in blocks])


class SGD:
    """Plain (optionally momentum) gradient descent on a flat parameter vector."""

    def __init__(self, learning_rate, momentum=0.9):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.velocity = None

    def step(self, theta, grad):
        if self.velocity is None:
            self.velocity = np.zeros_like(theta)
        self.velocity = self.momentum * self.velocity - self.learning_rate * grad
        return theta + self.velocity


class Adam:
    """Adam (Kingma & Ba) on a flat parameter vector, as scikit-learn's MLP uses."""

    def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.m = self.v = None

    def step(self, theta, grad):
        if self.m is None:
            self.m = np.zeros_like(theta)
            self.v = np.zeros_like(theta)
        self.t += 1
        self.m = self.beta_1 * self.m + (1 - self.beta_1) * grad
        self.v = self.beta_2 * self.v + (1 - self.beta_2) * grad * grad
        lr = (self.learning_rate * np.sqrt(1 - self.beta_2 ** self.t)
              / (1 - self.beta_1 ** self.t))
        return theta - lr * self.m / (np.sqrt(self.v) + self.epsilon)
