"""Analysis speed against its floor: reading the samples and filtering them once.

Run ``python benchmarks/bench_analysis.py [--quick]``. A 20-pair voluntary study (the
toolkit's simulator, continuous, 100 discharges at 10 Hz) is written to a temporary HDF5
file; then, in the same run (best of several repeats, the machine may be noisy):

* **floor**: ``load_recordings`` (one read of every sample) plus one
  ``scipy.signal.sosfilt`` pass of a 2nd-order Butterworth band-pass (500 Hz-10 kHz, two
  second-order sections) over all samples;
* **analyze_file**: reading, analysing every recording (template method) and writing
  ``/analysis`` to a separate results file; as a user runs it (recordings analysed on one
  worker thread per core while the next are read) and on one worker thread.

Prints the times and the ratios analyze_file / floor (target ≤ 2), and where the time
goes on one worker: reading, the analysis in memory (``analyze_recordings``) and writing
the results; and the analysis in memory without the joint timing of overlapping
potentials (``AnalysisParams(joint_timing=False)``), the price of that accuracy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _timing import best_of
from scipy import signal as sps

from sfemg.analysis import AnalysisParams, analyze_file, analyze_recording, analyze_recordings
from sfemg.io import load_recordings, save_recordings
from sfemg.io.results import save_results
from sfemg.synthesis import simulate_study


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 50 kHz")
    args = parser.parse_args(argv)
    fs_hz = 50_000.0 if args.quick else 100_000.0
    repeats = 2 if args.quick else 5
    study = simulate_study("healthy-edc", n_recordings=20, n_discharges=100, fs_hz=fs_hz, seed=3)
    n_samples = sum(r.signal_v.size for r in study.recordings)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.h5"
        out = Path(tmp) / "results.h5"
        save_recordings(path, study.recordings)
        sos = sps.butter(2, [500.0, 10_000.0], "bandpass", fs=fs_hz, output="sos")
        analyze_recording(study.recordings[0])  # compile the numba kernel outside the timing

        def floor():
            for rec in load_recordings(path, with_ground_truth=False):
                sps.sosfilt(sos, rec.signal_v)

        def analysis(n_workers=None):
            out.unlink(missing_ok=True)
            analyze_file(path, output_path=out, n_workers=n_workers)

        t_floor = best_of(floor, repeats)
        t_analysis = best_of(analysis, repeats)
        t_one = best_of(lambda: analysis(1), repeats)
        n_pairs = sum(len(r.pairs) for r in analyze_file(path, output_path=out).recordings)
        recordings = load_recordings(path, with_ground_truth=False)
        t_read = best_of(lambda: load_recordings(path, with_ground_truth=False), repeats)
        t_memory = best_of(lambda: analyze_recordings(recordings, n_workers=1), repeats)
        single = AnalysisParams(joint_timing=False)
        t_single = best_of(lambda: analyze_recordings(recordings, params=single, n_workers=1), repeats)
        result = analyze_recordings(recordings)
        t_write = best_of(lambda: save_results(Path(tmp) / f"w{time.perf_counter_ns()}.h5", result), repeats)
    print(f"study: 20 recordings, {n_pairs} pairs, {n_samples / 1e6:.1f} M samples at "
          f"{fs_hz / 1e3:g} kHz")
    print(f"floor (read + one sosfilt pass): {t_floor * 1e3:8.1f} ms")
    print(f"analyze_file (read, analyse, write), {os.cpu_count()} worker threads: {t_analysis * 1e3:8.1f} ms")
    print(f"ratio analyze_file / floor: {t_analysis / t_floor:.2f}  (target <= 2)")
    print(f"on 1 worker thread: {t_one * 1e3:.1f} ms, ratio {t_one / t_floor:.2f}")
    print(f"  of which: read {t_read * 1e3:.0f} ms, analyse in memory {t_memory * 1e3:.0f} ms "
          f"({t_memory / t_floor:.2f} floors), write results {t_write * 1e3:.0f} ms")
    print(f"  without joint timing: analyse in memory {t_single * 1e3:.0f} ms; analyze_file would be "
          f"~{(t_one - t_memory + t_single) / t_floor:.2f} floors")
    return t_analysis / t_floor


if __name__ == "__main__":
    main()
