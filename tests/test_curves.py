import csv

import pytest

from salvid.training.learning_curves import plot_curves


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


def _lightning_log(path, epochs=10, steps_per_epoch=24, best=6):
    """A CSV log as Lightning writes it: training loss every 10 steps, validation at each epoch's last step."""
    columns = ["epoch", "step", "train/loss", "val/loss", "val/plcc", "val/auc", "val/nss"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for e in range(epochs):
            for s in range(e * steps_per_epoch, (e + 1) * steps_per_epoch):
                if s % 10 == 9 or s == (e + 1) * steps_per_epoch - 1:
                    w.writerow({"epoch": e, "step": s, "train/loss": 1 / (s + 1)})
            plcc = 0.5 - abs(e - best) * 0.02
            w.writerow({"epoch": e, "step": (e + 1) * steps_per_epoch - 1, "val/loss": 0.1, "val/plcc": plcc,
                        "val/auc": 0.9, "val/nss": 2.5})
    return path


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_training_and_validation_of_one_moment_share_an_x_and_the_best_epoch_is_marked_there(tmp_path):
    from salvid.training.learning_curves import curves_figure, read_log

    fig = curves_figure(read_log(_lightning_log(tmp_path / "metrics.csv")))
    ax_loss, ax_metric, ax_nss = fig.axes
    train = _lines(ax_loss)["train loss"]
    # the last training step of epoch 9 (step 239) and epoch 9's validation are the same moment: 10 epochs trained
    assert train.get_xdata()[-1] == pytest.approx(10.0)
    assert _lines(ax_loss)["val loss"].get_xdata()[-1] == pytest.approx(10.0)
    plcc = _lines(ax_metric)["PLCC"]
    best_x = plcc.get_xdata()[plcc.get_ydata().argmax()]
    (marker,) = [line for line in ax_metric.get_lines() if line.get_label().startswith("best")]
    assert marker.get_xdata()[0] == best_x == 7  # Lightning's epoch 6, the 7th trained
    assert "epoch006" in marker.get_label()  # named as its checkpoint file is


def test_nss_has_its_own_axis(tmp_path):
    from salvid.training.learning_curves import curves_figure, read_log

    fig = curves_figure(read_log(_lightning_log(tmp_path / "metrics.csv")))
    on_axes = [set(_lines(ax)) & {"PLCC", "AUC", "NSS"} for ax in fig.axes]
    assert {"NSS"} in on_axes and {"PLCC", "AUC"} in on_axes


def test_curves_are_also_written_as_pdf(tmp_path):
    out = plot_curves(_lightning_log(tmp_path / "metrics.csv", epochs=2), tmp_path / "curves.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"


def test_a_multirun_folder_names_its_runs(tmp_path, monkeypatch, capsys):
    from salvid import curves

    for job in ("0", "1"):
        (tmp_path / job / "csv").mkdir(parents=True)
        (tmp_path / job / "csv" / "metrics.csv").write_text("epoch,step,train/loss_epoch\n0,1,0.5\n")
    monkeypatch.setattr("sys.argv", ["salvid.curves", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        curves.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path}: a multirun's folder, with the runs 0, 1; give one "
                                               f"of them (python -m salvid.curves {tmp_path / '0'})")
