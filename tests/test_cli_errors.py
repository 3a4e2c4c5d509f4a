"""Every entry point ends a user's mistake with one line naming the key or file, and exit status 2; values
that make no sense are refused before any work starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from salvid.checkpoints import load_network, save_pretrained
from salvid.errors import CheckpointError, ConfigError
from salvid.models import SaliencyNet3D
from salvid.runtime.entry import entry_point, one_line
from tests.helpers.train_cli import REPO, compose_config


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SALVID_RANK0_CONFIG",
                                                              "HYDRA_FULL_ERROR", "SALVID_SET_HYDRA_FULL_ERROR")}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("salvid.train", ["data.batch_size=0"], "data.batch_size=0: must be >= 1"),
        ("salvid.train", ["nosuchkey=1"], "Could not override 'nosuchkey'. To append to your config use +nosuchkey=1"),
        ("salvid.evaluate", ["ckpt_path=missing.ckpt", "baselines=[]"], "missing.ckpt: checkpoint not found"),
        ("salvid.predict", [], "Missing mandatory value: input"),
        ("salvid.predict", ["input=x.mp4", "fps=0"], "fps=0: must be >= 0.001"),
        ("salvid.export", ["ckpt_path=missing.ckpt", "name=x"], "missing.ckpt: checkpoint not found"),
        ("salvid.predict", ["input=x.mp4", "tta=foo"], "tta='foo': must be 'none' or 'flip'"),
        ("salvid.evaluate", ["tta=foo"], "tta='foo': must be 'none' or 'flip'"),
        # tta=flip passes the config check: the run goes on to the checkpoint
        ("salvid.evaluate", ["ckpt_path=missing.ckpt", "baselines=[]", "tta=flip"], "missing.ckpt: checkpoint not found"),
    ],
    ids=["train-value", "train-unknown-key", "evaluate-checkpoint", "predict-missing-input", "predict-fps",
         "export-checkpoint", "predict-tta", "evaluate-tta", "evaluate-tta-flip"],
)
def test_entry_points_report_a_users_mistake_in_one_line(tmp_path, module, args, expected):
    line = one_error_line(run(module, *args, f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"))
    assert expected in line


def test_hydra_full_error_keeps_the_traceback(tmp_path):
    result = run("salvid.train", "data.batch_size=0", f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/r",
                 env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ConfigError: data.batch_size=0" in result.stderr


def test_unexpected_errors_keep_their_traceback():
    @entry_point
    def broken():
        raise RuntimeError("a bug")

    @entry_point
    def refused():
        raise ConfigError("x=1: must be 2")

    with pytest.raises(RuntimeError, match="a bug"):
        broken()
    with pytest.raises(SystemExit) as exit_info:
        refused()
    assert exit_info.value.code == 2
    assert "HYDRA_FULL_ERROR" not in os.environ  # restored after the call


def test_a_worker_error_is_reported_by_its_original_line():
    error = ValueError("Caught ImageReadError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                       "call last):\n  File \"x.py\", line 1\nsalvid.data.errors.ImageReadError: a/00002.jpg: "
                       "truncated")
    assert one_line(error) == "a/00002.jpg: truncated"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.batch_size=0", r"data\.batch_size=0: must be >= 1"),
        ("data.num_workers=-1", r"data\.num_workers=-1: must be >= 0"),
        ("module.optimizer.lr=-1", r"module\.optimizer\.lr=-1: must be > 0"),
        ("model.width_mult=abc", r"model\.width_mult='abc': must be a number"),
        ("model.pool_strides=[[1,2,2],[1,2,2],[1,2,2],[1,2,2]]",
         r"model\.pool_strides has 4 strides, but model\.widths, .* have 5 entries"),
    ],
)
def test_train_refuses_values_that_make_no_sense_naming_the_key(override, expected):
    from salvid.training.fit import check_config

    with pytest.raises(ConfigError, match=expected):
        check_config(compose_config(["+experiment=demo", override]))


@pytest.mark.parametrize(
    ("override", "expected"),
    [("batch_size=0", r"batch_size=0: must be >= 1"), ("fps=-5", r"fps=-5: must be >= 0.001"),
     ("overlay_alpha=7", r"overlay_alpha=7: must be <= 1")],
)
def test_predict_refuses_values_that_make_no_sense_naming_the_key(override, expected):
    from salvid.predict import check_config

    key, value = override.split("=")
    cfg = OmegaConf.create({"batch_size": 8, "fps": 25, "overlay_alpha": 0.5})
    cfg[key] = int(value)
    with pytest.raises(ConfigError, match=expected):
        check_config(cfg)


@pytest.mark.parametrize(("fps", "reason"), [("inf", "inf: must be a finite number"), ("1e12", "1e+12: must be <= 1000"),
                                            ("nan", "nan: must be a finite number"), ("1e-05", "1e-05: must be >= 0.001")])
def test_predict_refuses_an_infinite_or_absurd_fps_in_one_line(tmp_path, fps, reason):
    """Checked before the model loads: the video writer cannot encode such a rate (inf and 1e12 crashed, 1e-05
    silently became the encoder's default)."""
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (16, 16)).save(frames / "00000.png")
    line = one_error_line(run("salvid.predict", f"input={frames}", f"fps={fps}", f"paths.output_dir={tmp_path}/out",
                              f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"))
    assert line == f"error: fps={reason}"
    assert not (tmp_path / "out").exists()


def test_a_model_card_with_a_non_numeric_value_is_refused_naming_it(tmp_path):
    config = {"width_mult": 0.125, "input_size": [32, 32]}
    save_pretrained(SaliencyNet3D(**config), config, tmp_path / "m", {})
    card = json.loads((tmp_path / "m.json").read_text())
    card["model"]["width_mult"] = "wide"
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"m\.json: model config width_mult='wide': must be a number"):
        load_network(tmp_path / "m.safetensors")


def test_predict_runs_with_tta_flip_from_the_command_line(tmp_path):
    from PIL import Image

    config = {"width_mult": 0.125, "input_size": [32, 32]}
    save_pretrained(SaliencyNet3D(**config), config, tmp_path / "m.safetensors", {})
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (24, 16), (40 * i, 90, 10)).save(frames / f"{i:05d}.png")
    result = run("salvid.predict", f"input={frames}", "tta=flip", f"ckpt_path={tmp_path}/m.safetensors",
                 "write_videos=false", "device=cpu", f"paths.output_dir={tmp_path}/out", f"paths.root_dir={tmp_path}",
                 f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "frames" / "status.json").read_text())["frames_written"] == 3
