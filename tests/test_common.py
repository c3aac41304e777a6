"""scikit-learn's estimator checks."""

import pytest
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)

SCORE_SAMPLES_REASON = (
    "score_samples(X, y) is the conditional log-density log p(y | x): it needs y, and the "
    "check calls it with X alone. Its row-order and subset invariance are tested in "
    "tests/test_regressor.py::test_score_samples_rowwise."
)


BERNOULLI_REASON = (
    "Bernoulli experts model a binary response: fit refuses y outside {0, 1}, and these "
    "regressor checks fit continuous targets. The family is checked on binary data in "
    "tests/test_families.py and, as the two-class classifier, by the checks below."
)
BERNOULLI_CONTINUOUS_TARGET_CHECKS = [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_sample_weights_pandas_series",
    "check_sample_weights_not_an_array",
    "check_sample_weights_list",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
    "check_dtype_object",
    "check_f_contiguous_array_estimator",
    "check_regressors_train",
    "check_regressor_data_not_an_array",
    "check_regressors_no_decision_function",
    "check_supervised_y_2d",
    "check_regressors_int",
    "check_non_transformer_estimators_n_iter",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_sample_weight_equivalence_on_dense_data",
    "check_estimators_partial_fit_n_features",
    "check_sample_weight_equivalence_on_sparse_data",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
]
STOPPING_REASON = (
    "On the check's 15 rows of 30 features the hierarchical classifier's objective is "
    "nearly flat along its gates: the weighted and repeated fits (from k-means starts on "
    "dense X, random starts on sparse X) both stop within tol=1e-6 of the same limit, up to "
    "7e-7 apart in predict_proba, over the check's rtol=1e-7; which side of it they land on "
    "is decided by rounding. With tol=1e-10 both checks pass (measured)."
)
RIDGE_REASON = (
    "The check fits 15 rows with 30 features: each expert interpolates its rows, its "
    "dispersion is held at the floor, and the penalised likelihood is flat along a ridge of "
    "very different coefficients. Weighted and repeated fits of the hierarchical model on "
    "sparse X start alike and end equal to rounding in the objective, but SQUAREM's long "
    "steps move along the ridge by amounts that rounding decides, and the predictions part "
    "by 3e-5. On a well-posed problem the default fit with integer weights equals the fit on "
    "repeated rows (tests/test_default_fit.py). (The gamma regressor was listed too until its "
    "log density kept its digits at huge shapes; it now passes both checks for "
    "random_state 0-7.)"
)


def _expected_failed_checks(estimator):
    expected = {
        "check_methods_sample_order_invariance": SCORE_SAMPLES_REASON,
        "check_methods_subset_invariance": SCORE_SAMPLES_REASON,
    }
    if isinstance(estimator, HierarchicalMixtureOfExpertsClassifier):
        expected["check_sample_weight_equivalence_on_dense_data"] = STOPPING_REASON
        expected["check_sample_weight_equivalence_on_sparse_data"] = STOPPING_REASON
    if isinstance(estimator, HierarchicalMixtureOfExpertsRegressor):
        expected["check_sample_weight_equivalence_on_sparse_data"] = RIDGE_REASON
    if getattr(estimator, "expert", None) == "bernoulli":
        expected |= dict.fromkeys(BERNOULLI_CONTINUOUS_TARGET_CHECKS, BERNOULLI_REASON)
    return expected


ESTIMATORS = [
    MixtureOfExpertsRegressor(n_experts=2, random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="poisson", random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="gamma", random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="bernoulli", random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="negative_binomial", random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="student_t", random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, expert="zero_inflated_poisson", random_state=0),
    MixtureOfExpertsClassifier(n_experts=2, random_state=0),
    HierarchicalMixtureOfExpertsRegressor(depth=2, branching=2, random_state=0),
    HierarchicalMixtureOfExpertsClassifier(depth=2, branching=2, random_state=0),
]


# The checks fit tiny random data, where an expert may interpolate a few points (its
# variance is held at the floor) or get no sample: skmoe reports that, which is right there.
@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_param_validation():
    for estimator in ESTIMATORS:
        check_param_validation(type(estimator).__name__, estimator)
