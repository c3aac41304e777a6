"""The hierarchical model: speed against the flat model, and Jordan & Jacobs' protocol.

    python benchmarks/bench_hme.py [--speed-n 1e5] [--friedman-n 5000] [--repeats 2]

1. Seconds per EM iteration of a depth-4 binary tree (16 experts, 15 gates) against a flat
   mixture of 16 experts on the same data (n=1e5, p=10), side by side.
2. ``make_friedman1`` with n train and n test samples (Jordan & Jacobs 1994 used 5000 and
   5000): relative error (test MSE / variance of the test response) of the depth-4 binary
   HME, a flat MoE with 16 experts, a linear model, CART with 16 leaves and CART tuned by
   5-fold CV; for the mixtures, the number of EM iterations until the relative error is
   within 5% of its best value (one warm-started iteration at a time).
"""

import argparse
import time
import warnings

import numpy as np
from _timing import PLAIN_EM, seconds_per_iteration
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeRegressor

from skmoe import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression


def speed(n, repeats):
    """Both models alternately, best of ``repeats`` each, so that a change of machine load
    during the run hits both alike."""
    X, y = make_moe_regression(n, 10, 4, random_state=0)
    models = {
        "hme": lambda it: HierarchicalMixtureOfExpertsRegressor(
            4, 2, max_iter=it, tol=0, random_state=0, **PLAIN_EM
        ),
        "flat": lambda it: MixtureOfExpertsRegressor(16, max_iter=it, tol=0, random_state=0,
                                                     **PLAIN_EM),
    }
    best = dict.fromkeys(models, np.inf)
    for _ in range(repeats):
        for name, make in models.items():
            value = seconds_per_iteration(make, lambda m: m.fit(X, y), repeats=1)
            best[name] = min(best[name], value)
    print(f"\nSeconds per EM iteration, n={n}, p=10")
    print(
        f"  depth-4 binary HME: {best['hme']:.4f}   flat MoE, 16 experts: {best['flat']:.4f}"
        f"   ratio: {best['hme'] / best['flat']:.2f}"
    )


def iterations_to_best(model, X, y, X_test, y_test, max_iter=300):
    """Warm-started single EM iterations; relative test error after each one."""
    model.set_params(warm_start=True, max_iter=1, tol=0)
    errors = []
    tic = time.perf_counter()
    for _ in range(max_iter):
        model.fit(X, y)
        errors.append(np.mean((model.predict(X_test) - y_test) ** 2) / y_test.var())
    seconds = time.perf_counter() - tic
    errors = np.array(errors)
    within = int(np.argmax(errors <= 1.05 * errors.min())) + 1
    return errors[-1], errors.min(), within, seconds


def friedman(n):
    X, y = make_friedman1(n, noise=1.0, random_state=0)
    X_test, y_test = make_friedman1(n, noise=1.0, random_state=1)
    print(f"\nmake_friedman1, {n} train / {n} test, relative error = test MSE / var(y_test)")
    print(f"  {'model':<28}{'rel. error':>11}{'best':>8}{'EM iter. to 5%':>16}{'fit s':>8}")
    for name, model in [
        ("HME depth 4, binary", HierarchicalMixtureOfExpertsRegressor(4, 2, random_state=0)),
        ("flat MoE, 16 experts", MixtureOfExpertsRegressor(16, random_state=0)),
    ]:
        final, best, within, secs = iterations_to_best(model, X, y, X_test, y_test)
        print(f"  {name:<28}{final:>11.4f}{best:>8.4f}{within:>16d}{secs:>8.1f}")
    cart_cv = GridSearchCV(
        DecisionTreeRegressor(random_state=0),
        {"max_leaf_nodes": [8, 16, 32, 64, 128, 256, 512], "min_samples_leaf": [1, 5, 20]},
        cv=5,
    )
    for name, model in [
        ("linear regression", LinearRegression()),
        ("CART, 16 leaves", DecisionTreeRegressor(max_leaf_nodes=16, random_state=0)),
        ("CART, CV-tuned", cart_cv),
    ]:
        tic = time.perf_counter()
        model.fit(X, y)
        secs = time.perf_counter() - tic
        error = np.mean((model.predict(X_test) - y_test) ** 2) / y_test.var()
        print(f"  {name:<28}{error:>11.4f}{'':>8}{'':>16}{secs:>8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-n", type=float, default=1e5)
    parser.add_argument("--friedman-n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    speed(int(args.speed_n), args.repeats)
    friedman(args.friedman_n)


if __name__ == "__main__":
    main()
