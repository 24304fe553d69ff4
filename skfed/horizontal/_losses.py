"""Vectorised SGD losses with scikit-learn's definitions.

scikit-learn's SGD losses are Cython scalars (``py_loss``/``py_dloss``); full-batch
FedSGD and the global objective need them over whole arrays. Tests check each
against scikit-learn's own scalar implementation.

``p`` is the prediction (margin), ``y`` the target (+-1 for classification).
"""

import numpy as np
from scipy.special import expit

__all__ = ["LOSSES", "loss_and_dloss", "penalty_value", "penalty_grad"]


def _hinge(p, y, threshold):
    z = p * y
    active = z <= threshold
    return np.where(active, threshold - z, 0.0), np.where(active, -y, 0.0)


def _log(p, y):
    z = p * y
    return np.logaddexp(0.0, -z), -y * expit(-z)


def _modified_huber(p, y):
    z = p * y
    loss = np.where(z >= 1.0, 0.0, np.where(z >= -1.0, (1.0 - z) ** 2, -4.0 * z))
    dloss = np.where(z >= 1.0, 0.0, np.where(z >= -1.0, -2.0 * y * (1.0 - z), -4.0 * y))
    return loss, dloss


def _squared_hinge(p, y, threshold=1.0):
    z = threshold - p * y
    active = z > 0
    return np.where(active, z * z, 0.0), np.where(active, -2.0 * y * z, 0.0)


def _squared_error(p, y):
    r = p - y
    return 0.5 * r * r, r


def _huber(p, y, c):
    r = p - y
    a = np.abs(r)
    loss = np.where(a <= c, 0.5 * r * r, c * a - 0.5 * c * c)
    dloss = np.where(a <= c, r, c * np.sign(r))
    return loss, dloss


def _epsilon_insensitive(p, y, eps):
    r = y - p
    loss = np.maximum(0.0, np.abs(r) - eps)
    dloss = np.where(r > eps, -1.0, np.where(-r > eps, 1.0, 0.0))
    return loss, dloss


def _squared_epsilon_insensitive(p, y, eps):
    r = y - p
    excess = np.maximum(0.0, np.abs(r) - eps)
    dloss = np.where(r > eps, -2.0 * (r - eps), np.where(-r > eps, 2.0 * (-r - eps), 0.0))
    return excess * excess, dloss


LOSSES = {
    "hinge": lambda p, y, eps: _hinge(p, y, 1.0),
    "perceptron": lambda p, y, eps: _hinge(p, y, 0.0),
    "log_loss": lambda p, y, eps: _log(p, y),
    "modified_huber": lambda p, y, eps: _modified_huber(p, y),
    "squared_hinge": lambda p, y, eps: _squared_hinge(p, y),
    "squared_error": lambda p, y, eps: _squared_error(p, y),
    "huber": lambda p, y, eps: _huber(p, y, eps),
    "epsilon_insensitive": lambda p, y, eps: _epsilon_insensitive(p, y, eps),
    "squared_epsilon_insensitive": lambda p, y, eps: _squared_epsilon_insensitive(p, y, eps),
}


def loss_and_dloss(name, p, y, epsilon=0.1):
    """Elementwise loss and its derivative with respect to ``p``."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return LOSSES[name](p, y, epsilon)


def penalty_value(coef, penalty, l1_ratio):
    """scikit-learn's R(w): the objective is mean loss + alpha * R(w)."""
    if penalty is None:
        return 0.0
    l2 = 0.5 * float(np.sum(coef * coef))
    l1 = float(np.sum(np.abs(coef)))
    if penalty == "l2":
        return l2
    if penalty == "l1":
        return l1
    return (1.0 - l1_ratio) * l2 + l1_ratio * l1


def penalty_grad(coef, penalty, l1_ratio):
    """A (sub)gradient of R(w)."""
    if penalty is None:
        return np.zeros_like(coef)
    if penalty == "l2":
        return coef.copy()
    if penalty == "l1":
        return np.sign(coef)
    return (1.0 - l1_ratio) * coef + l1_ratio * np.sign(coef)
