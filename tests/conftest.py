import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmoe import DegenerateFitWarning

DATA = Path(__file__).parent / "data"

#: Under pytest-xdist (one worker per core) every worker holds BLAS to one thread, and so
#: do the processes it starts (notebook kernels, sphinx): OpenBLAS threads that wait for
#: each other on a busy core make small products many times slower. Fits hold BLAS to
#: their n_jobs anyway (skmoe/_threads.py); this covers everything else. Tests that need
#: more threads ask for them with threadpool_limits, which may raise the count again.
_BLAS_LIMIT = None


def pytest_configure(config):
    global _BLAS_LIMIT
    if os.environ.get("PYTEST_XDIST_WORKER") and _BLAS_LIMIT is None:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
        for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(name, "1")


@pytest.fixture(scope="session")
def reference_fits():
    """Log-likelihoods reached by R's flexmix and mixtools (see tests/data/README.md)."""
    with open(DATA / "reference_fits.json") as handle:
        payload = json.load(handle)
    return {fit["id"]: fit for fit in payload["fits"]} | {
        "standard_errors": payload["standard_errors"]
    }


def assert_log_likelihood_increasing(model, X, y, n_iter, rtol=1e-12, **fit_params):
    """Refit with ``warm_start=True, max_iter=1`` ``n_iter`` times; the penalised objective
    must never drop (hmmlearn's and sklearn's monotonicity test)."""
    model.set_params(warm_start=True, max_iter=1, tol=0.0)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        for _ in range(n_iter):
            model.fit(X, y, **fit_params)
            values.append(model.objective_)
    values = np.asarray(values)
    drops = values[:-1] - values[1:]
    assert np.all(drops <= rtol * np.abs(values[:-1])), drops.max()
    return values


def assert_monotone(trace, rtol=1e-12):
    """An objective trace never drops by more than rounding: ``rtol`` relative to the
    objective, and absolute near zero (a separable fit's objective ends at about 0, where
    summing rows leaves noise of order 1e-15)."""
    trace = np.asarray(trace)
    drops = trace[:-1] - trace[1:]
    assert np.all(drops <= rtol * np.maximum(np.abs(trace[1:]), 1.0)), drops.max()
