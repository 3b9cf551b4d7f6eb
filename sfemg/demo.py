"""``sfemg demo``: simulate a small myasthenic jitter study, analyse it, write its report.

The demo is the shortest path from installation to a clinical jitter report: 20 fibre
pairs of the extensor digitorum in moderate AChR myasthenia gravis, recorded with a
concentric needle electrode (for which Stålberg et al. 2016 give reference limits, so the
study gets a verdict), 100 discharges each at 50 kHz.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

__all__ = ["run_demo", "DEMO_STUDY"]

#: What the demo simulates (arguments of :func:`sfemg.synthesis.simulate_study`).
DEMO_STUDY = dict(preset="achr-mg-moderate", mode="voluntary", n_recordings=20,
                  n_discharges=100, fs_hz=50_000.0, electrode="concentric")


@contextlib.contextmanager
def _stage(desc, enabled):
    """Yield a ``progress(n_done, n_total)`` callback drawing a tqdm bar on stderr."""
    bar = None

    def update(n_done, n_total):
        nonlocal bar
        if bar is None:
            from tqdm import tqdm
            bar = tqdm(total=n_total, desc=desc, file=sys.stderr, leave=False, disable=None)
        bar.update(n_done - bar.n)

    if not enabled:
        yield None
        return
    try:
        import tqdm  # noqa: F401  (progress display is optional)
    except ImportError:
        yield None
        return
    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def run_demo(out_dir="sfemg-demo", *, seed=1, progress=True, quiet=False):
    """Simulate, analyse and report the demo study (:data:`DEMO_STUDY`).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder for the outputs (created if missing; earlier demo files are replaced).
    seed : int
        Random seed of the simulation (same seed, same study).
    progress : bool
        Show progress bars (tqdm, stderr).
    quiet : bool
        Print nothing and show no progress.

    Returns
    -------
    dict of str to pathlib.Path
        ``"study"``: the HDF5 file with the recordings, their ground truth and the
        analysis; ``"report_pdf"``, ``"report_html"``, ``"report_png"``: the report.
    """
    from .analysis import analyze_file
    from .analysis.limits import mean_jitter_text, verdict_with_reason
    from .io import save_recordings
    from .report import write_reports
    from .synthesis import simulate_study

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    show = progress and not quiet
    paths = {"study": out / "study.h5", "report_pdf": out / "report.pdf",
             "report_html": out / "report.html", "report_png": out / "report.png"}
    with _stage("simulating", show) as cb:
        study = simulate_study(seed=seed, progress=cb, **DEMO_STUDY)
    provenance = study.provenance()
    provenance["command"] = "sfemg demo"
    save_recordings(paths["study"], study.recordings, parameters=study.params.to_dict(),
                    provenance=provenance, force=True)
    with _stage("analysing", show) as cb:
        result = analyze_file(paths["study"],
                              progress=None if cb is None else (lambda done, n, name: cb(done, n)))
    write_reports(result, [paths["report_pdf"], paths["report_html"], paths["report_png"]],
                  recordings=study.recordings, progress=show,
                  title="sfemg demo: moderate AChR myasthenia gravis, EDC")
    if not quiet:
        s = result.study
        p = study.params
        print(f"sfemg demo: {p.preset} ({p.muscle}), {p.n_recordings} pairs x {p.n_discharges} "
              f"discharges, {p.electrode} electrode, {p.fs_hz / 1000:g} kHz, seed {study.seed}")
        print(f"  study, ground truth and analysis: {paths['study']}")
        print(f"  report: {paths['report_pdf']}, {paths['report_html']}, {paths['report_png']}")
        print(f"  {mean_jitter_text(s)}; verdict: {verdict_with_reason(s)}")
    return paths
