"""Every protocol, every mode: no private value crosses a party boundary in clear.

The shared detector (tests/leaks.py) decodes every payload whatever its kind.
The private intermediate values of a protected run (per-client updates,
residuals, gradients) are taken from the same run with protection off: with
the same seeds, the first round (first mini-batch) starts from the same zero
model, so the unprotected run's first messages are exactly the values the
protected run must hide.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from skfed import (
    FederatedSGDClassifier,
    FederatedSGDRegressor,
    FederatedTransferClassifier,
    HorizontalTopology,
    VerticalLinearRegression,
    VerticalLogisticRegression,
    VerticalTopology,
)
from skfed.crypto.psi import encode_id, hash_to_point
from skfed.runtime import LocalRuntime
from skfed.vertical.alignment import align_samples

from .leaks import DEFAULT_SCALES, assert_no_leaks, record_transcripts

KEY = 512


@pytest.fixture
def encrypted_inputs(monkeypatch):
    """Every plaintext a party encrypts during the test: by definition a value the
    protocol protects, so none may appear in clear anywhere in the transcript."""
    from skfed.crypto.packing import PackedRows
    from skfed.crypto.paillier import EncryptedArray

    seen = []
    for cls in (EncryptedArray, PackedRows):
        real = cls.encrypt.__func__

        def spy(cls_, public_key, values, *args, _real=real, **kw):
            seen.append(np.array(values, dtype=np.float64, copy=True))
            return _real(cls_, public_key, values, *args, **kw)

        monkeypatch.setattr(cls, "encrypt", classmethod(spy))
    return seen


def _as_secrets(values, what):
    out = {}
    for i, v in enumerate(values):
        if v.size and not any(np.array_equal(v, o) for o in out.values()):
            out[f"{what} #{i}"] = v
    return out


def _first(transcript, **kw):
    msgs = [m for m in transcript if all(getattr(m, k) == v for k, v in kw.items())]
    assert msgs, f"no message {kw}"
    return msgs[0].decoded()


# -- horizontal --------------------------------------------------------------------
def _horizontal_data(n=121, seed=0):
    X, y = make_classification(n_samples=n, n_features=5, n_informative=4, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, random_state=seed)
    return X, y


def _horizontal_secrets(topo, X, y, plain_transcript):
    secrets = {}
    for name, rows in topo.split(X, y):
        secrets[f"{name} features"] = X[rows]
        secrets[f"{name} labels"] = y[rows]
        # what the client uploads in round 1: its weighted local model and loss
        secrets[f"{name} round-1 update"] = _first(plain_transcript, sender=name,
                                                   tag="update")
        secrets[f"{name} counts"] = np.asarray(
            _first(plain_transcript, sender=name, tag="counts"))
    return secrets


@pytest.mark.parametrize("protection, strategy", [
    ("masking", "fedavg"), ("paillier", "fedavg"), ("masking", "fedsgd")])
@pytest.mark.parametrize("Est", [FederatedSGDClassifier, FederatedSGDRegressor])
def test_horizontal_fit_and_predict_leak_nothing(protection, strategy, Est):
    X, y = _horizontal_data()
    if Est is FederatedSGDRegressor:
        y = X @ [1.5, -2.0, 0.25, 1.0, 3.0] + np.random.default_rng(0).normal(size=len(X))
    # unequal (Dirichlet) shares, so the weights n_k / n differ between clients
    topo = HorizontalTopology(n_parties=3, partition="dirichlet", alpha=0.5, random_state=0) \
        if Est is FederatedSGDClassifier else HorizontalTopology(n_parties=3, random_state=0)
    kw = dict(topology=topo, n_rounds=2, random_state=0, key_size=1024, strategy=strategy,
              learning_rate="constant", eta0=0.05)
    with record_transcripts() as plain:
        Est(secure_aggregation=None, **kw).fit(X, y)
    with record_transcripts() as t:
        est = Est(secure_aggregation=protection, **kw).fit(X, y)
        est.predict(X)
    # (every client holds the global model, so prediction sends nothing; nothing is
    # declared public either: the global model is a sum, never one client's value)
    secrets = _horizontal_secrets(topo, X, y, plain)
    assert_no_leaks(t, secrets)
    # the detector has teeth here: the unprotected run leaks every upload
    with pytest.raises(AssertionError, match="round-1 update leaks"):
        assert_no_leaks(plain, {k: v for k, v in secrets.items() if "update" in k})


def test_horizontal_paillier_message_kinds():
    """Every (tag, kind) of the Paillier mode, exactly: a ciphertext relabelled plain
    (or the reverse) changes what the transcript claims left each party."""
    X, y = _horizontal_data(n=60)
    est = FederatedSGDClassifier(topology=HorizontalTopology(n_parties=3, random_state=0),
                                 secure_aggregation="paillier", key_size=1024, n_rounds=1,
                                 random_state=0).fit(X, y)
    kinds = {}
    for m in est.transcript_:
        kinds.setdefault(m.tag, set()).add(m.kind)
    assert kinds == {
        "agree_public_key": {"public_key"}, "agree_public_keys": {"public_key"},
        "paillier_public_key": {"public_key"}, "sealed_private_key": {"ciphertext"},
        "labels": {"plain"}, "classes": {"plain"}, "totals": {"plain"}, "model": {"plain"},
        "counts": {"ciphertext"}, "counts_encrypted_sum": {"ciphertext"},
        "counts_sum": {"plain"},
        "update": {"ciphertext"}, "update_encrypted_sum": {"ciphertext"},
        "update_sum": {"plain"},
    }
    # only the key holder decrypts, and only sums
    assert {m.sender for m in est.transcript_.filter(tag="update_sum")} == {"client0"}


# -- vertical ----------------------------------------------------------------------
def _vertical_problem(task, n=37, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    if task == "linear":
        y = X @ [1.0, -2.0, 0.5, 3.0, -1.0] + 1.0 + 0.1 * rng.normal(size=n)
    elif task == "logistic":
        y = (X[:, 0] - X[:, 3] + 0.3 * rng.normal(size=n) > 0).astype(int)
    else:
        y = np.digitize(X[:, 0] - X[:, 3] + 0.3 * rng.normal(size=n), [-0.5, 0.5])
    topo = VerticalTopology({"guest": [0, 1], "host0": [2, 3], "host1": [4]},
                            label_party="guest")
    return X, y, topo


@pytest.mark.parametrize("solver", ["pcg", "gd"])
@pytest.mark.parametrize("task", ["linear", "logistic", "multiclass"])
def test_vertical_fit_and_predict_leak_nothing(task, solver, encrypted_inputs):
    X, y, topo = _vertical_problem(task)
    Est = VerticalLinearRegression if task == "linear" else VerticalLogisticRegression
    # gd: 37 rows in batches of 10, the last batch is smaller; pcg: full batches
    # and its own messages (cg terms, curvature, public steps)
    kw = dict(max_iter=2, tol=None, solver=solver, random_state=0,
              batch_size=10 if solver == "gd" else None)
    with record_transcripts() as plain:
        Est(topo, encryption=None, **kw).fit(X, y)
    with record_transcripts() as t:
        est = Est(topo, key_size=KEY, **kw).fit(X, y)
        est.predict(X)
    assert t.filter(tag="partial_score"), "the prediction's messages were not recorded"
    secrets = {
        "guest features": X[:, :2], "host0 features": X[:, 2:4], "host1 features": X[:, 4:],
        "guest labels": y,
        # the first mini-batch's residual [[d]] and each party's gradient, which
        # only the masks keep from the arbiter
        "first residual d": _first(plain, sender="guest", tag="d"),
        "guest first gradient": _first(plain, sender="guest", tag="gradient"),
        "host0 first gradient": _first(plain, sender="host0", tag="gradient"),
        "host1 first gradient": _first(plain, sender="host1", tag="gradient"),
        "host0 coefficients": est.coef_by_party_["host0"],
        "host1 coefficients": est.coef_by_party_["host1"],
        "guest coefficients": est.coef_by_party_["guest"],
        # u_k = X_k W_k of every batch, and the guest's part of the residual
        **_as_secrets(encrypted_inputs, "encrypted plaintext"),
    }
    assert len(secrets) - 11 >= 6, "the parties' encrypted plaintexts were not captured"
    assert_no_leaks(t, secrets)
    with pytest.raises(AssertionError, match="first gradient leaks"):
        assert_no_leaks(plain, {k: v for k, v in secrets.items() if "gradient" in k})


# -- transfer ----------------------------------------------------------------------
TRANSFER_TOPO = VerticalTopology({"bank": [0, 1, 2], "shop": [3, 4, 5]}, label_party="bank")


def _transfer_data(n=150, seed=0):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, random_state=seed)
    third = n // 3
    X[:third, 3:] = np.nan
    X[2 * third:, :3] = np.nan
    y_fit = y.copy()
    y_fit[2 * third:] = -1
    return X, y, y_fit, third


@pytest.mark.parametrize("hidden, train_hidden", [((3,), True), ((), True), ((4,), False)],
                         ids=["hidden", "linear", "random-features"])
def test_transfer_fit_and_predict_leak_nothing(hidden, train_hidden, encrypted_inputs):
    X, y, y_fit, third = _transfer_data()
    kw = dict(max_iter=2, random_state=0, hidden_layer_sizes=hidden, representation_dim=2,
              batch_size=32, train_hidden_layers=train_hidden)
    with record_transcripts() as t:
        clf = FederatedTransferClassifier(TRANSFER_TOPO, key_size=KEY, **kw).fit(X, y_fit)
        clf.predict(X[2 * third:])
    predict_msgs = [m for m in t if m.tag.startswith(("phi_t", "scores"))]
    assert predict_msgs, "the prediction's messages were not recorded"
    secrets = {
        "source features": X[:2 * third, :3], "target features": X[third:, 3:],
        "source labels": y[:2 * third], "overlap labels": y[third:2 * third],
        "source Phi": clf.source_model_["phi"],
        "source weights": clf.source_model_["coefs"][-1],
        "target weights": clf.target_model_["coefs"][-1],
        # labels, representations, cross moments, Phi at prediction
        **_as_secrets(encrypted_inputs, "encrypted plaintext"),
    }
    assert any(k.startswith("encrypted") for k in secrets)
    # which overlap rows are labelled is public (here: all of them)
    assert_no_leaks(t, secrets, public=[np.ones(third, dtype=bool)])
    with record_transcripts() as plain:
        FederatedTransferClassifier(TRANSFER_TOPO, encryption=None, **kw).fit(X, y_fit)
    if not train_hidden or not hidden:
        # the fast (cross-moment) protocol never sends labels, even unencrypted:
        # its cross moments mix them with features
        return
    with pytest.raises(AssertionError, match="labels leaks"):
        assert_no_leaks(plain, {"overlap labels": y[third:2 * third]})


# -- PSI ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_parties", [2, 3])
def test_psi_leaks_no_identifier_nor_hash(n_parties):
    ids = {f"p{k}": [f"customer-{i:06d}-{k % 2}" for i in range(k * 20, k * 20 + 60)]
           + [10**15 + i for i in range(k * 7, k * 7 + 25)] for k in range(n_parties)}
    _, transcript = align_samples(ids, return_transcript=True, random_state=0,
                                  runtime=LocalRuntime(keep_payloads=True))
    encoded = [encode_id(v) for values in ids.values() for v in values]
    secrets = {f"{p} identifiers": list(v) for p, v in ids.items()}
    secrets["encoded identifiers"] = encoded
    secrets["hashed points"] = [hash_to_point(e) for e in encoded]
    assert_no_leaks(transcript, secrets)


# -- horizontal histogram boosting ------------------------------------------------------
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_horizontal_boosting_fit_and_predict_leak_nothing(task):
    """No client histogram, count, gradient, row or label crosses unmasked: the
    secrets include every upload of the same run without protection."""
    from scipy.special import softmax

    from skfed import (
        FederatedHistGradientBoostingClassifier,
        FederatedHistGradientBoostingRegressor,
    )
    from skfed.trees.gbdt import PRECISION_BITS

    X, y = _horizontal_data(n=90)
    if task == "regression":
        y = X @ [1.5, -2.0, 0.25, 1.0, 3.0] + np.random.default_rng(0).normal(size=len(X))
    X[::7, 0] = np.nan
    cls = FederatedHistGradientBoostingRegressor if task == "regression" else \
        FederatedHistGradientBoostingClassifier
    topo = HorizontalTopology(n_parties=3, random_state=0)
    kw = dict(topology=topo, max_iter=2, max_bins=8, early_stopping=True,
              validation_fraction=0.2, random_state=0)
    with record_transcripts() as plain:
        cls(secure_aggregation=None, **kw).fit(X, y)
    with record_transcripts() as t:
        est = cls(**kw).fit(X, y)
        est.predict(X)
    secrets, uploads = {}, {}
    for name, rows in topo.split(X, y):
        secrets[f"{name} rows"] = X[rows]
        secrets[f"{name} targets"] = y[rows]
        # the first iteration's gradients, from the (public) baseline
        raw = np.tile(est._baseline, (len(rows), 1))
        if task == "regression":
            secrets[f"{name} gradients"] = raw[:, 0] - y[rows]
        else:
            secrets[f"{name} gradients"] = softmax(raw, axis=1) - np.eye(3)[y[rows]]
        secrets[f"{name} loss sums"] = np.asarray(_first(plain, sender=name, tag="score"))
        # integer uploads (counts, fixed-point sums): searched as exact integers
        for tag in ("setup", "bins", "hist"):
            uploads[f"{name} first {tag}"] = np.asarray(_first(plain, sender=name, tag=tag))
        hist = [m.decoded() for m in plain if m.sender == name and m.tag == "hist"]
        uploads[f"{name} last histograms"] = np.asarray(hist[-1])
    # the gradients' and hessians' fixed point (exponents 0 and -2)
    assert_no_leaks(t, secrets, scales=(*DEFAULT_SCALES, PRECISION_BITS, PRECISION_BITS + 2))
    assert_no_leaks(t, uploads, scales=(0,))
    # the detector has teeth: the unprotected run shows every histogram
    with pytest.raises(AssertionError, match="first hist leaks"):
        assert_no_leaks(plain, {k: v for k, v in uploads.items() if "first hist" in k},
                        scales=(0,))
