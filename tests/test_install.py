"""salvid installed as users install it: a wheel built from this checkout, in a fresh virtual environment, run
from an unrelated folder through its console scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# What a wheel is built from: the package, its configs and the build files; never data or local outputs.
SOURCES = ("salvid", "conf", "pyproject.toml", "README.md")
CONSOLE_SCRIPTS = ("salvid-train", "salvid-evaluate", "salvid-predict", "salvid-prepare", "salvid-export",
                   "salvid-curves", "salvid-bench")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh venv holding only the wheel; its dependencies are this environment's (a path
    entry, so that nothing is downloaded and no editable salvid leaks in)."""
    tmp = tmp_path_factory.mktemp("install")
    source, wheels, venv = tmp / "source", tmp / "wheels", tmp / "venv"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, text=True)
    wheel = next(wheels.glob("salvid-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, text=True)
    return venv / "bin"


def run(bin_dir: Path, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WANDB_SERVICE", "SALVID_ROOT")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} exited with {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.install
def test_the_wheel_holds_the_configs_the_models_and_every_console_script(installed, tmp_path):
    where = run(installed, tmp_path, "python", "-c", "import salvid.runtime.configs as c, salvid.checkpoints as k; "
                "print(c.CONF_DIR); print(k.PRETRAINED_DIR)").stdout.split()
    conf, pretrained = Path(where[0]), Path(where[1])
    assert conf == installed.parent.joinpath(*conf.relative_to(installed.parent).parts)  # inside the venv
    assert "site-packages" in conf.parts and conf.name == "conf" and conf.parent.name == "salvid"
    assert (conf / "train.yaml").is_file() and (conf / "experiment" / "demo.yaml").is_file()
    assert sorted(p.name for p in pretrained.glob("*.safetensors")) == sorted(
        p.name for p in (REPO / "salvid" / "pretrained").glob("*.safetensors"))
    for script in CONSOLE_SCRIPTS:
        assert (installed / script).is_file(), script
        assert run(installed, tmp_path, script, "--help").stdout.strip(), f"{script} --help printed nothing"


@pytest.mark.slow
@pytest.mark.install
def test_installed_commands_run_from_an_unrelated_folder(installed, tmp_path):
    frames = tmp_path / "clip"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(frames / f"{i:05d}.jpg")

    run(installed, tmp_path, "salvid-prepare", "--help")
    assert "ckpt_path" in run(installed, tmp_path, "salvid-evaluate", "--help").stdout

    run(installed, tmp_path, "salvid-predict", "input=clip", "paths.output_dir=maps", "write_videos=false")
    assert sorted(p.name for p in (tmp_path / "maps" / "clip" / "maps").iterdir()) == [f"{i:05d}.png" for i in range(3)]
    assert json.loads((tmp_path / "maps" / "clip" / "status.json").read_text())["complete"] is True

    tiny = ["model.width_mult=0.0625", "model.input_size=[32,32]", "data.synthetic.size=[32,32]",
            "data.synthetic.num_frames=10", "data.synthetic.num_videos={train:2,val:1,test:1}", "data.batch_size=4",
            "data.chunk_len=4", "trainer.max_epochs=1", "test_untrained=false", "logger=csv"]
    run(installed, tmp_path, "salvid-train", "+experiment=demo", "paths.output_dir=demo", *tiny)
    results = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(results["test"]) >= {"test/plcc", "test/auc", "test/nss"}
    assert (tmp_path / "data" / "synthetic").is_dir()  # the demo's data went to the working folder

    run(installed, tmp_path, "salvid-evaluate", "ckpt_path=demo/checkpoints/last.ckpt", "paths.output_dir=eval",
        "data.synthetic.size=[32,32]", "data.synthetic.num_frames=10", "data.synthetic.num_videos={train:2,val:1,test:1}",
        "baselines=[center_prior]")
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert set(summary) == {"demo", "center_prior"} and 0.0 <= summary["demo"]["auc"] <= 1.0  # named after the run
