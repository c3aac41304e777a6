import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmoe import DegenerateFitWarning

DATA = Path(__file__).parent / "data"


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
