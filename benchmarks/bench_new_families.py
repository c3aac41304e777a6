"""Seconds per EM iteration of the families of issue #18 against their baselines on the
same data: Student-t experts against Gaussian ones, negative-binomial and zero-inflated
experts against Poisson ones (the zero-inflated ones with the same K, one component the
point mass), and the joint model of a Gaussian and a Poisson response
(``expert=["gaussian", "poisson"]``) against the two single-response fits.

    python benchmarks/bench_new_families.py [--sizes 1e5] [--p 10] [--k 4] [--repeats 3]

Set-up is cancelled as in bench_em_iteration.py; the ratio is the acceptance measure of
issue #18 (at most 2). For the joint model the ratio is against the sum of the Gaussian and
the Poisson fit's iteration (each of which has its own gate M-step).
"""

import argparse
import warnings

import numpy as np
from _timing import PLAIN_EM, seconds_per_iteration
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5"])
    parser.add_argument("--p", type=int, default=10)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    K, p = args.k, args.p
    print(f"p={p}, K={K}; seconds per EM iteration")
    print(f"{'n':>9} {'gaussian':>9} {'student_t':>10} {'ratio':>6} {'poisson':>9} "
          f"{'neg.bin.':>9} {'ratio':>6} {'zip':>9} {'ratio':>6} {'zinb':>9} {'ratio':>6}")
    rows = []
    for size in args.sizes:
        n = int(float(size))
        X, y = make_moe_regression(n, p, K, random_state=0)
        rng = np.random.default_rng(0)
        mean = np.exp(np.clip(y / (3 * y.std()), -3, 3))
        counts = rng.negative_binomial(3.0, 3.0 / (3.0 + mean)).astype(float)

        def per_iteration(expert, target):
            return seconds_per_iteration(
                lambda it: MixtureOfExpertsRegressor(K, expert=expert, max_iter=it, tol=0,
                                                     random_state=0, **PLAIN_EM),
                lambda m: m.fit(X, target), repeats=args.repeats)

        gaussian, student = per_iteration("gaussian", y), per_iteration("student_t", y)
        poisson = per_iteration("poisson", counts)
        negbin = per_iteration("negative_binomial", counts)
        zip_ = per_iteration("zero_inflated_poisson", counts)
        zinb = per_iteration("zero_inflated_negative_binomial", counts)
        print(f"{n:>9} {gaussian:>9.4f} {student:>10.4f} {student / gaussian:>6.2f} "
              f"{poisson:>9.4f} {negbin:>9.4f} {negbin / poisson:>6.2f} "
              f"{zip_:>9.4f} {zip_ / poisson:>6.2f} {zinb:>9.4f} {zinb / poisson:>6.2f}",
              flush=True)
        joint = per_iteration(["gaussian", "poisson"], np.column_stack([y, counts]))
        rows.append((n, gaussian, poisson, joint))
    print("joint model of both responses; seconds per EM iteration")
    print(f"{'n':>9} {'gaussian':>9} {'poisson':>9} {'joint':>9} {'joint/(g+p)':>12}")
    for n, gaussian, poisson, joint in rows:
        print(f"{n:>9} {gaussian:>9.4f} {poisson:>9.4f} {joint:>9.4f} "
              f"{joint / (gaussian + poisson):>12.2f}")


if __name__ == "__main__":
    main()
