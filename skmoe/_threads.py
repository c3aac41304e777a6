"""BLAS threads inside a fit: as many as ``n_jobs`` gives one EM run, by default one.

An EM iteration is a few dozen small products (row blocks of a few thousand rows by the
p + 1 columns of the design) and element-wise passes. Multi-threaded OpenBLAS gains at
most about 10% on them on a quiet machine, and loses 1.8x to 17x as soon as another
process keeps a core busy (its threads wait for each other at every small product):
``benchmarks/bench_em_iteration.py --load`` measures both. So ``fit`` holds the BLAS
libraries to ``n_jobs`` threads per EM run (``n_jobs=None`` is 1, as everywhere in
scikit-learn; restarts run in parallel instead, ``n_jobs`` at a time). The limit only
ever lowers a library's thread count: a caller's own ``threadpoolctl.threadpool_limits``
(or ``OPENBLAS_NUM_THREADS``) below it is kept as it is.

The thread count of a BLAS library is process-wide. Fits running at once in several
threads of one process share one limit: the first to start sets it, the last to finish
restores the previous counts.
"""

import threading
from contextlib import contextmanager

from joblib import effective_n_jobs

_lock = threading.Lock()
_active = 0
_restore = []
_libraries = None


def _blas_libraries():
    """The BLAS libraries loaded in this process (found once; numpy's and scipy's are
    loaded with skmoe)."""
    global _libraries
    if _libraries is None:
        from threadpoolctl import ThreadpoolController

        _libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return _libraries


def em_threads(n_jobs, n_runs=1):
    """BLAS threads for each of ``n_runs`` EM runs given ``n_jobs``: the runs share the
    ``n_jobs`` cores (at least one thread each)."""
    if n_jobs is None:
        return 1
    jobs = effective_n_jobs(n_jobs)
    return max(1, jobs // max(1, min(n_runs, jobs)))


@contextmanager
def limit_blas_threads(threads):
    """Hold every BLAS library to at most ``threads`` threads inside the block."""
    global _active, _restore
    with _lock:
        if _active == 0:
            _restore = []
            for library in _blas_libraries():
                current = library.get_num_threads()
                if current is not None and current > threads:
                    library.set_num_threads(threads)
                    _restore.append((library, current))
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                for library, count in _restore:
                    library.set_num_threads(count)
                _restore = []
