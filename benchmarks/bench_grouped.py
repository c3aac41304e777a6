"""Seconds per EM iteration of a grouped fit (``fit(X, y, groups=)``) against the
ungrouped fit of the same rows, in the same run (issue #17: at most 1.3x).

    python benchmarks/bench_grouped.py [--sizes 1e5:5:3:5 1e5:5:3:1] [--repeats 5]

A size is ``n:p:K:m``: ``n`` rows of ``make_moe_regression`` with ``p`` features and ``K``
Gaussian experts, in groups of ``m`` consecutive rows after a shuffle of the labels (so
the grouped fit sorts them). The gate sees a group-level column (the first feature,
constant within every group), the experts every column. Both fits run plain EM
(``acceleration=None``) from a random start; one iteration costs
``(t(max_iter=22) - t(max_iter=2)) / 20``, so validation, the sort by group and the
initialisation cancel. The two are timed in turn, ``--repeats`` times, and the best of
each is reported; ``m = 1`` times the grouped code path with every row its own group.
"""

import argparse
import warnings

import numpy as np
from _timing import PLAIN_EM, seconds_per_iteration
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression


def panel(n, p, K, size, seed=0):
    """Rows of ``make_moe_regression`` in groups of ``size``, their labels shuffled."""
    X, y = make_moe_regression(n, p, K, random_state=seed)
    rng = np.random.default_rng(seed)
    groups = rng.permutation(n // size + 1)[np.arange(n) // size]
    X[:, 0] = np.repeat(X[::size, 0], size)[:n]  # the gate's column, constant in a group
    return X, y, groups


def iteration_seconds(X, y, K, groups, repeats):
    return seconds_per_iteration(
        lambda it: MixtureOfExpertsRegressor(K, max_iter=it, tol=0.0, random_state=0,
                                             gate_features=[0], **PLAIN_EM),
        lambda m: m.fit(X, y, groups=groups),
        a=2, b=22, repeats=repeats,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5:5:3:5", "1e5:5:3:1"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"{'n':>9} {'p':>3} {'K':>3} {'rows/group':>10} {'groups':>8} "
          f"{'ungrouped s/iter':>17} {'grouped s/iter':>15} {'grouped/ungrouped':>18}")
    for size in args.sizes:
        n, p, K, m = (int(float(v)) for v in size.split(":"))
        X, y, groups = panel(n, p, K, m)
        plain = grouped = np.inf
        for _ in range(args.repeats):  # alternate, so both see the same machine state
            plain = min(plain, iteration_seconds(X, y, K, None, 1))
            grouped = min(grouped, iteration_seconds(X, y, K, groups, 1))
        print(f"{n:>9} {p:>3} {K:>3} {m:>10} {np.unique(groups).size:>8} {plain:>17.4f} "
              f"{grouped:>15.4f} {grouped / plain:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
