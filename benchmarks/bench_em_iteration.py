"""Seconds per EM iteration: MixtureOfExpertsRegressor against its BLAS floor and against
GaussianMixture, side by side; and the same iteration with a busy core beside it.

    python benchmarks/bench_em_iteration.py [--sizes 1e5:10:4 1e6:20:8] [--repeats 3]
    python benchmarks/bench_em_iteration.py --load [--sizes 1e5:10:4] [--repeats 5]

Both estimators run on the same data (``make_moe_regression``; GaussianMixture with
``covariance_type="full"`` on the stacked ``[X, y]``); skmoe with plain EM
(``acceleration=None``: one iteration is one EM step) from a random start. The cost of
one iteration is ``(t(max_iter=b) - t(max_iter=a)) / (b - a)``, so initialisation and
validation cancel; each time is the best of ``--repeats`` fits.

The floor is what one iteration cannot avoid, timed alone on the same arrays: the K
weighted Gram matrices ``X1' diag(w_k) X1`` of the experts' M-step (the faster of
skmoe's ``weighted_grams`` and one product ``(X' * w_k) @ X`` per expert) plus the
experts' and the gate's linear predictors ``X1 B'`` (K x n each); best of 5, with BLAS on
one thread as in the fit.

``--load`` times the skmoe iteration alternately on a quiet machine and with one
CPU-bound process (started and stopped by this script) on the other core, with skmoe's
default BLAS threads (``n_jobs=None``: one) and with two (``n_jobs=2``).
"""

import argparse
import subprocess
import sys
import time
import warnings

import numpy as np
from _timing import PLAIN_EM, seconds_per_iteration
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from skmoe import MixtureOfExpertsRegressor
from skmoe._linalg import linear_predictor, weighted_grams
from skmoe.datasets import make_moe_regression

BUSY = "while True: pass"


@threadpool_limits.wrap(limits=1, user_api="blas")  # as in a fit's EM loop (n_jobs=None)
def floor_seconds(X, K, repeats=5):
    """The floor's products, timed alone (see the module docstring)."""
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(K), size=X.shape[0]).T.copy()
    coef, gate = rng.normal(size=(2, K, X.shape[1] + 1))

    def per_expert():
        return [(X.T * W[k]) @ X for k in range(K)]

    best = {}
    for name, gram in (("skmoe", lambda: weighted_grams(X, W)), ("per expert", per_expert)):
        best[name] = np.inf
        for _ in range(repeats):
            tic = time.perf_counter()
            gram()
            best[name] = min(best[name], time.perf_counter() - tic)
    predictors = np.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        linear_predictor(X, coef)
        linear_predictor(X, gate)
        predictors = min(predictors, time.perf_counter() - tic)
    return min(best.values()) + predictors


def moe_seconds(X, y, K, repeats, n_jobs=None):
    return seconds_per_iteration(
        lambda it: MixtureOfExpertsRegressor(K, max_iter=it, tol=0.0, random_state=0,
                                             n_jobs=n_jobs, **PLAIN_EM),
        lambda m: m.fit(X, y),
        repeats=repeats,
    )


def compare(sizes, repeats):
    print(f"{'n':>9} {'p':>3} {'K':>3} {'skmoe s/iter':>13} {'floor s':>9} {'/floor':>7} "
          f"{'GMM s/iter':>11} {'/GMM':>6}")
    for size in sizes:
        n, p, K = (int(float(v)) for v in size.split(":"))
        X, y = make_moe_regression(n, p, K, random_state=0)
        Xy = np.column_stack([X, y])
        moe = moe_seconds(X, y, K, repeats)
        floor = floor_seconds(X, K)
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
            repeats=repeats,
        )
        print(f"{n:>9} {p:>3} {K:>3} {moe:>13.4f} {floor:>9.4f} {moe / floor:>7.2f} "
              f"{gmm:>11.4f} {moe / gmm:>6.2f}", flush=True)


def under_load(sizes, repeats):
    print(f"{'n':>9} {'p':>3} {'K':>3} {'BLAS threads':>12} {'quiet s/iter':>13} "
          f"{'busy core s/iter':>17} {'busy/quiet':>11}")
    for size in sizes:
        n, p, K = (int(float(v)) for v in size.split(":"))
        X, y = make_moe_regression(n, p, K, random_state=0)
        for label, n_jobs in (("1 (default)", None), ("2 (n_jobs=2)", 2)):
            # a first fit starts joblib's workers (n_jobs=2): left out, else it lands in
            # one t(max_iter=a) and the difference of a pair turns negative
            moe_seconds(X, y, K, 1, n_jobs)
            quiet = busy = np.inf
            for _ in range(repeats):  # alternate, so both see the same machine state
                quiet = min(quiet, moe_seconds(X, y, K, 1, n_jobs))
                process = subprocess.Popen([sys.executable, "-c", BUSY])
                try:
                    time.sleep(0.2)
                    busy = min(busy, moe_seconds(X, y, K, 1, n_jobs))
                finally:
                    process.kill()
                    process.wait()
            print(f"{n:>9} {p:>3} {K:>3} {label:>12} {quiet:>13.4f} {busy:>17.4f} "
                  f"{busy / quiet:>11.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--load", action="store_true",
                        help="quiet against one busy core, BLAS threads 1 and 2")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.load:
        under_load(args.sizes or ["1e5:10:4"], args.repeats or 5)
    else:
        compare(args.sizes or ["1e5:10:4", "1e6:20:8"], args.repeats or 3)


if __name__ == "__main__":
    main()
