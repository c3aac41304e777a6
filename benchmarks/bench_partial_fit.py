"""Mini-batch EM (``partial_fit``) against the batch fit on a 1e6-row stream.

    python benchmarks/bench_partial_fit.py [--n 1e6] [--p 3] [--k 3] [--batches 100]
                                           [--passes 3] [--seed 0] [--n-init 1]

Data from ``make_moe_regression(n, p, k)``. The batch ``fit`` and the stream of ``passes``
passes over ``batches`` consecutive mini-batches (stepwise online EM), once with a Python
loop over the batches and once through ``dask_ml.wrappers.Incremental`` on a dask array
with one chunk per mini-batch (blocks in shuffled order). Prints the mean training
log-likelihood of each, the relative gap to the batch fit and the seconds (the stream's
seconds include no scoring). Both sides use the same ``--seed`` and ``--n-init``.
tests/test_online.py runs the same comparison on 2e5 rows.
"""

import argparse
import time

import numpy as np

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1e6")
    parser.add_argument("--p", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-init", type=int, default=1)
    args = parser.parse_args()
    n = int(float(args.n))
    X, y = make_moe_regression(n, args.p, args.k, random_state=0)

    def make():
        return MixtureOfExpertsRegressor(args.k, n_init=args.n_init, random_state=args.seed)

    print(
        f"n={n:,}, p={args.p}, K={args.k}, {args.batches} mini-batches of {n // args.batches:,} "
        f"rows, {args.passes} passes, random_state={args.seed}, n_init={args.n_init}"
    )
    rows = []

    tic = time.perf_counter()
    batch = make().fit(X, y)
    seconds = time.perf_counter() - tic
    reference = batch.score_samples(X, y).mean()
    rows.append((f"batch fit ({batch.n_iter_} EM iterations)", reference, seconds))

    tic = time.perf_counter()
    online = make()
    for _ in range(args.passes):
        for part in np.array_split(np.arange(n), args.batches):
            online.partial_fit(X[part], y[part])
    seconds = time.perf_counter() - tic
    rows.append(("partial_fit, Python loop", online.score_samples(X, y).mean(), seconds))

    try:
        import dask.array as da
        from dask_ml.wrappers import Incremental
    except ImportError:
        print("dask-ml is not installed: no Incremental run")
    else:
        chunk = -(-n // args.batches)
        Xd = da.from_array(X, chunks=(chunk, X.shape[1]))
        yd = da.from_array(y, chunks=chunk)
        tic = time.perf_counter()
        wrapper = Incremental(make(), random_state=args.seed)
        for _ in range(args.passes):
            wrapper.partial_fit(Xd, yd)
        seconds = time.perf_counter() - tic
        ll = wrapper.estimator_.score_samples(X, y).mean()
        rows.append(("partial_fit, dask-ml Incremental", ll, seconds))

    print(f"{'':34} {'mean log-lik':>13} {'rel. gap':>9} {'seconds':>8}")
    for name, ll, seconds in rows:
        gap = abs(ll - reference) / abs(reference)
        print(f"{name:34} {ll:13.6f} {gap:9.4%} {seconds:8.2f}")


if __name__ == "__main__":
    main()
