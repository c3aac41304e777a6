"""Pipelines: the log-likelihood scorer, select_n_experts, column names, the recipes."""

import numpy as np
import pytest
from sklearn.compose import make_column_transformer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import (
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsRegressor,
    select_n_experts,
)
from skmoe.datasets import make_moe_regression
from skmoe.metrics import final_estimator, log_likelihood_scorer, mean_log_likelihood


@pytest.fixture(scope="module")
def data():
    return make_moe_regression(600, 2, 2, random_state=3)


def test_scorer_on_a_pipeline_equals_the_mean_score_samples_per_fold(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(2, random_state=0))
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X, y, cv=cv, scoring=log_likelihood_scorer)
    assert np.all(np.isfinite(scores))
    for score, (train, test) in zip(scores, cv.split(X)):
        fitted = pipe.fit(X[train], y[train])
        expected = fitted[-1].score_samples(fitted[:-1].transform(X[test]), y[test]).mean()
        assert score == pytest.approx(expected, rel=1e-10)


def test_scorer_on_a_classifier_pipeline():
    from sklearn.datasets import load_iris

    from skmoe import MixtureOfExpertsClassifier

    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsClassifier(2, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3, scoring=log_likelihood_scorer)
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)


def test_scorer_in_a_grid_search_over_a_pipeline(data):
    X, y = data
    search = GridSearchCV(
        make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0)),
        {"mixtureofexpertsregressor__n_experts": [1, 2]},
        cv=3,
        scoring=log_likelihood_scorer,
    ).fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["mixtureofexpertsregressor__n_experts"] == 2


def test_mean_log_likelihood_takes_weights_and_plain_estimators(data):
    X, y = data
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    w = np.arange(len(y)) % 3
    expected = np.average(model.score_samples(X, y), weights=w)
    assert mean_log_likelihood(model, X, y, sample_weight=w) == pytest.approx(expected)
    assert final_estimator(model, X) == (model, X)


def test_select_n_experts_on_a_pipeline(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(n_init=2, random_state=0))
    best, scores = select_n_experts(pipe, X, y, [1, 2])
    assert set(scores) == {1, 2} and best[-1].n_experts == 2
    model, Xt = final_estimator(best, X)
    assert scores[2] == pytest.approx(model.bic(Xt, y))
    named, _ = select_n_experts(pipe, X, y, [1, 2], param="mixtureofexpertsregressor__n_experts")
    assert named[-1].n_experts == 2
    w = np.ones(len(y))
    weighted, weighted_scores = select_n_experts(
        pipe, X, y, [2], mixtureofexpertsregressor__sample_weight=w
    )
    assert weighted_scores[2] == pytest.approx(scores[2])
    tree = make_pipeline(StandardScaler(), HierarchicalMixtureOfExpertsRegressor(random_state=0))
    best_tree, tree_scores = select_n_experts(tree, X, y, [1])
    assert set(tree_scores) == {1} and best_tree[-1].depth == 1
    with pytest.raises(ValueError, match="step__name|mixtureofexpertsregressor__n_experts"):
        select_n_experts(pipe, X, y, [1], param="n_experts")


def test_feature_name_errors_list_the_columns_and_hint_at_prefixes():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"bmi": rng.normal(size=60), "age": rng.normal(size=60)})
    y = X["bmi"].to_numpy() + rng.normal(size=60)
    pipe = make_pipeline(
        make_column_transformer((StandardScaler(), ["bmi", "age"])),
        MixtureOfExpertsRegressor(2, gate_features=["bmi"], random_state=0),
    ).set_output(transform="pandas")
    with pytest.raises(ValueError) as error:
        pipe.fit(X, y)
    message = str(error.value)
    assert "gate_features names columns not in X: bmi." in message
    assert "standardscaler__bmi, standardscaler__age" in message
    assert "bmi -> standardscaler__bmi" in message and "np.str_" not in message
    pipe.set_params(mixtureofexpertsregressor__gate_features=["standardscaler__bmi"])
    assert pipe.fit(X, y)[-1].gate_features_in_.tolist() == [0]
    plain = make_pipeline(
        StandardScaler(), MixtureOfExpertsRegressor(2, gate_features=["bmi"], random_state=0)
    )
    with pytest.raises(ValueError, match='set_output\\(transform="pandas"\\)'):
        plain.fit(X, y)
