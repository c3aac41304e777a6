"""scikit-learn's estimator checks."""

from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from skmoe import MixtureOfExpertsRegressor

SAMPLE_WEIGHT_REASON = (
    "EM starts from random responsibilities drawn per row, so repeating rows changes the "
    "starting point; integer weights equal repeated rows exactly at the M-step and for the "
    "whole fit from the same start (tests/test_regressor.py::test_sample_weight_*)."
)


SCORE_SAMPLES_REASON = (
    "score_samples(X, y) is the conditional log-density log p(y | x): it needs y, and the "
    "check calls it with X alone. Its row-order and subset invariance are tested in "
    "tests/test_regressor.py::test_score_samples_rowwise."
)


def _expected_failed_checks(estimator):
    return {
        "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_REASON,
        "check_methods_sample_order_invariance": SCORE_SAMPLES_REASON,
        "check_methods_subset_invariance": SCORE_SAMPLES_REASON,
    }


ESTIMATORS = [
    MixtureOfExpertsRegressor(n_experts=2, random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="poisson", random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="gamma", random_state=0),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_param_validation():
    for estimator in ESTIMATORS:
        check_param_validation(type(estimator).__name__, estimator)
