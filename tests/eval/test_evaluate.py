import csv
import json
import logging
import shutil

import pytest
from conftest import compose_config

from salvid.baselines import MissingMapsError
from salvid.errors import ConfigError, UnsafeOutputError
from salvid.inference.scoring import evaluate

FILES = ("per_sequence.csv", "summary.json", "table.md", "roc.png", "pr.png", "qualitative.png")


def run(eval_data, out, ckpt, *overrides):
    cfg = compose_config("evaluate", [f"ckpt_path={ckpt}", "data=videos", f"data.root={eval_data}",
                                      "data.split=test", f"paths.output_dir={out}", "batch_size=4",
                                      "qualitative_frames=2", *overrides])
    return evaluate(cfg)


def gt_maps(eval_data, folder):
    """The ground-truth masks laid out as a maps folder: a perfect method."""
    for seq in ("test_000", "test_001"):
        shutil.copytree(eval_data / "masks" / seq, folder / seq)
    return folder


def test_evaluate_scores_network_baselines_and_maps_folders(eval_data, trained_ckpt, image_only_pretrained, tmp_path):
    out = tmp_path / "out"
    maps = gt_maps(eval_data, tmp_path / "gt_maps")
    summary = run(eval_data, out, trained_ckpt, f"image_only_ckpt={image_only_pretrained}",
                  f"+maps_dirs.oracle={maps}")
    network = trained_ckpt.parent.parent.name  # a training checkpoint is named after its run
    methods = [network, "center_prior", "frame_difference", "spectral_residual", "image_only", "oracle"]
    assert list(summary) == methods  # image_only joins with its checkpoint
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    # the oracle's maps are the ground truth: every metric at its best
    oracle = summary["oracle"]
    assert oracle["auc"] == pytest.approx(1.0) and oracle["plcc"] == pytest.approx(1.0)
    assert oracle["mae"] == pytest.approx(0.0) and oracle["smeasure"] == pytest.approx(1.0)
    assert json.loads((out / "summary.json").read_text()) == summary
    rows = list(csv.DictReader((out / "per_sequence.csv").open()))
    assert sorted({(r["method"], r["sequence"]) for r in rows}) == sorted(
        (m, s) for m in methods for s in ("test_000", "test_001"))
    assert sum(int(r["frames"]) for r in rows if r["method"] == network) == 16
    excluded = sum(int(r["excluded_frames"]) for r in rows if r["method"] == network)
    assert summary[network]["excluded_frames"] == excluded
    table = (out / "table.md").read_text()
    assert f"| metric | {network} | center_prior |" in table and "| PLCC |" in table and "| AUC |" in table
    assert "**1.000**" in table  # the oracle's AUC marked best


def test_maps_folder_missing_frames_fails_before_scoring(eval_data, tiny_pretrained, tmp_path):
    maps = gt_maps(eval_data, tmp_path / "maps")
    (maps / "test_001" / "00003.png").unlink()
    with pytest.raises(MissingMapsError, match=r"test_001.*'partial'.*1 of 8 annotated frames.*00003"):
        run(eval_data, tmp_path / "out", tiny_pretrained, "baselines=[]", f"+maps_dirs.partial={maps}")
    assert not (tmp_path / "out").exists()


def test_output_dir_equal_to_the_data_root_is_refused(eval_data, tiny_pretrained):
    before = sorted(p.relative_to(eval_data) for p in eval_data.rglob("*"))
    with pytest.raises(UnsafeOutputError, match="is the input folder"):
        run(eval_data, eval_data, tiny_pretrained, "baselines=[]")
    assert sorted(p.relative_to(eval_data) for p in eval_data.rglob("*")) == before


def test_unknown_baseline_and_wrong_image_only_network_are_named(eval_data, tiny_pretrained, tmp_path):
    with pytest.raises(ValueError, match="unknown 'itti'"):
        run(eval_data, tmp_path / "a", tiny_pretrained, "baselines=[itti]")
    with pytest.raises(ValueError, match="3 input frames, not the 1-frame ablation"):
        run(eval_data, tmp_path / "b", tiny_pretrained, "baselines=[image_only]", f"image_only_ckpt={tiny_pretrained}")


def test_the_default_run_scores_what_runs_everywhere_without_warnings(eval_data, tiny_pretrained, tmp_path, caplog):
    summary = run(eval_data, tmp_path / "out", tiny_pretrained)
    assert list(summary) == ["tiny", "center_prior", "frame_difference", "spectral_residual"]  # tiny.safetensors
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "skipped" in r.getMessage()]


def test_scoring_a_model_on_sequences_its_card_trained_on_is_warned(eval_data, tiny_pretrained, tmp_path, caplog):
    """A card's data_splits (train and val videos, with their dataset prefix) name what the model saw: scores on
    those sequences are not held out, and evaluate says so; on others it says nothing."""
    from salvid.checkpoints import load_network, save_pretrained, trained_sequences

    net, config = load_network(tiny_pretrained)
    seen = tmp_path / "seen.safetensors"
    save_pretrained(net, config, seen, {"data_splits": {"train": {"videos": ["videos/test_001", "davis/bear"]},
                                                        "val": {"videos": ["videos/test_000"]},
                                                        "test": {"videos": ["videos/test_002"]}}})
    assert trained_sequences(seen) == {"test_000", "test_001", "bear"}
    assert trained_sequences(tiny_pretrained) == set()  # a card without data_splits
    run(eval_data, tmp_path / "out", seen, "baselines=[]", "data.sequences=[test_001]")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "not held out" in
              r.getMessage()]
    assert warned == ["seen trained or was selected on 1 of the 1 sequences scored here (test_001), by its model "
                      "card: its scores on them are not held out"]
    caplog.clear()
    run(eval_data, tmp_path / "out2", tiny_pretrained, "baselines=[]", f"+networks.seen={seen}")
    assert len([r for r in caplog.records if "not held out" in r.getMessage()]) == 1  # the other network


def test_a_baseline_asked_for_by_name_that_cannot_run_is_named_with_the_fix(eval_data, tiny_pretrained, tmp_path):
    with pytest.raises(ConfigError, match=r"baselines: image_only needs .*image_only_ckpt="):
        run(eval_data, tmp_path / "a", tiny_pretrained, "baselines=[image_only]")
    try:
        import cv2

        cv2.saliency.StaticSaliencyFineGrained_create()
    except (ImportError, AttributeError):
        with pytest.raises(ConfigError, match=r"baselines: opencv_fine_grained cannot run here: .*contrib"):
            run(eval_data, tmp_path / "b", tiny_pretrained, "baselines=[opencv_fine_grained]")


RESULTS = ("summary.json", "per_sequence.csv", "table.md", "table.tex", "roc.png", "roc.pdf", "pr.png", "pr.pdf",
           "qualitative.png", "qualitative.pdf")  # every file evaluate writes but status.json


def results(out):
    return sorted(name for name in RESULTS if (out / name).exists())


def status(out):
    return json.loads((out / "status.json").read_text())


def test_a_rerun_removes_the_earlier_results_it_does_not_write_and_nothing_else(eval_data, tiny_pretrained,
                                                                                tmp_path):
    out = tmp_path / "out"
    run(eval_data, out, tiny_pretrained, "baselines=[]")
    assert "qualitative.png" in results(out)
    (out / "notes.txt").write_text("a user's")
    run(eval_data, out, tiny_pretrained, "baselines=[]", "qualitative_frames=0")  # no qualitative figure this time
    written = results(out)
    assert "qualitative.png" not in written and "qualitative.pdf" not in written
    done = status(out)
    assert done["complete"] and done["state"] == "complete" and sorted(done["files"]) == written
    assert (out / "notes.txt").read_text() == "a user's"


def test_a_failed_rerun_presents_no_earlier_result_as_current(eval_data, tiny_pretrained, tmp_path, monkeypatch):
    from salvid.inference import report

    out = tmp_path / "out"
    run(eval_data, out, tiny_pretrained, "baselines=[]")

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "latex_table", fail)  # midway: after summary.json, before table.tex and figures
    with pytest.raises(RuntimeError, match="disk full"):
        run(eval_data, out, tiny_pretrained, "baselines=[]", "metric_average=frame")
    assert results(out) == ["per_sequence.csv", "summary.json", "table.md"]  # this run's; the earlier ones removed
    failed = status(out)
    assert not failed["complete"] and failed["state"] == "failed" and failed["error"] == "RuntimeError: disk full"
    assert failed["methods"] == ["tiny"] and failed["dataset"].startswith("videos, split test: 2 sequences")


@pytest.mark.slow
def test_an_evaluate_killed_midway_leaves_its_results_marked_running(eval_data, tiny_pretrained, tmp_path):
    """A real SIGKILL: no handler runs, so status.json still says the run is in progress."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "out"
    run(eval_data, out, tiny_pretrained, "baselines=[]")
    code = ("import os, signal, sys\n"
            "from salvid.inference import report\n"
            "report.latex_table = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from salvid.evaluate import main\n"
            "sys.argv = ['evaluate', *sys.argv[1:]]\n"
            "main()\n")
    overrides = [f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={eval_data}", "data.split=test",
                 f"paths.output_dir={out}", "baselines=[]", "device=cpu", f"hydra.run.dir={tmp_path}/run"]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code, *overrides], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}, timeout=600)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert results(out) == ["per_sequence.csv", "summary.json", "table.md"]
    assert not status(out)["complete"] and status(out)["state"] == "running"


def spoiled_maps(eval_data, folder, sequence="test_001", frame="00003"):
    """The ground truth as a maps folder, but one frame's map the mask's negative: a frame scored far below
    every other."""
    import numpy as np
    from PIL import Image

    gt_maps(eval_data, folder)
    path = folder / sequence / f"{frame}.png"
    mask = np.asarray(Image.open(path))
    Image.fromarray(np.where(mask > 0, 0, 255).astype(np.uint8)).save(path)
    return folder


def test_the_failure_gallery_shows_each_sequences_worst_frame_worst_first(eval_data, tiny_pretrained, tmp_path):
    out = tmp_path / "out"
    maps = spoiled_maps(eval_data, tmp_path / "maps")
    run(eval_data, out, tiny_pretrained, "baselines=[]", f"+maps_dirs.spoiled={maps}", "failure_gallery=true",
        "failure_method=spoiled")
    assert sorted(p.name for p in (out / "failures").iterdir()) == ["test_000.png", "test_001.png"]
    assert all((out / "failures" / name).stat().st_size > 0 for name in ("test_000.png", "test_001.png"))
    listed = [line.split(" | ") for line in (out / "failures.md").read_text().splitlines()
              if line.startswith("| test_")]
    # the spoiled frame first; test_000's maps are perfect (S 1.000 on every frame)
    assert [row[0] for row in listed] == ["| test_001", "| test_000"]
    assert listed[0][1] == "00003" and float(listed[0][2]) < 0.5 and listed[1][2] == "1.000"
    assert "failures/test_001.png" in listed[0][4] and "# Worst frames of spoiled" in (out / "failures.md").read_text()
    assert {"failures.md", "failures/test_000.png", "failures/test_001.png"} <= set(status(out)["files"])

    run(eval_data, out, tiny_pretrained, "baselines=[]", f"+maps_dirs.spoiled={maps}", "failure_gallery=1",
        "failure_method=spoiled")  # the one worst sequence; the earlier gallery's other image removed
    assert [p.name for p in (out / "failures").iterdir()] == ["test_001.png"]
    run(eval_data, out, tiny_pretrained, "baselines=[]", f"+maps_dirs.spoiled={maps}")  # by default: no gallery
    assert not (out / "failures").exists() and not (out / "failures.md").exists()


def test_the_failure_gallery_of_the_network_and_an_unknown_method(eval_data, tiny_pretrained, tmp_path):
    out = tmp_path / "out"
    run(eval_data, out, tiny_pretrained, "baselines=[]", "failure_gallery=true")
    assert "# Worst frames of tiny" in (out / "failures.md").read_text()
    assert sorted(p.name for p in (out / "failures").iterdir()) == ["test_000.png", "test_001.png"]
    with pytest.raises(ConfigError, match=r"failure_method=nobody: no such method here \(methods: tiny\)"):
        run(eval_data, tmp_path / "other", tiny_pretrained, "baselines=[]", "failure_gallery=true",
            "failure_method=nobody")
    assert not (tmp_path / "other").exists()


def test_tta_flip_applies_to_the_networks_and_is_recorded(eval_data, tiny_pretrained, tmp_path):
    plain = run(eval_data, tmp_path / "none", tiny_pretrained, "baselines=[center_prior]")
    flipped = run(eval_data, tmp_path / "flip", tiny_pretrained, "baselines=[center_prior]", "tta=flip")
    assert status(tmp_path / "none")["tta"] == "none" and status(tmp_path / "flip")["tta"] == "flip"
    assert flipped["tiny"]["plcc"] != pytest.approx(plain["tiny"]["plcc"], abs=1e-4)
    assert flipped["center_prior"] == plain["center_prior"]  # baselines are left as they are
