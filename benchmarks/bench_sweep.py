"""Validation-sweep throughput on local worker processes, and its parallel efficiency.

Run ``python benchmarks/bench_sweep.py [--quick]``. Prints figures measured in this run
(best of several repeats; the machine may be shared and noisy):

**recordings / s**: voluntary pair recordings simulated *and* analysed (the
``sfemg-template`` analyser, then scored) per second by :func:`sfemg.validation.run_sweep`,
100 discharges at 50 kHz, as 10 ms sweeps and as continuous recordings, at 1 worker (in
process: the named baseline) and at 2 worker processes. **Parallel efficiency** =
rate(2 workers) / (2 × rate(1 worker)). Targets (issue 5): ≥ 100 recordings/s in sweep
form and ≥ 20/s continuous at 2 workers; efficiency ≥ 85 %.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _timing import best_of

from sfemg.validation import Cell, Grid, run_sweep

#: Recordings per task (one Monte Carlo repeat): enough that the per-task overhead
#: (process hand-off, one cell write per sweep) is small against the work.
RECORDINGS_PER_TASK = 10


def throughput(output, n_workers, n_tasks, repeats, folder, analyser="sfemg-template"):
    """Recordings simulated and analysed per second (best of ``repeats`` sweeps)."""
    grid = Grid("bench", (Cell(output=output, n_discharges=100, fs_hz=50_000.0),))

    def sweep():
        run_sweep(Path(tempfile.mkdtemp(dir=folder)) / "sweep.h5", grid, n_repeats=n_tasks,
                  n_recordings=RECORDINGS_PER_TASK, methods=(f"analyser:{analyser}",), n_workers=n_workers)

    return n_tasks * RECORDINGS_PER_TASK / best_of(sweep, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--analyser", default="sfemg-template",
                        help="built-in analyser to run (e.g. sfemg-template-single: no joint timing)")
    args = parser.parse_args(argv)
    n_tasks, repeats = (2, 1) if args.quick else (16, 2)
    with tempfile.TemporaryDirectory() as folder:
        throughput("sweeps", 1, 1, 1, folder, args.analyser)  # warm-up: numba caches, background bank
        print(f"sweep throughput: {RECORDINGS_PER_TASK} pair recordings per task, {n_tasks} tasks, "
              f"100 discharges, 50 kHz, simulate + analyse ({args.analyser}) + score")
        for output, target in (("sweeps", 100), ("continuous", 20)):
            one = throughput(output, 1, n_tasks, repeats, folder, args.analyser)
            two = throughput(output, 2, n_tasks, repeats, folder, args.analyser)
            print(f"  {output:<10}  1 worker {one:6.1f} rec/s | 2 workers {two:6.1f} rec/s "
                  f"(target >= {target}) | parallel efficiency {two / (2 * one):5.0%} (target >= 85 %)")

if __name__ == "__main__":
    main()
