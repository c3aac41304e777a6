"""``python -m skmoe``: fit the mixture of experts on bundled data and compare.

On the tone perception data and the motorcycle data, a mixture of experts is compared with
a linear model, a decision tree (tuned by cross-validation) and stacking on a held-out
split: R^2, held-out mean log-likelihood (Gaussian with the training residual variance for
the baselines) and fit time. Then what the fitted mixture holds that a tree does not: the
gate and the experts (``export_text``), the gate probabilities and a predictive interval
along x, and ``summary()``.
"""

import time

import numpy as np
from sklearn.ensemble import StackingRegressor
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor, export_text
from skmoe.datasets import load_mcycle, load_tone
from skmoe.metrics import mean_log_likelihood


def gaussian_log_likelihood(y_train, fitted, y_test, predicted):
    """Held-out mean log-density of a homoscedastic Gaussian around a point prediction."""
    var = np.mean((y_train - fitted) ** 2)
    return float(np.mean(-0.5 * np.log(2 * np.pi * var) - (y_test - predicted) ** 2 / (2 * var)))


def compare(name, X, y, moe, seed=0):
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=seed)
    models = {
        f"MoE ({moe.n_experts} experts)": moe,
        "linear regression": LinearRegression(),
        "decision tree (CV)": GridSearchCV(
            DecisionTreeRegressor(random_state=seed),
            {"max_leaf_nodes": [2, 4, 8, 16, 32], "min_samples_leaf": [1, 5, 10]},
            cv=5,
        ),
        "stacking": StackingRegressor(
            [
                ("linear", LinearRegression()),
                ("tree", DecisionTreeRegressor(max_leaf_nodes=8, random_state=seed)),
                ("knn", KNeighborsRegressor(10)),
            ],
            final_estimator=RidgeCV(),
        ),
    }
    print(f"\n{name}: n_train={len(y_train)}, n_test={len(y_test)}")
    print(f"  {'model':<24}{'R2 test':>9}{'loglik/n test':>15}{'fit s':>8}")
    for label, model in models.items():
        pipe = make_pipeline(StandardScaler(), model)
        tic = time.perf_counter()
        pipe.fit(X_train, y_train)
        seconds = time.perf_counter() - tic
        r2 = pipe.score(X_test, y_test)
        if model is moe:
            loglik = mean_log_likelihood(pipe, X_test, y_test)  # through the pipeline
        else:
            loglik = gaussian_log_likelihood(
                y_train, pipe.predict(X_train), y_test, pipe.predict(X_test)
            )
        print(f"  {label:<24}{r2:>9.3f}{loglik:>15.3f}{seconds:>8.3f}")


def show(X, y, names):
    """What a fitted mixture of experts holds: gate, experts, intervals, the summary."""
    model = MixtureOfExpertsRegressor(2, n_init=5, random_state=0).fit(X, y)
    tree = DecisionTreeRegressor(max_leaf_nodes=4, random_state=0).fit(X, y)
    print("\nThe fitted mixture on all the tone data: the gate and the experts (export_text)\n")
    print(export_text(model, names))
    grid = np.quantile(X[:, 0], [0.05, 0.35, 0.65, 0.95])[:, None]
    gate = model.predict_gate(grid)
    experts = model.predict_experts(grid)
    mean = model.predict(grid)
    interval = model.predict_interval(grid, coverage=0.9)
    print(f"\n  {names[0]:>12}  P(expert 0)  expert 0  expert 1  mixture  90% interval      tree")
    for i, x in enumerate(grid[:, 0]):
        print(
            f"  {x:>12.3f}  {gate[i, 0]:>11.3f}  {experts[i, 0]:>8.3f}  {experts[i, 1]:>8.3f}"
            f"  {mean[i]:>7.3f}  [{interval[i, 0]:.3f}, {interval[i, 1]:.3f}]"
            f"  {tree.predict(grid[i : i + 1])[0]:>8.3f}"
        )
    print(
        "\n  The tree gives one number per region; the mixture says which regime a point is\n"
        "  likely in (the gate), what each regime predicts (the experts) and how far y may\n"
        "  fall (the interval spans both regimes where they overlap).\n"
    )
    print(model.summary(X, y))


def main():
    X, y = load_tone(return_X_y=True)
    compare(
        "Tone perception (Cohen 1980)",
        X,
        y,
        MixtureOfExpertsRegressor(2, n_init=5, random_state=0),
    )
    X, y = load_mcycle(return_X_y=True)
    compare(
        "Motorcycle crash (Silverman 1985)",
        X,
        y,
        MixtureOfExpertsRegressor(4, n_init=10, random_state=0),
    )
    X, y = load_tone(return_X_y=True)
    show(X, y, ["stretchratio"])


if __name__ == "__main__":
    main()
