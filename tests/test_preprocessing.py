"""Federated scalers: exact pooled statistics, pipelines, leaks, bad input, party mode."""

import threading
from fractions import Fraction

import numpy as np
import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skfed import (
    FederatedMinMaxScaler,
    FederatedSGDClassifier,
    FederatedStandardScaler,
    HorizontalTopology,
)
from skfed.horizontal._scaling_roles import exact_sums, float_key, key_float, pooled_moments
from skfed.runtime import LocalRuntime

from .leaks import assert_no_leaks, record_transcripts
from .threads import run_parties

SCALERS = [FederatedStandardScaler, FederatedMinMaxScaler]


def _exact_moments(column):
    """Correctly rounded mean and population variance, by rational arithmetic."""
    values = [Fraction(float(v)) for v in column if not np.isnan(v)]
    n = len(values)
    mean = sum(values) / n
    return float(mean), float(sum((v - mean) ** 2 for v in values) / n)


# -- the exact arithmetic ----------------------------------------------------------

_FLOATS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e150, max_value=1e150)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1,
                                               max_side=12), elements=_FLOATS))
def test_digit_sums_give_correctly_rounded_moments(X):
    """Whatever the magnitudes (subnormals to 1e150), mean and variance are the float64
    nearest to the exact ones."""
    counts, sums, squares = exact_sums(X)
    mean, var = pooled_moments(counts, sums, squares)
    for f in range(X.shape[1]):
        assert (mean[f], var[f]) == _exact_moments(X[:, f])


def test_digit_sums_add_over_any_split():
    """The pooled digit sums are the sum of the parts' (they are per-row functions)."""
    rng = np.random.RandomState(0)
    X = rng.standard_cauchy(size=(50, 3)) * 10.0 ** rng.randint(-300, 300, size=(50, 3))
    whole = exact_sums(X)
    parts = [exact_sums(X[idx]) for idx in np.array_split(rng.permutation(50), 4)]
    for k in range(3):
        np.testing.assert_array_equal(whole[k], sum(p[k] for p in parts))


def test_blocks_of_rows_change_nothing(monkeypatch):
    from skfed.horizontal import _scaling_roles

    X = np.random.RandomState(1).standard_cauchy(size=(200, 3))
    X[7, 1] = np.nan
    whole = exact_sums(X)
    monkeypatch.setattr(_scaling_roles, "_CHUNK", 30)  # blocks of 10 rows
    for a, b in zip(whole, exact_sums(X)):
        np.testing.assert_array_equal(a, b)


def test_order_preserving_keys():
    values = np.array([-np.inf, -1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, 1e300, np.inf])
    keys = float_key(values)
    assert all(int(a) < int(b) for a, b in zip(keys[:-1], keys[1:]))
    np.testing.assert_array_equal(key_float(keys), values)
    assert np.signbit(key_float(keys))[4]


# -- equal to scikit-learn on the pooled rows, whatever the split -------------------

@st.composite
def _split_data(draw):
    n = draw(st.integers(4, 40))
    d = draw(st.integers(1, 4))
    X = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(
        -1e6, 1e6, allow_nan=False, allow_infinity=False)))
    scale = draw(st.sampled_from([1e-8, 1.0, 1e8]))
    X = X * scale
    nan = draw(hnp.arrays(np.bool_, (n, d)))
    nan[0] = False  # every feature keeps a value
    X[nan] = np.nan
    k = draw(st.integers(2, 4))
    parties = draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)))
    parties[:k] = np.arange(k)
    return X, parties


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_split_data(), st.sampled_from(["masking", None]))
def test_standard_scaler_equals_pooled(data, protection):
    X, parties = data
    fed = FederatedStandardScaler(secure_aggregation=protection).fit(X, parties=parties)
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(fed.mean_, ref.mean_, rtol=1e-12,
                               atol=1e-12 * np.nanmax(np.abs(X)))
    np.testing.assert_allclose(fed.var_, ref.var_, rtol=1e-12,
                               atol=1e-12 * np.nanmax(np.abs(X)) ** 2)
    np.testing.assert_array_equal(fed.n_samples_seen_, ref.n_samples_seen_)
    # (x - mean) / scale: scikit-learn's mean may be an ulp of max|x| off (its rounding)
    np.testing.assert_allclose(fed.transform(X), ref.transform(X), rtol=1e-9,
                               atol=1e-12 * np.nanmax(np.abs(X)) / ref.scale_.min())
    # ...and exactly the correctly rounded statistics
    for f in range(X.shape[1]):
        assert (fed.mean_[f], fed.var_[f]) == _exact_moments(X[:, f])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_split_data(), st.sampled_from(["masking", None]))
def test_minmax_scaler_equals_pooled(data, protection):
    X, parties = data
    fed = FederatedMinMaxScaler(secure_aggregation=protection).fit(X, parties=parties)
    ref = MinMaxScaler().fit(X)
    for name in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
        np.testing.assert_array_equal(getattr(fed, name), getattr(ref, name), err_msg=name)
    assert fed.n_samples_seen_ == ref.n_samples_seen_
    np.testing.assert_array_equal(fed.transform(X), ref.transform(X))


def test_split_does_not_change_anything():
    X = np.random.RandomState(0).lognormal(3, 2, size=(90, 3))
    fits = [FederatedStandardScaler(HorizontalTopology(n_parties=k, random_state=k)).fit(X)
            for k in (2, 3, 7)]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.mean_, fits[0].mean_)
        np.testing.assert_array_equal(other.var_, fits[0].var_)


@pytest.mark.parametrize("with_mean, with_std", [(True, False), (False, True), (False, False)])
def test_standard_scaler_options(with_mean, with_std):
    X = np.random.RandomState(1).normal(3, 2, size=(40, 3))
    X[5, 1] = np.nan
    kw = dict(with_mean=with_mean, with_std=with_std)
    fed = FederatedStandardScaler(**kw).fit(X)
    ref = StandardScaler(**kw).fit(X)
    for name in ("mean_", "var_", "scale_"):
        if getattr(ref, name) is None:
            assert getattr(fed, name) is None, name
        else:
            np.testing.assert_allclose(getattr(fed, name), getattr(ref, name), rtol=1e-14)
    np.testing.assert_array_equal(fed.n_samples_seen_, ref.n_samples_seen_)
    np.testing.assert_allclose(fed.inverse_transform(fed.transform(X)), X, rtol=1e-12)
    # without the squares nothing about them is sent
    sizes = {m.nbytes for m in fed.transcript_.filter(tag="scaler_stats")}
    assert max(sizes) < (3 + 3 * 320) * 8 if not with_std else True


def test_constant_feature_and_nan_kept():
    X = np.c_[np.full(30, 0.1), np.arange(30.0)]
    X[3, 1] = np.nan
    fed = FederatedStandardScaler().fit(X)
    assert fed.var_[0] == 0.0 and fed.scale_[0] == 1.0
    out = fed.transform(X)
    assert np.isnan(out[3, 1]) and np.all(out[:, 0] == 0.0)
    np.testing.assert_array_equal(fed.n_samples_seen_, [30, 29])


def test_minmax_options():
    X = np.random.RandomState(2).normal(size=(30, 2))
    fed = FederatedMinMaxScaler(feature_range=(-1, 2), clip=True).fit(X[:20])
    ref = MinMaxScaler(feature_range=(-1, 2), clip=True).fit(X[:20])
    np.testing.assert_array_equal(fed.transform(X), ref.transform(X))
    np.testing.assert_array_equal(fed.inverse_transform(fed.transform(X[:20])),
                                  ref.inverse_transform(ref.transform(X[:20])))
    with pytest.raises(ValueError, match="smaller than maximum"):
        FederatedMinMaxScaler(feature_range=(1, 0)).fit(X)


@pytest.mark.parametrize("Scaler", SCALERS)
def test_feature_names_and_set_output(Scaler):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.RandomState(0).normal(size=(20, 2)), columns=["age", "income"])
    scaler = Scaler().set_output(transform="pandas").fit(X)
    out = scaler.transform(X)
    assert list(out.columns) == ["age", "income"]
    assert list(scaler.get_feature_names_out()) == ["age", "income"]


# -- dropouts ------------------------------------------------------------------------

@pytest.mark.parametrize("Scaler", SCALERS)
def test_dropout_tolerant_masking_gives_the_same_statistics(Scaler):
    X = np.random.RandomState(3).normal(size=(60, 3))
    topo = HorizontalTopology(n_parties=4, random_state=0)
    a = Scaler(topo).fit(X)
    b = Scaler(topo, min_clients=3).fit(X)
    for name in ("scale_", "min_" if Scaler is FederatedMinMaxScaler else "mean_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert any(m.tag.endswith("/reveal") for m in b.transcript_)


def test_dropped_client_leaves_the_survivors_statistics():
    X = np.random.RandomState(4).normal(size=(60, 3))
    topo = HorizontalTopology(n_parties=4, random_state=0)
    rows = dict(topo.split(X))
    fed = FederatedStandardScaler(topo, min_clients=3, runtime=LocalRuntime(
        drops={"client2": ("before_upload", 1)})).fit(X)
    survivors = np.sort(np.concatenate([rows[c] for c in ("client0", "client1", "client3")]))
    np.testing.assert_allclose(fed.mean_, X[survivors].mean(axis=0), rtol=1e-13)
    assert [d["client"] for d in fed.dropouts_] == ["client2"]


@pytest.mark.parametrize("stage", ["before_upload", "after_upload"])
def test_client_dropping_mid_bisection_restarts_it(stage):
    """The client holding the maximum leaves in round 10: its value must not
    survive in the bounds (the result would be a threshold, not a data value)."""
    X = np.random.RandomState(4).normal(size=(60, 2))
    topo = HorizontalTopology(n_parties=4, random_state=0)
    rows = dict(topo.split(X))
    holder = next(c for c, idx in rows.items() if X[:, 0].argmax() in idx)
    fed = FederatedMinMaxScaler(topo, min_clients=3, runtime=LocalRuntime(
        drops={holder: (stage, 11)})).fit(X)
    left = np.sort(np.concatenate([idx for c, idx in rows.items() if c != holder]))
    ref = MinMaxScaler().fit(X[left])
    np.testing.assert_array_equal(fed.data_max_, ref.data_max_)
    np.testing.assert_array_equal(fed.data_min_, ref.data_min_)
    assert fed.n_samples_seen_ == len(left)
    assert [d["client"] for d in fed.dropouts_] == [holder]


# -- pipelines and model selection -----------------------------------------------------

def _party_data(n=150, seed=0):
    X, y = make_classification(n_samples=n, n_features=5, n_informative=3, n_redundant=0,
                               random_state=seed)
    X = X * [1, 10, 100, 1000, 0.01] + [0, 5, -50, 1e4, 0]
    parties = np.where(np.random.RandomState(seed).rand(n) < 0.4, "guest", "host")
    return X, y, parties


def test_pipeline_with_routing(routing):
    X, y, parties = _party_data()
    pipe = make_pipeline(FederatedStandardScaler(),
                         FederatedSGDClassifier(n_rounds=3, random_state=0))
    pipe.fit(X, y, parties=parties)
    scaler = pipe[0]
    assert {m.sender for m in scaler.transcript_.filter(tag="scaler_stats")} == \
        {"guest", "host"}
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=0), rtol=1e-12)
    assert pipe.score(X, y) > 0.6
    scores = cross_val_score(pipe, X, y, cv=3, params={"parties": parties})
    assert scores.shape == (3,) and np.all(scores > 0.6)
    search = GridSearchCV(pipe, {"federatedsgdclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    search.fit(X, y, parties=parties)
    best = search.best_estimator_
    assert {m.sender for m in best[0].transcript_.filter(tag="scaler_stats")} == \
        {"guest", "host"}


def test_pipeline_without_routing_takes_the_step_prefix():
    X, y, parties = _party_data()
    pipe = make_pipeline(FederatedMinMaxScaler(),
                         FederatedSGDClassifier(n_rounds=3, random_state=0))
    pipe.fit(X, y, federatedminmaxscaler__parties=parties,
             federatedsgdclassifier__parties=parties)
    np.testing.assert_array_equal(pipe[0].data_max_, X.max(axis=0))


def test_pipeline_matches_pooled_scaling():
    """Same topology, same model as with a pooled StandardScaler (to rounding)."""
    X, y, _ = _party_data()
    topo = HorizontalTopology(n_parties=3, random_state=0)
    sgd = dict(topology=topo, loss="log_loss", n_rounds=3, random_state=0)
    fed = make_pipeline(FederatedStandardScaler(topo), FederatedSGDClassifier(**sgd)).fit(X, y)
    pooled = make_pipeline(StandardScaler(), FederatedSGDClassifier(**sgd)).fit(X, y)
    np.testing.assert_allclose(fed[-1].coef_, pooled[-1].coef_, rtol=1e-6, atol=1e-9)


# -- privacy ---------------------------------------------------------------------------

@pytest.mark.parametrize("Scaler", SCALERS)
@pytest.mark.parametrize("min_clients", [None, 2])
def test_no_client_statistic_crosses_unmasked(Scaler, min_clients):
    rng = np.random.RandomState(5)
    X = rng.normal(3, 2, size=(45, 3)) * [1, 100, 1e-3]
    X[rng.rand(45, 3) < 0.1] = np.nan
    X[0] = 1.0
    topo = HorizontalTopology(n_parties=3, random_state=0)
    kw = dict(topology=topo, min_clients=min_clients)
    with record_transcripts() as plain:
        Scaler(secure_aggregation=None, **kw).fit(X)
    with record_transcripts() as t:
        fed = Scaler(**kw).fit(X)
        fed.transform(X)
    secrets, uploads = {}, {}
    public = [v for v in (getattr(fed, "data_min_", None), getattr(fed, "data_max_", None))
              if v is not None]
    for name, rows in topo.split(X):
        part = X[rows]
        # the pooled extremes are the model: the row values equal to them are public
        secrets[f"{name} rows"] = np.where(np.isin(part, public), np.nan, part)
        secrets[f"{name} sums"] = np.nansum(part, axis=0)
        secrets[f"{name} sums of squares"] = np.nansum(part ** 2, axis=0)
        secrets[f"{name} means"] = np.nanmean(part, axis=0)
        for what, value in (("min", np.nanmin(part, axis=0)), ("max", np.nanmax(part, axis=0))):
            # a client's extreme that is the pooled one is published (not whose it is)
            secrets[f"{name} {what}"] = np.where(np.isin(value, public), np.nan, value)
        secrets[f"{name} counts"] = (~np.isnan(part)).sum(axis=0)
        first = "scaler_stats" if Scaler is FederatedStandardScaler else "minmax_counts"
        uploads[f"{name} upload"] = np.asarray(
            [m for m in plain if m.sender == name and m.tag == first][0].decoded())
        # the same integers as they are before the ring encoding (counts, digit sums)
        secrets[f"{name} integers"] = uploads[f"{name} upload"] * 2.0 ** 32
    assert_no_leaks(t, {**secrets, **uploads}, public=public)
    if Scaler is FederatedStandardScaler:
        # the detector has teeth: the unprotected run sends every client's digit sums
        with pytest.raises(AssertionError, match="upload leaks"):
            assert_no_leaks(plain, uploads)
    else:
        # small counts are below what the detector may flag without false alarms:
        # check directly that each client's count vector left only masked
        for name, rows in topo.split(X):
            counts = np.r_[len(rows), (~np.isnan(X[rows])).sum(axis=0)]
            np.testing.assert_array_equal(uploads[f"{name} upload"][:4] * 2.0 ** 32, counts)
            sent = [m for m in t if m.sender == name and m.tag == "minmax_counts"][0]
            masked = np.asarray(sent.decoded(), dtype=np.uint64)
            assert masked.dtype == np.uint64 and not np.any(masked[:4] == counts)


def test_message_kinds():
    X = np.random.RandomState(6).normal(size=(30, 2))
    kinds = {}
    for Scaler in SCALERS:
        for m in Scaler(HorizontalTopology(n_parties=3)).fit(X).transcript_:
            kinds.setdefault(m.tag, set()).add(m.kind)
    assert kinds == {
        "agree_public_key": {"public_key"}, "agree_public_keys": {"public_key"},
        "scaler_stats": {"masked"}, "scaler_result": {"plain"},
        "minmax_counts": {"masked"}, "minmax_thresholds": {"plain"},
        "minmax_above": {"masked"}, "minmax_result": {"plain"},
    }


# -- bad input ---------------------------------------------------------------------------

class _NoRun(LocalRuntime):
    def run(self, roles):
        raise AssertionError("a message would have been sent")


@pytest.mark.parametrize("Scaler", SCALERS)
@pytest.mark.parametrize("make, kw, match", [
    (lambda X: np.where(np.arange(4) == 1, np.nan, X), {}, r"feature\(s\) \[1\] hold no value"),
    (lambda X: X[:1], {}, "n_samples=1"),
    (lambda X: X, {"secure_aggregation": "masking", "topology": HorizontalTopology(
        n_parties=1)}, "at least two clients"),
    (lambda X: X, {"topology": HorizontalTopology(partition=0)}, "parties= to fit"),
    (lambda X: X, {"min_clients": 5}, "exceeds the number of clients"),
    (lambda X: np.where(np.arange(4) == 0, np.inf, X), {}, "infinity"),
])
def test_bad_input_fails_before_any_message(Scaler, make, kw, match):
    X = make(np.random.RandomState(0).normal(size=(10, 4)))
    with pytest.raises(ValueError, match=match):
        Scaler(runtime=_NoRun(), **kw).fit(X)


def test_bad_parties_are_refused():
    X = np.random.RandomState(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="single party"):
        FederatedStandardScaler(runtime=_NoRun()).fit(X, parties=["a"] * 10)


@pytest.mark.parametrize("Scaler", SCALERS)
def test_transform_checks_the_features(Scaler):
    X = np.random.RandomState(0).normal(size=(10, 3))
    scaler = Scaler().fit(X)
    with pytest.raises(ValueError, match="3 features"):
        scaler.transform(X[:, :2])


# -- one party per process ---------------------------------------------------------------

def _run_parties(make, data):
    """Fit one estimator per party, each in its own thread over gRPC; errors by party."""
    from skfed.runtime.grpc import GrpcRuntime, free_local_ports

    names = list(data)
    addresses = {p: f"127.0.0.1:{port}" for p, port in zip(names, free_local_ports(len(names)))}
    ests = {p: make(GrpcRuntime(p, addresses, insecure=True, timeout=60,
                                connect_timeout=10)) for p in names}
    _, errors = run_parties(lambda p: ests[p].fit(data[p]), names,
                            [e.runtime for e in ests.values()])
    return ests, errors


@pytest.mark.parametrize("Scaler", SCALERS)
def test_parties_in_their_own_runtime_get_the_pooled_statistics(Scaler):
    X = np.random.RandomState(7).normal(4, 3, size=(50, 3))
    X[2, 0] = np.nan
    topo = HorizontalTopology(n_parties=2, party_names=["a", "b"])
    data = {"server": None, "a": X[:20], "b": X[20:]}
    ests, errors = _run_parties(lambda rt: Scaler(topo, runtime=rt), data)
    assert not errors, errors
    ref = Scaler(topo).fit(X, parties=np.r_[["a"] * 20, ["b"] * 30])
    attrs = ("mean_", "var_", "n_samples_seen_") if Scaler is FederatedStandardScaler \
        else ("data_min_", "data_max_", "n_samples_seen_")
    for est in ests.values():
        for name in attrs:
            np.testing.assert_array_equal(getattr(est, name), getattr(ref, name))
        assert est.n_features_in_ == 3
    np.testing.assert_array_equal(ests["a"].transform(X[:20]), ref.transform(X[:20]))


def test_parties_with_different_columns_are_named():
    topo = HorizontalTopology(n_parties=2, party_names=["a", "b"])
    X = np.random.RandomState(8).normal(size=(20, 3))
    data = {"server": None, "a": X[:10], "b": X[10:, :2]}
    _, errors = _run_parties(lambda rt: FederatedStandardScaler(topo, runtime=rt), data)
    assert "hold different columns" in str(errors["server"])
    assert set(errors) == {"server", "a", "b"}


def test_command_line_parties_fit_a_scaler(tmp_path, capsys):
    """``python -m skfed party`` with a deployment file: each client's CSV (the target
    column left out), the server without data; every saved model has the pooled mean."""
    import csv
    import json

    from skfed import load
    from skfed.__main__ import main
    from skfed.runtime.grpc import free_local_ports

    X = np.random.RandomState(9).normal(10, 4, size=(40, 3))
    y = np.arange(40) % 2
    for name, rows in (("a", slice(0, 15)), ("b", slice(15, 40))):
        with open(tmp_path / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["x0", "x1", "label", "x2"])
            for row, label in zip(X[rows], y[rows]):
                w.writerow([repr(float(row[0])), repr(float(row[1])), label, repr(float(row[2]))])
    ports = free_local_ports(3)
    config = {"estimator": "FederatedStandardScaler", "params": {"with_mean": True},
              "topology": {"target": "label"}, "transport": {"insecure": True,
                                                              "connect_timeout": 10},
              "parties": {p: {"address": f"127.0.0.1:{port}"}
                          for p, port in zip(("server", "a", "b"), ports)}}
    (tmp_path / "fed.json").write_text(json.dumps(config))
    codes = {}

    def party(name):
        argv = ["party", "--role", name, "--config", str(tmp_path / "fed.json"),
                "--output", str(tmp_path / f"{name}-model.json")]
        if name != "server":
            argv += ["--data", str(tmp_path / f"{name}.csv")]
        codes[name] = main(argv)

    threads = [threading.Thread(target=party, args=(p,)) for p in ("server", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert codes == {"server": 0, "a": 0, "b": 0}, capsys.readouterr()
    ref = StandardScaler().fit(X)
    for name in ("server", "a", "b"):
        model = load(tmp_path / f"{name}-model.json")
        assert isinstance(model, FederatedStandardScaler)
        np.testing.assert_allclose(model.mean_, ref.mean_, rtol=1e-14)
        np.testing.assert_allclose(model.transform(X), ref.transform(X), rtol=1e-12)
    assert "scaling statistics of the federation" in capsys.readouterr().out
    # later, client a scales new rows of its own (no peer needed)
    code = main(["predict", "--role", "a", "--config", str(tmp_path / "fed.json"),
                 "--model", str(tmp_path / "a-model.json"), "--data", str(tmp_path / "a.csv"),
                 "--output", str(tmp_path / "a-scaled.csv")])
    assert code == 0
    with open(tmp_path / "a-scaled.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x0", "x1", "x2"]
    np.testing.assert_allclose(np.array(rows[1:], dtype=float), ref.transform(X[:15]),
                               rtol=1e-12)


@pytest.mark.parametrize("with_routing", [False, True])
def test_compare_with_centralised_twins_the_scaler(with_routing):
    from skfed import compare_with_centralised
    from skfed.compare import centralised_twin

    X, y, parties = _party_data()
    pipe = make_pipeline(FederatedStandardScaler(),
                         FederatedSGDClassifier(loss="log_loss", n_rounds=2, random_state=0))
    twin = centralised_twin(pipe)
    assert type(twin[0]) is StandardScaler
    pooled = make_pipeline(StandardScaler(), clone(pipe[-1]))
    with sklearn.config_context(enable_metadata_routing=with_routing):
        res = compare_with_centralised(pipe, X, y, cv=2, parties=parties)
        ref = compare_with_centralised(pooled, X, y, cv=2, parties=parties)
    # the same statistics as the pooled scaler's (to rounding): the same models
    np.testing.assert_allclose(res["federated"]["test_score"],
                               ref["federated"]["test_score"], atol=0.01)
    np.testing.assert_array_equal(res["centralised"]["test_score"],
                                  ref["centralised"]["test_score"])
    # the scaler's secure sums count among the bytes exchanged
    assert (res["federated"]["bytes_exchanged"] > ref["federated"]["bytes_exchanged"]).all()


def test_parties_with_an_empty_column_everywhere_are_told():
    """Each client sees only its own NaN column; the server finds it from the counts,
    before any value is summed, and every party stops naming the feature."""
    topo = HorizontalTopology(n_parties=2, party_names=["a", "b"])
    X = np.random.RandomState(8).normal(size=(20, 3))
    X[:, 1] = np.nan
    data = {"server": None, "a": X[:10], "b": X[10:]}
    _, errors = _run_parties(lambda rt: FederatedMinMaxScaler(topo, runtime=rt), data)
    assert r"feature(s) [1] hold no value at any client" in str(errors["server"])
    for p in ("a", "b"):
        assert "hold no value" in str(errors[p].reason)


# -- a deviating party ---------------------------------------------------------------------

class _Rewriting:
    """A party's context that rewrites its outgoing messages under one tag."""

    def __init__(self, ctx, tag, rewrite):
        self._ctx, self._tag, self._rewrite = ctx, tag, rewrite

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def send(self, to, tag, payload, kind="plain"):
        if tag == self._tag:
            payload = self._rewrite(payload)
        return self._ctx.send(to, tag, payload, kind=kind)

    def broadcast(self, receivers, tag, payload, kind="plain"):
        for to in receivers:
            self.send(to, tag, payload, kind=kind)


def test_clients_refuse_thresholds_of_the_wrong_layout(monkeypatch):
    from skfed.runtime import RoleError
    from skfed.runtime.party import ProtocolMismatch

    def short(payload):
        return dict(payload, upper=None if payload["upper"] is None else payload["upper"][:1])

    honest = FederatedMinMaxScaler._server_role
    monkeypatch.setattr(FederatedMinMaxScaler, "_server_role", staticmethod(
        lambda ctx, cfg: honest(_Rewriting(ctx, "minmax_thresholds", short), cfg)))
    X = np.random.RandomState(0).normal(size=(20, 3))
    with pytest.raises((RoleError, ProtocolMismatch),
                       match=r"'minmax_thresholds' from 'server' has shape \(1,\)"):
        FederatedMinMaxScaler().fit(X)


def test_server_refuses_an_upload_of_the_wrong_size(monkeypatch):
    from skfed.runtime import RoleError
    from skfed.runtime.party import ProtocolMismatch

    honest = FederatedStandardScaler._client_role
    monkeypatch.setattr(FederatedStandardScaler, "_client_role", staticmethod(
        lambda ctx, X, cfg: honest(_Rewriting(ctx, "scaler_stats", lambda p: p[:-1]), X, cfg)))
    X = np.random.RandomState(0).normal(size=(20, 3))
    with pytest.raises((RoleError, ProtocolMismatch), match="'scaler_stats' from 'client"):
        FederatedStandardScaler().fit(X)


def test_parties_that_would_scale_differently_are_named():
    topo = HorizontalTopology(n_parties=2, party_names=["a", "b"])
    X = np.random.RandomState(8).normal(size=(20, 3))
    data = {"server": None, "a": X[:10], "b": X[10:]}
    _, errors = _run_parties(lambda rt: FederatedMinMaxScaler(
        topo, runtime=rt, feature_range=(-1, 1) if rt.party == "b" else (0, 1)), data)
    assert "feature_range: 'b' has (-1.0, 1.0)" in str(errors["server"])


def test_extreme_floats_are_exact():
    """Subnormals, signed zeros and values near the float64 limits."""
    col = [5e-324, -5e-324, 0.0, -0.0, 2.2250738585072014e-308, 1e-300, -3e-310]
    big = [1e300, -1e300, 1.7976931348623157e307, 3.0, -2.5e299, 0.0, 7e150]
    X = np.c_[col, big, [-0.0] * 7]
    parties = [0, 1, 2, 0, 1, 2, 0]
    fed = FederatedMinMaxScaler(secure_aggregation=None).fit(X, parties=parties)
    ref = MinMaxScaler().fit(X)
    np.testing.assert_array_equal(fed.data_min_, ref.data_min_)
    np.testing.assert_array_equal(fed.data_max_, ref.data_max_)
    std = FederatedStandardScaler(secure_aggregation=None).fit(X[:, :1], parties=parties)
    assert (std.mean_[0], std.var_[0]) == _exact_moments(X[:, 0])


class _OnePartyNoRun:
    """A one-party runtime that fails the test if the protocol starts."""

    def __init__(self, party, parties=("server", "a", "b")):
        self.party, self.parties = party, list(parties)

    def run(self, roles):
        raise AssertionError("a message would have been sent")


@pytest.mark.parametrize("Scaler", SCALERS)
@pytest.mark.parametrize("party, X, kw, match", [
    ("a", np.empty((0, 3)), {}, "0 sample"),
    ("server", np.zeros((2, 3)), {}, "holds no data"),
    ("a", np.zeros((2, 3)), {"parties": ["a", "b"]}, "parties= applies to simulations"),
    ("a", np.zeros((2, 3)), {"runtime_parties": ("server", "a", "c")}, "do not match"),
])
def test_party_mode_bad_input_fails_before_any_message(Scaler, party, X, kw, match):
    topo = HorizontalTopology(n_parties=2, party_names=["a", "b"])
    kw = dict(kw)  # (the parametrized dict is shared by both scalers)
    runtime = _OnePartyNoRun(party, kw.pop("runtime_parties", ("server", "a", "b")))
    with pytest.raises(ValueError, match=match):
        Scaler(topo, runtime=runtime).fit(X, **kw)
