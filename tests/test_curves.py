import csv

import pytest

from salvid.curves import plot_curves


def test_learning_curves_from_a_csv_log(tmp_path):
    log = tmp_path / "metrics.csv"
    with open(log, "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "step", "train/loss", "val/loss", "val/plcc", "val/auc"])
        w.writeheader()
        for e in range(3):
            w.writerow({"epoch": e, "step": 10 * e + 5, "train/loss": 1 / (e + 1)})
            w.writerow({"epoch": e, "step": 10 * e + 9, "val/loss": 0.5, "val/plcc": 0.1 * e, "val/auc": 0.7})
    out = plot_curves(log, tmp_path / "c.png")
    assert out.stat().st_size > 10_000  # a rendered figure, not an empty file


def test_a_log_without_losses_is_named(tmp_path):
    log = tmp_path / "empty.csv"
    log.write_text("epoch,step\n0,1\n")
    with pytest.raises(ValueError, match="empty.csv: no train/loss"):
        plot_curves(log, tmp_path / "c.png")
