import numpy as np
import pytest
from sklearn.datasets import make_classification

from skfed import FederatedSGDClassifier

callback = pytest.importorskip("sklearn.callback")


class Recorder:
    """A FitCallback that records what it sees and can stop the fit."""

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.ends = []
        self.begins = 0
        self.setup_called = self.teardown_called = False

    def setup(self, estimator, context):
        self.setup_called = True

    def teardown(self, estimator, context):
        self.teardown_called = True

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.begins += 1

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
        if context.task_name not in ("round", "iteration"):
            return False
        self.ends.append(fitted_estimator)
        return self.stop_after is not None and len(self.ends) >= self.stop_after


def _data():
    return make_classification(n_samples=120, n_features=4, random_state=0)


def test_callbacks_see_every_round_with_a_usable_model():
    X, y = _data()
    rec = Recorder()
    clf = FederatedSGDClassifier(n_rounds=4, random_state=0, loss="log_loss")
    clf.set_callbacks(rec).fit(X, y)
    assert rec.setup_called and rec.teardown_called
    assert len(rec.ends) == 4
    # the estimator a callback receives predicts like the model of that round
    last = rec.ends[-1]
    np.testing.assert_allclose(last.coef_, clf.coef_)
    assert last.score(X, y) == clf.score(X, y)


def test_a_callback_can_stop_the_fit():
    X, y = _data()
    clf = FederatedSGDClassifier(n_rounds=10, random_state=0)
    clf.set_callbacks(Recorder(stop_after=3)).fit(X, y)
    assert clf.n_iter_ == 3


def test_progress_lines(capsys):
    X, y = _data()
    FederatedSGDClassifier(n_rounds=2, verbose=1, random_state=0).fit(X, y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[skfed]")]
    assert len(lines) == 2
    assert "round 2/2" in lines[1] and "objective" in lines[1] and "MB" in lines[1]


def test_vertical_progress_and_callbacks(capsys):
    from skfed import VerticalLogisticRegression, VerticalTopology

    X, y = _data()
    topo = VerticalTopology({"a": [0, 1], "b": [2, 3]}, label_party="a")
    rec = Recorder(stop_after=2)
    est = VerticalLogisticRegression(topo, encryption=None, max_iter=10, tol=None, verbose=1)
    est.set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 2 and len(rec.ends) == 2
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[skfed]")]
    # the label party prints the lines (the arbiter serves the callbacks)
    assert len(lines) == 2
    assert lines[0].startswith("[skfed] a epoch 1/10: objective")


def test_transfer_progress_and_callbacks(capsys):
    from skfed import FederatedTransferClassifier

    X, y = _data()
    rec = Recorder(stop_after=2)
    est = FederatedTransferClassifier(encryption=None, max_iter=10, tol=0.0, verbose=1,
                                      random_state=0)
    est.set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 2 and len(rec.ends) == 2
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[skfed]")]
    assert lines[0].startswith("[skfed] iteration 1/10: objective")
