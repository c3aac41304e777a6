"""``python -m skmoe``: fit the mixture of experts on bundled data and compare.

On the tone perception data and the motorcycle data, a mixture of experts is compared with
a linear model and a decision tree (tuned by cross-validation) on a held-out split: R^2,
held-out mean log-likelihood (Gaussian with the training residual variance for the
baselines) and fit time.
"""

import time

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import load_mcycle, load_tone


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
            # Pipeline.score_samples passes X only; score the final step directly
            loglik = float(np.mean(pipe[-1].score_samples(pipe[:-1].transform(X_test), y_test)))
        else:
            loglik = gaussian_log_likelihood(
                y_train, pipe.predict(X_train), y_test, pipe.predict(X_test)
            )
        print(f"  {label:<24}{r2:>9.3f}{loglik:>15.3f}{seconds:>8.3f}")


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


if __name__ == "__main__":
    main()
