"""Demo cases for ``python -m skfed demo``: transfer learning on breast cancer."""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from ..topology import VerticalTopology
from .estimator import FederatedTransferClassifier


def transfer_split(X, y, n_overlap, seed=0, n_source_only=None):
    """Two disjoint feature views with a small overlap of rows.

    The first half of the columns belongs to the source (labelled), the rest
    to the target. ``n_overlap`` rows are held by both; the remaining rows
    are split between source-only and target-only. The target-only rows keep
    their labels (fit ignores labels on rows the source does not hold), so
    they can be used as held-out test rows.

    Returns
    -------
    X_fed : ndarray with NaN where a party does not hold a row
    topology : VerticalTopology
    target_only : ndarray of int, the target-only rows
    overlap : ndarray of int
    """
    rng = np.random.RandomState(seed)
    n, p = X.shape
    perm = rng.permutation(n)
    overlap = np.sort(perm[:n_overlap])
    rest = perm[n_overlap:]
    n_src = len(rest) // 2 if n_source_only is None else n_source_only
    source_only, target_only = np.sort(rest[:n_src]), np.sort(rest[n_src:])
    cut = p // 2
    X_fed = np.array(X, dtype=float)
    X_fed[source_only, cut:] = np.nan
    X_fed[target_only, :cut] = np.nan
    topo = VerticalTopology({"source": list(range(cut)), "target": list(range(cut, p))},
                            label_party="source")
    return X_fed, topo, target_only, overlap


def _target_folds(n, target_only, n_folds, seed):
    """Folds that test on target-only rows and train on everything else."""
    rng = np.random.RandomState(seed)
    folds = np.array_split(rng.permutation(target_only), n_folds)
    return [(np.setdiff1d(np.arange(n), f), np.sort(f)) for f in folds]


def demo_cases(quick=False):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_fed, topo, target_only, _ = transfer_split(X, y, n_overlap=100, seed=0)
    cv = _target_folds(len(X), target_only, 2 if quick else 3, seed=0)
    # The defaults, encrypted with 2048-bit keys (the cross-moment protocol:
    # about half a second per epoch once the keys and the once-per-fit
    # encrypted rows are done), and the same model in the clear. --quick
    # stops the encrypted fit after 5 epochs; the encrypted row uses two of
    # the folds' splits (a default fit takes one to two minutes).
    encrypted = FederatedTransferClassifier(topo, random_state=0,
                                            **({"max_iter": 5} if quick else {}))
    clear = FederatedTransferClassifier(topo, encryption=None, random_state=0)
    return [
        {"name": "FTL AUC, defaults, Paillier-2048" + (", 5 it" if quick else ""),
         "estimator": encrypted, "X": X_fed, "y": y, "cv": cv[:2], "scoring": "roc_auc"},
        {"name": "FTL AUC, defaults, no HE",
         "estimator": clear, "X": X_fed, "y": y, "cv": cv, "scoring": "roc_auc"},
    ]
