"""scikit-learn's common estimator checks for every skfed estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from . import instances


@parametrize_with_checks(instances.test_instances(),
                         expected_failed_checks=instances.expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# The full common checks of the encrypted modes are slow (tests/test_vertical.py's
# test_sklearn_checks_encrypted); these cheap ones run every encrypted family's fit,
# predict and parameter handling in the default suite, with small keys.
_ENCRYPTED_CHECKS = ["check_fit_score_takes_y", "check_n_features_in",
                     "check_dont_overwrite_parameters", "check_fit_check_is_fitted",
                     "check_estimators_overwrite_params", "check_fit2d_predict1d",
                     "check_methods_sample_order_invariance", "check_fit_idempotent"]


def _encrypted_instances():
    from skfed import (
        FederatedSGDClassifier,
        FederatedTransferClassifier,
        VerticalLinearRegression,
        VerticalLogisticRegression,
    )

    return {
        "horizontal-paillier": (FederatedSGDClassifier(
            secure_aggregation="paillier", key_size=1024, n_rounds=3, random_state=0),
            "check_classifiers_train"),
        "horizontal-masking": (FederatedSGDClassifier(n_rounds=3, random_state=0),
                               "check_classifiers_train"),
        "vertical-linear": (VerticalLinearRegression(key_size=512, max_iter=10,
                                                     random_state=0),
                            "check_regressors_train"),
        # (check_classifiers_train takes 7-15 s with encryption: slow suite only)
        "vertical-logistic": (VerticalLogisticRegression(key_size=512, max_iter=10,
                                                         random_state=0), None),
        "transfer": (FederatedTransferClassifier(hidden_layer_sizes=(2,), representation_dim=2,
                                                 key_size=512, max_iter=5, random_state=0),
                     None),
    }


_ENCRYPTED_CASES = [(name, check) for name, (_, train) in _encrypted_instances().items()
                    for check in _ENCRYPTED_CHECKS + ([train] if train else [])]


@pytest.mark.parametrize("name, check", _ENCRYPTED_CASES,
                         ids=[f"{n}-{c}" for n, c in _ENCRYPTED_CASES])
def test_encrypted_common_checks(name, check):
    import sklearn.utils.estimator_checks as ec
    from sklearn.base import clone

    estimator = _encrypted_instances()[name][0]
    getattr(ec, check)(type(estimator).__name__, clone(estimator))
