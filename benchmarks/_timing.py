"""Shared timing helper of the benchmark scripts."""

import time

import numpy as np

#: Plain EM from the random start: what per-iteration benchmarks time, whatever the
#: defaults (the default search runs EM several times, and a SQUAREM cycle is three EM
#: steps, so ``max_iter`` would not count EM steps).
PLAIN_EM = {"init_params": "random", "acceleration": None}


def seconds_per_iteration(make, fit, a=2, b=12, repeats=3):
    """Seconds of one iteration: ``(t(max_iter=b) - t(max_iter=a)) / (b - a)``, each time
    the best of ``repeats``, so set-up costs (validation, initialisation) cancel. (The best
    of the differences would reward a run whose short fit happened to be slow.)"""
    best = {a: np.inf, b: np.inf}
    for _ in range(repeats):
        for n_iter in (a, b):
            model = make(n_iter)
            tic = time.perf_counter()
            fit(model)
            best[n_iter] = min(best[n_iter], time.perf_counter() - tic)
    return (best[b] - best[a]) / (b - a)


def seconds(fit, repeats=3):
    """Best wall time of ``fit()`` over ``repeats`` runs."""
    best = np.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        fit()
        best = min(best, time.perf_counter() - tic)
    return best
