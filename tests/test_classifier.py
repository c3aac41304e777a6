"""MixtureOfExpertsClassifier."""

import numpy as np
import pytest
from conftest import assert_log_likelihood_increasing, assert_monotone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skmoe import MixtureOfExpertsClassifier
from skmoe.datasets import make_regional_classification


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_one_expert_equals_logistic_regression(n_classes, alpha):
    X, y = load_iris(return_X_y=True)
    if n_classes == 2:
        y = (y == 2).astype(int)
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    model = MixtureOfExpertsClassifier(1, expert_alpha=alpha, tol=1e-12)
    model.fit(X, y, sample_weight=w)
    # lbfgs stops ~1e-6 short of the optimum; newton-cholesky reaches it
    ref = LogisticRegression(C=1 / alpha, tol=1e-12, max_iter=1000, solver="newton-cholesky")
    ref.fit(X, y, sample_weight=w)
    coef = model.expert_coef_.reshape(ref.coef_.shape)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), rtol=1e-6, atol=1e-9)


def test_regional_problem_beats_a_global_linear_boundary():
    X, y = make_regional_classification(3000, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = MixtureOfExpertsClassifier(3, n_init=3, random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.97
    assert LogisticRegression().fit(X_train, y_train).score(X_test, y_test) < 0.8


def test_string_labels_and_probability_outputs():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = MixtureOfExpertsClassifier(2, random_state=0).fit(X, names)
    first_rows = np.sort(np.unique(y, return_index=True)[1])
    np.testing.assert_array_equal(model.classes_, names[first_rows])
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.log(proba), model.predict_log_proba(X), rtol=1e-10)
    experts = model.predict_experts(X)
    assert experts.shape == (150, 2, 3)
    np.testing.assert_allclose(np.einsum("nk,nkc->nc", model.predict_gate(X), experts), proba)
    assert set(model.predict(X)) <= set(names)
    assert model.score(X, names) > 0.95
    # responsibilities and log-likelihood per sample use the labels
    resp = model.predict_responsibilities(X, names)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)
    log_lik = model.score_samples(X, names)
    np.testing.assert_allclose(log_lik, np.log(proba[np.arange(150), y]), rtol=1e-10)
    with pytest.raises(ValueError, match=r"labels not in classes_ .*\[.rose.\]"):
        model.score_samples(X[:2], ["setosa", "rose"])


def test_classifier_em_ascent():
    X, y = load_iris(return_X_y=True)
    model = MixtureOfExpertsClassifier(3, gate_alpha=0.5, random_state=0)
    assert_log_likelihood_increasing(model, X, y, 60)


def test_continuous_labels_are_refused():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="Unknown label type"):
        MixtureOfExpertsClassifier().fit(X, y + 0.5)


@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")
def test_parameter_count():
    X, y = load_iris(return_X_y=True)
    model = MixtureOfExpertsClassifier(2, gate_features=[0], random_state=0).fit(X, y)
    # gate (K-1)(1+1) = 2; experts K (C-1)(p+1) = 2 * 2 * 5 = 20
    assert model._n_parameters() == 22


# ------------------------------------------------ the L-BFGS end of EM (squarem-lbfgs)
def _observed(estimator, X, y, sample_weight=None):
    from skmoe._blocks import InMemoryBlocks
    from skmoe._direct import objective_and_gradient
    from skmoe._em import ParameterVector

    data, _ = estimator._validate_fit_data(X, y, sample_weight, None)
    source = InMemoryBlocks([data])
    vector = ParameterVector(estimator._model.family, estimator._params)

    def value_and_gradient(theta):
        return objective_and_gradient(estimator._model, source, vector.unflatten(theta))

    return value_and_gradient, vector.flatten(estimator._params)


@pytest.mark.parametrize("hierarchical", [False, True])
def test_observed_gradient_matches_finite_differences(hierarchical):
    from skmoe import HierarchicalMixtureOfExpertsClassifier

    X, y = load_iris(return_X_y=True)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    params = {"random_state": 0, "max_iter": 3, "expert_alpha": 0.3, "gate_alpha": 0.2}
    model = (HierarchicalMixtureOfExpertsClassifier(2, 2, **params) if hierarchical
             else MixtureOfExpertsClassifier(3, **params))
    with pytest.warns(ConvergenceWarning):
        model.fit(X, y, sample_weight=weights)
    value_and_gradient, theta = _observed(model, X, y, weights)
    value, gradient = value_and_gradient(theta)
    assert value == pytest.approx(model.objective_, rel=1e-12)
    h = 1e-6
    numeric = [(value_and_gradient(theta + h * e)[0] - value_and_gradient(theta - h * e)[0])
               / (2 * h) for e in np.eye(theta.size)]
    np.testing.assert_allclose(gradient, numeric, rtol=0, atol=1e-6)


def test_lbfgs_end_reaches_ems_maximum_and_is_monotone():
    # four digits on 32 pixels: nearly separable, EM's convergence rate is close to 1
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=4, return_X_y=True)
    X, y = X[:300, ::2] / 16.0, y[:300]
    start = np.random.default_rng(1).dirichlet(np.ones(3), size=len(y))
    common = {"init_params": start, "tol": 1e-8, "max_iter": 5000}
    em = MixtureOfExpertsClassifier(3, acceleration="squarem", **common).fit(X, y)
    direct = MixtureOfExpertsClassifier(3, acceleration="squarem-lbfgs", **common).fit(X, y)
    assert em.converged_ and direct.converged_
    # the same maximum (L-BFGS to a gradient of 1e-9 from either end: -16.381234)
    assert direct.objective_ == pytest.approx(em.objective_, abs=1e-4)
    assert direct.objective_ == pytest.approx(-16.381234, abs=1e-4)
    assert_monotone(direct.objective_trace_, rtol=1e-9)
    value_and_gradient, theta = _observed(direct, X, y)
    assert np.abs(value_and_gradient(theta)[1]).max() < 1e-3


def test_lbfgs_acceleration_is_squarem_where_it_does_not_apply():
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_moe_regression

    X, y = make_moe_regression(300, 2, 2, random_state=0)
    fits = [MixtureOfExpertsRegressor(2, acceleration=a, random_state=0).fit(X, y)
            for a in ("squarem", "squarem-lbfgs")]
    assert fits[0].objective_ == fits[1].objective_
    assert fits[0].n_iter_ == fits[1].n_iter_
