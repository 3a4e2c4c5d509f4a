"""Lightning callbacks of ``conf/callbacks/default.yaml`` that shape what training prints."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count

from salvid.errors import ConfigError
from salvid.runtime import progress
from salvid.runtime.progress import Ticker, duration


class TrainingProgress(Callback):
    """Off a terminal (a CI log, ``nohup``), a line every ``interval`` seconds (default: 30, see
    :func:`salvid.runtime.progress.interval`) from global rank 0: stage, epoch, batches done / total, batches/s and the
    latest training loss. On a terminal the progress bar shows the same and this stays silent."""

    def __init__(self, interval: float | None = None):
        self.interval = interval
        self._ticker: Ticker | None = None
        self._state: dict[str, Any] = {"stage": "setting up"}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._ticker is None and trainer.is_global_zero and not progress.interactive():
            self._ticker = Ticker(self._emit, self.interval or progress.interval()).start()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def line(self) -> str:
        """``train: epoch 3/6, batch 12/24, 2.1 batches/s, 4 min 02 s elapsed, train/loss 0.1620``."""
        s = dict(self._state)
        parts = [str(s["stage"])]
        if "epoch" in s:
            parts.append(f"epoch {s['epoch'] + 1}/{s['max_epochs']}" if s.get("max_epochs") else f"epoch {s['epoch'] + 1}")
        if "batch" in s:
            total = s.get("total")
            parts.append(f"batch {s['batch']}/{total}" if total and math.isfinite(total) else f"batch {s['batch']}")
            if s["batch"] and s["now"] > s["started"]:  # the rate up to the last finished batch
                parts.append(f"{s['batch'] / (s['now'] - s['started']):.2f} batches/s")
            parts.append(f"{duration(time.perf_counter() - s['started'])} in this stage")
        if s.get("loss") is not None:
            parts.append(f"train/loss {s['loss']:.4f}")
        return ", ".join(parts)

    def _emit(self) -> None:
        progress.log.info(self.line())

    def _begin(self, trainer: Trainer, stage: str, total: Any) -> None:
        now = time.perf_counter()
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        self._state = {"stage": stage, "batch": 0, "total": total, "started": now, "now": now,
                       "loss": self._state.get("loss")}
        if stage != "test":
            self._state.update(epoch=trainer.current_epoch, max_epochs=max_epochs)

    def _step(self, batch_idx: int, loss: Any = None) -> None:
        self._state["batch"] = batch_idx + 1
        self._state["now"] = time.perf_counter()
        if loss is not None:
            self._state["loss"] = float(loss)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin(trainer, "train", trainer.num_training_batches)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self._step(batch_idx, loss.detach() if hasattr(loss, "detach") else loss)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin(trainer, "validate" if not trainer.sanity_checking else "sanity check",
                    sum(trainer.num_val_batches) if trainer.num_val_batches else None)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch_idx)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin(trainer, "test", sum(trainer.num_test_batches) if trainer.num_test_batches else None)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch_idx)


class ModelSummary(RichModelSummary):
    """Lightning's rich model summary, without the FLOPs column and total when they were not counted (Lightning
    counts FLOPs only for a module with an ``example_input_array``, and prints 0 otherwise)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        if total_flops:
            RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                       total_training_modes, total_flops, **summarize_kwargs)
            return
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in columns[1:]:
            table.add_column(name, justify="left" if name in ("Name", "Type", "Mode") else "right", no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        grid = Table.grid(expand=True)
        grid.add_column()
        grid.add_row(f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}")
        grid.add_row(f"[bold]Non-trainable params[/]: "
                     f"{get_human_readable_count(int(total_parameters - trainable_parameters))}")
        grid.add_row(f"[bold]Total params[/]: {get_human_readable_count(int(total_parameters))}")
        grid.add_row(f"[bold]Total estimated model params size (MB)[/]: {get_formatted_model_size(model_size)}")
        grid.add_row(f"[bold]Modules in train mode[/]: {total_training_modes['train']}")
        grid.add_row(f"[bold]Modules in eval mode[/]: {total_training_modes['eval']}")
        console.print(grid)


class Preemption(Callback):
    """A run stopped by SIGTERM (a scheduler's pre-emption, ``kill``), Ctrl-C (SIGINT) or, off SLURM, SIGUSR1
    (what ``sbatch --signal`` sends) saves a resumable checkpoint at ``path`` before it ends, and ends with the
    signal's status (143 for SIGTERM and SIGUSR1, 130 for Ctrl-C) rather than 0: rerunning the same command
    resumes from the checkpoint.

    The signal stops the loops after the batch that is running (Lightning's ``SIGTERMException``); one that
    comes during a validation of the fit waits for it to end, since a run resumed from its middle would skip it
    (and the epoch's score and best-checkpoint candidate). A second Ctrl-C stops at once, saving nothing. Under
    SLURM, Lightning's own SIGUSR1 handler saves and requeues the job instead.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.saved: str | None = None
        self.exit_status = 128 + 15
        self._previous: dict[int, Any] = {}
        self._deferred = False
        self._stopping = False

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        import os
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        connector = trainer._signal_connector

        def stop(signum, frame) -> None:
            if signum == signal.SIGINT and self._stopping:
                raise KeyboardInterrupt  # a second Ctrl-C
            self._stopping = True
            self.exit_status = 128 + (signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
            connector.received_sigterm = True  # the loops stop after this batch

        signals = [signal.SIGTERM, signal.SIGINT] + ([] if "SLURM_JOB_ID" in os.environ else [signal.SIGUSR1])
        self._previous = {s: signal.signal(s, stop) for s in signals}

    def on_validation_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        # Lightning checks the signal right after this hook: held back until the validation is over
        if trainer.state.fn == "fit" and not trainer.sanity_checking and trainer._signal_connector.received_sigterm:
            trainer._signal_connector.received_sigterm = False
            self._deferred = True

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._deferred:
            self._deferred = False
            trainer._signal_connector.received_sigterm = True  # the fit stops at its next check, after this

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)
            self.saved = self.path


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (the monitored top-k checkpoints, saved after each validation), with a
    ``last.ckpt`` that bounds the work a killed run loses:

    * ``save_last=true`` rewrites ``last.ckpt`` after every validation (or epoch), whether or not the score
      improved; Lightning writes it only together with a new top-k checkpoint, so a run whose score stopped
      improving would resume from its best epoch.
    * ``every_n_train_steps=N`` also rewrites ``last.ckpt`` every N optimizer steps, whether or not a validation
      has run; a kill loses at most N steps. In Lightning the setting saves the monitored checkpoints every N
      steps instead, which waits for a first validation and turns off the save after each validation.

    A run without validation (``trainer.limit_val_batches=0``, as the shipped recipes train) writes ``last.ckpt``
    only. A step save due at a batch that Lightning validates right after is left to the save after that validation:
    resumed from the batch's end, Lightning would skip the validation. ``enable_version_counter`` defaults to
    false: ``last.ckpt`` is also written by :class:`Preemption`, and a ``last-v1.ckpt`` would never be resumed.
    """

    def __init__(self, *args: Any, save_last: bool | str | None = None, every_n_train_steps: int | None = None,
                 enable_version_counter: bool = False, **kwargs: Any) -> None:
        if every_n_train_steps is not None and (not isinstance(every_n_train_steps, int)
                                                or isinstance(every_n_train_steps, bool) or every_n_train_steps < 1):
            raise ConfigError(f"callbacks.model_checkpoint.every_n_train_steps={every_n_train_steps!r}: must be an "
                              "integer >= 1 (rewrite last.ckpt every N steps), or null")
        self.writes_last = save_last is True
        if every_n_train_steps and not self.writes_last:
            raise ConfigError(f"callbacks.model_checkpoint.every_n_train_steps={every_n_train_steps} rewrites "
                              f"last.ckpt, which callbacks.model_checkpoint.save_last={save_last!r} turns off; set "
                              "save_last=true")
        super().__init__(*args, save_last=None if self.writes_last else save_last,
                         enable_version_counter=enable_version_counter, **kwargs)
        self.last_every_n_train_steps = every_n_train_steps or 0
        self._last_written_at = -1  # the global step of the last.ckpt written last

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        with warnings.catch_warnings():
            # a run resumes in its own folder by design: Lightning's warning that it holds checkpoints misleads
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.limit_val_batches == 0:
            # no validation, so no score to rank: last.ckpt is the run's checkpoint, and Lightning's warning each
            # epoch that the monitored metric was never logged would only mislead
            self.save_top_k = 0

    def write_last(self, trainer: Trainer) -> None:
        if (trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != "fit"
                or trainer.global_step == self._last_written_at):
            return
        path = self.format_checkpoint_name({}, self.CHECKPOINT_NAME_LAST)
        self.last_model_path = path  # before saving: it is part of the saved state
        trainer.save_checkpoint(path, self.save_weights_only)
        self._last_written_at = trainer.global_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n = self.last_every_n_train_steps
        if n and trainer.global_step % n == 0 and not _validation_follows(trainer):
            self.write_last(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)  # the top-k save, when it comes here
        if self.writes_last and not self._should_save_on_train_epoch_end(trainer):
            self.write_last(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the top-k save, when it comes here
        if self.writes_last:
            self.write_last(trainer)


def _validation_follows(trainer: Trainer) -> bool:
    """Whether Lightning validates right after the training batch that just ended."""
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
    except (AttributeError, TypeError):  # a Lightning without them: at least the validation ending an epoch
        return bool(loop.batch_progress.is_last_batch) and bool(sum(trainer.num_val_batches or [0]))
