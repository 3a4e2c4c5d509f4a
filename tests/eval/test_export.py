import json

import numpy as np
import pytest
import torch
from conftest import compose_config

from salvid.checkpoints import load_network
from salvid.errors import ConfigError, DataError
from salvid.export import export
from salvid.inference.core import NetworkSaliency
from salvid.runtime.schema import ExportConfig, validate


def test_export_writes_a_loadable_pretrained_model_with_its_card(trained_ckpt, tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"salvid": {"plcc": 0.5}, "center_prior": {"plcc": 0.3}}))
    target = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=../tiny test",
                                              f"output_dir={tmp_path / 'pretrained'}", f"metrics={summary}",
                                              "hardware=test machine"]))
    assert target == tmp_path / "pretrained" / "_.._tiny_test.safetensors"  # the name cannot leave the folder
    card = json.loads(target.with_suffix(".json").read_text())
    assert card["model"]["width_mult"] == 0.125 and card["steps"] == 4
    assert card["module"]["loss"] == "mse" and card["run"]["hardware"] == "test machine"
    assert card["heldout_metrics"]["center_prior"]["plcc"] == 0.3
    exported, _ = load_network(target)
    original, _ = load_network(trained_ckpt)
    clips = [[np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8)] * 3 for i in range(2)]
    a = NetworkSaliency(exported, precision="fp32").predict(clips)
    b = NetworkSaliency(original, precision="fp32").predict(clips)
    np.testing.assert_array_equal(a, b)


def test_export_weights_float16_halves_the_file_and_loads_as_float32(trained_ckpt, tmp_path):
    full = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=full", f"output_dir={tmp_path}"]))
    half = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=half", f"output_dir={tmp_path}",
                                            "weights=float16"]))
    assert half.stat().st_size < 0.55 * full.stat().st_size
    net, _ = load_network(half)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    original, _ = load_network(full)
    clips = [[np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8)] * 3 for i in range(2)]
    a = NetworkSaliency(net, precision="fp32").predict(clips)
    b = NetworkSaliency(original, precision="fp32").predict(clips)
    assert not np.array_equal(a, b)  # the weights were rounded
    assert np.abs(a - b).mean() < 1e-3 and np.abs(a - b).max() < 0.05
    with pytest.raises(ConfigError, match="weights='int8': must be 'float32' or 'float16'"):
        validate(ExportConfig, compose_config("export", [f"ckpt_path={trained_ckpt}", "name=x", "weights=int8"]))


def test_export_records_the_runs_splits_and_the_cross_validation(trained_ckpt, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(trained_ckpt.read_bytes())
    splits = {"train": {"videos": ["davis/bear"], "still_images": 499, "frames": 581},
              "test": {"videos": ["davis/tennis"], "still_images": 0, "frames": 70}}
    (run / "metrics.json").write_text(json.dumps({"run": {"steps": 4}, "data": splits, "test": {}}))
    cv = tmp_path / "cv.json"
    cv.write_text(json.dumps({"folds": 3, "arms": {"duts": {"metrics": {"plcc": {"mean": 0.7, "std": 0.01}},
                                                             "held_out": {"0": ["davis/bear"], "1": ["davis/boat"]}}}}))
    target = export(compose_config("export", [f"ckpt_path={ckpt}", "name=cv", f"output_dir={tmp_path / 'out'}",
                                              f"cross_validation={cv}"]))
    card = json.loads(target.with_suffix(".json").read_text())
    assert card["data_splits"] == splits
    assert card["cross_validation"]["arms"]["duts"]["metrics"]["plcc"]["std"] == 0.01
    # how the test sequence was kept out, from the card's own lists
    assert card["test_sequences_kept_out"] == {
        "sequences": ["davis/tennis"], "in_training": [], "in_validation": [], "in_cross_validation_folds": [],
        "weights": "the training run's last weights (no checkpoint selection)",
        "summary": "1 test sequence: in no training batch, in no validation, in no cross-validation fold; the model "
                   "is the training run's last weights (no checkpoint selection)"}
    cv.write_text(json.dumps({"folds": 3, "arms": {"duts": {"held_out": {"0": ["davis/tennis"]}}}}))
    splits["train"]["videos"].append("davis/tennis")
    (run / "metrics.json").write_text(json.dumps({"run": {"steps": 4}, "data": splits, "test": {}}))
    target = export(compose_config("export", [f"ckpt_path={ckpt}", "name=leak", f"output_dir={tmp_path / 'out'}",
                                              f"cross_validation={cv}"]))
    kept_out = json.loads(target.with_suffix(".json").read_text())["test_sequences_kept_out"]
    assert kept_out["summary"] == ("1 test sequence: used in training (davis/tennis), in no validation, held out by a "
                                   "cross-validation fold (davis/tennis); the model is the training run's last "
                                   "weights (no checkpoint selection)")

    cv.write_text(json.dumps({"plcc": 0.7}))  # not what the script writes
    with pytest.raises(DataError, match=r"cross_validation=.*cv\.json: not the JSON of scripts/cross_validate\.py"):
        export(compose_config("export", [f"ckpt_path={ckpt}", "name=cv2", f"output_dir={tmp_path / 'out'}",
                                         f"cross_validation={cv}"]))
    assert not (tmp_path / "out" / "cv2.json").exists()
    with pytest.raises(DataError, match=r"cross_validation=.*missing\.json: not a readable JSON file"):
        export(compose_config("export", [f"ckpt_path={ckpt}", "name=cv2", f"output_dir={tmp_path / 'out'}",
                                         f"cross_validation={tmp_path / 'missing.json'}"]))


def test_the_holdout_record_says_what_the_card_does_not_record_and_which_checkpoint_was_chosen():
    from salvid.training.model_card import holdout_record

    splits = {"train": {"videos": ["davis/bear"]}, "val": {"videos": ["davis/boat", "davis/surf"]},
              "test": {"videos": ["davis/surf", "davis/train"]}}
    card = {"data_splits": splits, "source_checkpoint": "epoch003-plcc0.8.ckpt",
            "selection": {"monitor": "val/plcc", "best_score": 0.8}}
    assert holdout_record(card)["summary"] == (
        "2 test sequences: in no training batch, used in validation (davis/surf), no cross-validation folds "
        "recorded; the model is the checkpoint of the best val/plcc on the validation sequences")
    older = {"data_splits": {"test": splits["test"]}, "source_checkpoint": "best.ckpt"}  # no training list
    assert holdout_record(older)["summary"] == (
        "2 test sequences: training sequences not recorded, validation sequences not recorded, no cross-validation "
        "folds recorded; the model is the checkpoint best.ckpt")
    assert holdout_record({"data_splits": {"train": {"videos": ["davis/bear"]}}}) is None


def test_export_format_onnx_writes_graphs_that_give_the_networks_maps(trained_ckpt, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    target = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=tiny",
                                              f"output_dir={tmp_path}", "format=onnx"]))
    card = json.loads(target.with_suffix(".json").read_text())
    folder = tmp_path / card["onnx"]["folder"]
    assert folder == tmp_path / "tiny-onnx" and set(card["onnx"]["files"]) == {"network.onnx"}
    assert json.loads((folder / "manifest.json").read_text())["files"] == card["onnx"]["files"]
    net, _ = load_network(target)
    x = torch.randn(2, 3, net.in_frames, *net.input_size)
    session = ort.InferenceSession(str(folder / "network.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"clips": x.numpy()})  # plain ONNX Runtime, without salvid
    with torch.no_grad():
        maps = net.activate(net.logits(x)).numpy()
    assert maps.std() > 0.01  # not a flat map
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(logits)).numpy(), maps, atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="format='tflite': must be 'safetensors' or 'onnx'"):
        validate(ExportConfig, compose_config("export", [f"ckpt_path={trained_ckpt}", "name=t",
                                                         f"output_dir={tmp_path}", "format=tflite"]))


def test_the_export_command_leaves_no_run_folder_where_it_runs(trained_ckpt, tmp_path):
    """export writes the model where output_dir says, and nothing else: no outputs/export/runs/<time>/ holding
    only a log in the directory it was run from."""
    import os
    import subprocess
    import sys

    workdir, models = tmp_path / "work", tmp_path / "models"
    workdir.mkdir()
    env = {**os.environ, "SALVID_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "salvid.export", f"ckpt_path={trained_ckpt}", "name=mine",
                             f"output_dir={models}"], cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in models.iterdir()) == ["mine.json", "mine.safetensors"]
    assert list(workdir.iterdir()) == []
