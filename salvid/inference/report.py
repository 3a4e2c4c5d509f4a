"""Comparison tables and figures from evaluation results: the paper's Tables 2-3 and Figs. 3-4 layouts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no backend or display, scripts and notebooks alike

# (key in the metric results, row label, higher is better): the paper's rows first, then the VSOD set.
ROWS = (
    ("plcc", "PLCC", True),
    ("auc", "AUC", True),
    ("nss", "NSS", True),
    ("smeasure", "S-measure", True),
    ("maxF", "max F", True),
    ("meanF", "mean F", True),
    ("adpF", "adaptive F", True),
    ("maxE", "max E", True),
    ("mae", "MAE", False),
)
CAPTION = (
    "max F / max E: maximum over the 256 thresholds of the averaged curve (the F-measure curve of pr.png), "
    "as the DAVSOD evaluation toolbox and pysodmetrics report it; the mean of per-video (frame averaging: "
    "per-frame) maxima is meanMaxF / meanMaxE in summary.json. Which frames count: docs/metrics.md."
)


def _best(values: list[float], higher: bool) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if higher else min(finite)


def table_rows(summary: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (metrics as rows, methods as columns); the best value of each row is marked."""
    methods = list(summary)
    header = ["metric", *methods]
    rows = []
    for key, label, higher in ROWS:
        values = [float(summary[m].get(key, float("nan"))) for m in methods]
        best = _best(values, higher)
        cells = [f"**{v:.3f}**" if best is not None and v == best else f"{v:.3f}" for v in values]
        rows.append([label + ("" if higher else " (lower is better)"), *cells])
    excluded = [str(int(summary[m].get("excluded_frames", 0))) for m in methods]
    rows.append(["frames excluded (undefined)", *excluded])
    return header, rows


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    header, rows = table_rows(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":--", *["--:"] * (len(header) - 1)]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + f"\n\n{CAPTION}\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(summary: dict[str, dict[str, float]], caption: str = "") -> str:
    """The table as LaTeX (the ``booktabs`` package), methods as columns, the best value of each row bold."""
    header, rows = table_rows(summary)
    cells = [[_latex(c) if not c.startswith("**") else f"\\textbf{{{c[2:-2]}}}" for c in row] for row in rows]
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(_latex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_latex(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def print_table(summary: dict[str, dict[str, float]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = table_rows(summary)
    table = Table(title=title, caption=CAPTION)
    for i, name in enumerate(header):
        # a narrow terminal folds a long method name onto more lines rather than cutting it short
        table.add_column(name, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(c.replace("**", "") if not c.startswith("**") else f"[bold]{c[2:-2]}[/bold]" for c in row))
    Console().print(table)


# one colour per method, the same in every figure of a run: the methods' order in the results picks it
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def method_colours(methods: list[str]) -> dict[str, str]:
    """The colour of each method, by its position in ``methods`` (cycling after ten)."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def _curve(values: object) -> np.ndarray:
    """A curve as a float numpy array (``SaliencyMetrics.curves()`` gives tensors, ``evaluate`` arrays)."""
    return np.asarray(values.cpu() if hasattr(values, "cpu") else values, dtype=float)


def roc_figure(curves: dict[str, dict[str, np.ndarray]], summary: dict[str, dict[str, float]],
               title: str | None = None) -> Figure:
    """ROC curves of every method on one plot (paper Fig. 3); the legend lists methods by AUC, best first."""
    auc = {method: float(summary[method]["auc"]) for method in curves}
    colour = method_colours(list(curves))
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for method in sorted(curves, key=lambda m: -auc[m] if math.isfinite(auc[m]) else math.inf):
        ax.plot(_curve(curves[method]["fpr"]), _curve(curves[method]["tpr"]), color=colour[method],
                label=f"{method} (AUC {auc[method]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title("ROC" + (f"\n{title}" if title else ""), fontsize="medium")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def pr_figure(curves: dict[str, dict[str, np.ndarray]], title: str | None = None) -> Figure:
    """Precision-recall curves and F-measure against the binarisation threshold."""
    colour = method_colours(list(curves))
    fig = Figure(figsize=(10, 4.5))
    pr, fm = fig.subplots(1, 2)
    for method, c in curves.items():
        pr.plot(_curve(c["recall"]), _curve(c["precision"]), color=colour[method], label=method)
        fm.plot(_curve(c["thresholds"]), _curve(c["fmeasure"]), color=colour[method], label=method)
    pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="Precision-recall")
    fm.set(xlabel="threshold (0-255)", ylabel="F-measure (beta^2 = 0.3)", xlim=(0, 255), ylim=(0, 1.01),
           title="F-measure vs threshold")
    pr.legend(loc="lower left", fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


@dataclass
class QualitativeSample:
    """One row of the qualitative grid: a frame, its ground truth and each method's map."""

    title: str
    frame: np.ndarray
    mask: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


PANEL_WIDTH = 2.0  # inches per image column of the qualitative figure


def qualitative_figure(samples: list[QualitativeSample], methods: list[str], title: str | None = None) -> Figure:
    """Frame | ground truth | each method, one row per sample (paper Fig. 4). Each row is as tall as its
    images at the panel width, so rows sit close together whatever the frames' aspect ratio."""
    cols = 2 + len(methods)
    heights = [PANEL_WIDTH * s.frame.shape[0] / s.frame.shape[1] for s in samples]
    gap = 0.06  # inches between panels
    header = 0.5 if title else 0.25  # inches above the first row: the column labels (and the title)
    fig = Figure(figsize=(PANEL_WIDTH * cols, sum(heights) + gap * len(samples) + header))
    grid = fig.add_gridspec(len(samples), cols, height_ratios=heights, wspace=gap / PANEL_WIDTH,
                            hspace=gap * len(samples) / sum(heights), left=0.03, right=1, bottom=0,
                            top=1 - header / fig.get_figheight())
    for r, sample in enumerate(samples):
        panels = [("frame", sample.frame), ("ground truth", sample.mask)] + [(m, sample.maps[m]) for m in methods]
        for c, (label, image) in enumerate(panels):
            ax = fig.add_subplot(grid[r, c])
            grey = image.ndim == 2
            ax.imshow(image, cmap="gray" if grey else None, vmin=0 if grey else None, vmax=1 if grey else None,
                      aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize="small")
            if c == 0:
                ax.set_ylabel(sample.title, fontsize="x-small")
    if title:
        fig.suptitle(title, fontsize="medium", y=1 - 0.1 / fig.get_figheight(), va="top")
    return fig


def failure_figure(frame: np.ndarray, mask: np.ndarray, saliency: np.ndarray, method: str, title: str) -> Figure:
    """One frame where a method did worst: frame | ground truth | the method's map (scaled to [0, 1] as the
    metrics see it), side by side under ``title``."""
    width = 1.5 * PANEL_WIDTH  # one frame per figure: room to see what went wrong
    fig = Figure(figsize=(3 * width, width * frame.shape[0] / frame.shape[1] + 0.6))
    for ax, (label, image) in zip(fig.subplots(1, 3), [("frame", frame), ("ground truth", mask), (method, saliency)],
                                  strict=True):
        grey = image.ndim == 2
        ax.imshow(image, cmap="gray" if grey else None, vmin=0 if grey else None, vmax=1 if grey else None)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    return fig
