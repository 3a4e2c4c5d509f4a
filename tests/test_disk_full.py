"""A full disk while training: the save that fails says so in one line naming the folder, and the previous
checkpoint stays intact and resumable."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from salvid.errors import DiskFullError
from salvid.training.checkpoint_plugin import AtomicCheckpointIO
from tests.helpers.full_disk import fill_disk
from tests.helpers.train_cli import PARENT_ONLY_ENV, REPO, tiny


def test_a_checkpoint_save_on_a_full_disk_says_so_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.arange(10.0)}, path)
    fill_disk(monkeypatch, str(tmp_path), bytes_that_fit=50_000)  # torch's writer alone: "unexpected pos"
    with pytest.raises(DiskFullError, match=rf"^{re.escape(str(path.parent))}: no space left on device while "
                                            r"writing last\.ckpt"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert list(path.parent.iterdir()) == [path]  # the partial temporary file is gone


def test_training_on_a_full_disk_ends_with_one_line_and_the_last_checkpoint_intact(tmp_path):
    """The disk fills up after the first epoch's checkpoints (the best and last.ckpt): the next save ends the
    run with one line naming the folder (exit status 2), and the last.ckpt written before still loads."""
    args = [*tiny(tmp_path, tmp_path / "data", epochs=2), "logger=csv", f"hydra.run.dir={tmp_path}/run"]
    checkpoints = tmp_path / "run" / "checkpoints"
    driver = ("import runpy, sys; from tests.helpers import full_disk; "
              f"full_disk.install({str(checkpoints)!r}, files_that_fit=2); "
              "sys.argv[0] = 'salvid.train'; runpy.run_module('salvid.train', run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k not in (*PARENT_ONLY_ENV, "HYDRA_FULL_ERROR",
                                                             "SALVID_SET_HYDRA_FULL_ERROR")}
    result = subprocess.run([sys.executable, "-c", driver, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # (training's warnings come before it)
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")] == [line]
    # the second epoch's save: its best checkpoint when the score improved, else last.ckpt
    assert re.fullmatch(rf"error: {re.escape(str(checkpoints))}: no space left on device while writing "
                        r"(last|epoch001-plcc-?[\d.]+)\.ckpt \(a \1\.ckpt already there is left as it was\); free "
                        r"some space there and run the command again", line), line
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 5
    assert sorted(p.name for p in checkpoints.iterdir())[-1] == "last.ckpt"  # no temporary file left
