"""What users of sklearn's mixtures and GLMs expect: weights_, hard assignments,
class_weight, decision_function, loaders as frames, sample_y's shape, a short warning,
a readable export_text."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from skmoe import (
    DegenerateFitWarning,
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    export_text,
)
from skmoe.datasets import (
    load_co2,
    load_mcycle,
    load_nodata,
    load_npreg,
    load_tone,
    make_moe_regression,
    make_regional_classification,
)


@pytest.fixture(scope="module")
def tone():
    return load_tone(return_X_y=True)


@pytest.mark.parametrize("tree", [False, True])
def test_weights_with_a_constant_gate(tone, tree):
    X, y = tone
    if tree:
        model = HierarchicalMixtureOfExpertsRegressor(2, 2, gate_features=[], random_state=0)
    else:
        model = MixtureOfExpertsRegressor(2, gate_features=[], random_state=0)
    model.fit(X, y)
    np.testing.assert_allclose(model.weights_, model.predict_gate(X[:1])[0], rtol=1e-12)
    assert model.weights_.sum() == pytest.approx(1.0)
    gated = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    assert not hasattr(gated, "weights_") and not hasattr(MixtureOfExpertsRegressor(), "weights_")
    with pytest.raises(AttributeError, match="gate_features=\\[\\]"):
        gated.weights_  # noqa: B018


def test_assign_experts_is_the_argmax_of_the_responsibilities(tone):
    X, y = tone
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    labels = model.assign_experts(X, y)
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, model.predict_responsibilities(X, y).argmax(axis=1))
    x, counts = load_npreg(target="yp", return_X_y=True)
    poisson = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(x, counts)
    exposure = np.full(len(counts), 2.0)
    np.testing.assert_array_equal(
        poisson.assign_experts(x, counts, exposure=exposure),
        poisson.predict_responsibilities(x, counts, exposure=exposure).argmax(axis=1),
    )


def test_class_weight_multiplies_the_sample_weights():
    X, y = make_regional_classification(300, random_state=1)
    weights = {y[0]: 3.0}
    weighted = MixtureOfExpertsClassifier(2, class_weight=weights, random_state=0).fit(X, y)
    manual = MixtureOfExpertsClassifier(2, random_state=0).fit(
        X, y, sample_weight=np.where(y == y[0], 3.0, 1.0)
    )
    np.testing.assert_allclose(weighted.predict_proba(X), manual.predict_proba(X), rtol=1e-10)
    balanced = MixtureOfExpertsClassifier(2, class_weight="balanced", random_state=0)
    counts = np.unique(y, return_counts=True)[1]
    expected = (len(y) / (2 * counts))[np.unique(y, return_inverse=True)[1]]
    manual = MixtureOfExpertsClassifier(2, random_state=0).fit(X, y, sample_weight=expected)
    np.testing.assert_allclose(
        balanced.fit(X, y).predict_proba(X), manual.predict_proba(X), rtol=1e-10
    )
    hme = HierarchicalMixtureOfExpertsClassifier(1, 2, class_weight="balanced", random_state=0)
    assert hme.fit(X, y).get_params()["class_weight"] == "balanced"
    with pytest.raises(ValueError, match="partial_fit takes a dict"):
        MixtureOfExpertsClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    online = MixtureOfExpertsClassifier(2, class_weight=weights, random_state=0)
    assert online.partial_fit(X, y, classes=np.unique(y)).n_batches_seen_ == 1


@pytest.mark.parametrize("multiclass", [False, True])
def test_decision_function_follows_sklearn(multiclass):
    X, y = load_iris(return_X_y=True)
    if not multiclass:
        y = (y == 2).astype(int)
    clf = MixtureOfExpertsClassifier(2, random_state=0).fit(X, y)
    scores = clf.decision_function(X)
    log_proba = clf.predict_log_proba(X)
    if multiclass:
        assert scores.shape == (len(y), 3)
        np.testing.assert_array_equal(clf.classes_[scores.argmax(axis=1)], clf.predict(X))
    else:
        assert scores.shape == (len(y),)
        np.testing.assert_allclose(scores, log_proba[:, 1] - log_proba[:, 0])
        np.testing.assert_array_equal(clf.classes_[(scores > 0).astype(int)], clf.predict(X))


@pytest.mark.parametrize("loader", [load_tone, load_mcycle, load_nodata, load_co2, load_npreg])
def test_loaders_as_frame(loader):
    pd = pytest.importorskip("pandas")
    bunch = loader(as_frame=True)
    plain = loader()
    assert isinstance(bunch.data, pd.DataFrame) and isinstance(bunch.target, pd.Series)
    assert list(bunch.data.columns) == bunch.feature_names
    assert bunch.target.name == bunch.target_name
    assert list(bunch.frame.columns) == [*bunch.feature_names, bunch.target_name]
    np.testing.assert_array_equal(bunch.data.to_numpy(), plain.data)
    X, y = loader(as_frame=True, return_X_y=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    assert plain.frame is None


def test_sample_y_has_the_documented_shape(tone):
    X, y = tone
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    assert model.sample_y(X[:3]).shape == (3, 1)
    assert model.sample_y(X[:1]).shape == (1, 1)
    assert model.sample_y(X[:3], n_samples=4).shape == (3, 4)
    x, counts = load_npreg(target="yp", return_X_y=True)
    poisson = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(x, counts)
    assert poisson.sample_y(x[:1]).shape == (1, 1)
    clf = MixtureOfExpertsClassifier(2, random_state=0).fit(X, y > 1.5)
    assert clf.sample_y(X[:1]).shape == (1, 1)


def test_degenerate_fit_warning_is_one_short_sentence():
    X = np.linspace(-1, 1, 100)[:, None]
    y = np.where(X[:, 0] < 0, 0.0, 5.0) + 0.01 * np.sin(40 * X[:, 0])
    # One random start on purpose: it leaves several degenerate experts, so the warning has
    # many events to summarise (the default search prefers a run without them, and its
    # k-means start leaves only the gate's separation here).
    model = MixtureOfExpertsRegressor(8, gate_alpha=0.0, expert_features=[], random_state=0,
                                      init_params="random", acceleration=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    messages = [str(w.message) for w in caught if issubclass(w.category, DegenerateFitWarning)]
    assert len(messages) == 1
    assert len(messages[0]) < 250 and messages[0].count(". ") <= 2, messages[0]
    assert "events_" in messages[0] and "separates" in messages[0]
    assert len(model.events_) > 1 and sum(map(len, model.events_)) > len(messages[0])


def test_export_text_prints_one_score_per_binary_gate_and_wraps():
    X, y = make_moe_regression(300, 6, 4, random_state=3)
    names = [f"a_long_feature_name_{i}" for i in range(6)]
    hme = HierarchicalMixtureOfExpertsRegressor(2, 2, random_state=0).fit(X, y)
    text = export_text(hme, feature_names=names, max_width=80)
    lines = text.splitlines()
    gates = [line for line in lines if "|--- gate" in line]
    assert len(gates) == 3 and all(": score = " in line for line in gates)
    assert sum("score = " in line for line in lines) == 3  # not one per branch
    assert sum("|--- branch" in line for line in lines) == 6
    assert max(map(len, lines)) <= 80
    # the score of gate 0 is branch 1's score minus branch 0's
    difference = hme.gate_intercept_[0, 1] - hme.gate_intercept_[0, 0]
    assert gates[0].split("score = ")[1].startswith(f"{difference:.3f}")
    flat = MixtureOfExpertsClassifier(3, random_state=0).fit(
        *make_regional_classification(300, random_state=0)
    )
    assert export_text(flat).count("score = ") == 3  # softmax over three: a score per branch


def test_demo_shows_the_comparison_the_gate_the_experts_and_an_interval(capsys):
    from skmoe.__main__ import main

    main()
    out = capsys.readouterr().out
    for text in (
        "decision tree (CV)",
        "stacking",
        "|--- gate 0: score =",
        "expert 1: eta",
        "90% interval",
        "Pr(>|z|)",
        "log-likelihood =",
    ):
        assert text in out, text
