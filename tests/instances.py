"""The one place where every estimator's common-check test instances are built.

Each family adds its section; ``tests/test_common.py`` feeds the list to
``parametrize_with_checks``. Instances use small, insecure keys (the test
suite sets ``SKFED_ALLOW_INSECURE_KEYS=1``) and few iterations so the
common checks stay fast.
"""


def _horizontal():
    from skfed import FederatedSGDClassifier, FederatedSGDRegressor

    return [
        FederatedSGDClassifier(n_rounds=20, local_epochs=5, random_state=0),
        FederatedSGDRegressor(n_rounds=5, random_state=0),
    ]


def _preprocessing():
    from skfed import FederatedMinMaxScaler, FederatedStandardScaler

    # Masked, as in a real federation: the statistics are exact whatever the split,
    # so every check that compares two fits sees identical results.
    return [FederatedStandardScaler(), FederatedMinMaxScaler()]


# -- vertical ------------------------------------------------------------------
def _vertical():
    from skfed import VerticalLinearRegression, VerticalLogisticRegression

    # encryption=None runs the same protocol and messages in the clear: the
    # checks fit dozens of times on hundreds of rows, which Paillier would make
    # minutes long. tests/test_vertical.py runs the encrypted path.
    return [
        VerticalLinearRegression(encryption=None, random_state=0),
        VerticalLogisticRegression(encryption=None, random_state=0),
    ]


def _boosting():
    from skfed import VerticalGradientBoostingClassifier, VerticalGradientBoostingRegressor

    # Unencrypted, as the linear ones (tests/test_secureboost.py proves the
    # Paillier mode gives the same trees); min_samples_leaf=1 because the
    # checks fit on as few as 6 rows and fit refuses rows too few to split.
    return [
        VerticalGradientBoostingClassifier(encryption=None, max_iter=10, min_samples_leaf=1,
                                           random_state=0),
        VerticalGradientBoostingRegressor(encryption=None, max_iter=10, min_samples_leaf=1,
                                          random_state=0),
    ]


def _horizontal_boosting():
    from skfed import (
        FederatedHistGradientBoostingClassifier,
        FederatedHistGradientBoostingRegressor,
    )

    # Masked (the default); min_samples_leaf=1 because the checks fit on as few
    # as 6 rows and fit refuses rows too few to split.
    return [
        FederatedHistGradientBoostingClassifier(max_iter=5, min_samples_leaf=1,
                                                random_state=0),
        FederatedHistGradientBoostingRegressor(max_iter=5, min_samples_leaf=1,
                                               random_state=0),
    ]


# -- transfer ------------------------------------------------------------------
def _transfer():
    # topology=None splits the columns in halves between "source" and
    # "target"; with the checks' complete rows every row is then in the
    # overlap and labelled, so ordinary X, y exercise the whole protocol
    # (Phi from the source, the target's scores, alignment). Unencrypted
    # here to keep the ~50 checks fast; tests/test_transfer.py proves the
    # Paillier mode sends the same messages and gives the same numbers.
    # Small networks: the checks fit on as few as 12 rows, and fit refuses
    # batches where a party's gradient would determine the other party's
    # representations (more parameters than the batch has values).
    from skfed import FederatedTransferClassifier
    from skfed.transfer import OverlapBaseline

    return [
        FederatedTransferClassifier(hidden_layer_sizes=(2,), representation_dim=2,
                                    encryption=None, max_iter=100, random_state=0),
        OverlapBaseline(),
    ]


SECTIONS = [_horizontal, _preprocessing, _vertical, _boosting, _horizontal_boosting, _transfer]


def test_instances():
    """Every estimator instance to run the scikit-learn common checks on."""
    return [est for section in SECTIONS for est in section()]


_DIVERGES = (
    "the check's features are ~N(100, 1): plain SGD with eta0=0.01 diverges on them; "
    "secure aggregation refuses to encode the diverged update (OverflowError) where "
    "scikit-learn's SGDRegressor silently returns ~1e11 coefficients"
)

_TRANSFER = {
    "check_estimators_nan_inf": (
        "NaN in all of a party's columns is the documented way to say 'this party "
        "does not hold the row' (prediction needs only the target's columns); a "
        "stray NaN inside a party's columns is a ValueError, but not one the check "
        "can provoke in the columns prediction ignores"
    ),
    "check_classifiers_classes": (
        "y = -1 marks an unlabelled row (scikit-learn's semi-supervised convention), "
        "so the check's labels {-1, 1} leave a single class"
    ),
}

EXPECTED_FAILED_CHECKS = {
    "FederatedTransferClassifier": _TRANSFER,
    "OverlapBaseline": _TRANSFER,
    "FederatedSGDRegressor": {
        "check_fit_idempotent": _DIVERGES,
        "check_n_features_in": _DIVERGES,
        "check_fit_check_is_fitted": _DIVERGES,
    },
}


def expected_failed_checks(estimator):
    """Checks that cannot apply to an estimator, each with its reason."""
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})
