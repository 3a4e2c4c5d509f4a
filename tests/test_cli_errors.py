"""Every entry point ends a user's mistake with one line naming the key or file, and exit status 2; values
that make no sense are refused before any work starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

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
        ("salvid.train", ["nosuchkey=1"], "nosuchkey: no such setting; check its spelling (a new key is added with "
                                          "+nosuchkey=1)"),
        ("salvid.predict", ["input=x.mp4", "batch_sise=4"], "batch_sise: no such setting; did you mean batch_size?"),
        ("salvid.predict", ["input=x.mp4", "+batch_sise=4"],  # added, it would be ignored: refused instead
         "batch_sise: not a setting of this command; did you mean batch_size?"),
        ("salvid.evaluate", ["data=davis2016", "data.resolutoin=240p"],
         "data.resolutoin: no such setting; did you mean data.resolution?"),
        ("salvid.export", ["ckpt_path=x.ckpt", "name=x", "+wieghts=float16"],
         "wieghts: not a setting of this command; did you mean weights?"),
        pytest.param("salvid.evaluate", ["device=cuda", "baselines=[]"], "device=cuda: this PyTorch",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is available here")),
        ("salvid.train", ["model.in_frames=2"], "model.in_frames=2: must be odd, from 1 to 9"),
        ("salvid.evaluate", ["ckpt_path=missing.ckpt", "baselines=[]"], "missing.ckpt: checkpoint not found"),
        ("salvid.predict", [], "Missing mandatory value: input"),
        ("salvid.predict", ["input=x.mp4", "fps=0"], "fps=0: must be >= 0.001"),
        ("salvid.export", ["ckpt_path=missing.ckpt", "name=x"], "missing.ckpt: checkpoint not found"),
        ("salvid.predict", ["input=x.mp4", "tta=foo"], "tta='foo': must be 'none' or 'flip'"),
        ("salvid.evaluate", ["tta=foo"], "tta='foo': must be 'none' or 'flip'"),
        # tta=flip passes the config check: the run goes on to the checkpoint
        ("salvid.evaluate", ["ckpt_path=missing.ckpt", "baselines=[]", "tta=flip"], "missing.ckpt: checkpoint not found"),
        ("salvid.predict", ["input=x.mp4", "write_pngs=false", "write_videos=false"],
         "write_pngs=false and write_videos=false: predict would write no maps; set either to true"),
    ],
    ids=["train-value", "train-unknown-key", "predict-typo", "predict-added-typo", "evaluate-typo", "export-added-typo",
         "evaluate-no-cuda", "train-model-value", "evaluate-checkpoint", "predict-missing-input",
         "predict-fps", "export-checkpoint", "predict-tta", "evaluate-tta", "evaluate-tta-flip", "predict-no-maps"],
)
def test_entry_points_report_a_users_mistake_in_one_line(tmp_path, module, args, expected):
    line = one_error_line(run(module, *args, f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"))
    assert expected in line


@pytest.mark.parametrize("module", ["salvid.predict", "salvid.evaluate"])
def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, module):
    from PIL import Image

    (tmp_path / "frames").mkdir()
    Image.new("RGB", (32, 24)).save(tmp_path / "frames" / "00000.png")
    (tmp_path / "afile").write_text("mine")
    line = one_error_line(run(module, f"input={tmp_path / 'frames'}" if module == "salvid.predict" else "baselines=[]",
                              f"paths.output_dir={tmp_path / 'afile'}"))
    assert f"{tmp_path / 'afile'}: File exists; it is in the way of a folder" in line
    assert (tmp_path / "afile").read_text() == "mine"


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
        ("model.width_mult=0", r"model\.width_mult=0: must be > 0 and at most 4"),
        ("model.width_mult=300", r"model\.width_mult=300: must be > 0 and at most 4"),
        ("model.in_frames=2", r"model\.in_frames=2: must be odd, from 1 to 9"),
        ("model.in_frames=11", r"model\.in_frames=11: must be odd, from 1 to 9"),
        ("model.input_size=[60000,60000]", r"model\.input_size=\[60000, 60000\]: .*each at most 4096 pixels"),
        ("model.input_size=[0,0]", r"model\.input_size=\[0, 0\]: must be \[height, width\], positive whole"),
        ("model.input_size=[100,64]", r"model\.input_size=\[100, 64\]: height 100 is not divisible by the total"),
        ("model.family=[paper]", r"^model\.family=\['paper'\]: must be one of"),
        ("model.pool_strides=[[1,2,2],[1,2,2],[1,2,2],[1,2,2]]",
         r"model\.pool_strides has 4 strides, but model\.widths, .* have 5 entries"),
        ("trainer.max_epochs=0", r"trainer\.max_epochs=0: must be >= 1, or -1 \(no limit\) with "
                                 r"trainer\.max_steps or trainer\.max_time set"),
        ("trainer.max_epochs=-1", r"trainer\.max_epochs=-1: must be >= 1, or -1 \(no limit\) with "),
        ("trainer.max_steps=0", r"trainer\.max_steps=0: must be >= 1, or -1 \(no limit\)"),
        ("data.splits.test=null", r"no test sequences: data\.splits\.test is null; set data\.splits\.test=<split>, "
                                  r"or train without a test stage with test=false"),
        ("data=segtrackv2", r"no test sequences: data\.splits\.test is null and data\.test_holdout is 0; set "
                            r"data\.splits\.test=<split> or data\.test_holdout=<number of training sequences to hold "
                            r"out>, or train without a test stage with test=false"),
    ],
)
def test_train_refuses_values_that_make_no_sense_naming_the_key(override, expected):
    from salvid.training.fit import check_config

    also = ["data.test_holdout=0"] if override == "data=segtrackv2" else []
    with pytest.raises(ConfigError, match=expected):
        check_config(compose_config(["+experiment=demo", override, *also]))


@pytest.mark.parametrize(
    ("override", "expected"),
    [("batch_size=0", r"batch_size=0: must be >= 1"), ("fps=-5", r"fps=-5: must be >= 0.001"),
     ("overlay_alpha=7", r"overlay_alpha=7: must be <= 1"), ("png_compression=10", r"png_compression=10: must be <= 9")],
)
def test_predict_refuses_values_that_make_no_sense_naming_the_key(override, expected):
    from salvid.predict import check_config

    key, value = override.split("=")
    cfg = OmegaConf.create({"batch_size": 8, "fps": 25, "overlay_alpha": 0.5, "png_compression": 1})
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


@pytest.mark.parametrize(
    ("module", "args", "wrong", "trusted"),
    [
        ("salvid.predict", ["input={tmp}/in/frame.png", "ckpt_path={file}"], "notes.txt", "false"),
        ("salvid.evaluate", ["ckpt_path={file}", "baselines=[]"], "clip.mp4", "true"),
        ("salvid.export", ["ckpt_path={file}", "name=x"], "notes.ckpt", "true"),  # export takes .ckpt names only
        ("salvid.train", ["+experiment=demo", "ckpt_path={file}"], "clip.mp4", "false"),
        ("salvid.train", ["+experiment=demo", "init_weights={file}"], "notes.txt", "true"),
    ],
    ids=["predict", "evaluate-trusted", "export-trusted", "train-resume", "train-init-weights-trusted"],
)
def test_a_file_that_is_no_checkpoint_is_named_so_in_one_line_trusted_or_not(tmp_path, module, args, wrong,
                                                                              trusted):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (48, 32), (90, 120, 30)).save(tmp_path / "in" / "frame.png")
    for name in ("notes.txt", "notes.ckpt"):
        (tmp_path / name).write_text("epoch 3: val_loss 0.21\n")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    file = tmp_path / wrong
    line = one_error_line(run(module, *(a.format(tmp=tmp_path, file=file) for a in args),
                              f"trusted_checkpoint={trusted}", f"paths.root_dir={tmp_path}",
                              f"hydra.run.dir={tmp_path}/run"))
    assert line.startswith(f"error: {file}: not a checkpoint: ")
    assert "trusted_checkpoint" not in line and "unsafe" not in line and "refused" not in line


@pytest.mark.parametrize(
    ("where", "change", "expected"),
    [
        ("folder", {"input_size": [60000, 60000]}, "model.input_size=[60000, 60000]: must be [height, width]"),
        ("name", {"width_mult": 300}, "model.width_mult=300: must be > 0 and at most 4"),
        ("file", "[" * 100000 + "]" * 100000, "JSON nested deeper than a model card is (at most 32 levels)"),
    ],
)
def test_predict_refuses_a_card_asking_for_too_much_in_one_line_naming_it(tmp_path, where, change, expected):
    from PIL import Image

    from salvid.checkpoints import save_folder

    config = {"width_mult": 0.125, "input_size": [32, 32]}
    net = SaliencyNet3D(**config)
    models = tmp_path / "cache" / "models"
    spec, card_file = {"folder": (tmp_path / "model", tmp_path / "model" / "config.json"),
                       "name": ("hostile", models / "hostile.json"),
                       "file": (tmp_path / "m.safetensors", tmp_path / "m.json")}[where]
    if where == "folder":
        save_folder(net, config, spec, {})
    else:
        save_pretrained(net, config, card_file.with_suffix(""), {})
    if isinstance(change, dict):
        card = json.loads(card_file.read_text())
        card["model"].update(change)
        card_file.write_text(json.dumps(card))
    else:
        card_file.write_text('{"model": ' + change + "}")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (48, 32), (90, 120, 30)).save(tmp_path / "in" / "frame.png")
    line = one_error_line(run("salvid.predict", f"input={tmp_path}/in/frame.png", f"ckpt_path={spec}",
                              f"paths.output_dir={tmp_path}/out", f"hydra.run.dir={tmp_path}/run",
                              env={"SALVID_CACHE": str(tmp_path / "cache")}))
    assert line.startswith(f"error: {card_file}: {expected}")


def test_train_accepts_the_step_and_epoch_limits_lightning_defines():
    from salvid.training.fit import check_config

    for limits in (["trainer.max_epochs=-1", "trainer.max_steps=100"], ["trainer.max_epochs=-1",
                   "trainer.max_time=00:00:10:00"], ["trainer.max_epochs=null"], ["trainer.max_epochs=3"]):
        check_config(compose_config(["+experiment=demo", *limits]))
    check_config(compose_config(["+experiment=demo", "data.splits.test=null", "+data.test_holdout=1"]))
    check_config(compose_config(["+experiment=demo", "data.splits.test=null", "test=false", "test_untrained=false"]))


@pytest.mark.parametrize(
    ("override", "expected"),
    [("trainer.max_epochs=0", "trainer.max_epochs=0: must be >= 1, or -1 (no limit) with trainer.max_steps or "
                               "trainer.max_time set"),
     ("data.splits.test=null", "no test sequences: data.splits.test is null; set data.splits.test=<split>")],
)
def test_a_run_that_could_not_test_or_train_is_refused_before_anything_is_written(tmp_path, override, expected):
    """Not a "finished" run with no training, nor a traceback once training is over: one line at the start."""
    line = one_error_line(run("salvid.train", "+experiment=demo", override, f"paths.root_dir={tmp_path}",
                              f"paths.output_dir={tmp_path}/run", "logger=csv"))
    assert expected in line
    assert not (tmp_path / "run").exists()  # not even Hydra's own records


def test_a_dataset_too_small_for_its_hold_outs_is_named_in_one_line(tmp_path):
    """evaluate data=segtrackv2 on a one-sequence copy: data.test_holdout=4 cannot be met."""
    from tests.helpers.layout_fixtures import box_mask, frame, save

    root = tmp_path / "SegTrackv2"
    for i in range(3):
        save(frame(i), root / "JPEGImages" / "girl" / f"girl_{i:05d}.png")
        save(box_mask(i), root / "GroundTruth" / "girl" / f"girl_{i:05d}.png")
    line = one_error_line(run("salvid.evaluate", "data=segtrackv2", f"data.root={root}", "baselines=[]",
                              "backend=torch", f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/out"))
    assert line == (f"error: data.test_holdout=4: only 1 training sequence in {root} (data.splits.train=all) to "
                    "hold out; lower data.test_holdout, or score every sequence with data.split=all (evaluate)")


def test_test_false_trains_without_a_test_stage_and_the_run_is_finished(tmp_path):
    """The way out the refusal names: a data config without test sequences trains to the end."""
    from tests.helpers.train_cli import run_train, tiny

    args = [*tiny(tmp_path, tmp_path / "data", epochs=1), "data.splits.test=null", "test=false", "logger=csv",
            f"hydra.run.dir={tmp_path}/run"]
    done = run_train(args)
    assert "no test stage (test=false)" in done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"] == {} and metrics["val"] and metrics["checkpoint"]
    again = run_train(args)
    assert "this run has finished" in again.stdout + again.stderr


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


@pytest.mark.parametrize(("module", "args", "expected"), [
    ("salvid.predict", ["input=frames", "ckpt_path=nosuchmodel"], "nosuchmodel: no such file"),
    ("salvid.train", ["+experiment=demo", "init_weights=nope.ckpt"], "nope.ckpt: checkpoint not found"),
])
def test_a_run_refused_once_under_way_leaves_no_run_folder(tmp_path, module, args, expected):
    """Some mistakes show only once the run has started, after Hydra made the run's folder (a pretrained name
    that does not exist, weights to start from that are not there): the one line, and no folder left behind.
    A folder that existed before keeps what it held."""
    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / "frames" / "00000.png")
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={k: v for k, v in os.environ.items()
                                              if k not in ("HYDRA_FULL_ERROR", "SALVID_SET_HYDRA_FULL_ERROR")})
    assert expected in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no outputs/.../runs/<time>/
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    result = subprocess.run([sys.executable, "-m", module, *args, f"paths.output_dir={tmp_path}/mine"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "kept"
