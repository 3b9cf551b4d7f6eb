"""Validation-sweep throughput on local worker processes, and its parallel efficiency.

Run ``python benchmarks/bench_sweep.py [--quick]``. Prints figures measured in this run
(best of several repeats; the machine may be shared and noisy):

**recordings / s**: voluntary pair recordings simulated *and* analysed (the
``sfemg-template`` analyser, then scored) per second by :func:`sfemg.validation.run_sweep`,
100 discharges at 50 kHz, as 10 ms sweeps and as continuous recordings, at 1 worker (in
process: the named baseline) and at 2 worker processes. **Parallel efficiency** =
rate(2 workers) / (2 × rate(1 worker)). Targets (issue 5): ≥ 100 recordings/s in sweep
form and ≥ 20/s continuous at 2 workers; efficiency ≥ 85 %.

**Streaming memory**: peak resident memory of a fresh process that synthesises one
1-hour continuous pair recording (36,000 discharges at 10 Hz, 50 kHz) straight to HDF5
with :func:`sfemg.synthesis.write_study`, against its named baseline: the same process
after its imports; and against the signal's in-memory size (float64). Target: peak
RSS < 1 GB. ``--quick`` synthesises 1 minute instead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import best_of

from sfemg.validation import Cell, Grid, run_sweep

#: Recordings per task (one Monte Carlo repeat): enough that the per-task overhead
#: (process hand-off, one cell write per sweep) is small against the work.
RECORDINGS_PER_TASK = 10


def throughput(output, n_workers, n_tasks, repeats, folder):
    """Recordings simulated and analysed per second (best of ``repeats`` sweeps)."""
    grid = Grid("bench", (Cell(output=output, n_discharges=100, fs_hz=50_000.0),))

    def sweep():
        run_sweep(Path(tempfile.mkdtemp(dir=folder)) / "sweep.h5", grid, n_repeats=n_tasks,
                  n_recordings=RECORDINGS_PER_TASK, methods=("analyser:sfemg-template",), n_workers=n_workers)

    return n_tasks * RECORDINGS_PER_TASK / best_of(sweep, repeats)


#: Run in a fresh process: peak RSS after the imports, then after streaming the recording,
#: KiB. Linux's VmHWM is this process's own high-water mark; getrusage's ru_maxrss would
#: carry the launching process's peak across fork/exec.
_STREAM_SCRIPT = """
import resource, sys
from sfemg.synthesis import study_params, write_study

def peak_kib():
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

floor = peak_kib()
params = study_params(n_recordings=1, n_discharges=int(sys.argv[2]), output="continuous")
write_study(sys.argv[1], params, seed=1, n_jobs=1)
print(floor, peak_kib())
"""


def streaming_peak_rss(duration_s, folder):
    """Peak RSS of a fresh process before and after streaming a recording to HDF5, bytes."""
    n_discharges = int(duration_s * 10.0)  # the default 10 Hz firing
    out = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(Path(folder) / f"long-{n_discharges}.h5"),
                          str(n_discharges)], check=True, capture_output=True, text=True).stdout
    floor_kib, peak_kib = (int(x) for x in out.split())
    return floor_kib * 1024, peak_kib * 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    n_tasks, repeats = (2, 1) if args.quick else (16, 2)
    with tempfile.TemporaryDirectory() as folder:
        throughput("sweeps", 1, 1, 1, folder)  # warm-up: numba caches, background bank
        print(f"sweep throughput: {RECORDINGS_PER_TASK} pair recordings per task, {n_tasks} tasks, "
              "100 discharges, 50 kHz, simulate + analyse (sfemg-template) + score")
        for output, target in (("sweeps", 100), ("continuous", 20)):
            one = throughput(output, 1, n_tasks, repeats, folder)
            two = throughput(output, 2, n_tasks, repeats, folder)
            print(f"  {output:<10}  1 worker {one:6.1f} rec/s | 2 workers {two:6.1f} rec/s "
                  f"(target >= {target}) | parallel efficiency {two / (2 * one):5.0%} (target >= 85 %)")
        duration_s = 60.0 if args.quick else 3600.0
        floor, peak = streaming_peak_rss(duration_s, folder)
        in_memory = duration_s * 50_000.0 * 8
        print(f"streaming a {duration_s / 60:g}-minute continuous recording (50 kHz) to HDF5:")
        print(f"  peak RSS {peak / 1e6:7.0f} MB | after imports {floor / 1e6:5.0f} MB (ratio {peak / floor:.2f}) "
              f"| signal in memory would be {in_memory / 1e6:5.0f} MB | target < 1000 MB")


if __name__ == "__main__":
    main()
