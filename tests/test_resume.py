"""Resuming a killed run: same final weights and records as an uninterrupted run, same W&B run; a finished run
left alone; a changed config refused before anything is written; atomic checkpoint writes; random state
restored."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from salvid.errors import ConfigError
from salvid.training.checkpoint_plugin import AtomicCheckpointIO
from salvid.training.run_folder import checkpoint_to_resume
from salvid.training.run_records import WANDB_ID_FILE, RngState
from tests.helpers.train_cli import PARENT_ONLY_ENV, REPO, compose_config, run_train, tiny

KILL_AFTER_STEP = 3  # mid first epoch: 20 training samples / batch 4 = 5 steps per epoch


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def resume_overrides(root, data_dir):
    return [
        *tiny(root, data_dir, epochs=2),
        "test_untrained=true",
        "trainer.deterministic=true",
        "callbacks.model_checkpoint.every_n_train_steps=1",  # a last.ckpt after every step
        "logger=wandb",
        f"hydra.run.dir={root}/run",
    ]


def _kill_wandb_service_of(pid: int) -> None:
    """W&B's service runs in its own session and can hold the killed run's id for a while; a crash of the
    machine, which this test stands for, takes it too."""
    marker = f"--pid\0{pid}\0"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_text(errors="replace")
            if "wandb-core" in text and marker in text:
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def read_checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, data_dir):
    run_train(resume_overrides(tmp_path / "straight", data_dir))
    straight = read_checkpoint(tmp_path / "straight" / "run" / "checkpoints" / "last.ckpt")

    args = resume_overrides(tmp_path / "killed", data_dir)
    run_dir = tmp_path / "killed" / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    env = {k: v for k, v in os.environ.items() if k not in PARENT_ONLY_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "salvid.train", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if last.is_file() and read_checkpoint(last)["global_step"] >= KILL_AFTER_STEP:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    _kill_wandb_service_of(proc.pid)
    killed_at = read_checkpoint(last)["global_step"]
    assert killed_at < straight["global_step"] and not (run_dir / "metrics.json").exists()
    run_id = (run_dir / WANDB_ID_FILE).read_text().strip()
    first_segment_s = read_checkpoint(last)["callbacks"]["RunRecord"]["fit_seconds"]

    # The same command in the same directory: resumes from last.ckpt by itself.
    proc = run_train(args)
    resumed = read_checkpoint(last)
    # (its "epoch" field depends on whether the final save came at the last batch or after the epoch ended)
    assert resumed["global_step"] == straight["global_step"]
    for name, weight in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], weight, rtol=1e-5, atol=1e-6, msg=name)
    # one W&B run, continued: both offline run folders carry the stored id
    assert (run_dir / WANDB_ID_FILE).read_text().strip() == run_id
    wandb_runs = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and all(name.endswith(f"-{run_id}") for name in wandb_runs)
    straight_metrics = json.loads((tmp_path / "straight" / "run" / "metrics.json").read_text())
    resumed_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert resumed_metrics["test"] == pytest.approx(straight_metrics["test"], rel=1e-5, abs=1e-6)
    # every record kept: the untrained scores of the first segment, the validation scores, the time of both
    # segments, and the whole CSV history (the same rows as the uninterrupted run's)
    assert resumed_metrics["untrained"] == pytest.approx(straight_metrics["untrained"], rel=1e-5, abs=1e-6)
    assert resumed_metrics["val"] == pytest.approx(straight_metrics["val"], rel=1e-5, abs=1e-6)
    assert resumed_metrics["run"]["segments"] == 2
    assert resumed_metrics["run"]["fit_wall_time_s"] > first_segment_s > 0
    straight_rows = read_csv(tmp_path / "straight" / "run" / "csv" / "metrics.csv")
    resumed_rows = read_csv(run_dir / "csv" / "metrics.csv")
    assert [sorted(r) for r in resumed_rows] == [sorted(r) for r in straight_rows]
    for a, b in zip(resumed_rows, straight_rows, strict=True):
        assert {k: float(v) for k, v in a.items()} == pytest.approx({k: float(v) for k, v in b.items()},
                                                                    rel=1e-4, abs=1e-5)


def test_last_ckpt_every_n_steps_and_after_every_validation(tmp_path):
    """The shipped checkpoint callback with every_n_train_steps=2, 5 steps per epoch, a score that never
    improves after the first epoch: last.ckpt at steps 2 and 4 (no validation has run yet), after each
    validation (improved or not), and never between a batch and the validation that follows it (resumed from
    there, Lightning would skip that validation)."""
    import hydra
    import lightning as L
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
    from lightning.pytorch.demos.boring_classes import BoringModel

    events = []

    class Recorder(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                events.append(("validated", trainer.global_step))

    class RecordingIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            events.append((Path(path).name, checkpoint["global_step"]))
            super().save_checkpoint(checkpoint, path, storage_options)

    class Worsening(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val/plcc", 1.0 - self.current_epoch)
            return super().validation_step(batch, batch_idx)

    cfg = compose_config(["+experiment=demo", "callbacks.model_checkpoint.every_n_train_steps=2"])
    checkpoint = hydra.utils.instantiate(cfg.callbacks.model_checkpoint, dirpath=str(tmp_path))
    trainer = L.Trainer(max_epochs=2, limit_train_batches=5, limit_val_batches=1, callbacks=[checkpoint, Recorder()],
                        plugins=[RecordingIO()], logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Worsening())
    assert events == [("last.ckpt", 2), ("last.ckpt", 4), ("validated", 5), ("epoch000-plcc1.0000.ckpt", 5),
                      ("last.ckpt", 5), ("last.ckpt", 6), ("last.ckpt", 8), ("validated", 10), ("last.ckpt", 10)]
    assert read_checkpoint(tmp_path / "last.ckpt")["global_step"] == 10


def test_run_without_validation_writes_last_ckpt_only_and_no_warning(tmp_path):
    """trainer.limit_val_batches=0, as the shipped recipes train: no score to rank, so last.ckpt after each epoch
    and nothing else, and no Lightning warning that the monitored val/plcc was never logged."""
    import warnings

    import hydra
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    cfg = compose_config(["+experiment=demo"])
    checkpoint = hydra.utils.instantiate(cfg.callbacks.model_checkpoint, dirpath=str(tmp_path))
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=0, callbacks=[checkpoint],
                        logger=False, enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(BoringModel())
    assert not [w for w in caught if "monitored key" in str(w.message)], [str(w.message) for w in caught]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert read_checkpoint(tmp_path / "last.ckpt")["global_step"] == 6


STEP_EVERY = 4  # with batch 2: 10 steps per epoch, so steps 4 and 8 come before the first validation


def test_step_checkpoints_bound_the_work_a_kill_loses(tmp_path, data_dir):
    """What docs/scaling.md recommends for pre-emptible machines: with every_n_train_steps=N, a run killed
    (SIGKILL: nothing can be saved then) after step N resumes from step N or later, even before any validation
    has produced the monitored metric."""
    args = [*tiny(tmp_path, data_dir, epochs=2), "data.batch_size=2", "logger=csv",
            f"callbacks.model_checkpoint.every_n_train_steps={STEP_EVERY}", f"hydra.run.dir={tmp_path}/run"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    env = {**{k: v for k, v in os.environ.items() if k not in PARENT_ONLY_ENV}, "SALVID_PROGRESS_SECONDS": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "salvid.train", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = []
    try:
        for line in proc.stdout:  # "train, epoch 1/2, batch 5/10, ...": step 5 ran, so step 4's save is done
            seen.append(line)
            match = re.search(r"train, epoch (\d+)/\d+, batch (\d+)/(\d+)", line)
            if match and (int(match[1]) - 1) * int(match[3]) + int(match[2]) > STEP_EVERY:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert not (tmp_path / "run" / "metrics.json").exists()

    resumed = run_train(args)  # the same command: continues from the step checkpoint and finishes
    said = re.search(rf"Resuming from {re.escape(str(last))} \(step (\d+)\)", resumed.stdout + resumed.stderr)
    assert said and int(said[1]) >= STEP_EVERY, (resumed.stdout + resumed.stderr)[-3000:]
    assert "exists and is not empty" not in resumed.stdout + resumed.stderr  # resuming in place is the design
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["run"]["segments"] == 2 and metrics["run"]["steps"] == 20 and metrics["test"]


def test_ckpt_path_last_without_checkpoint_names_the_directory(tmp_path):
    assert checkpoint_to_resume(None, tmp_path) is None
    with pytest.raises(ConfigError, match=str(tmp_path)):
        checkpoint_to_resume("last", tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert checkpoint_to_resume(None, tmp_path) == str(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint_to_resume("other.ckpt", tmp_path) == "other.ckpt"


def test_failure_during_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.arange(10.0)}, path)

    def save_half_then_die(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch, "save", save_half_then_die)
    with pytest.raises(OSError, match="mid-write"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(10)}, path)
    monkeypatch.undo()
    assert read_checkpoint(path)["global_step"] == 1
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def _csv_logger(root, resume_step=0):
    from salvid.training.loggers import ResumableCSVLogger

    logger = ResumableCSVLogger(root, name="csv", version="")
    logger.resume_step = resume_step
    return logger


def test_a_failed_metrics_csv_write_leaves_whole_rows_and_the_next_save_writes_them_once(tmp_path, monkeypatch):
    """A new column rewrites metrics.csv (Lightning truncates it and writes it again in place, so a run killed
    in between kept only a header); an append that fails is cut back. Either way the rows stay pending and the
    save of Lightning's finalize("failed") writes them once."""
    logger = _csv_logger(tmp_path)
    logger.log_metrics({"test/plcc": 0.25}, step=0)
    logger.save()
    path = Path(logger.experiment.metrics_file_path)
    before = path.read_bytes()
    write = csv.DictWriter.writerows

    def write_then_die(self, rows):
        write(self, rows)
        raise OSError("killed mid-write")

    monkeypatch.setattr(csv.DictWriter, "writerows", write_then_die)
    logger.log_metrics({"train/loss": 0.5}, step=1)  # a new column
    with pytest.raises(OSError, match="mid-write"):
        logger.save()
    assert path.read_bytes() == before
    monkeypatch.undo()
    logger.finalize("failed")
    before = path.read_bytes()
    assert before.endswith(b"\r\n1,,0.5\r\n")  # Lightning's line ends

    monkeypatch.setattr(csv.DictWriter, "writerows", write_then_die)
    logger.log_metrics({"train/loss": 0.4}, step=2)  # an append
    with pytest.raises(OSError, match="mid-write"):
        logger.save()
    assert path.read_bytes() == before
    monkeypatch.undo()
    logger.finalize("failed")
    assert [(r["step"], r.get("test/plcc"), r.get("train/loss")) for r in read_csv(path)] == [
        ("0", "0.25", None), ("1", None, "0.5"), ("2", None, "0.4")]


def test_a_resumed_metrics_csv_drops_a_row_cut_short_and_a_killed_rewrites_temporary_file(tmp_path):
    logger = _csv_logger(tmp_path)
    for step, loss in enumerate([0.5, 0.4, 0.3]):
        logger.log_metrics({"train/loss": loss}, step=step)
        logger.save()
    path = Path(logger.experiment.metrics_file_path)
    # killed in mid-append of "3,0.25\r\n", and in mid-rewrite
    path.write_bytes(path.read_bytes() + b"3,0.2")
    leftover = path.parent / ".metrics.csv.x1y2.tmp"
    leftover.write_bytes(b"step,train/loss\r\n0,")
    resumed = _csv_logger(tmp_path, resume_step=5)
    resumed.log_metrics({"train/loss": 0.1}, step=5)
    resumed.save()
    assert [(r["step"], r["train/loss"]) for r in read_csv(path)] == [
        ("0", "0.5"), ("1", "0.4"), ("2", "0.3"), ("5", "0.1")]
    assert not leftover.exists()


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    callback = RngState()
    torch.save({"rng": callback.state_dict()}, tmp_path / "state.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    callback.load_state_dict(read_checkpoint(tmp_path / "state.pt")["rng"])
    callback.on_train_start(None, None)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def snapshot(folder):
    """Every file under ``folder``: its bytes and modification time."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_finished_run_is_left_alone_and_a_changed_config_is_refused_before_anything_is_written(tmp_path, data_dir):
    args = [*tiny(tmp_path, data_dir, epochs=1), "test_untrained=true", "logger=csv", f"hydra.run.dir={tmp_path}/run"]
    run_dir = tmp_path / "run"
    run_train(args)
    finished = snapshot(run_dir)

    again = run_train(args)  # the same command again: says so in one line, changes nothing
    assert "this run has finished" in again.stdout + again.stderr
    assert "choose another paths.output_dir" in again.stdout + again.stderr  # the key the README uses
    assert snapshot(run_dir) == finished

    # The same folder with another config: refused in one line naming what differs, exit status 2, nothing written
    other = run_train([*args, "trainer.max_epochs=3"], check=False)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines()[-1] == (
        f"error: {run_dir}: holds a finished run of another config (trainer.max_epochs (1 then, 3 now)); nothing "
        "was changed. Choose another paths.output_dir for the new run")
    assert snapshot(run_dir) == finished

    # Without metrics.json the run is unfinished (killed after its last checkpoint): a rerun with another model
    # and data config is refused, naming both keys, before Hydra or Lightning write anything.
    (run_dir / "metrics.json").unlink()
    unfinished = snapshot(run_dir)
    refused = run_train([*args, "model.width_mult=0.125", "data.batch_size=2"], check=False)
    assert refused.returncode == 2
    last_line = refused.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and "cannot resume with a different config" in last_line
    assert "model.width_mult (0.0625 in the checkpoint, 0.125 now)" in last_line
    assert "data.batch_size (4 in the checkpoint, 2 now)" in last_line
    assert "Traceback" not in refused.stderr
    assert snapshot(run_dir) == unfinished

    # The original command completes it, with the records of the first segment.
    run_train(args)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run"]["segments"] == 2 and metrics["untrained"] and metrics["val"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_ends_non_zero_and_the_rerun_resumes(signum, tmp_path, data_dir):
    """SIGTERM, SIGUSR1 and Ctrl-C (SIGINT) stop the run after the batch that is running, with a checkpoint."""
    # long enough that the signal comes while training on a fast machine too; the rerun stops after 5 more steps
    args = [*tiny(tmp_path, data_dir, epochs=300), "logger=csv", f"hydra.run.dir={tmp_path}/run"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    env = {**{k: v for k, v in os.environ.items() if k not in (*PARENT_ONLY_ENV, "SLURM_JOB_ID")},
           "SALVID_PROGRESS_SECONDS": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "salvid.train", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in proc.stdout:  # the first progress line of training: it is under way
            lines.append(line)
            if "train, epoch" in line:
                proc.send_signal(signum)
                break
        rest = proc.communicate(timeout=180)[0]
    finally:
        proc.kill()
    status, by = (130, "Ctrl-C (SIGINT)") if signum == signal.SIGINT else (143, "a signal")
    assert proc.returncode == status, "".join(lines)[-3000:] + (rest or "")[-3000:]
    (said,) = [ln for ln in (rest or "").splitlines() if ln.startswith("stopped by")]
    step = read_checkpoint(last)["global_step"]
    assert step > 0 and said == f"stopped by {by} at step {step}: saved {last}; rerun the same command to resume"
    assert not (tmp_path / "run" / "metrics.json").exists()

    resumed = run_train([*args, f"trainer.max_steps={step + 5}"])  # continues from that step and finishes
    assert f"Resuming from {last} (step {step})" in resumed.stdout + resumed.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["run"]["segments"] == 2



def test_a_signal_during_validation_lets_it_finish_so_the_resumed_run_keeps_that_epochs_score(tmp_path, data_dir):
    """Stopped in the middle of epoch 1's validation, the run finishes that validation (its score is logged and its
    checkpoint is a candidate for the best) before it saves and ends; the rerun goes on with epoch 2."""
    args = [*tiny(tmp_path, data_dir, epochs=3), "logger=csv", f"hydra.run.dir={tmp_path}/run",
            "+callbacks.stop._target_=tests.helpers.signals.SignalDuringValidation", "+callbacks.stop.epoch=1"]
    stopped = run_train(args, check=False)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    assert sorted({int(r["epoch"]) for r in rows if r.get("val/plcc")}) == [0, 1]
    resumed = run_train(args[:-2])
    assert "could not find the monitored key" not in resumed.stdout + resumed.stderr
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    assert sorted({int(r["epoch"]) for r in rows if r.get("val/plcc")}) == [0, 1, 2]

def test_a_corrupt_last_ckpt_says_how_to_get_past_it(tmp_path):
    from salvid.errors import CheckpointError
    from salvid.training.run_folder import plan_resume

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match=rf"last\.ckpt: .*; the run in {tmp_path} resumes from it: move it "
                                              r"away to start the run over, or resume from another checkpoint"):
        plan_resume(compose_config(["+experiment=demo"]), tmp_path)
