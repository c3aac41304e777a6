#!/usr/bin/env bash
# Run every benchmark of this folder one after the other, as recorded in results.md.
#
#     bash benchmarks/run_all.sh [SECTION ...] > benchmarks/run.log 2>&1
#
# With section names (optimum, em_iteration, ...), only those run.
# Each section starts with the script's name, the time and the 1-minute load average, so a
# reader can tell a quiet run from a loaded one. bench_flexmix needs R with flexmix and the
# scripts of ../shared/bench (see bench_flexmix.py); bench_dask needs the dask extra.
set -u
cd "$(dirname "$0")/.."
wanted=" $* "

section() {
    echo "=== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
}

run() {
    local name=$1
    shift
    if [ "$wanted" != "  " ] && [[ "$wanted" != *" $name "* ]]; then
        return
    fi
    section "$name"
    # LocalCluster's log lines are noise here
    python "$@" 2>&1 | grep -v -E "distributed\.|^\s*$|bringing up nodes" || true
}

run optimum benchmarks/bench_optimum.py --seeds 20 --long-runs 20
run em_iteration benchmarks/bench_em_iteration.py
run hme benchmarks/bench_hme.py
run flexmix_L benchmarks/bench_flexmix.py --n 100000 --d 10 --k 4 --repeats 3
run flexmix_S benchmarks/bench_flexmix.py --n 10000 --d 5 --k 3 --repeats 3
run families benchmarks/bench_families.py
run new_families benchmarks/bench_new_families.py
run memory benchmarks/bench_memory.py
run classifier benchmarks/bench_classifier.py
run sparse benchmarks/bench_sparse.py
run scaling benchmarks/bench_dask.py scaling
run ooc benchmarks/bench_dask.py out-of-core
run partial_fit benchmarks/bench_partial_fit.py
run grouped benchmarks/bench_grouped.py
section done
