"""Regenerate the reference recordings in this folder and their expected results.

Run ``python signals/make_signals.py`` from the repository root. Deterministic: the
same sfemg version writes the same files. ``expected.json`` holds, per recording and
pair, the ground-truth jitter (what a perfect measurement reports) and blocking, and the
values sfemg's analysis measured when the files were made (a regression reference).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from sfemg.analysis import analyze_recording
from sfemg.errors import SfemgInputError
from sfemg.io import save_recordings
from sfemg.synthesis import simulate_study
from sfemg.synthesis.truth import true_jitter_table

HERE = Path(__file__).parent

#: name -> (description, simulate_study arguments)
SIGNALS = {
    "healthy-edc-voluntary": (
        "healthy EDC, voluntary, 3 pairs x 60 discharges, continuous, 25 kHz, SFE",
        dict(preset="healthy-edc", n_recordings=3, n_discharges=60, fs_hz=25_000.0, seed=11)),
    "mg-moderate-voluntary": (
        "AChR MG (moderate), EDC, voluntary, 3 pairs x 60 discharges, continuous, 25 kHz, SFE",
        dict(preset="achr-mg-moderate", n_recordings=3, n_discharges=60, fs_hz=25_000.0, seed=5)),
    "healthy-edc-stimulated-sweeps": (
        "healthy EDC, stimulated at 10 Hz, 5 endplates x 60 stimuli, 10 ms sweeps, 50 kHz, concentric",
        dict(preset="healthy-edc", mode="stimulated", n_recordings=5, n_discharges=60,
             fs_hz=50_000.0, output="sweeps", electrode="concentric", seed=3)),
}


def numpy_math_digest():
    """A hash of NumPy's ``exp`` and ``log1p`` over fixed inputs: which of its CPU-dependent
    variants this machine runs (with and without AVX-512 they differ in the last bit, and
    the simulated event times with them). The files regenerate bit for bit where it is the
    same as when they were made."""
    x = np.linspace(-20.0, 20.0, 100_001)
    return hashlib.sha256(np.exp(x).tobytes() + np.log1p(np.abs(x)).tobytes()).hexdigest()[:12]


def _round(x, digits=2):
    return None if not np.isfinite(x) else round(float(x), digits)


def main():
    expected = {}
    for name, (description, kwargs) in SIGNALS.items():
        study = simulate_study(**kwargs)
        save_recordings(HERE / f"{name}.h5", study.recordings, parameters=study.params.to_dict(),
                        provenance=study.provenance(), force=True)
        truth = true_jitter_table(study.ground_truths)
        recs = {}
        for i, rec in enumerate(study.recordings):
            rows = [j for j in range(truth["recording"].size) if truth["recording"][j] == i]
            recs[rec.name] = {
                "true": [{"fibre": int(truth["fibre"][j]), "jitter_us": _round(truth["jitter_us"][j]),
                          "mcd_us": _round(truth["mcd_us"][j]),
                          "blocking_percent": _round(truth["blocking_percent"][j])} for j in rows],
            }
            try:
                recs[rec.name]["measured"] = [{k: (_round(v) if isinstance(v, float) else v)
                                               for k, v in p.to_json_dict().items()}
                                              for p in analyze_recording(rec).pairs]
            except SfemgInputError as exc:  # e.g. the timed fibre blocks throughout
                recs[rec.name]["analysis_error"] = str(exc)
        expected[name] = {"description": description, "simulate_study": kwargs, "recordings": recs,
                          "numpy_math": numpy_math_digest()}
        print(f"wrote signals/{name}.h5")
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print("wrote signals/expected.json")


if __name__ == "__main__":
    main()
