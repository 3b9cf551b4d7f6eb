"""Clinical report of an analysed jitter study: PDF, PNG or self-contained HTML.

A report opens with the study page (verdict, reference limits with their citation, the
jitter plot and the table of pairs), then one page per pair (sweeps, raster, IPI trend and
histogram, numbers), then, for synthetic recordings, the ground truth (true vs measured
jitter, the safety factor of an endplate that blocks). Numbers are rounded as clinicians
write them: jitter to 1 µs, blocking to 1 %, the MCD/MSD ratio to 2 decimals.

Output by extension:

``.pdf``
    All pages (A4; the study and table pages portrait, the others landscape).
``.png``
    The study page only (150 dpi).
``.html``
    One self-contained file: the summary and the table as HTML, every figure embedded as
    a base64 PNG.

Files are written atomically: to a temporary file in the target's folder, moved over the
target only when complete.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
import sys
import textwrap
from pathlib import Path

from .errors import SfemgInputError
from .io import atomic_path

__all__ = ["write_report", "write_reports", "report_file", "REPORT_SUFFIXES"]

#: File types :func:`write_report` can write.
REPORT_SUFFIXES = (".pdf", ".png", ".html")

_A4_PORTRAIT_IN = (8.27, 11.69)
_A4_LANDSCAPE_IN = (11.69, 8.27)
_TABLE_ROW_IN = 0.17          # height of one table row, inches (7 pt text)
_STATUS_MAX_CHARS = 56        # longer reasons are cut in the table (full text on pair pages)
_NAME_MAX_CHARS = 14          # longer recording names are cut in the table (in bold they overflowed)
_PNG_DPI = 150
_HTML_DPI = 100           # (80 left the pair pages' legends ~5 px high: review)
_PDF_RASTER_DPI = 120         # resolution of the rasterized sweeps in PDF pages

_COLUMN_WIDTHS = (0.03, 0.115, 0.06, 0.055, 0.055, 0.06, 0.055, 0.06, 0.07, 0.035, 0.405)
_HEADER_ROWS = 1.9            # the two-line header row is this many rows high
_NOTE_LINE_IN = 0.125         # height of a line of the table's note (6.5 pt text), inches
_SUMMARY_LINES = 9            # summary lines that fit above the study page's jitter plot and its title
_TABLE_NOTE = ("Bold on grey: accepted, above the individual limit or blocking. Grey italics: "
               "rejected, not in the study. –: not measurable. Jitter is the MCD, or the MSD "
               "when MCD/MSD > 1.25. IPI: mean interpotential interval, the potential's time less "
               "the trigger's (negative when it comes first: P2-P1); for endplates the latency from "
               "the stimulus. n: discharges.")


def _table_note(study_result):
    """The table's legend, with what each flag the study's pairs carry means."""
    from .analysis.results import FLAG_MEANINGS

    flags = sorted({flag for r in study_result.recordings for p in r.pairs for flag in p.flags})
    meanings = "; ".join(f"{flag}: {FLAG_MEANINGS.get(flag, 'see docs/analysis.md §4')}" for flag in flags)
    return _TABLE_NOTE + (f" Flags — {meanings}." if flags else "")


def _columns(mode):
    """Table headers, units on a second line."""
    from .plotting._style import interval_name

    return ("#", "Recording", "Pair", "MCD\n(µs)", "MSD\n(µs)", "MCD/\nMSD", "Jitter\n(µs)",
            "Blocking\n(%)", f"{interval_name(mode)}\n(µs)", "n", "Status")


def _progress(items, desc, enabled):
    """``items`` wrapped in a tqdm bar on stderr when enabled and tqdm is installed."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # progress display is optional
        return items
    return tqdm(items, desc=desc, file=sys.stderr, leave=False, disable=None)


def _suffix(path):
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise SfemgInputError(f"{path}: report type must be one of {', '.join(REPORT_SUFFIXES)} "
                              f"(by extension), not {suffix or 'none'!r}")
    return suffix


# ---------------------------------------------------------------------------- content


def _status(pair):
    text = "accepted" if pair.accepted else "rejected: " + "; ".join(pair.reject_reasons)
    if pair.flags:
        text += f" ({', '.join(pair.flags)})"
    return text


def _table_rows(study_result):
    """Formatted cells and the style (``"normal"``, ``"abnormal"``, ``"rejected"``) per pair."""
    from .plotting._style import fmt_percent, fmt_ratio, fmt_us, is_abnormal, study_pairs

    limits = study_result.study.get("limits")
    rows = []
    for e in study_pairs(study_result):
        p = e.pair
        cells = [str(e.row), e.recording.name, p.label, fmt_us(p.mcd_us), fmt_us(p.msd_us),
                 fmt_ratio(p.mcd_msd_ratio), fmt_us(p.jitter_us), fmt_percent(p.blocking_percent),
                 fmt_us(p.mean_ipi_us), str(p.n_discharges), _status(p)]
        style = "rejected" if not p.accepted else "abnormal" if is_abnormal(p, limits) else "normal"
        rows.append((cells, style))
    return rows


#: What the summary adds where the recordings do not all state their electrode.
_ELECTRODE_UNSTATED = {"parameters": " (not stated in the recordings: the analysis parameters')",
                       "mixed": " (not stated in some recordings: the analysis parameters' for those)"}


def _summary_lines(study_result):
    """Plain-text summary: what was analysed, the verdict, the limits used."""
    from .plotting.study import limits_text, verdict_text

    s = study_result.study
    recs = study_result.recordings
    modes = sorted({r.mode for r in recs}) or [s.get("activation", "?")]
    methods = sorted({r.method for r in recs})
    n_pairs = s.get('n_pairs', 0)
    unit = ("endplate" if modes == ["stimulated"] else "pair") + ("" if n_pairs == 1 else "s")
    age = study_result.params.age_years
    lines = [f"{len(recs)} recording(s), {n_pairs} {unit} "
             f"({s.get('n_pairs_accepted', 0)} accepted); {', '.join(modes)}; muscle "
             f"{s.get('muscle') or 'not given'}; electrode {s.get('electrode', '?')}"
             f"{_ELECTRODE_UNSTATED.get(s.get('electrode_source'), '')}"
             f"{f'; age {age:g} years' if age is not None else ''}; time point "
             f"{', '.join(methods) or '?'}.",
             f"Verdict: {verdict_text(s)}."]
    statistics = _statistics_line(s)
    if statistics:
        lines.append(statistics)
    lim = limits_text(s)
    if lim:
        lines.append(lim)
    stimulus = study_result.stimulus_summary()
    if stimulus:
        lines.append(stimulus[0].upper() + stimulus[1:] + ".")
    if study_result.problems:
        lines.append("Not analysed: " + "; ".join(f"{k}: {v}" for k, v in study_result.problems.items()))
    notes = [f"{r.name}: {note}" for r in study_result.recordings for note in r.notes]
    if notes:
        lines.append("Notes: " + "; ".join(notes) + ".")
    return lines


def _statistics_line(study):
    """The accepted pairs' jitter and blocking as a clinical report gives them, whatever
    the verdict ("" with none accepted): mean and median jitter, how many pairs are above
    the individual limit (where one is known) and how many block."""
    n = study.get("n_pairs_accepted", 0)
    if not n:
        return ""

    def share(percent):
        return f"{round(n * percent / 100)} of {n} ({percent:.0f} %)"

    n_jitter = study.get("n_pairs_with_jitter", n)  # (results written before the field: all)
    mean = study.get("mean_jitter_us")
    if n_jitter and mean is not None and math.isfinite(mean):
        of = f" (of the {n_jitter} with a jitter)" if n_jitter < n else ""
        parts = [f"mean jitter {mean:.1f} µs, median {study['median_jitter_us']:.1f} µs{of}"]
    else:
        parts = ["no jitter measured"]
    if study.get("limits"):
        parts.append(f"{share(study['percent_pairs_above_limit'])} above the individual limit "
                     f"({study['limits']['individual_us']:g} µs)")
    parts.append(f"{share(study['percent_pairs_blocking'])} blocking")
    what = "endplates" if study.get("activation") == "stimulated" else "pairs"
    return f"Accepted {what}: " + "; ".join(parts) + "."


def _default_title(study_result):
    if study_result.source:
        return f"SFEMG jitter study — {Path(study_result.source).name}"
    return "SFEMG jitter study"


def _ground_truth_recordings(recordings):
    return [r for r in (recordings or ()) if r.ground_truth is not None]


# ---------------------------------------------------------------------------- pages


def _draw_table(ax, rows, mode):
    """The pairs table in ``ax`` (axis off), one row per ``_TABLE_ROW_IN`` from the top."""
    ax.axis("off")
    columns = _columns(mode)
    height_in = ax.get_position().height * ax.figure.get_figheight()
    frac = min(1.0, (len(rows) + _HEADER_ROWS) * _TABLE_ROW_IN / height_in)
    table = ax.table(cellText=[c for c, _ in rows] or [[""] * len(columns)], colLabels=columns,
                     colWidths=_COLUMN_WIDTHS, bbox=[0, 1 - frac, 1, frac], cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for (r, c), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        cell.set_edgecolor("0.6")
        text = cell.get_text()
        if c in (1, 10):
            cell.set_text_props(ha="left")
            cell.PAD = 0.03
        if r == 0:
            text.set_fontweight("bold")
            cell.set_facecolor("0.8")
            cell.set_height(cell.get_height() * _HEADER_ROWS)  # the bbox keeps proportions
            continue
        if not rows:
            continue
        style = rows[r - 1][1]
        longest = {1: _NAME_MAX_CHARS, 10: _STATUS_MAX_CHARS}.get(c)
        if longest and len(text.get_text()) > longest:
            text.set_text(text.get_text()[:longest - 1] + "…")
        if style == "abnormal":
            text.set_fontweight("bold")
            cell.set_facecolor("0.88")
        elif style == "rejected":
            text.set_color("0.4")
            text.set_fontstyle("italic")
    return table


def _rows_per_page(table_height_in):
    return int(table_height_in / _TABLE_ROW_IN - _HEADER_ROWS)


def _study_pages(study_result, title):
    """The study page (header, jitter plot, first rows of the table) and continuation pages."""
    from matplotlib.figure import Figure

    from .plotting.study import plot_jitter_study, study_mode

    rows = _table_rows(study_result)
    fig = Figure(figsize=_A4_PORTRAIT_IN)
    fig.text(0.06, 0.965, textwrap.fill(title, 70), fontsize=13, fontweight="bold", va="top")
    summary = [part for line in _summary_lines(study_result) for part in textwrap.wrap(line, 118)]
    if len(summary) > _SUMMARY_LINES:  # (many recordings not analysed, or noted)
        summary = summary[:_SUMMARY_LINES - 1] + [f"… and {len(summary) - _SUMMARY_LINES + 1} more line(s): see the "
                                                  "HTML report or the --json summary"]
    fig.text(0.06, 0.915, "\n".join(summary), fontsize=7.5, va="top", linespacing=1.4)
    plot_jitter_study(study_result, ax=fig.add_axes((0.09, 0.505, 0.86, 0.245)))
    table_box = (0.05, 0.06, 0.90, 0.40)
    note = textwrap.fill(_table_note(study_result), 150, break_on_hyphens=False)  # (flags whole)
    # what the note at the page's foot takes of the table's box, inches (the table grows down)
    note_in = max(0.0, 0.008 * _A4_PORTRAIT_IN[1] + (note.count("\n") + 1) * _NOTE_LINE_IN
                  - table_box[1] * _A4_PORTRAIT_IN[1])
    first = _rows_per_page(table_box[3] * _A4_PORTRAIT_IN[1])
    if len(rows) > _rows_per_page(table_box[3] * _A4_PORTRAIT_IN[1] - note_in):  # (no room for the note)
        first = min(first, len(rows) - 1)
    mode = study_mode(study_result)
    _draw_table(fig.add_axes(table_box), rows[:first], mode)
    pages = [fig]
    rest = rows[first:]
    if rest:  # (a PNG report holds this page only)
        fig.text(0.06, 0.035, f"Rows {first + 1}–{len(rows)} and the table's notes continue on the next "
                 "page(s) of the PDF and HTML reports.", fontsize=7, style="italic", va="top")
    per_page = _rows_per_page(0.85 * _A4_PORTRAIT_IN[1] - note_in)
    for start in range(0, len(rest), per_page):
        page = Figure(figsize=_A4_PORTRAIT_IN)
        page.text(0.06, 0.965, f"{title} — pairs (continued)", fontsize=11, va="top")
        _draw_table(page.add_axes((0.05, 0.06, 0.90, 0.87)), rest[start:start + per_page], mode)
        pages.append(page)
    pages[-1].text(0.06, 0.008, note, fontsize=6.5, va="bottom")
    return pages


def _pair_page(entry):
    from matplotlib.figure import Figure

    from .plotting.pair import plot_pair_panel

    fig = plot_pair_panel(entry.recording, entry.pair_index, fig=Figure(figsize=_A4_LANDSCAPE_IN))
    fig.suptitle(f"#{entry.row} · {fig.get_suptitle()}", fontsize="large")
    return fig


def _truth_page(study_result, recordings):
    """True vs measured jitter, and EPP vs threshold of the endplate that best shows blocking."""
    from matplotlib.figure import Figure

    from .plotting.physiology import illustrative_fibre, plot_safety_factor, plot_truth_vs_measured

    fig = Figure(figsize=_A4_LANDSCAPE_IN, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.0, 1.25])
    plot_truth_vs_measured(study_result, recordings, ax=left)
    rec = min(recordings, key=lambda r: illustrative_fibre(r)[1])
    plot_safety_factor(rec, ax=right)
    right.set_box_aspect(0.75)
    fig.suptitle("Ground truth (synthetic recordings): measurement and physiology", fontsize="large")
    return fig


# ---------------------------------------------------------------------------- writers


def _png_base64(fig, dpi=_HTML_DPI):
    """The figure as a base64 PNG, quantised to a 64-colour palette (a fifth of the size)."""
    from PIL import Image  # a dependency of matplotlib

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    small = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=64).save(small, format="png")
    return base64.b64encode(small.getvalue()).decode("ascii")


def _html_img(fig, alt):
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png_base64(fig)}">'


_HTML_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #111; line-height: 1.4; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #999; padding: 2px 6px; text-align: right; }
th { background: #ddd; }
td.text { text-align: left; }
tr.abnormal td { font-weight: bold; background: #e0e0e0; }
tr.rejected td { color: #666; font-style: italic; }
img { max-width: 100%; display: block; margin: 1em 0; }
p.note { font-size: 0.8em; color: #444; }
"""


def _html_table(rows, mode):
    head = "".join(f"<th>{html.escape(c).replace(chr(10), '<br>')}</th>" for c in _columns(mode))
    body = []
    for cells, style in rows:
        tds = "".join(f'<td class="text">{html.escape(c)}</td>' if i in (1, 2, 10)
                      else f"<td>{html.escape(c)}</td>" for i, c in enumerate(cells))
        body.append(f'<tr class="{style}">{tds}</tr>')
    return f'<table class="pairs">\n<tr>{head}</tr>\n' + "\n".join(body) + "\n</table>"


def _html_head(study_result, title):
    """The HTML report up to the pair sections: summary, jitter plot, table of pairs."""
    from matplotlib.figure import Figure

    from .plotting.study import plot_jitter_study, study_mode

    jitter_fig = Figure(figsize=(10, 4.5), layout="constrained")
    plot_jitter_study(study_result, ax=jitter_fig.add_subplot())
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_HTML_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in _summary_lines(study_result)]
    parts += [_html_img(jitter_fig, "jitter plot"), "<h2>Pairs</h2>",
              _html_table(_table_rows(study_result), study_mode(study_result)),
              f'<p class="note">{html.escape(_table_note(study_result))}</p>', "<h2>Pairs in detail</h2>"]
    return parts


def write_reports(study_result, paths, *, recordings=None, title=None, progress=False):
    """Write the report in several formats at once, drawing each page only once.

    Parameters
    ----------
    study_result : StudyResult
    paths : sequence of str or os.PathLike
        Output files, at most one per extension (see :func:`write_report`).
    recordings, title, progress
        As for :func:`write_report`.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order given.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    from .plotting._style import study_pairs

    paths = [Path(p) for p in paths]
    by_suffix = {}
    for p in paths:
        if _suffix(p) in by_suffix:
            raise SfemgInputError(f"{p}: more than one {p.suffix} report requested")
        by_suffix[_suffix(p)] = p
    title = title or _default_title(study_result)
    truth = _ground_truth_recordings(recordings)
    with contextlib.ExitStack() as stack:
        tmp = {s: stack.enter_context(atomic_path(p)) for s, p in by_suffix.items()}
        pdf = None
        if ".pdf" in tmp:
            pdf = stack.enter_context(PdfPages(tmp[".pdf"], metadata={"Title": title,
                                                                      "Creator": "sfemg"}))
        html_parts = _html_head(study_result, title) if ".html" in tmp else None
        if pdf is not None or ".png" in tmp:
            study_pages = _study_pages(study_result, title)
            if ".png" in tmp:
                study_pages[0].savefig(tmp[".png"], format="png", dpi=_PNG_DPI)
            for page in study_pages if pdf is not None else ():
                pdf.savefig(page)
        if pdf is None and html_parts is None:
            return paths
        for entry in _progress(study_pairs(study_result), "report pages", progress):
            page = _pair_page(entry)
            if pdf is not None:
                pdf.savefig(page, dpi=_PDF_RASTER_DPI)
            if html_parts is not None:
                html_parts += [f'<h3 id="pair-{entry.row}">#{entry.row} '
                               f"{html.escape(entry.recording.name)} "
                               f"{html.escape(entry.pair.label)}</h3>",
                               _html_img(page, f"pair {entry.row}")]
        if truth:
            page = _truth_page(study_result, truth)
            if pdf is not None:
                pdf.savefig(page)
            if html_parts is not None:
                html_parts += ["<h2>Ground truth</h2>", _html_img(page, "ground truth")]
        if pdf is not None:
            pdf.close()
        if html_parts is not None:
            html_parts.append("</body></html>\n")
            tmp[".html"].write_text("\n".join(html_parts), encoding="utf-8")
    return paths


def write_report(study_result, path, *, recordings=None, title=None, progress=False):
    """Write the clinical report of an analysed study.

    Parameters
    ----------
    study_result : StudyResult
        From :func:`sfemg.analysis.analyze_file` or :func:`sfemg.io.results.load_results`.
    path : str or os.PathLike
        Output file; its extension selects the format: ``.pdf`` (every page), ``.png``
        (the study page) or ``.html`` (self-contained, all figures embedded). An existing
        file is replaced (atomically).
    recordings : sequence of Recording, optional
        The analysed recordings; those with ground truth (synthetic) add the ground-truth
        page (true vs measured jitter, safety factor). Matched to the results by name.
    title : str, optional
        Report title (default: "SFEMG jitter study — <source file>").
    progress : bool
        Show a progress bar (tqdm, stderr) while the per-pair pages are drawn.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    SfemgInputError
        Unknown extension or missing output folder.
    """
    return write_reports(study_result, [path], recordings=recordings, title=title,
                         progress=progress)[0]


def report_file(input_path, output_path, *, quiet=False, force=False, title=None):
    """Report an analysed HDF5 file (``sfemg report``).

    Parameters
    ----------
    input_path : str or os.PathLike
        HDF5 file holding analysis results (``sfemg analyze``). The recordings' ground
        truth, when present — in this file, or in the source file a results-only file
        (``sfemg analyze -o``) names — adds the ground-truth page.
    output_path : str or os.PathLike
        ``.pdf``, ``.png`` or ``.html``.
    quiet : bool
        No progress display.
    force : bool
        Replace an existing output file.
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    from .io import has_recordings, load_recordings
    from .io.results import load_results

    output_path = Path(output_path)
    _suffix(output_path)
    if output_path.exists() and not force:
        raise SfemgInputError(f"{output_path} exists; use --force to overwrite it")
    result = load_results(input_path)
    recordings = []
    # the source as typed at the analysis, from here or from the results file's folder
    beside = result.source and Path(input_path).parent / result.source
    for candidate in (input_path, result.source, beside):
        if candidate and Path(candidate).is_file() and has_recordings(candidate):
            # (only for their ground truth: a recording that cannot be read, which the
            # analysis skipped too, is left out, not the report refused)
            readable, _ = load_recordings(candidate, errors="collect")
            recordings = [r for r in readable if r.ground_truth is not None]
            break
    return write_report(result, output_path, recordings=recordings or None, title=title,
                        progress=not quiet)
