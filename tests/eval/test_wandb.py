"""What W&B receives, read back from the offline run that training and evaluate leave: the logged keys, the
example images (uint8, not black) and evaluate's tables and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wandb
from conftest import compose_config
from PIL import Image

from salvid.inference.scoring import evaluate
from salvid.training.fit import train
from tests.helpers.wandb_runs import history, offline_run

TINY_TRAIN = ["model=tiny", "model.width_mult=0.0625", "model.input_size=[32,32]", "data.synthetic.size=[32,32]",
              "data.synthetic.num_frames=6", "data.synthetic.num_videos={train:2,val:1,test:1}", "data.batch_size=4",
              "trainer=cpu", "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "logger=wandb",
              "module.log_images=2"]


def keys(rows: list[dict]) -> set[str]:
    return {k for row in rows for k in row}


def images(run, rows: list[dict], key: str) -> list[np.ndarray]:
    """The images logged under ``key``, read from the run's media files."""
    files = [f for row in rows for f in row.get(f"{key}/filenames", [])]
    assert files, f"no {key} images in the run's history"
    return [np.asarray(Image.open(run / "files" / f)) for f in files]


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wandb_train")
    cfg = compose_config("train", [*TINY_TRAIN, f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}"])
    train(cfg)
    run = offline_run(out / "run")
    return run, history(run)


def test_training_logs_losses_and_metrics_of_each_stage(train_run):
    _, rows = train_run
    logged = keys(rows)
    for key in ("train/loss", "val/loss", "val/plcc", "val/auc", "val/nss", "val/mae", "test/loss", "test/plcc",
                "test/auc", "test/nss", "test/smeasure", "test/mae", "epoch", "trainer/global_step"):
        assert key in logged, f"{key} not logged to W&B (logged: {sorted(logged)})"
    values = [row[k] for row in rows for k in row if k.startswith(("val/", "test/")) and k[-1] != "/"
              and isinstance(row[k], float)]
    assert values and all(np.isfinite(values))


def test_validation_examples_are_uint8_frame_mask_map_rows_that_are_not_black(train_run):
    run, rows = train_run
    logged = images(run, rows, "val/examples")
    counts = [row["val/examples/count"] for row in rows if "val/examples/count" in row]
    assert counts and set(counts) == {2}  # module.log_images per validation
    for image in logged:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[:2] == (32, 96)  # frame | ground truth | map, each at the input size
        frame, mask, saliency = image[:, :32], image[:, 32:64], image[:, 64:]
        assert frame.std() > 5, "the frame panel is flat"
        assert set(np.unique(mask)) <= {0, 255}, "the ground truth panel is not a mask"
        assert saliency.max() > 0, "the map panel is black"
    assert any(image[:, 32:64].max() == 255 for image in logged), "every ground truth panel is empty"


def test_evaluate_logs_its_table_rows_and_figures_to_wandb(eval_data, trained_ckpt, tmp_path):
    out = tmp_path / "out"
    summary = evaluate(compose_config("evaluate", [
        f"ckpt_path={trained_ckpt}", "data=videos", f"data.root={eval_data}", "data.split=test",
        f"paths.output_dir={out}", "batch_size=4", "qualitative_frames=2", "baselines=[center_prior]",
        "logger=wandb"]))
    wandb.finish()  # as the process's exit would: evaluate leaves its run open (see the test below)
    run = offline_run(out)
    rows = history(run)
    logged = keys(rows)
    for method, values in summary.items():  # every scalar of the summary
        for metric, value in values.items():
            key = f"{method}/{metric}"
            assert key in logged, f"{key} not logged"
            assert [row[key] for row in rows if key in row][-1] == pytest.approx(value)
    for key, shape in (("evaluate/table", None), ("evaluate/per_sequence", (2 * 2, None))):
        assert rows and f"{key}/path" in logged, f"table {key} not logged"
        path = next(row[f"{key}/path"] for row in rows if f"{key}/path" in row)
        table = json.loads((run / "files" / path).read_text())
        assert table["data"], f"{key} is empty"
        if shape:  # one row per method x sequence
            assert len(table["data"]) == shape[0]
    table = json.loads((run / "files" / next(r["evaluate/table/path"] for r in rows if "evaluate/table/path" in r))
                       .read_text())
    assert table["columns"][:3] == ["metric", trained_ckpt.parent.parent.name, "center_prior"]  # named after its run
    figures = images(run, rows, "evaluate/figures")
    captions = next(r["evaluate/figures/captions"] for r in rows if "evaluate/figures/captions" in r)
    assert captions == ["roc.png", "pr.png", "qualitative.png"]
    for figure, name in zip(figures, captions, strict=True):  # the very figures evaluate wrote
        written = np.asarray(Image.open(out / name).convert(figure.ndim == 3 and "RGB" or "L"))
        assert figure.shape[:2] == written.shape[:2] and figure.std() > 1


def test_evaluate_closes_its_wandb_run(eval_data, trained_ckpt, tmp_path):
    try:
        evaluate(compose_config("evaluate", [
            f"ckpt_path={trained_ckpt}", "data=videos", f"data.root={eval_data}", "data.split=test",
            f"paths.output_dir={tmp_path}", "batch_size=4", "qualitative_frames=0", "baselines=[]",
            "logger=wandb"]))
        assert wandb.run is None
    finally:
        wandb.finish()
