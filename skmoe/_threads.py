"""Process-wide settings held during a fit: BLAS threads, and the heap's slack.

**BLAS threads**: as many as ``n_jobs`` gives one EM run, by default one.
An EM iteration is a few dozen small products (row blocks of a few thousand rows by the
p + 1 columns of the design) and element-wise passes. Multi-threaded OpenBLAS gains at
most about 10% on them on a quiet machine, and loses 1.8x to 17x as soon as another
process keeps a core busy (its threads wait for each other at every small product):
``benchmarks/bench_em_iteration.py --load`` measures both. So ``fit`` holds the BLAS
libraries to ``n_jobs`` threads per EM run (``n_jobs=None`` is 1, as everywhere in
scikit-learn; restarts run in parallel instead, ``n_jobs`` at a time). The limit only
ever lowers a library's thread count: a caller's own ``threadpoolctl.threadpool_limits``
(or ``OPENBLAS_NUM_THREADS``) below it is kept as it is.

**The heap's slack** (glibc's malloc only): an EM iteration makes dozens of (K, n)
temporaries and frees them (3.2 MB each at n=1e5, K=4). glibc gives memory freed at the
top of its heap back to the kernel once more than its trim threshold is free, so the next
temporary of the same size faults all its pages in again: ``log(r + exp(eta))`` on (4, 1e5)
takes 3.7 ms on fresh pages and 1.4 ms on kept ones (``benchmarks/bench_new_families.py``
measures whole iterations). Inside a fit the heap keeps ``FIT_HEAP_PAD`` bytes of slack at
its top (``mallopt(M_TOP_PAD)``); after the fit glibc's default pad is restored and
``malloc_trim(0)`` returns the slack. Setting the pad ends glibc's dynamic adjustment of
its mmap threshold for the process (the threshold stays where it is). Arrays above that
threshold (at most 32 MB) are mapped and unmapped whatever the pad. With another C
library this does nothing.

A setting is process-wide: fits running at once in several threads of one process share
it; the first to start applies it, the last to finish restores it.
"""

import ctypes
import threading
from contextlib import contextmanager

from joblib import effective_n_jobs

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


class _SharedSetting:
    """A process-wide setting held while any fit runs: the first fit to enter applies it
    (``apply()`` returns the function that undoes it), the last to leave undoes it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active = 0
        self._undo = None

    @contextmanager
    def hold(self, apply):
        with self._lock:
            if self.active == 0:
                self._undo = apply()
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1
                if self.active == 0:
                    undo, self._undo = self._undo, None
                    undo()


_blas_setting = _SharedSetting()
_heap_setting = _SharedSetting()


def limit_blas_threads(threads):
    """Hold every BLAS library to at most ``threads`` threads inside the block."""

    def apply():
        lowered = []
        for library in _blas_libraries():
            current = library.get_num_threads()
            if current is not None and current > threads:
                library.set_num_threads(threads)
                lowered.append((library, current))
        return lambda: [library.set_num_threads(count) for library, count in lowered]

    return _blas_setting.hold(apply)


#: The heap's slack inside a fit, and glibc's default (``mallopt(3)``).
FIT_HEAP_PAD = 64 << 20
_GLIBC_TOP_PAD = 128 << 10
_M_TOP_PAD = -2


def _glibc():
    """The process's C library if it is glibc (it has ``mallopt`` and ``malloc_trim``),
    else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def keep_heap_slack():
    """Keep ``FIT_HEAP_PAD`` bytes of slack at the top of glibc's heap inside the block."""

    def apply():
        libc = _glibc()
        if libc is None or not libc.mallopt(_M_TOP_PAD, FIT_HEAP_PAD):
            return lambda: None

        def undo():
            libc.mallopt(_M_TOP_PAD, _GLIBC_TOP_PAD)
            libc.malloc_trim(0)

        return undo

    return _heap_setting.hold(apply)


@contextmanager
def fit_settings(threads):
    """The settings of a fit: BLAS held to ``threads`` threads, and the heap's slack."""
    with limit_blas_threads(threads), keep_heap_slack():
        yield
