"""Hierarchical mixtures of experts: one engine with the flat model, exact E-step, ascent."""

import itertools

import numpy as np
import pytest
from conftest import assert_log_likelihood_increasing
from scipy.special import softmax
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeRegressor

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    export_text,
)
from skmoe._em import EMData, MixtureOfExpertsModel
from skmoe._families import GaussianExperts
from skmoe._gate import GateTree
from skmoe.datasets import make_moe_regression, make_regional_classification


def test_depth_one_equals_the_flat_model_from_the_same_start():
    X, y = make_moe_regression(500, 3, 3, random_state=0)
    resp = np.random.default_rng(0).dirichlet(np.ones(3), size=500)
    params = {"init_params": resp, "tol": 1e-10, "max_iter": 300, "gate_alpha": 0.1}
    flat = MixtureOfExpertsRegressor(3, **params).fit(X, y)
    tree = HierarchicalMixtureOfExpertsRegressor(depth=1, branching=3, **params).fit(X, y)
    np.testing.assert_allclose(tree.expert_coef_, flat.expert_coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(tree.expert_variance_, flat.expert_variance_, rtol=1e-8)
    np.testing.assert_allclose(tree.gate_coef_[0], flat.gate_coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        tree.gate_intercept_[0], flat.gate_intercept_, rtol=1e-8, atol=1e-10
    )


def test_e_step_equals_brute_force_path_enumeration():
    depth, branching, n, d = 3, 3, 50, 2
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    K = branching**depth
    gate = GateTree(depth, branching)
    V = [rng.normal(size=(branching**level, branching, d + 1)) for level in range(depth)]
    experts = {"coef": rng.normal(size=(K, d + 1)), "variance": rng.uniform(0.5, 2, size=K)}
    model = MixtureOfExpertsModel(GaussianExperts(K), gate)
    log_lik, resp = model.e_step(EMData(X, X, y, np.ones(n)), {"gate": V, "experts": experts})

    X1 = np.column_stack([np.ones(n), X])
    prior = np.ones((K, n))
    for leaf, path in enumerate(itertools.product(range(branching), repeat=depth)):
        node = 0
        for level, child in enumerate(path):
            prior[leaf] *= softmax(X1 @ V[level][node].T, axis=1)[:, child]
            node = node * branching + child
    mean = experts["coef"] @ X1.T
    density = np.exp(-0.5 * (y - mean) ** 2 / experts["variance"][:, None]) / np.sqrt(
        2 * np.pi * experts["variance"][:, None]
    )
    joint = prior * density
    np.testing.assert_allclose(resp, joint / joint.sum(axis=0), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(log_lik, np.log(joint.sum(axis=0)), rtol=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_em_ascent_for_every_depth(depth):
    X, y = make_moe_regression(400, 2, 4, random_state=depth)
    model = HierarchicalMixtureOfExpertsRegressor(depth, 2, gate_alpha=0.1, random_state=0)
    assert_log_likelihood_increasing(model, X, y, 40)


def _four_regimes(n, rng):
    X = rng.uniform(-1, 1, size=(n, 2))
    regime = 2 * (X[:, 0] > 0.2) + (X[:, 1] > -0.3)
    A = np.array([[1.0, 2, -1], [-2, -1, 3], [0.5, 3, 2], [-1, -2, -3]])
    y = A[regime, 0] + np.einsum("ij,ij->i", A[regime, 1:], X) + 0.3 * rng.normal(size=n)
    return X, y


def test_four_regimes_reach_the_noise_ceiling_and_beat_cart():
    rng = np.random.default_rng(0)
    X, y = _four_regimes(4000, rng)
    X_test, y_test = _four_regimes(4000, rng)
    ceiling = 1 - 0.3**2 / y_test.var()
    hme = HierarchicalMixtureOfExpertsRegressor(2, 2, gate_alpha=0.0, n_init=3, random_state=0)
    # the regimes are split by hard boundaries: the ML gate does not exist, and says so
    with pytest.warns(DegenerateFitWarning, match="separates"):
        score = hme.fit(X, y).score(X_test, y_test)
    assert score >= ceiling - 0.01
    cart4 = DecisionTreeRegressor(max_leaf_nodes=4, random_state=0).fit(X, y)
    cart_cv = GridSearchCV(
        DecisionTreeRegressor(random_state=0),
        {"max_leaf_nodes": [4, 16, 64, 256], "min_samples_leaf": [1, 5, 20]},
        cv=3,
    ).fit(X, y)
    assert score > cart4.score(X_test, y_test)
    assert score > cart_cv.score(X_test, y_test)


def test_leaf_probabilities_apply_and_export_text():
    X, y = make_moe_regression(300, 2, 4, random_state=3)
    hme = HierarchicalMixtureOfExpertsRegressor(2, 2, random_state=0).fit(X, y)
    leaf = hme.predict_leaf_proba(X)
    assert leaf.shape == (300, 4)
    np.testing.assert_allclose(leaf.sum(axis=1), 1.0)
    np.testing.assert_array_equal(hme.apply(X), leaf.argmax(axis=1))
    assert hme.gate_coef_.shape == (3, 2, 2) and hme.gate_intercept_.shape == (3, 2)
    np.testing.assert_allclose(hme.predict(X), (leaf * hme.predict_experts(X)).sum(axis=1))
    text = export_text(hme, feature_names=["a", "b"])
    assert text.count("|--- gate") == 3 and text.count("|--- expert") == 4
    assert "*a" in text and "variance" in text


def test_canonical_order_sorts_children_by_mass():
    X, y = make_moe_regression(600, 2, 4, random_state=5)
    hme = HierarchicalMixtureOfExpertsRegressor(2, 2, random_state=1).fit(X, y)
    mass = hme.predict_responsibilities(X, y).sum(axis=0)
    pairs = mass.reshape(2, 2)
    assert np.all(pairs[:, 0] >= pairs[:, 1])
    assert pairs[0].sum() >= pairs[1].sum()


@pytest.mark.filterwarnings("ignore::skmoe.DegenerateFitWarning")  # 3 regions, 4 leaves
def test_hierarchical_classifier():
    X, y = make_regional_classification(1500, random_state=0)
    clf = HierarchicalMixtureOfExpertsClassifier(2, 2, n_init=2, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    flat = MixtureOfExpertsClassifier(4, n_init=2, random_state=0).fit(X, y)
    assert clf.predict_proba(X).shape == flat.predict_proba(X).shape == (1500, 2)


def test_tree_initialisation_seeds_experts_from_cart_leaves():
    X, y = make_moe_regression(500, 2, 4, random_state=2)
    hme = HierarchicalMixtureOfExpertsRegressor(2, 2, init_params="tree", random_state=0)
    assert np.isfinite(hme.fit(X, y).log_likelihood_)
