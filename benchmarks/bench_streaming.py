"""Peak memory of a long continuous recording synthesised straight to HDF5.

Run ``python benchmarks/bench_streaming.py [--quick]``. A fresh Python process
simulates one voluntary pair for an hour (36,000 discharges at 10 Hz, 50 kHz: 180 M
samples, 1.4 GB as float64) with :func:`sfemg.synthesis.write_study`, which renders and
writes it in 5-second chunks; the child reports its peak resident memory. Target: under
1 GB. Baseline: the size of the signal held in memory as float64.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from sfemg.synthesis import study_params, write_study
params = study_params("healthy-edc", n_recordings=1, n_discharges={n}, fs_hz=50_000.0)
write_study(sys.argv[1], params, seed=1, n_jobs=1)
# peak RSS of this process alone (ru_maxrss can carry the parent's across fork/exec)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))  # KiB
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two minutes of recording instead of an hour")
    n = 1200 if parser.parse_args().quick else 36_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.h5"
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD.format(n=n), str(path)], check=True,
                             capture_output=True, text=True).stdout
        elapsed = time.perf_counter() - t0
        peak_mb = int(out.split()[-1]) / 1024
        size_mb = path.stat().st_size / 1e6
    seconds = n / 10.0
    in_memory_mb = seconds * 50_000 * 8 / 1e6
    print(f"streamed {seconds / 60:.0f} min at 50 kHz in {elapsed:.1f} s: file {size_mb:.0f} MB, "
          f"peak RSS {peak_mb:.0f} MB (target < 1024 MB); the signal in memory would be {in_memory_mb:.0f} MB "
          f"(ratio {peak_mb / in_memory_mb:.2f})")


if __name__ == "__main__":
    main()
