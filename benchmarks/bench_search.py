"""Does the default search end in the best basin on large data? Seeds of the default fit
against plain EM from one random start, on one planted problem.

    python benchmarks/bench_search.py [--seeds 10] [--n 100000]

``make_moe_regression(n, 10, 4, random_state=0)``: four gated linear regimes, the smallest
with about 4% of the rows. For every ``random_state`` of the estimator: the default fit
(the search on a subsample of about 20,000 rows, then SQUAREM on all rows) and the old
behaviour (plain EM from random responsibilities on all rows), side by side in the same
run. Printed per seed: wall seconds, the final penalised objective per row, and the
objectives per row of the search's runs. A fit reaches the optimum when it is within
``1e-6`` per row (the default ``tol``) of the best fit of the run.

A third fit per seed tries one split-and-merge move from the default fit (SMEM, Ueda,
Nakano, Ghahramani & Hinton 2000), through the public API: the expert whose own rows it
fits worst (the lowest responsibility-weighted mean of ``log f_k(y | x)``) is split in
two by 2-means on the standardised ``[X, y]`` weighted by its responsibilities, the two
experts whose responsibility vectors overlap most are merged, and EM runs from those
responsibilities (``init_params=``). The better of it and the default fit is kept; its
seconds include the default fit's.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

import skmoe._init as search_module
from skmoe import DegenerateFitWarning, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression

OLD = {"init_params": "random", "acceleration": None}


def recording_search():
    """``skmoe._init._search`` wrapped to keep the objectives of the last search's runs
    and the number of rows it ran on."""
    original, record = search_module._search, {}

    def search(estimator, model, source, rng, run, max_iter):
        best, reached = original(estimator, model, source, rng, run, max_iter)
        record["runs"] = np.asarray(reached) / source.total_weight
        return best, reached

    search_module._search = search
    return record


def split_merge_start(model, X, y, seed):
    """Responsibilities (n, K) after one split-and-merge move from ``model``'s fit."""
    resp = model.predict_responsibilities(X, y)
    tiny = np.finfo(float).tiny
    # log f_k(y | x) = log r_k + log p(y | x) - log g_k(x)
    log_expert = (np.log(np.maximum(resp, tiny)) + model.score_samples(X, y)[:, None]
                  - np.log(np.maximum(model.predict_gate(X), tiny)))
    mass = resp.sum(axis=0)
    split = int(np.argmin(np.sum(resp * log_expert, axis=0) / mass))
    norms = np.sqrt(np.sum(resp * resp, axis=0))
    overlap = (resp.T @ resp) / np.outer(norms, norms)
    overlap[split, :] = overlap[:, split] = -np.inf
    np.fill_diagonal(overlap, -np.inf)
    keep, merged = np.unravel_index(np.argmax(overlap), overlap.shape)
    Z = StandardScaler().fit_transform(np.column_stack([X, y]))
    halves = KMeans(2, n_init=1, random_state=seed).fit_predict(Z, sample_weight=resp[:, split])
    start = resp.copy()
    start[:, keep] += resp[:, merged]
    start[:, merged] = resp[:, split] * (halves == 1)
    start[:, split] = resp[:, split] * (halves == 0)
    return start + 1e-6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n", type=float, default=1e5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DegenerateFitWarning)
    n = int(args.n)
    X, y = make_moe_regression(n, 10, 4, random_state=0)[:2]
    record = recording_search()
    rows = []
    for seed in range(args.seeds):
        for name, params in (("default", {}), ("old", OLD)):
            record.pop("runs", None)
            tic = time.perf_counter()
            model = MixtureOfExpertsRegressor(4, random_state=seed, **params).fit(X, y)
            rows.append((seed, name, time.perf_counter() - tic, model.objective_ / n,
                         record.get("runs")))
            if name == "default":
                default = model
        tic = time.perf_counter()
        moved = MixtureOfExpertsRegressor(
            4, random_state=seed, init_params=split_merge_start(default, X, y, seed)
        ).fit(X, y)
        objective = max(moved.objective_, default.objective_) / n
        rows.append((seed, "+ split", rows[-2][2] + time.perf_counter() - tic, objective, None))
    best = max(row[3] for row in rows)
    print(f"make_moe_regression({n}, 10, 4, random_state=0); best objective per row "
          f"{best:.6f}")
    print(f"{'seed':>4} {'fit':<8}{'seconds':>8}{'objective/n':>13}{'reached':>8}  "
          "search runs, objective/n")
    for seed, name, wall, objective, runs in rows:
        runs = "" if runs is None else " ".join(f"{value:.3f}" for value in runs)
        print(f"{seed:>4} {name:<8}{wall:>8.2f}{objective:>13.6f}"
              f"{str(objective >= best - 1e-6):>8}  {runs}")
    for name in ("default", "old", "+ split"):
        mine = [row for row in rows if row[1] == name]
        share = np.mean([row[3] >= best - 1e-6 for row in mine])
        print(f"{name}: reached {share:.2f} of {len(mine)} fits, median "
              f"{np.median([row[2] for row in mine]):.2f} s, total "
              f"{sum(row[2] for row in mine):.1f} s")


if __name__ == "__main__":
    main()
