"""FAISS IndexFlatIP reference for bench/search (benchmark only).

Reads the vectors bench/search wrote, searches them with faiss-cpu's exact
inner-product index and prints one JSON object: queries/s and the top-k ids.
Install: apt-get install -y python3-faiss python3-numpy libopenblas0-pthread
(Debian; without OpenBLAS faiss falls back to the slow reference BLAS), run with
/usr/bin/python3.
"""
import json
import os
import sys
import time

import faiss
import numpy as np

items_path, queries_path, dim, k, threads, ids_out = sys.argv[1:7]
reps = int(sys.argv[7]) if len(sys.argv) > 7 else 3
dim, k, threads = int(dim), int(k), int(threads)
items = np.fromfile(items_path, dtype="<f4").reshape(-1, dim)
queries = np.fromfile(queries_path, dtype="<f4").reshape(-1, dim)
faiss.omp_set_num_threads(threads)


def pin_threads(n):
    """Hold every thread of this process to the first n CPUs, as bench/search
    pins its own runs (threads started later inherit the set)."""
    cpus = sorted(os.sched_getaffinity(0))[:n]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            pass
    return cpus


pinned = pin_threads(int(os.environ["CROPS_PIN_CPUS"])) if os.environ.get("CROPS_PIN_CPUS") else None
index = faiss.IndexFlatIP(dim)
index.add(items)
index.search(queries[:8], k)  # warm-up
best, best_cpu = None, None
for _ in range(reps):
    t0, c0 = time.perf_counter(), time.process_time()
    _, ids = index.search(queries, k)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    if best is None or dt < best:
        best, best_cpu = dt, dc
ids.astype("<i4").tofile(ids_out)
print(json.dumps({
    "faiss_version": faiss.__version__,
    "seconds": best,
    "queries_per_sec": len(queries) / best,
    # CPU seconds (all threads) per wall second of the best search: the
    # cores the machine gave FAISS while it searched.
    "cpu_seconds_per_wall_second": best_cpu / best,
    "threads": threads,
    "pinned_cpus": pinned,
}))
