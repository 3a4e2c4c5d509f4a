"""The train entry point, run for real on tiny settings, and the composition of every experiment."""

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from salvid.training.fit import train

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

TINY = [
    "model=tiny",
    "model.width_mult=0.0625",
    "model.input_size=[32,32]",
    "data.synthetic.size=[32,32]",
    "data.synthetic.num_frames=6",
    "data.synthetic.num_videos={train:2,val:1,test:1}",
    "data.batch_size=4",
    "trainer=cpu",
    "logger=csv",
]


def _compose(tmp_path: Path, overrides: list[str]):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    # Outside @hydra.main the hydra: resolvers are not live; fix the paths they would give.
    cfg.paths.root_dir = str(tmp_path)
    cfg.paths.output_dir = str(tmp_path / "run")
    del cfg.hydra
    return cfg


def test_train_runs_end_to_end_and_writes_metrics_and_checkpoints(tmp_path):
    cfg = _compose(tmp_path, [*TINY, "trainer.max_epochs=1", "test_untrained=true"])
    value = train(cfg)
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"untrained", "test", "val", "checkpoint", "run", "data"}
    assert set(metrics["data"]) == {"train", "val", "test"} and all(s["videos"] for s in metrics["data"].values())
    assert value == metrics["test"]["test/plcc"]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert Path(metrics["checkpoint"]).is_file()
    assert (out / "csv" / "metrics.csv").is_file()


def test_fast_dev_run_takes_one_step_and_tests_the_network_it_has(tmp_path):
    cfg = _compose(tmp_path, [*TINY, "trainer.fast_dev_run=true"])
    value = train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["run"]["steps"] == 1  # one training batch
    assert metrics["checkpoint"] is None  # no best checkpoint is selected: the test scores the network in memory
    assert {"test/loss", "test/plcc", "test/auc", "test/nss", "test/smeasure", "test/mae"} <= set(metrics["test"])
    assert all(math.isfinite(v) for v in metrics["test"].values())
    assert value == metrics["test"]["test/plcc"]


FUSION3D_TINY = ["model=fusion3d", "model.pretrained=none", "model.widths=[8,8,8,8,8]", "model.input_size=[32,32]",
                 *TINY[3:]]


@pytest.mark.parametrize(("model", "bf16_faster", "expected"), [
    (TINY, True, "32-true"),  # the paper family: bf16 on a CPU only under the oneDNN cap, slower than fp32
    (FUSION3D_TINY, False, "32-true"),
    (FUSION3D_TINY, True, "bf16-mixed"),
])
def test_trainer_precision_auto_trains_in_bf16_only_where_bf16_pays(tmp_path, monkeypatch, model, bf16_faster,
                                                                     expected):
    from salvid.runtime import precision

    monkeypatch.setattr(precision, "bf16_is_faster", lambda: bf16_faster)
    train(_compose(tmp_path, [*model, "trainer.max_epochs=1", "trainer.precision=auto"]))
    logged = OmegaConf.load(tmp_path / "run" / "csv" / "hparams.yaml")  # the config the run was given
    assert logged.trainer.precision == expected
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["run"]["precision"] == expected


def test_a_run_records_the_precision_of_each_segment():
    from types import SimpleNamespace

    from salvid.training.run_records import RunRecord

    first = RunRecord()
    first.on_fit_start(SimpleNamespace(precision="32-true"), None)
    assert first.precision() == "32-true"
    resumed = RunRecord()  # Lightning restores the callback's state, then starts the new segment
    resumed.load_state_dict(first.state_dict())
    resumed.on_fit_start(SimpleNamespace(precision="bf16-mixed"), None)
    assert resumed.precision() == "32-true, then bf16-mixed"
    again = RunRecord()
    again.load_state_dict(first.state_dict())
    again.on_fit_start(SimpleNamespace(precision="32-true"), None)
    assert again.precision() == "32-true"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(tmp_path, experiment):
    cfg = _compose(tmp_path, [f"+experiment={experiment}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.module._target_ and cfg.data._target_


def test_missing_data_root_is_named(tmp_path):
    cfg = _compose(tmp_path, ["model=tiny", "trainer=cpu", "logger=csv", "data=videos",
                              f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(ValueError, match="nowhere"):
        train(cfg)


def test_init_weights_fine_tunes_the_saved_network_and_refuses_weights_that_do_not_fit(tmp_path):
    import torch

    from salvid.checkpoints import save_pretrained
    from salvid.errors import CheckpointError
    from salvid.models import build_network
    from salvid.training.fit import _load_initial_weights
    from salvid.training.module import SaliencyModule

    cfg = _compose(tmp_path, [*TINY, "trainer.fast_dev_run=true"])
    config = OmegaConf.to_container(cfg.model, resolve=True)
    torch.manual_seed(1)
    start = build_network(config)
    save_pretrained(start, config, tmp_path / "start", {})
    module = SaliencyModule(model=config, optimizer=OmegaConf.to_container(cfg.module.optimizer))
    _load_initial_weights(module, str(tmp_path / "start.safetensors"), trusted=False)
    for k, v in start.state_dict().items():
        torch.testing.assert_close(module.net.state_dict()[k], v)
    cfg.init_weights = str(tmp_path / "start.safetensors")
    train(cfg)  # the entry point takes the option (one fast_dev_run batch from those weights)

    other = dict(config, width_mult=config["width_mult"] * 2)
    save_pretrained(build_network(other), other, tmp_path / "other", {})
    with pytest.raises(CheckpointError, match=r"do not fit the network asked for, which differs in model\.width_mult"):
        _load_initial_weights(module, str(tmp_path / "other.safetensors"), trusted=False)
    cfg.init_weights = str(tmp_path / "other.safetensors")
    cfg.paths.output_dir = str(tmp_path / "run2")  # a fresh run (the first left a checkpoint to resume from)
    train(cfg)  # init_weights brings its own network: the wider one is trained, not model.* as composed
    assert cfg.model.width_mult == other["width_mult"]


def test_the_demo_caps_onednn_before_anything_imports_torch(tmp_path):
    """The paper family trains under a oneDNN ISA cap that must be set before torch loads; the run folder's checks
    (which import the data layer, and with it torch) come after it, so the demo does not warn that it came late."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WANDB_MODE": "offline", "NO_ALBUMENTATIONS_UPDATE": "1"}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    result = subprocess.run([sys.executable, "-m", "salvid.train", "+experiment=demo", "trainer.max_epochs=1",
                             "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false",
                             "test_untrained=false", "logger=csv", f"paths.output_dir={tmp_path}/run"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "set after torch was imported" not in result.stdout + result.stderr


@pytest.mark.parametrize(("trainer", "devices", "seen"), [("gpu", 1, "no CUDA GPU"), ("ddp", 2, "no CUDA GPU")])
def test_a_gpu_trainer_where_torch_sees_no_gpu_is_one_line_naming_the_key(tmp_path, monkeypatch, trainer, devices,
                                                                          seen):
    import torch

    from salvid.errors import ConfigError
    from salvid.training.fit import check_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = _compose(tmp_path, ["+experiment=demo", f"trainer={trainer}"])
    with pytest.raises(ConfigError, match=rf"^trainer\.accelerator=gpu with trainer\.devices={devices}: this PyTorch "
                                          rf"\(.*\) sees {seen}; train on the CPU with trainer=cpu"):
        check_accelerator(cfg.trainer)
    check_accelerator(_compose(tmp_path, ["+experiment=demo"]).trainer)  # the CPU needs nothing
