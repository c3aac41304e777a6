"""Seconds per EM iteration of Poisson experts and of the classifier, side by side with the
Gaussian regressor and with one scikit-learn GLM fit on the same data.

    python benchmarks/bench_families.py [--sizes 1e5 1e6] [--p 10] [--k 4] [--repeats 2]

Per size: the Gaussian regressor, the Poisson regressor and the two-class classifier (per
EM iteration, set-up cancelled as in bench_em_iteration.py), and whole fits of
``PoissonRegressor`` and ``LogisticRegression`` (lbfgs, defaults) for scale.
"""

import argparse
import warnings

import numpy as np
from _timing import PLAIN_EM, seconds, seconds_per_iteration
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, PoissonRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5", "1e6"])
    parser.add_argument("--p", type=int, default=10)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    K, p = args.k, args.p
    print(f"p={p}, K={K}; seconds per EM iteration (GLM baselines: seconds per whole fit)")
    print(
        f"{'n':>9} {'gaussian':>9} {'poisson':>9} {'classif.':>9} "
        f"{'PoissonRegressor':>17} {'LogisticRegression':>19}"
    )
    for size in args.sizes:
        n = int(float(size))
        X, y = make_moe_regression(n, p, K, random_state=0)
        rng = np.random.default_rng(0)
        counts = rng.poisson(np.exp(np.clip(y / (3 * y.std()), -3, 3))).astype(float)
        labels = (rng.uniform(size=n) < expit(y / y.std())).astype(int)

        def per_iteration(make, target):
            return seconds_per_iteration(make, lambda m: m.fit(X, target), repeats=args.repeats)

        gaussian = per_iteration(
            lambda it: MixtureOfExpertsRegressor(K, max_iter=it, tol=0, random_state=0,
                                                 **PLAIN_EM),
            y,
        )
        poisson = per_iteration(
            lambda it: MixtureOfExpertsRegressor(
                K, expert="poisson", max_iter=it, tol=0, random_state=0, **PLAIN_EM
            ),
            counts,
        )
        classifier = per_iteration(
            lambda it: MixtureOfExpertsClassifier(K, max_iter=it, tol=0, random_state=0,
                                                  **PLAIN_EM),
            labels,
        )
        glm = seconds(lambda: PoissonRegressor(alpha=0).fit(X, counts), args.repeats)
        logit = seconds(lambda: LogisticRegression().fit(X, labels), args.repeats)
        print(
            f"{n:>9} {gaussian:>9.4f} {poisson:>9.4f} {classifier:>9.4f} "
            f"{glm:>17.4f} {logit:>19.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
