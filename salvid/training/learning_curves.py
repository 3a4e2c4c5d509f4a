"""Learning curves from a run's CSV log (``python -m salvid.curves`` draws them).

Three panels over epochs trained: the training loss (every logged step) with the validation loss, the
validation PLCC and AUC, and the validation NSS (its own axis: it is not bounded by 1). The epoch whose
checkpoint has the best ``val/plcc`` (the one ModelCheckpoint keeps by default) is marked on each. Written as
PNG and PDF.
"""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no backend or display needed

from salvid.errors import DataError
from salvid.runtime.figures import save_figure


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def curves_figure(rows: list[dict[str, float]], title: str | None = None) -> Figure:
    """The figure of :func:`plot_curves` from the rows of a Lightning CSV log.

    The x axis counts epochs trained: Lightning's (0-based) epoch ``e`` ends at ``e + 1``, where its validation
    values are plotted, and a training step ``s`` (0-based) ends at ``(s + 1) / steps per epoch``. The marker
    names the epoch as the checkpoint file does (``epoch{e:03d}-...ckpt``).
    """
    train = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r and "step" in r]
    val = [r for r in rows if "val/loss" in r or "val/plcc" in r]
    if not train and not val:
        raise ValueError("no train/loss or val/loss columns")
    # a validation row is logged at the last step of its epoch
    steps_per_epoch = (val[0]["step"] + 1) / (val[0]["epoch"] + 1) if val else 1.0
    fig = Figure(figsize=(14, 3.6))
    ax_loss, ax_metric, ax_nss = fig.subplots(1, 3)
    if train:
        ax_loss.plot([(s + 1) / steps_per_epoch for s, _ in train], [v for _, v in train], lw=0.8, label="train loss")
    losses = [(r["epoch"] + 1, r["val/loss"]) for r in val if "val/loss" in r]
    if losses:
        ax_loss.plot(*zip(*losses, strict=True), "o-", ms=2, label="val loss")
    ax_loss.set(xlabel="epochs trained", ylabel="loss", yscale="log", title="loss")
    for ax, names in ((ax_metric, ("val/plcc", "val/auc")), (ax_nss, ("val/nss",))):
        for name in names:
            points = [(r["epoch"] + 1, r[name]) for r in val if name in r]
            if points:
                ax.plot(*zip(*points, strict=True), "o-", ms=2, label=name.removeprefix("val/").upper())
    ax_metric.set(xlabel="epochs trained", ylabel="validation PLCC, AUC", title="validation PLCC and AUC")
    ax_nss.set(xlabel="epochs trained", ylabel="validation NSS", title="validation NSS")
    scored = [r for r in val if "val/plcc" in r]
    if scored:
        best = max(scored, key=lambda r: r["val/plcc"])
        label = f"best val PLCC {best['val/plcc']:.3f}: checkpoint epoch{int(best['epoch']):03d}"
        for ax in (ax_loss, ax_metric, ax_nss):
            ax.axvline(best["epoch"] + 1, color="grey", ls="--", lw=0.8, label=label if ax is ax_metric else None)
    for ax in (ax_loss, ax_metric, ax_nss):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return fig


def plot_curves(csv_path: str | Path, out: str | Path) -> Path:
    """Plot the learning curves of a CSV log to ``out`` (PNG) and the same name with ``.pdf``; returns ``out``."""
    csv_path = Path(csv_path)
    try:
        fig = curves_figure(read_log(csv_path), title=_run_title(csv_path))
    except ValueError as e:
        raise DataError(f"{csv_path}: {e}") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, out.with_suffix(".pdf"))
    return out


def _run_title(csv_path: Path) -> str | None:
    """The run's data and model choices from its ``.hydra/config.yaml``, when the log sits in a run directory."""
    config = csv_path.parent.parent / ".hydra" / "config.yaml"
    if csv_path.parent.name != "csv" or not config.is_file():
        return None
    import yaml

    try:
        cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    data = cfg.get("data") or {}
    val = (data.get("splits") or {}).get("val")
    val = f"split {val}" if val else f"{data.get('val_holdout', 0)} sequences held out of the training split"
    return f"{cfg.get('task_name', 'run')}: {Path(str(data.get('root', ''))).name} ({data.get('layout')}), validation on {val}"
