"""BLAS threads inside a fit: one per EM run by default, never more than the caller's."""

import numpy as np
import pytest
from joblib import parallel_config
from threadpoolctl import threadpool_info, threadpool_limits

from skmoe import MixtureOfExpertsRegressor, _threads
from skmoe._threads import em_threads, limit_blas_threads


def _blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_em_threads_share_n_jobs():
    assert em_threads(None) == 1
    assert em_threads(1, n_runs=4) == 1
    assert em_threads(4, n_runs=1) == 4
    assert em_threads(4, n_runs=2) == 2
    assert em_threads(4, n_runs=8) == 1


def test_limit_lowers_and_restores():
    with threadpool_limits(limits=2, user_api="blas"):
        with limit_blas_threads(1):
            assert set(_blas_threads()) == {1}
            with limit_blas_threads(1):  # nested (or concurrent) fits share the limit
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_limit_never_raises_the_callers():
    with threadpool_limits(limits=1, user_api="blas"):
        with limit_blas_threads(2):
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}


@pytest.mark.parametrize("n_jobs, expected", [(None, 1), (2, 2)])
def test_fit_runs_with_n_jobs_threads(monkeypatch, n_jobs, expected):
    seen = []
    fit_one = MixtureOfExpertsRegressor._fit_one

    def spy(self, *args, **kwargs):
        seen.append(max(_blas_threads()))
        return fit_one(self, *args, **kwargs)

    monkeypatch.setattr(MixtureOfExpertsRegressor, "_fit_one", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] + rng.normal(size=200)
    with threadpool_limits(limits=2, user_api="blas"), parallel_config(backend="threading"):
        MixtureOfExpertsRegressor(2, n_jobs=n_jobs, random_state=0).fit(X, y)
        assert set(_blas_threads()) == {2}
    assert seen == [expected]
    assert _threads._blas_setting.active == 0


class _FakeGlibc:
    """Records the allocator calls of ``keep_heap_slack``."""

    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append(("mallopt", option, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_a_fit_keeps_the_heaps_slack_and_restores_glibcs_default(monkeypatch):
    fake = _FakeGlibc()
    monkeypatch.setattr(_threads, "_glibc", lambda: fake)
    during = []
    fit_one = MixtureOfExpertsRegressor._fit_one

    def spy(self, *args, **kwargs):
        during.append(list(fake.calls))
        return fit_one(self, *args, **kwargs)

    monkeypatch.setattr(MixtureOfExpertsRegressor, "_fit_one", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] + rng.normal(size=200)
    with parallel_config(backend="threading"):  # two restarts at once share the setting
        MixtureOfExpertsRegressor(2, n_init=2, n_jobs=2, random_state=0).fit(X, y)
    pad = ("mallopt", _threads._M_TOP_PAD, _threads.FIT_HEAP_PAD)
    assert during == [[pad], [pad]]
    assert fake.calls == [pad, ("mallopt", _threads._M_TOP_PAD, _threads._GLIBC_TOP_PAD),
                          ("malloc_trim", 0)]
    assert _threads._heap_setting.active == 0


def test_without_glibc_the_heap_is_left_alone(monkeypatch):
    monkeypatch.setattr(_threads, "_glibc", lambda: None)
    with _threads.keep_heap_slack():
        assert _threads._heap_setting.active == 1
    assert _threads._heap_setting.active == 0
