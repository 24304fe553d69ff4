"""scikit-learn's common estimator checks for every skfed estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from . import instances


@parametrize_with_checks(instances.test_instances(),
                         expected_failed_checks=instances.expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
