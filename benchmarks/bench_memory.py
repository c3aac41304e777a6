"""Peak memory of an in-memory fit, next to GaussianMixture's on the same data, in one run.

    python benchmarks/bench_memory.py [--n 1e6] [--p 20] [--k 8] [--max-iter 5]

Memory is counted by ``tracemalloc`` (numpy reports its array allocations to it): the peak
of what the fit allocates on top of the data already in memory (X, y). The budget of the
issue is ``4 n K`` doubles beside the data; skmoe keeps two ``(K, n)`` arrays between passes
(weighted responsibilities, the gate's probabilities) and works in row blocks otherwise.
``GaussianMixture(covariance_type="full")`` on ``[X, y]`` is the reference (its stacked input
is part of its data).
"""

import argparse
import gc
import time
import tracemalloc
import warnings

import numpy as np
from _timing import PLAIN_EM
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression

MB = 2.0**20


def peak_extra(fit, *args):
    """Seconds and peak bytes allocated by ``fit(*args)`` beyond what is live before it."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    tic = time.perf_counter()
    fit(*args)
    seconds = time.perf_counter() - tic
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e6)
    parser.add_argument("--p", type=int, default=20)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=5)
    args = parser.parse_args()
    n, p, K = int(args.n), args.p, args.k
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = make_moe_regression(n, p, K, random_state=0)[:2]
    data = X.nbytes + y.nbytes
    budget = 4 * n * K * 8
    print(f"n={n:,} p={p} K={K}, {args.max_iter} EM iterations; data {data / MB:.0f} MiB, "
          f"budget 4 n K doubles = {budget / MB:.0f} MiB")
    moe = MixtureOfExpertsRegressor(K, max_iter=args.max_iter, tol=0.0, random_state=0,
                                    **PLAIN_EM)
    seconds, peak = peak_extra(moe.fit, X, y)
    print(f"{'':28} {'peak beyond data':>17} {'/ budget':>9} {'seconds':>8}")
    print(f"{'skmoe MixtureOfExperts':28} {peak / MB:>13.0f} MiB {peak / budget:>9.2f} "
          f"{seconds:>8.2f}")
    Xy = np.column_stack([X, y])
    del X, y
    gmm = GaussianMixture(K, covariance_type="full", max_iter=args.max_iter, tol=0.0,
                          init_params="random_from_data", random_state=0)
    seconds, peak = peak_extra(gmm.fit, Xy)
    print(f"{'sklearn GaussianMixture':28} {peak / MB:>13.0f} MiB {peak / budget:>9.2f} "
          f"{seconds:>8.2f}")


if __name__ == "__main__":
    main()
