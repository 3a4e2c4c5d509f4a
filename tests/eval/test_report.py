"""Figures of ``evaluate``: vector copies, what was scored in the title, legends by rank, tight grids."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

from salvid.inference import report, scoring
from salvid.inference.report import QualitativeSample
from salvid.inference.scoring import _qualitative_picks, evaluate
from salvid.runtime.figures import save_figure


def _roc(auc: float) -> dict[str, np.ndarray]:
    fpr = np.linspace(1, 0, 256)
    return {"fpr": fpr, "tpr": fpr ** (1 - auc)}


def test_roc_legend_lists_methods_best_auc_first():
    curves = {"a": _roc(0.6), "b": _roc(0.9), "c": _roc(0.75)}
    summary = {"a": {"auc": 0.6}, "b": {"auc": 0.9}, "c": {"auc": float("nan")}}
    fig = report.roc_figure(curves, summary, "davis2016, split val: 2 sequences")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["b (AUC 0.900)", "a (AUC 0.600)", "c (AUC nan)"]
    assert "davis2016, split val" in fig.axes[0].get_title()


def _blank_rows(png: bytes) -> int:
    """The longest run of pixel rows that are plain background between the figure's first and last image rows."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    inked = (np.abs(grey - 255) > 8).mean(axis=1) > 0.5  # rows mostly covered by images
    rows = np.flatnonzero(inked)
    longest = run = 0
    for row in inked[rows[0] : rows[-1] + 1]:
        run = 0 if row else run + 1
        longest = max(longest, run)
    return longest


@pytest.mark.parametrize("size", [(240, 427), (480, 360)])  # landscape (DAVIS 240p) and portrait frames
def test_qualitative_rows_sit_close_together(tmp_path, size):
    rng = np.random.default_rng(0)
    samples = [QualitativeSample(f"seq{i} #3", rng.integers(0, 255, (*size, 3), dtype=np.uint8),
                                 np.zeros(size, np.uint8), {"salvid": rng.random(size)}) for i in range(4)]
    path = tmp_path / "q.png"
    save_figure(report.qualitative_figure(samples, ["salvid"], "synthetic, split test"), path)
    assert _blank_rows(path.read_bytes()) <= 12  # pixels at 120 dpi: a thin separator, not a gap


def test_qualitative_frames_are_honoured_with_fewer_sequences():
    class Seq:
        def __init__(self, n):
            self.annotated_frames = list(range(n))

    picks = _qualitative_picks([Seq(8), Seq(8)], 4)
    assert sum(len(frames) for frames in picks.values()) == 4 and set(picks) == {0, 1}
    assert picks[0] == [2, 6]  # spread over the sequence
    picks = _qualitative_picks([Seq(8)] * 6, 3)
    assert sorted(picks) == [0, 2, 5] and all(len(f) == 1 for f in picks.values())
    assert sum(len(f) for f in _qualitative_picks([Seq(1), Seq(2)], 4).values()) == 3  # all there are


def test_evaluate_writes_every_figure_also_as_pdf_titled_with_dataset_and_split(eval_data, tiny_pretrained,
                                                                               tmp_path, monkeypatch):
    titles = []
    save = scoring.save_figure
    monkeypatch.setattr(scoring, "save_figure", lambda fig, *paths: (titles.append(fig.texts[0].get_text() if
                        fig.texts else fig.axes[0].get_title()), save(fig, *paths)))
    out = tmp_path / "out"
    cfg = compose_config("evaluate", [f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={eval_data}",
                                      "data.split=test", f"paths.output_dir={out}", "batch_size=4",
                                      "baselines=[center_prior]", "qualitative_frames=3"])
    evaluate(cfg)
    for name in ("roc", "pr", "qualitative"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        pdf = (out / f"{name}.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-"
        # text as TrueType (Type 42) fonts, which submission systems accept; never Type 3
        assert b"/Subtype /Type3" not in pdf and b"/FontFile2" in pdf, name
    assert (out / "table.tex").read_text().startswith("\\begin{table}")
    assert len(titles) == 3 and all("videos, split test: 2 sequences, 16 annotated frames" in t for t in titles)


def test_the_printed_table_folds_long_method_names_in_a_narrow_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    names = ["salvid-fusion3d-fast-davis-duts", "center_prior", "frame_difference", "spectral_residual",
             "salvid-fusion3d-davis-duts", "salvid-fusion3d-davis"]
    report.print_table({n: {"plcc": 0.8, "auc": 0.9, "mae": 0.03} for n in names}, "davis")
    out = capsys.readouterr().out
    assert "\u2026" not in out  # no name cut short with an ellipsis
    header = [line for line in out.splitlines() if line.startswith("\u2503")]  # the header's rows, column by column
    columns = ["".join(row.split("\u2503")[i].strip() for row in header) for i in range(2, 2 + len(names))]
    assert columns == names


def test_pdf_figures_log_nothing_of_their_font_subsetting(caplog, tmp_path):
    """Embedding TrueType fonts runs fontTools' subsetter, whose INFO lines (hundreds per figure) buried
    evaluate's table in the terminal and its log."""
    import logging

    from matplotlib.figure import Figure

    caplog.set_level(logging.INFO)
    fig = Figure()
    fig.add_subplot().set_title("ROC")
    save_figure(fig, tmp_path / "roc.pdf")
    assert (tmp_path / "roc.pdf").read_bytes()[:5] == b"%PDF-"
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("fontTools")]


def test_figures_leave_the_matplotlib_backend_alone():
    """A notebook's inline backend keeps working after importing salvid's figure code."""
    code = "import matplotlib, salvid.inference.report, salvid.curves; print(matplotlib.get_backend())"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MPLBACKEND": "svg"},
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "svg", result.stderr[-2000:]


def _line_colours(fig) -> dict[str, str]:
    from matplotlib.colors import to_hex

    return {line.get_label().split(" (AUC")[0]: to_hex(line.get_color()) for ax in fig.axes for line in ax.lines
            if not line.get_label().startswith("_")}


def test_a_method_has_one_colour_in_every_figure():
    curves = {m: {**_roc(a), "recall": np.linspace(0, 1, 5), "precision": np.linspace(1, 0.5, 5),
                  "thresholds": np.arange(5.0), "fmeasure": np.linspace(0.2, 0.6, 5)}
              for m, a in (("salvid-fusion3d-davis", 0.95), ("center_prior", 0.8), ("spectral_residual", 0.9))}
    summary = {m: {"auc": a} for m, a in (("salvid-fusion3d-davis", 0.95), ("center_prior", 0.8),
                                          ("spectral_residual", 0.9))}
    roc = _line_colours(report.roc_figure(curves, summary))  # sorted by AUC: another order than the PR's
    pr = report.pr_figure(curves)
    for ax in pr.axes:
        colours = {line.get_label(): line.get_color() for ax_ in [ax] for line in ax_.lines}
        assert {m: report.method_colours(list(curves))[m] for m in colours} == colours
    assert roc == {m: c.lower() for m, c in report.method_colours(list(curves)).items()}
    assert len(set(roc.values())) == 3


def test_latex_table_is_booktabs_with_the_best_value_bold_and_names_escaped():
    summary = {"my_net": {"plcc": 0.8, "auc": 0.9, "mae": 0.05}, "center_prior": {"plcc": 0.4, "auc": 0.95, "mae": 0.3}}
    tex = report.latex_table(summary, "Held-out DAVIS: 5 sequences")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"metric & my\_net & center\_prior \\" in tex
    assert r"PLCC & \textbf{0.800} & 0.400 \\" in tex and r"AUC & 0.900 & \textbf{0.950} \\" in tex
    assert r"MAE (lower is better) & \textbf{0.050} & 0.300 \\" in tex
