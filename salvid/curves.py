"""Learning curves from a run's CSV log: ``python -m salvid.curves <run dir or metrics.csv> [--out FILE]``.

Plots training loss per step and, per epoch, validation loss and the validation saliency metrics, marking
the epoch with the best ``val/plcc`` (the one ModelCheckpoint keeps by default).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def plot_curves(csv_path: str | Path, out: str | Path) -> Path:
    rows = read_log(Path(csv_path))
    train = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]
    val = [r for r in rows if "val/loss" in r]
    if not train and not val:
        raise ValueError(f"{csv_path}: no train/loss or val/loss columns")
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps_per_epoch = max(val[0]["step"], 1) / max(val[0]["epoch"] + 1, 1) if val else 1
    if train:
        ax_loss.plot([s / steps_per_epoch for s, _ in train], [v for _, v in train], lw=0.8, label="train loss")
    if val:
        ax_loss.plot([r["epoch"] + 1 for r in val], [r["val/loss"] for r in val], "o-", ms=2, label="val loss")
    ax_loss.set(xlabel="epoch", ylabel="loss (MSE, eq. 2)", yscale="log")
    ax_loss.legend()
    for name in ("val/plcc", "val/auc", "val/nss"):
        points = [(r["epoch"] + 1, r[name]) for r in val if name in r]
        if points:
            ax_metric.plot(*zip(*points, strict=True), "o-", ms=2, label=name.removeprefix("val/").upper())
    if val and "val/plcc" in val[0]:
        best = max(val, key=lambda r: r.get("val/plcc", float("-inf")))
        ax_metric.axvline(best["epoch"] + 1, color="grey", ls="--", lw=0.8, label=f"best PLCC (epoch {int(best['epoch'])})")
    ax_metric.set(xlabel="epoch", ylabel="validation metric")
    ax_metric.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="run directory (reads csv/metrics.csv) or a metrics.csv file")
    parser.add_argument("--out", type=Path, default=None, help="output image (default: next to the log)")
    args = parser.parse_args()
    csv_path = args.log / "csv" / "metrics.csv" if args.log.is_dir() else args.log
    print(plot_curves(csv_path, args.out or csv_path.with_name("learning_curves.png")))


if __name__ == "__main__":
    main()
