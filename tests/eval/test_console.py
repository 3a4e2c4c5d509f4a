"""The entry points as a user runs them: their own --help, progress lines in a log, one summary line, and every
file of a run in its output dir."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(module: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m salvid.<module> ARGS`` in ``cwd`` with stdout a pipe (as in CI or under nohup)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    result = subprocess.run([sys.executable, "-m", f"salvid.{module}", *args], cwd=cwd, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture
def clip(eval_data, tmp_path) -> Path:
    """A user's video in the working directory: 8 frames."""
    shutil.copy(eval_data / "videos" / "test_000.mp4", tmp_path / "clip.mp4")
    return tmp_path / "clip.mp4"


@pytest.mark.parametrize(("module", "keys"), [
    ("predict", ["input", "ckpt_path", "paths.output_dir", "python -m salvid.predict input=clip.mp4"]),
    ("evaluate", ["ckpt_path", "baselines", "maps_dirs", "data.split", "python -m salvid.evaluate"]),
    ("train", ["+experiment", "ckpt_path", "init_weights", "python -m salvid.train +experiment=demo"]),
])
def test_help_says_what_the_entry_point_does_with_its_own_keys_and_an_example(module, keys, tmp_path):
    text = run(module, "--help", cwd=tmp_path).stdout
    assert text.startswith(f"salvid-{module}: ")
    assert all(key in text for key in keys)
    assert "== Config ==" not in text and "Powered by Hydra" not in text  # not Hydra's generic screen
    assert len(text.splitlines()) < 45  # a screen, not the whole config


def test_predict_logs_progress_off_a_terminal_and_ends_with_one_summary_line(clip, tiny_pretrained, tmp_path):
    result = run("predict", "input=clip.mp4", f"ckpt_path={tiny_pretrained}", "batch_size=2", cwd=tmp_path,
                 SALVID_PROGRESS_SECONDS="0.05")
    lines = result.stdout.splitlines()
    assert any(re.search(r"clip: \d/8 frames \(\d+%\), [\d.]+ frames/s", x) for x in lines), result.stdout
    last = lines[-1]
    match = re.fullmatch(r"8 frames in [\d.]+ s \([\d.]+ frames/s\) -> (.+)", last)
    assert match, last
    assert Path(match[1]).parent.parent == (tmp_path / "outputs" / "predict" / "runs").resolve()
    assert len(list((Path(match[1]) / "maps").glob("*.png"))) == 8


def test_evaluate_logs_progress_off_a_terminal(eval_data, tiny_pretrained, tmp_path):
    result = run("evaluate", f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={eval_data}",
                 "data.split=test", "baselines=[center_prior]", "batch_size=2", "paths.output_dir=out",
                 cwd=tmp_path, SALVID_PROGRESS_SECONDS="0.05")
    assert re.search(r"test_00[01]: \d+/16 frames \(\d+%\), [\d.]+ frames/s", result.stdout), result.stdout


def test_everything_a_run_writes_is_in_its_output_dir(clip, tiny_pretrained, tmp_path):
    run("predict", "input=clip.mp4", f"ckpt_path={tiny_pretrained}", "paths.output_dir=out", cwd=tmp_path)
    out = tmp_path / "out"
    assert (out / ".hydra" / "config.yaml").is_file() and (out / "predict.log").stat().st_size > 0
    assert (out / "clip" / "status.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out"]  # nothing in ./outputs


def test_a_multirun_with_the_default_sweep_dir_runs_every_job(clip, tiny_pretrained, tmp_path):
    run("predict", "-m", "input=clip.mp4", f"ckpt_path={tiny_pretrained}", "batch_size=2,4", "write_videos=false",
        cwd=tmp_path)
    (sweep,) = (tmp_path / "outputs" / "predict" / "multiruns").iterdir()
    for job in ("0", "1"):
        assert len(list((sweep / job / "clip" / "maps").glob("*.png"))) == 8
