"""The ``sfemg`` command line: presets, simulate, rns, analyze, report, demo.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback);
1 internal error (a bug: please report it; set ``SFEMG_DEBUG=1`` for the traceback);
130 interrupted by Ctrl-C; ended by SIGTERM, the program dies of the signal after its
clean-up (:func:`run`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import shlex
import signal
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import SfemgInputError

__all__ = ["main", "run"]

#: The 1st-4th decrement > 10 % criterion is for low-rate RNS, up to this rate, Hz (2-3 Hz
#: usual, 1-5 Hz allowed: docs/literature.md §10).
_LOW_RATE_RNS_HZ = 5.0
#: Exit code of a command ended by SIGTERM (128 + the signal's number, as a shell reports it).
_TERMINATED = 128 + signal.SIGTERM
#: Exit code when the output was closed early (``sfemg rns | head -1``), as of SIGPIPE.
_BROKEN_PIPE = 141
#: Figure files ``rns --plot`` writes (by matplotlib).
_FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit code 2."""

    def error(self, message):
        command = self.prog.split()[-1]
        raise SfemgInputError(message if command == "sfemg" else f"{command}: {message}")


class _Progress:
    """A tqdm bar on stderr, opened at the first update (so errors found before any
    work leave no half-drawn bar); silent when quiet, and where stderr is no terminal (a
    log or a pipe: its carriage returns then began the error line)."""

    def __init__(self, quiet, desc):
        self.quiet, self.desc, self.bar = quiet, desc, None

    def __call__(self, done, total, *_):
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=self.desc, unit="rec", file=sys.stderr, leave=False, disable=None)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


#: The oldest subject's age, years: --age above it is a typo (300 was taken, and the
#: verdict said "no limits at age 300"). The Python API takes any positive age (the
#: verdict then says there are no limits), so results stored with one stay readable.
_MAX_AGE_YEARS = 130.0


def _age(text):
    value = _number(text)
    if not 0 < value <= _MAX_AGE_YEARS:
        raise argparse.ArgumentTypeError(f"a subject's age in years, above 0 and at most {_MAX_AGE_YEARS:g}; "
                                         f"got {text}")
    return value


def _electrode(text):
    """An electrode name or alias for ``analyze --electrode`` ("SFE", "CNE", ...), as the
    recordings' attribute is read."""
    from .analysis.limits import canonical_electrode
    try:
        electrode = canonical_electrode(text, where="")
    except SfemgInputError:
        electrode = None
    if electrode is None:
        raise argparse.ArgumentTypeError(f"must be 'sfe' (single-fibre) or 'concentric' (concentric needle), "
                                         f"got {text!r}")
    return electrode


def _named(message, options):
    """``message`` naming the command line's options, not the parameters behind them
    ({parameter: option}): "--age must be ...", not "AnalysisParams.age_years must be ...".
    Only where a parameter is spoken of (``AnalysisParams.<name>``, or the name before
    ``(``, ``=``, a comparison, "must", "is" or at the end of a clause): a path such as
    ``data/method/x.h5`` or a Python example ``AnalysisParams(highpass_hz=500)`` stays."""
    for name, option in options.items():
        message = re.sub(rf"AnalysisParams\.{name}\b|(?<![\w./(-]){name}(?=\s*[(=<>]|\s+(?:must|is)\b|\)|$)",
                         option, message)
    return message


@contextlib.contextmanager
def _options_named(options):
    """Errors raised inside name the command line's options (:func:`_named`)."""
    try:
        yield
    except SfemgInputError as exc:
        raise SfemgInputError(_named(str(exc), options)) from None


def _check_output(path, force):
    """Refuse an output path that would fail or overwrite without --force (None passes):
    the package's one set of checks (``io._atomic.writable_target``)."""
    from .io._atomic import writable_target
    return None if path is None else writable_target(path, force=force)


def _cmd_presets(args):
    from .synthesis import PRESETS
    width = max(len(n) for n in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  [{preset.muscle}] {preset.description}")
    return 0


def _cmd_simulate(args):
    from .synthesis import study_params, write_study

    stimulated = args.mode == "stimulated"
    if stimulated and args.pairs is not None:
        raise SfemgInputError("--pairs is for voluntary studies; use --endplates with --mode stimulated")
    if not stimulated and args.endplates is not None:
        raise SfemgInputError("--endplates is for stimulated studies; use --pairs with --mode voluntary")
    _check_output(args.output, args.force)
    overrides = {}
    if args.fibres is not None:
        overrides["fibres_per_recording"] = args.fibres
    if args.no_artefact:
        if not stimulated:
            raise SfemgInputError("--no-artefact is for stimulated studies (--mode stimulated)")
        overrides["stimulus_artefact"] = False
    if args.stimulator_clock is not None:
        if not stimulated:
            raise SfemgInputError("--stimulator-clock is for stimulated studies (--mode stimulated)")
        overrides["stimulator_clock"] = args.stimulator_clock
    with _options_named({"n_recordings": "--endplates" if stimulated else "--pairs", "n_discharges": "--discharges",
                         "rate_hz": "--rate", "fs_hz": "--fs", "fibres_per_recording": "--fibres"}):
        params = study_params(args.preset, muscle=args.muscle, mode=args.mode,
                              n_recordings=args.endplates if stimulated else args.pairs,
                              n_discharges=args.discharges, rate_hz=args.rate, fs_hz=args.fs,
                              electrode=args.electrode, output=args.output_kind, **overrides)
    progress = _Progress(args.quiet, "simulating")
    try:
        study = write_study(args.output, params, seed=args.seed, n_jobs=args.jobs, progress=progress,
                            force=args.force, provenance={"command": args.command_line})
    finally:
        progress.close()
    if not args.quiet:
        unit = "endplates" if stimulated else "pairs"
        print(f"wrote {args.output}: {params.n_recordings} {unit} x {params.n_discharges} discharges, "
              f"preset {params.preset} ({params.muscle}), {params.electrode}, {params.fs_hz / 1000:g} kHz, "
              f"seed {study.seed}")
    return 0


def _cmd_rns(args):
    from .synthesis import get_preset, simulate_rns
    _check_figure(args.plot, args.force)  # (before the simulation)
    with _options_named({"rate_hz": "--rate", "n_stimuli": "--stimuli", "n_endplates": "--endplates"}):
        r = simulate_rns(args.preset, muscle=args.muscle, rate_hz=args.rate, n_stimuli=args.stimuli,
                         n_endplates=args.endplates, seed=args.seed)
    muscle = get_preset(args.preset, args.muscle)[0].muscle
    print(f"repetitive nerve stimulation, {args.preset} ({muscle}), {args.rate:g} Hz, {args.endplates} fibres")
    print("(CMAP: % of the muscle's fibres whose endplate transmits; decrement: against the 1st response)")
    print("stimulus  CMAP %  decrement %")
    for k, (amp, dec) in enumerate(zip(r.cmap_relative, r.decrement_percent), start=1):
        print(f"{k:8d}  {100 * amp:6.1f}  {dec:11.1f}")
    if args.rate <= _LOW_RATE_RNS_HZ:
        verdict = ("abnormal (> 10 %" if r.decrement_4th_percent > 10 else "normal (<= 10 %") + \
            ", the low-rate criterion: docs/literature.md §10)"
        print(f"decrement 1st-4th: {r.decrement_4th_percent:.1f} %, {verdict}")
    else:  # (high-rate RNS is read for an increment; the 10 % criterion is a low-rate one)
        print(f"decrement 1st-4th: {r.decrement_4th_percent:.1f} %; CMAP last/1st: "
              f"{100 * r.cmap_relative[-1] / r.cmap_relative[0]:.1f} % (no verdict: the 10 % decrement "
              f"criterion is for {_LOW_RATE_RNS_HZ:g} Hz and below)")
    if args.plot is not None:
        from .plotting import plot_rns
        _save_figure(plot_rns(r, [args.preset], rate_hz=args.rate).figure, args.plot)
    return 0


def _check_figure(path, force):
    """Refuse, before the work, a ``--plot`` file that could not be written (None passes)."""
    if path is None:
        return
    _require_matplotlib("--plot")
    if Path(path).suffix.lower() not in _FIGURE_SUFFIXES:
        raise SfemgInputError(f"--plot {path}: give a .png, .pdf or .svg file")
    _check_output(path, force)


def _save_figure(figure, path, quiet=False):
    """Write ``figure`` to ``path`` (checked by :func:`_check_figure`), atomically, and say so."""
    import matplotlib.pyplot as plt

    from .io._atomic import atomic_path
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lower()[1:], dpi=150)
    plt.close(figure)
    if not quiet:
        print(f"plot: {path}")


def _cmd_analyze(args):
    from .analysis import AnalysisParams, analyze_file
    from .analysis.limits import KNOWN_MUSCLES, canonical_muscle, mean_jitter_text, verdict_with_reason
    from .io.results import check_summary_target
    given = {"method": ("--method", args.method), "age_years": ("--age", args.age),
             "highpass_hz": ("--highpass", args.highpass),
             "search_window_ms": ("--search-window-ms", args.search_window_ms),
             "artefact_blank_ms": ("--artefact-blank-ms", args.artefact_blank_ms),
             "stimulus_timing": ("--stimulus-timing", args.stimulus_timing)}
    options = {name: option for name, (option, _) in given.items()}
    with _options_named(options):
        params = AnalysisParams(**{name: value for name, (_, value) in given.items() if value is not None})
    _check_output(args.output, args.force)  # checked before a long analysis, not after
    if args.json is not None:
        check_summary_target(args.json, (args.input, args.output), force=args.force)
    if args.muscle is not None and canonical_muscle(args.muscle) not in KNOWN_MUSCLES:  # (a typo?)
        print(f"warning: no reference limits for muscle {args.muscle!r} (the tables cover "
              f"{', '.join(KNOWN_MUSCLES)}): the verdict will be unknown", file=sys.stderr)
    progress = _Progress(args.quiet, "analysing")
    try:
        with _options_named(options):
            result = analyze_file(args.input, output_path=args.output, json_path=args.json,
                                  muscle=args.muscle, electrode=args.electrode, params=params,
                                  progress=lambda done, n, name: progress(done, n), n_workers=args.jobs)
    finally:
        progress.close()
    for name, problem in result.problems.items():
        print(f"warning: {name!r}: {_named(problem, options)}", file=sys.stderr)
    for rec in result.recordings:
        for note in rec.notes:
            print(f"note: {rec.name!r}: {_named(note, options)}", file=sys.stderr)
    unstated = {"parameters": "the recordings do not", "mixed": "some recordings do not"}.get(
        result.study.get("electrode_source"))
    if unstated:
        print(f"note: {unstated} state their electrode: {params.electrode} assumed (--electrode to give it)",
              file=sys.stderr)
    few = sum(p.accepted and "few-discharges" in p.flags for r in result.recordings for p in r.pairs)
    if few:
        print(f"note: {few} accepted pair{'s' if few > 1 else ''} recorded over fewer than {params.min_discharges} "
              f"discharges, or with an MCD from under {params.min_discharges // 2} (flagged few-discharges): "
              "their jitter is less certain", file=sys.stderr)
    if not args.quiet:
        s = result.study
        where = args.output or args.input
        print(f"analysed {len(result.recordings)} recording(s) from {args.input}; results in {where}"
              + (f", summary in {args.json}" if args.json else ""))
        print(f"{mean_jitter_text(s)} (of {s.get('n_pairs', '?')}); verdict: {verdict_with_reason(s)}")
        stimulus = result.stimulus_summary()
        if stimulus:
            print(stimulus)
    return 0


def _require_matplotlib(what):
    """Raise a one-line input error when the optional matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SfemgInputError(f"{what} needs matplotlib: pip install 'sfemg[plot]'") from None


def _cmd_report(args):
    _require_matplotlib("sfemg report")
    from .report import report_file
    path = report_file(args.input, args.output, quiet=args.quiet, force=args.force)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def _cmd_demo(args):
    _require_matplotlib("sfemg demo")
    from .demo import run_demo
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise SfemgInputError(f"--out {args.out} is a file, not a folder")
    run_demo(args.out, seed=args.seed, quiet=args.quiet)
    return 0


#: What a method's pairs matching no true pair at all most likely means.
_NO_MATCH = ("no measured pair matched a true one: are mean_ipi_us in µs, from the trigger (voluntary) or the "
             "stimulus (stimulated)?")


def _cmd_validate(args):
    from .validation import DEFAULT_METHODS, format_summary, run_sweep, summarize_sweep
    methods = [f"timepoint:{m}" for m in args.method or ()] + [f"analyser:{a}" for a in args.analyser or ()]
    _check_figure(args.plot, force=True)  # (before the sweep; a figure of the sweep, drawn again each run)
    progress = _Progress(args.quiet, "validating")
    try:
        run = run_sweep(args.output, args.grid, n_repeats=args.n, n_recordings=args.recordings,
                        methods=methods or DEFAULT_METHODS, seed=args.seed, n_workers=args.jobs,
                        scheduler=args.scheduler, force=args.force,
                        progress=lambda done, total: progress(done * args.recordings, total * args.recordings),
                        command=args.command_line)
    finally:
        progress.close()
    for method, (n_refused, n_recordings, first) in run["refused"].items():  # (quiet or not: it may be a bug)
        print(f"warning: {method} raised SfemgInputError (nothing to analyse) on {n_refused} of {n_recordings} "
              f"recordings, whose pairs count as missed; first: {first}", file=sys.stderr)
    rows = summarize_sweep(args.output)
    for method in dict.fromkeys(r["method"] for r in rows):  # (said by score; a developer's review)
        mine = [r["metrics"] for r in rows if r["method"] == method]
        if all(m["n_matched_pairs"]["mean"] == 0 for m in mine) and any(m["n_measured_pairs"]["mean"] > 0
                                                                         for m in mine):
            print(f"warning: {method}: {_NO_MATCH}", file=sys.stderr)
    if not args.quiet:
        print(format_summary(rows))
        print(f"wrote {args.output}: {run['n_cells']} cells x {args.n} repeats "
              f"({run['n_cells'] - run['n_cells_run']} already done), {run['elapsed_s']:.1f} s")
    if args.plot is not None:
        from .validation.plot import plot_error_vs_noise
        _save_figure(plot_error_vs_noise(args.output).figure, args.plot, args.quiet)
    return 0


def _cmd_benchmark_set(args):
    from .validation.benchmark_set import write_benchmark_set
    progress = _Progress(args.quiet, "writing")
    try:
        per_cell = args.n * args.recordings
        manifest = write_benchmark_set(args.output, args.grid, n_repeats=args.n, n_recordings=args.recordings,
                                       seed=args.seed, output=args.output_kind, force=args.force,
                                       progress=lambda done, total: progress(done * per_cell, total * per_cell))
    finally:
        progress.close()
    if not args.quiet:
        n_rec = sum(len(f["recordings"]) for f in manifest["files"].values())
        print(f"wrote {args.output}: benchmark set {manifest['version']}, grid {args.grid}, "
              f"{len(manifest['files'])} files, {n_rec} recordings, seed {args.seed}")
    return 0


def _cmd_score(args):
    from .validation import Cell, format_summary
    from .validation.benchmark_set import manifest_path, score_results, score_study, write_scores
    if not os.path.exists(args.benchmark_set):
        raise SfemgInputError(f"{args.benchmark_set} does not exist")
    study = os.path.isfile(args.benchmark_set)  # (a simulated study's file, or a set's folder)
    if not study:
        manifest_path(args.benchmark_set)  # (a missing set said before an output that exists)
    output = args.output or os.path.splitext(args.results[0])[0] + ".scores.json"
    for results in args.results:  # (before --force is asked for: it would not help)
        if os.path.realpath(output) == os.path.realpath(results):
            raise SfemgInputError(f"the scores would replace {results}; give -o another file")
    output = _check_output(output, args.force)  # checked before the scoring
    tolerance = {} if args.tolerance is None else {"tolerance_us": args.tolerance}
    scores = (score_study if study else score_results)(args.results, args.benchmark_set, **tolerance)
    write_scores(output, scores, force=args.force)
    overall = scores["overall"]
    if overall["n_matched_pairs"]["mean"] == 0 and overall["n_measured_pairs"]["mean"] > 0:  # (a developer's review)
        print(f"warning: {_NO_MATCH}", file=sys.stderr)
    if not args.quiet:
        rows = ([{"label": os.path.basename(args.benchmark_set), "method": "results", "metrics": scores["overall"]}]
                if study else [{"cell_index": c["cell_index"], "cell": Cell(**c["cell"]), "method": "results",
                                "metrics": c["metrics"]} for c in scores["cells"]])
        print(format_summary(rows))
        if scores["missing_recordings"]:
            print(f"{len(scores['missing_recordings'])} recording(s) of the {'study' if study else 'set'} have no "
                  "results (their pairs count as missed)")
        if scores["unknown_recordings"]:
            print(f"{len(scores['unknown_recordings'])} result(s) name recordings not in the set (ignored)")
        print(f"wrote {output}")
    return 0


def _add_grid_arguments(p, *, n_repeats):
    """The grid options shared by ``validate`` and ``benchmark-set``."""
    p.add_argument("--grid", default="default",
                   help="built-in grid (default, stimulated, tiny), a sum of them (default+stimulated) "
                        "or a .json grid file (default: default)")
    p.add_argument("--n", type=_positive_int, default=n_repeats,
                   help=f"Monte Carlo repeats per cell (default {n_repeats})")
    p.add_argument("--recordings", type=_positive_int, default=4,
                   help="recordings (fibre pairs; endplates in stimulated cells) per repeat (default 4)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = _Parser(prog="sfemg", description="Single-fibre EMG: simulate from NMJ physiology, "
                                               "analyse jitter and blocking, report.")
    parser.add_argument("--version", action="version", version=f"sfemg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("presets", help="list the named physiological states")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("simulate", help="simulate a study and write it to HDF5")
    p.add_argument("--preset", default="healthy-edc", help="physiological state (see `sfemg presets`)")
    p.add_argument("--muscle", help="muscle physiology to use instead of the preset's")
    p.add_argument("--mode", choices=["voluntary", "stimulated"], default="voluntary",
                   help="voluntary activation (fibre pairs) or axonal stimulation (endplates); default voluntary")
    p.add_argument("--pairs", type=_positive_int, help="fibre pairs, voluntary (default 20)")
    p.add_argument("--endplates", type=_positive_int, help="endplates, stimulated (default 30)")
    p.add_argument("--discharges", type=_positive_int,
                   help="discharges (stimuli) per recording (default 100 voluntary, 50 stimulated)")
    p.add_argument("--rate", type=_number, help="firing or stimulation rate, Hz (default 10)")
    p.add_argument("--fs", type=_number, default=50_000.0, help="sampling rate, Hz (default 50000)")
    p.add_argument("--fibres", type=_positive_int,
                   help="fibres of the unit per recording (voluntary: trigger + others, default 2; "
                        "stimulated: default 1)")
    p.add_argument("--no-artefact", action="store_true", help="no stimulus artefact (stimulated)")
    p.add_argument("--stimulator-clock", choices=["sampling", "own"],
                   help="stimulated: stimuli on the sampling clock (default; exact stimulus times) or on the "
                        "stimulator's own (anywhere within a sample, marked at the next sample)")
    p.add_argument("--electrode", choices=["sfe", "concentric"], default="sfe",
                   help="single-fibre or concentric needle electrode: its filters and pick-up (default sfe)")
    p.add_argument("--output-kind", choices=["continuous", "sweeps"], default="continuous",
                   help="continuous recording or 10 ms sweeps per discharge")
    p.add_argument("--seed", type=int, help="random seed (same seed, same bits)")
    p.add_argument("--jobs", type=_positive_int, help="worker threads (default: all cores)")
    p.add_argument("-o", "--output", required=True, help="HDF5 file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("rns", help="simulate repetitive nerve stimulation: the CMAP decrement")
    p.add_argument("--preset", default="healthy-edc", help="physiological state (see `sfemg presets`)")
    p.add_argument("--muscle", help="muscle physiology to use instead of the preset's")
    p.add_argument("--rate", type=_number, default=3.0, help="stimulation rate, Hz (default 3)")
    p.add_argument("--stimuli", type=_positive_int, default=10, help="stimuli in the train (default 10)")
    p.add_argument("--endplates", type=_positive_int, default=1000,
                   help="endplates (muscle fibres) summed into the CMAP (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1; same seed, same bits)")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the responses against the 1st, with the 10 %% criterion (.png, .pdf or .svg)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    p.set_defaults(func=_cmd_rns)

    p = sub.add_parser("analyze", help="measure jitter and blocking in recordings (HDF5)")
    p.add_argument("input", help="HDF5 file with /recordings/<name>/signal (or sweeps)")
    p.add_argument("-o", "--output", help="write results here instead of into the input file")
    p.add_argument("--json", help="also write a JSON summary here")
    p.add_argument("--muscle", help="muscle, for the reference limits (edc, frontalis, orbicularis-oculi)")
    p.add_argument("--electrode", type=_electrode, metavar="{sfe,concentric}",
                   help="electrode, for the acceptance thresholds and limits, any case or alias (cne, single "
                        "fibre) (default: each recording's 'electrode' attribute, else sfe)")
    p.add_argument("--age", type=_age,
                   help="subject's age, years (SFE voluntary reference limits depend on it)")
    p.add_argument("--method", choices=["template", "peak", "level"],
                   help="time-point method (default template: best precision)")
    p.add_argument("--highpass", type=_number, metavar="HZ",
                   help="high-pass the samples first (2nd-order Butterworth, as an SFEMG amplifier: SFE 500, "
                        "concentric 1000), for recordings with DC offset, mains hum or drift; default: none "
                        "(such a recording is refused)")
    p.add_argument("--search-window-ms", type=_number, metavar="MS",
                   help="seek time-locked potentials up to this long after the stimulus, or either side of "
                        "the trigger (default 5); later ones are not analysed, only named in a note")
    p.add_argument("--artefact-blank-ms", type=_number, metavar="MS",
                   help="stimulated: the stimulus artefact lasts this long after the stimulus; no response is "
                        "sought there (default 1; widen it where a note says the artefact's tail reaches past it)")
    p.add_argument("--stimulus-timing", choices=["auto", "markers", "artefact"],
                   help="stimulated: measure latencies from the stimulus markers or from the stimulus artefact; "
                        "default auto: the artefact where the markers scatter about it by more than twice its "
                        "own timing error (markers on a channel of their own, or taken at the nearest sample)")
    p.add_argument("--jobs", type=_positive_int,
                   help="recordings analysed at once, worker threads (default: the CPUs available; same results)")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o or --json file")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("report", help="draw the clinical displays of an analysed file")
    p.add_argument("input", help="HDF5 file analysed by `sfemg analyze`")
    p.add_argument("-o", "--output", required=True, help="report file: .pdf, .png or .html")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="simulate, analyse and report a demo study")
    p.add_argument("--out", default="sfemg-demo", help="output folder (default ./sfemg-demo)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1; same seed, same bits)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("validate", help="score jitter algorithms over a grid of simulated conditions")
    _add_grid_arguments(p, n_repeats=10)
    p.add_argument("--method", action="append",
                   help="time-point estimator: peak, level, template or module:function (repeatable)")
    p.add_argument("--analyser", action="append",
                   help="whole-pipeline analyser: sfemg-template, sfemg-template-single (no joint "
                        "timing), sfemg-peak, sfemg-level or module:function (repeatable); default: "
                        "sfemg-template, sfemg-peak and the three built-in estimators")
    p.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    p.add_argument("--jobs", type=_positive_int, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (needs sfemg[dask])")
    p.add_argument("-o", "--output", required=True,
                   help="HDF5 results; an unfinished sweep with the same settings, begun by the same "
                        "sfemg version, is resumed")
    p.add_argument("--force", action="store_true", help="start the -o file over, whatever sweep it holds")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw each method's MCD RMSE against the noise, with 95 %% CIs, at the first cell's "
                        "blockade (.png, .pdf or .svg; replaced if it exists; other metrics and blockades: "
                        "sfemg.validation.plot.plot_error_vs_noise)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("benchmark-set", help="write a versioned synthetic benchmark set with ground truth")
    _add_grid_arguments(p, n_repeats=1)
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--output-kind", choices=["continuous", "sweeps"], default="continuous",
                   help="continuous recordings (a `signal` dataset, default) or 10 ms sweeps")
    p.add_argument("-o", "--output", required=True, help="folder to write (must be empty)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_benchmark_set)

    p = sub.add_parser("score", help="score a pipeline's JSON results against a benchmark set or a simulated study")
    p.add_argument("results", nargs="+",
                   help="JSON results in the form of analyze --json (docs/hdf5.md), one or more files")
    p.add_argument("benchmark_set", metavar="truth",
                   help="benchmark-set folder (with manifest.json), or a study file that sfemg simulate wrote "
                        "(its recordings scored as one sample)")
    p.add_argument("-o", "--output", help="scores JSON (default: <first results>.scores.json)")
    p.add_argument("--tolerance", type=_number,
                   help="pair matching tolerance on the mean IPI, µs (default 150)")
    p.add_argument("--force", action="store_true", help="overwrite the scores file")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=_cmd_score)
    return parser


class _Terminated(BaseException):  # (like KeyboardInterrupt: no "except Exception" takes it)
    """SIGTERM, raised where the ``sfemg`` program is so that its clean-up runs (worker
    processes stopped, temporary files removed) as on Ctrl-C."""


def _terminated(signum, frame):
    raise _Terminated


def run():
    """The ``sfemg`` program (``python -m sfemg``): :func:`main`, with SIGTERM (a batch
    system ending the job) ending the command as Ctrl-C does, after which the process
    dies of the signal, as whoever sent it expects. (:func:`main` called from another
    program leaves its signals alone.)"""
    signal.signal(signal.SIGTERM, _terminated)
    code = main()
    if code == _TERMINATED:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    if code == _BROKEN_PIPE:  # (what is still buffered for the closed pipe goes nowhere)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0, 1 or 2; 130 when interrupted by
    Ctrl-C, 143 by SIGTERM under :func:`run`, 141 when the output was closed early)."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.command_line = shlex.join(["sfemg", *argv])
        return args.func(args)
    except SfemgInputError as exc:
        print(f"sfemg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sfemg: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("sfemg: terminated", file=sys.stderr)
        return _TERMINATED
    except BrokenPipeError as exc:
        if _stdout_gone():  # the reader of the output has gone (``| head``): nothing to say
            return _BROKEN_PIPE
        return _internal_error(exc)  # (another pipe: a worker's, a scheduler's)
    except Exception as exc:  # a bug in sfemg, not the user's input
        return _internal_error(exc)


def _stdout_gone():
    """Whether standard output is a pipe whose reader has gone (``poll`` reports an error
    on its writing end)."""
    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
    except (AttributeError, OSError, ValueError):  # (no file behind it, or no poll here)
        return False
    poll.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


def _internal_error(exc):
    """Report a bug in sfemg (not the user's input) in one line; exit code 1."""
    if os.environ.get("SFEMG_DEBUG"):
        traceback.print_exc()
    print(f"sfemg: internal error: {exc.__class__.__name__}: {exc} "
          "(set SFEMG_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    run()
