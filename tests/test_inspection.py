"""Displays: each draws the right artists on small fitted models (Agg backend)."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skmoe import (  # noqa: E402
    HierarchicalMixtureOfExpertsClassifier,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe.datasets import load_tone, make_regional_classification  # noqa: E402
from skmoe.inspection import (  # noqa: E402
    ExpertFitDisplay,
    GatePartitionDisplay,
    ObjectiveTraceDisplay,
    PosteriorRootogramDisplay,
    _expert_colours,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tone():
    X, y = load_tone(return_X_y=True)
    model = MixtureOfExpertsRegressor(2, n_init=3, random_state=0).fit(X, y)
    return model, X, y


@pytest.fixture(scope="module")
def regional():
    X, y = make_regional_classification(400, random_state=0)
    return X, y


def test_expert_fit_display(tone):
    model, X, y = tone
    display = ExpertFitDisplay.from_estimator(model, X, y, coverage=0.8, grid_resolution=50)
    ax, gate_ax = display.ax_, display.gate_ax_
    assert len(ax.lines) == 3  # two experts and the mixture mean
    assert len(ax.collections) == 2  # the data and the interval band
    assert len(gate_ax.lines) == 2
    assert gate_ax.get_xlabel() == "x0" and gate_ax.get_ylabel() == "gate"
    assert ax.get_ylabel() == "y"
    np.testing.assert_allclose(
        display.mean_line_.get_ydata(), model.predict(display.grid[:, None])
    )
    np.testing.assert_allclose(
        display.gate_lines_[1].get_ydata(), model.predict_gate(display.grid[:, None])[:, 1]
    )
    # each point's colour is its responsibilities' blend of the experts' colours
    resp = model.predict_responsibilities(X, y)
    expected = np.clip(resp @ _expert_colours(2), 0, 1)
    np.testing.assert_allclose(display.scatter_.get_facecolors()[:, :3], expected, atol=1e-6)
    assert "80% interval" in [t.get_text() for t in ax.get_legend().get_texts()]
    without_band = ExpertFitDisplay.from_estimator(model, X, y, coverage=None)
    assert len(without_band.ax_.collections) == 1 and without_band.band_ is None


def test_expert_fit_display_on_a_pipeline_and_by_name(tone):
    pd = pytest.importorskip("pandas")
    _, X, y = tone
    frame = pd.DataFrame(X, columns=["stretchratio"])
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(2, random_state=0))
    pipe.set_output(transform="pandas").fit(frame, y)
    display = ExpertFitDisplay.from_estimator(pipe, frame, y, feature="stretchratio")
    assert display.gate_ax_.get_xlabel() == "stretchratio"
    # the grid is in the pipeline's input units, and goes through its scaler
    assert display.grid.min() == X.min() and display.grid.max() == X.max()
    expected = pipe.predict(pd.DataFrame({"stretchratio": display.grid}))
    np.testing.assert_allclose(display.mean_line_.get_ydata(), expected)
    with pytest.raises(TypeError, match="regressor"):
        ExpertFitDisplay.from_estimator(
            MixtureOfExpertsClassifier(2, random_state=0).fit(X, y > 1.5), X, y > 1.5
        )


def test_gate_partition_display(regional):
    X, y = regional
    model = MixtureOfExpertsClassifier(3, random_state=0).fit(X, y)
    _, ax = plt.subplots()
    display = GatePartitionDisplay.from_estimator(model, X, grid_resolution=40, ax=ax)
    assert display.ax_ is ax
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (40, 40, 3)
    # every expert leads somewhere: one boundary each, drawn where g_k = max_j g_j
    assert len(display.contours_) == 3 and all(c in ax.collections for c in display.contours_)
    assert len(ax.collections) == 4  # three boundaries and the data
    assert display.scatter_ in ax.collections and len(display.scatter_.get_offsets()) == len(X)
    assert ax.get_xlabel() == "x0" and ax.get_ylabel() == "x1"
    assert len(ax.get_legend().get_texts()) == 3
    hidden = GatePartitionDisplay.from_estimator(model, X, show_data=False)
    assert hidden.scatter_ is None and len(hidden.ax_.images) == 1
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsClassifier(3, random_state=0))
    scaled = GatePartitionDisplay.from_estimator(pipe.fit(10 * X, y), 10 * X, grid_resolution=20)
    assert scaled.xx.max() == pytest.approx(10 * X[:, 0].max())
    np.testing.assert_allclose(
        scaled.gate.reshape(-1, 3),
        pipe[-1].predict_gate(
            pipe[0].transform(np.column_stack([scaled.xx.ravel(), scaled.yy.ravel()]))
        ),
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # separable
def test_gate_partition_of_a_tree(regional):
    X, y = regional
    hme = HierarchicalMixtureOfExpertsClassifier(2, 2, random_state=0).fit(X, y)
    display = GatePartitionDisplay.from_estimator(hme, X, grid_resolution=30)
    assert len(display.ax_.get_legend().get_texts()) == 4


def test_posterior_rootogram_display(tone):
    model, X, y = tone
    display = PosteriorRootogramDisplay.from_estimator(model, X, y, bins=10)
    assert len(display.axes_) == 2 and len(display.bars_) == 2
    resp = model.predict_responsibilities(X, y)
    for k, (axis, bars) in enumerate(zip(display.axes_, display.bars_)):
        assert len(bars.patches) == 10 and len(axis.patches) == 10
        heights = np.array([patch.get_height() for patch in bars.patches])
        counts, _ = np.histogram(resp[resp[:, k] > 1e-4, k], bins=np.linspace(0, 1, 11))
        np.testing.assert_allclose(heights, np.sqrt(counts))
        assert axis.get_xlabel() == "posterior probability"
        assert axis.get_title() == f"expert {k}"
    assert display.axes_[0].get_ylabel() == "sqrt(count)"
    counts = PosteriorRootogramDisplay.from_estimator(model, X, y, root=False)
    assert counts.axes_[0].get_ylabel() == "count"


def test_objective_trace_display(tone):
    model, X, _ = tone
    display = ObjectiveTraceDisplay.from_estimator(model)
    ax = display.ax_
    assert len(ax.lines) == 3 == len(model.restarts_)
    best = int(np.argmax([r["objective"] for r in model.restarts_]))
    np.testing.assert_allclose(display.lines_[best].get_ydata(), model.objective_trace_)
    assert display.lines_[best].get_linewidth() > display.lines_[best - 1].get_linewidth()
    assert ax.get_xlabel() == "EM iteration" and ax.get_ylabel() == "penalised log-likelihood"
    per_sample = ObjectiveTraceDisplay.from_estimator(
        make_pipeline(StandardScaler(), model).fit(X, load_tone(return_X_y=True)[1]),
        per_sample=len(X),
    )
    assert per_sample.ax_.get_ylabel().endswith("per sample")
