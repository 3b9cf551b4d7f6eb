"""Reports: valid PDF / PNG / HTML with the expected pages, written atomically."""

import re

import matplotlib.image as mpimg
import pytest

from sfemg import SfemgInputError
from sfemg.report import report_file, write_report, write_reports

from .plotting.conftest import N_STUDY_PAIRS, recording_result, simulated, study_result  # noqa: F401

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pdf_pages(path):
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


@pytest.fixture(scope="module")
def written(study_result, tmp_path_factory):
    """The 20-pair study reported as PDF, HTML and PNG (drawn once for the module)."""
    folder = tmp_path_factory.mktemp("report")
    pdf, html, png = write_reports(study_result, [folder / "r.pdf", folder / "r.html",
                                                  folder / "r.png"], title="Test study")
    return {"pdf": pdf, "html": html, "png": png}


def test_pdf_has_study_page_then_one_page_per_pair(written):
    path = written["pdf"]
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    # 20 rows fit on the study page: study page + one page per pair
    assert _pdf_pages(path) == 1 + N_STUDY_PAIRS


def test_png_is_the_study_page(written):
    path = written["png"]
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.shape[0] > img.shape[1] > 1000, "A4 portrait at 150 dpi"


def test_html_is_self_contained_with_table_and_images(written):
    path = written["html"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert text.count("<table") == 1
    assert text.count("<tr class=") == N_STUDY_PAIRS
    assert text.count('src="data:image/png;base64,') == 1 + N_STUDY_PAIRS
    assert "Stålberg E" in text, "limits cited"
    assert "src=\"http" not in text and "<link" not in text


def test_table_rounds_as_clinicians_write(study_result, written):
    text = written["html"].read_text(encoding="utf-8")
    pair = study_result.recordings[0].pairs[0]
    row = re.search(r'<tr class="\w+"><td>1</td>.*?</tr>', text).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[3] == f"{pair.mcd_us:.0f}" and "." not in cells[3]
    assert cells[5] == f"{pair.mcd_msd_ratio:.2f}"
    assert cells[7] == f"{pair.blocking_percent:.0f}"


def test_ground_truth_page_with_synthetic_recordings(simulated, tmp_path):
    study, result = simulated
    n_pairs = sum(len(r.pairs) for r in result.recordings)
    pdf, html = write_reports(result, [tmp_path / "r.pdf", tmp_path / "r.html"],
                              recordings=study.recordings)
    assert _pdf_pages(pdf) == 1 + n_pairs + 1
    assert "Ground truth" in html.read_text(encoding="utf-8")


def test_render_study_page_for_inspection(simulated, tmp_path):
    """Renders the report pages a person looks at (kept in tmp_path for inspection)."""
    study, result = simulated
    png = write_report(result, tmp_path / "study.png", recordings=study.recordings)
    assert mpimg.imread(png).std() > 0.05, "the page is not blank"


def test_one_file_per_format(study_result, tmp_path):
    with pytest.raises(SfemgInputError, match="more than one"):
        write_reports(study_result, [tmp_path / "b.pdf", tmp_path / "c.pdf"])


@pytest.mark.parametrize("name", ["r.svg", "r", "r.PDFX"])
def test_unknown_extension_is_input_error(study_result, tmp_path, name):
    with pytest.raises(SfemgInputError, match="report type"):
        write_report(study_result, tmp_path / name)


def test_missing_folder_is_input_error(study_result, tmp_path):
    with pytest.raises(SfemgInputError, match="does not exist"):
        write_report(study_result, tmp_path / "nowhere" / "r.pdf")


def test_failed_write_leaves_old_file_and_no_temporary(study_result, tmp_path, monkeypatch):
    import sfemg.report as report
    target = tmp_path / "r.pdf"
    target.write_bytes(b"old")

    def broken(entry):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "_pair_page", broken)
    with pytest.raises(RuntimeError):
        write_report(study_result, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.pdf"]


def test_report_file_from_analysed_h5(simulated, tmp_path):
    from sfemg.analysis import analyze_file
    from sfemg.io import save_recordings
    study, _ = simulated
    h5 = tmp_path / "study.h5"
    save_recordings(h5, study.recordings, parameters=study.params.to_dict(),
                    provenance=study.provenance())
    analyze_file(h5)
    out = report_file(h5, tmp_path / "report.png", quiet=True)
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(SfemgInputError, match="exists"):
        report_file(h5, out, quiet=True)
    assert report_file(h5, out, quiet=True, force=True) == out


def test_study_summary_says_where_stimulus_times_came_from(study_result):
    """Stimulated recordings: the study page's summary has the stimulus line that
    ``sfemg analyze`` prints; voluntary ones have none."""
    import dataclasses

    from sfemg.report import _summary_lines

    assert not any("Stimulus times" in line for line in _summary_lines(study_result))
    recs = tuple(dataclasses.replace(r, mode="stimulated", stimulus_timing="artefact" if i % 2 else "markers",
                                     marker_scatter_us=5.8 if i % 2 else 0.01, markers_off=int(i == 4))
                 for i, r in enumerate(study_result.recordings))
    lines = _summary_lines(dataclasses.replace(study_result, recordings=recs))
    assert ("Stimulus times: from the artefact in 10 of 20 recording(s); markers scatter about it by up to "
            "5.8 µs; 1 marker(s) off their stimulus.") in lines


def test_stimulus_summary_reads_as_a_clinician_would_write_it(study_result):
    import dataclasses

    def summary(**fields):
        recs = tuple(dataclasses.replace(r, mode="stimulated", **fields) for r in study_result.recordings[:2])
        return dataclasses.replace(study_result, recordings=recs).stimulus_summary()

    assert summary(stimulus_timing="markers", marker_scatter_us=0.0).endswith("markers agree with it within 0.05 µs")
    assert summary(stimulus_timing="artefact", marker_scatter_us=123.4).endswith("by up to 123 µs")
    assert summary(stimulus_timing="markers").endswith("markers not checked (no artefact to time)")
    assert study_result.stimulus_summary() == ""


def test_study_summary_lists_the_recordings_notes(study_result):
    """What a recording's analysis found but did not analyse is on the study page too."""
    import dataclasses

    from sfemg.report import _summary_lines

    assert not any(line.startswith("Notes:") for line in _summary_lines(study_result))
    first = dataclasses.replace(study_result.recordings[0], notes=("responses at 5.5 ms lie past the window",))
    lines = _summary_lines(dataclasses.replace(study_result, recordings=(first,) + study_result.recordings[1:]))
    assert f"Notes: {first.name}: responses at 5.5 ms lie past the window." in lines



def test_a_long_summary_is_cut_to_what_fits_above_the_jitter_plot(study_result):
    """Many notes (or recordings not analysed) would run over the study page's jitter plot:
    the summary keeps the lines that fit and says where the rest are."""
    import dataclasses

    from sfemg.report import _SUMMARY_LINES, _study_pages

    noted = tuple(dataclasses.replace(r, notes=(f"responses at 5.{i} ms lie past search_window_ms (5 ms), not "
                                                "analysed: widen the window (--search-window-ms)",))
                  for i, r in enumerate(study_result.recordings))
    page = _study_pages(dataclasses.replace(study_result, recordings=noted), "t")[0]
    summary = page.texts[1].get_text().splitlines()
    assert len(summary) == _SUMMARY_LINES and summary[-1].startswith("… and ")
    # and the lines that fit end above the plot's title (they ran into it: a new user's review)
    page.canvas.draw()
    plot = page.axes[0]
    assert page.texts[1].get_window_extent().y0 > plot.title.get_window_extent().y1
    short = _study_pages(study_result, "t")[0].texts[1].get_text().splitlines()
    assert len(short) < _SUMMARY_LINES and not short[-1].startswith("… and ")


def test_a_recording_the_analysis_skipped_does_not_stop_the_report(simulated, tmp_path):
    """Found by a helper's adversarial run: the report re-read every recording (for its
    ground truth) and refused the file for one that the analysis had skipped with a
    warning (no sampling rate); it is left out now."""
    import h5py
    import numpy as np

    from sfemg.analysis import analyze_file
    from sfemg.io import save_recordings
    study, _ = simulated
    h5 = tmp_path / "study.h5"
    save_recordings(h5, study.recordings)
    with h5py.File(h5, "a") as f:
        f.create_dataset("recordings/zz_no_rate/signal", data=np.zeros(1000))
    result = analyze_file(h5)
    assert "zz_no_rate" in result.problems
    assert report_file(h5, tmp_path / "report.png", quiet=True).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("n_rows", [20, 24, 25, 26, 60])
def test_the_table_note_says_what_the_flags_mean_and_fits_below_the_table(study_result, n_rows):
    """Found by a new user's review: the table's flags ("discharges-displaced", ...) had
    no legend. Every flag there is, at once, still fits between the table and the page's
    foot — also when the table fills its page (it ran into the note at 24-25 rows: review)."""
    import dataclasses

    from sfemg.analysis.results import FLAG_MEANINGS
    from sfemg.report import _study_pages

    flags = tuple(FLAG_MEANINGS)
    recs = [dataclasses.replace(r, name=f"r{i:03d}") for i, r in enumerate(study_result.recordings * 3)][:n_rows]
    recs[0] = dataclasses.replace(recs[0], pairs=(dataclasses.replace(recs[0].pairs[0], flags=flags),))
    page = _study_pages(dataclasses.replace(study_result, recordings=tuple(recs)), "t")[-1]
    page.canvas.draw()
    note = page.texts[-1]
    for flag, meaning in FLAG_MEANINGS.items():
        assert f"{flag}: {meaning}" in note.get_text().replace("\n", " ")
    table = page.axes[-1].tables[0]
    box = note.get_window_extent()
    assert 0 <= box.y0 and box.y1 < table.get_window_extent().y0 and box.x1 <= 0.96 * page.bbox.x1  # (margin)


def test_the_study_page_says_where_the_rows_it_cannot_hold_are(study_result):
    """A PNG report (the study page only) stopped its table at row 25 with no word of the
    rest, nor of the flags' notes on the last page; and bold recording names overflowed
    their column (found in review). Rows past the page are pointed to; long names are cut."""
    import dataclasses

    from sfemg.report import _study_pages

    recs = [dataclasses.replace(r, name=f"a-long-recording-name-{i:02d}")
            for i, r in enumerate(study_result.recordings * 2)]
    first = _study_pages(dataclasses.replace(study_result, recordings=tuple(recs)), "t")[0]
    texts = [t.get_text() for t in first.texts]
    assert any(re.fullmatch(r"Rows 2\d–40 and the table's notes continue on the next page\(s\) of the PDF "
                            r"and HTML reports\.", t) for t in texts), texts
    names = [cell.get_text().get_text() for (row, col), cell in first.axes[-1].tables[0].get_celld().items()
             if row > 0 and col == 1]
    assert names and all(len(name) <= 14 and name.endswith("…") for name in names)
    single = _study_pages(study_result, "t")
    assert len(single) == 1 and not any("continue on the next page" in t.get_text() for t in single[0].texts)


def test_study_summary_gives_the_counts_a_clinical_report_gives(study_result):
    """Mean and median jitter, pairs above the individual limit and pairs blocking, as
    counts, whatever the verdict; the subject's age where given (a clinician's review: the
    median was only in the plot's title, the counts only in the verdict's reason)."""
    import dataclasses

    from sfemg.analysis import AnalysisParams
    from sfemg.report import _summary_lines

    lines = _summary_lines(study_result)
    assert ("Accepted pairs: mean jitter 73.6 µs, median 68.7 µs; 13 of 18 (72 %) above the individual limit "
            "(43 µs); 5 of 18 (28 %) blocking.") in lines
    assert "; age" not in lines[0]
    aged = _summary_lines(dataclasses.replace(study_result, params=AnalysisParams(age_years=61)))
    assert "; age 61 years; time point" in aged[0]
