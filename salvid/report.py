"""Comparison tables and figures from evaluation results: the paper's Tables 2-3 and Figs. 3-4 layouts."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from salvid.io import atomic_write_bytes  # noqa: E402

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


def print_table(summary: dict[str, dict[str, float]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = table_rows(summary)
    table = Table(title=title, caption=CAPTION)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(c.replace("**", "") if not c.startswith("**") else f"[bold]{c[2:-2]}[/bold]" for c in row))
    Console().print(table)


def per_sequence_csv(rows: list[dict[str, object]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def save_figure(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def roc_figure(curves: dict[str, dict[str, np.ndarray]], summary: dict[str, dict[str, float]]) -> Figure:
    """ROC curves of every method on one plot (paper Fig. 3), AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for method, c in curves.items():
        order = np.argsort(c["fpr"], kind="stable")
        ax.plot(c["fpr"][order], c["tpr"][order], label=f"{method} (AUC {summary[method]['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title="ROC")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def pr_figure(curves: dict[str, dict[str, np.ndarray]]) -> Figure:
    """Precision-recall curves and F-measure against the binarisation threshold."""
    fig, (pr, fm) = plt.subplots(1, 2, figsize=(10, 4.5))
    for method, c in curves.items():
        pr.plot(c["recall"], c["precision"], label=method)
        fm.plot(c["thresholds"], c["fmeasure"], label=method)
    pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="Precision-recall")
    fm.set(xlabel="threshold (0-255)", ylabel="F-measure (beta^2 = 0.3)", xlim=(0, 255), ylim=(0, 1.01),
           title="F-measure vs threshold")
    pr.legend(loc="lower left", fontsize="small")
    return fig


@dataclass
class QualitativeSample:
    """One row of the qualitative grid: a frame, its ground truth and each method's map."""

    title: str
    frame: np.ndarray
    mask: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def qualitative_figure(samples: list[QualitativeSample], methods: list[str]) -> Figure:
    """Frame | ground truth | each method, one row per sample (paper Fig. 4)."""
    cols = 2 + len(methods)
    fig, axes = plt.subplots(len(samples), cols, figsize=(2.2 * cols, 1.9 * len(samples)), squeeze=False)
    for r, sample in enumerate(samples):
        panels = [("frame", sample.frame), ("ground truth", sample.mask)] + [(m, sample.maps[m]) for m in methods]
        for c, (label, image) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, cmap=None if image.ndim == 3 else "gray", vmin=0 if image.ndim == 2 else None,
                      vmax=1 if image.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize="small")
        axes[r, 0].set_ylabel(sample.title, fontsize="x-small")
    fig.tight_layout()
    return fig
