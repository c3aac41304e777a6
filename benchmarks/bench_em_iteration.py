"""Seconds per EM iteration: MixtureOfExpertsRegressor against GaussianMixture, side by side.

    python benchmarks/bench_em_iteration.py [--sizes 1e5:10:4 1e6:20:8] [--repeats 3]

Both estimators run on the same data (``make_moe_regression``; GaussianMixture with
``covariance_type="full"`` on the stacked ``[X, y]``). The cost of one iteration is
``(t(max_iter=b) - t(max_iter=a)) / (b - a)``, so initialisation and validation cancel;
the best of ``--repeats`` runs is reported.
"""

import argparse
import warnings

import numpy as np
from _timing import seconds_per_iteration
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5:10:4", "1e6:20:8"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"{'n':>9} {'p':>3} {'K':>3} {'skmoe s/iter':>13} {'GMM s/iter':>11} {'ratio':>6}")
    for size in args.sizes:
        n, p, K = (int(float(v)) for v in size.split(":"))
        X, y = make_moe_regression(n, p, K, random_state=0)
        Xy = np.column_stack([X, y])
        moe = seconds_per_iteration(
            lambda it: MixtureOfExpertsRegressor(K, max_iter=it, tol=0.0, random_state=0),
            lambda m: m.fit(X, y),
            repeats=args.repeats,
        )
        gmm = seconds_per_iteration(
            lambda it: GaussianMixture(
                K,
                covariance_type="full",
                max_iter=it,
                tol=0.0,
                init_params="random_from_data",
                random_state=0,
            ),
            lambda m: m.fit(Xy),
            repeats=args.repeats,
        )
        print(f"{n:>9} {p:>3} {K:>3} {moe:>13.4f} {gmm:>11.4f} {moe / gmm:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
