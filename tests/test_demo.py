"""The demo: simulate, analyse, report, in one call (shrunk here to keep tests fast)."""

import h5py
import pytest

import sfemg.demo as demo


@pytest.fixture
def small_demo(monkeypatch):
    monkeypatch.setitem(demo.DEMO_STUDY, "n_recordings", 2)
    monkeypatch.setitem(demo.DEMO_STUDY, "n_discharges", 40)


def test_demo_writes_study_analysis_and_report(small_demo, tmp_path, capsys):
    paths = demo.run_demo(tmp_path / "out", seed=2, progress=False)
    assert set(paths) == {"study", "report_pdf", "report_html", "report_png"}
    with h5py.File(paths["study"], "r") as h5:
        assert "recordings" in h5 and "analysis" in h5
    assert paths["report_pdf"].read_bytes().startswith(b"%PDF")
    assert paths["report_png"].read_bytes()[:4] == b"\x89PNG"
    assert "<table" in paths["report_html"].read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert str(paths["report_pdf"]) in out and "verdict" in out


def test_demo_quiet_prints_nothing(small_demo, tmp_path, capsys, monkeypatch):
    import sfemg.report
    monkeypatch.setattr(sfemg.report, "write_reports", lambda *a, **k: None)  # tested above
    demo.run_demo(tmp_path, seed=2, quiet=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
