"""Entry points run as console scripts do: imported by a wrapper, from any working directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["train", "evaluate", "predict", "export"])
def test_console_script_style_call_finds_the_configs(module, tmp_path):
    # What pip's salvid-<entry> wrapper does: import main and call it, with __main__ being the wrapper.
    code = f"import sys; sys.argv = ['salvid-{module}', '--cfg', 'job']; from salvid.{module} import main; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "task_name" in result.stdout


def test_a_users_own_config_group_joins_with_config_dir(tmp_path):
    # docs/development.md: an experiment of one's own, outside the package, composed over salvid's configs
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "small_run.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: tiny\ntask_name: small_run\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "salvid.train", "--config-dir", str(tmp_path / "mine"),
                             "+experiment=small_run", "--cfg", "job"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "task_name: small_run" in result.stdout and "width_mult: 0.25" in result.stdout  # model=tiny


@pytest.mark.parametrize("module, expected", [("export", "salvid-export: turn a training checkpoint"),
                                              ("prepare", "Prepare datasets"), ("curves", "Learning curves"),
                                              ("bench", "usage: python -m salvid.bench")])
def test_every_help_is_its_own_and_plain_text(module, expected, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", f"salvid.{module}", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout
    assert "``" not in result.stdout and ":mod:" not in result.stdout and ":func:" not in result.stdout
    assert "== Config groups ==" not in result.stdout  # Hydra's generic help lists the training groups
