"""A run owns its output folder, and nothing is written before the run is known to be sound.

:class:`RunGuard` is a Hydra callback every entry point's config lists. Hydra writes ``.hydra/`` and the log
into the output folder as a run starts, before the task's own code runs; the guard acts earlier, when the
run (or a multirun) starts:

1. the config is checked against its schema (:mod:`salvid.runtime.schema`);
2. the output folder is checked against the run's inputs by the entry point's own check (an output folder
   inside a dataset, or equal to an input folder, is refused before it exists);
3. the folder is locked for this process (the ``filelock`` library; an OS lock, so it is released when the
   process ends, however it ends). A second run into a locked folder is refused in one line naming the
   holder. The lock and its holder's record live in ``<cache>/locks/`` (see
   :func:`salvid.runtime.files.user_cache`), named by a hash of the folder's resolved path: the output folder
   itself holds nothing of the lock, so a finished run's folder is left exactly as it was.

Hydra only warns about an exception raised by a callback and runs the task anyway, so a refused run ends the
process from the callback itself: the error is reported as every entry point reports it
(:func:`salvid.runtime.entry.report`) and the process exits with its status. The user's folder is never
created.

A single run refused later, by a check that needs the run under way (a missing checkpoint, a sequence not in
the data), ends with one line too; the folder it created then holds only Hydra's record (``.hydra/``, the
log, an offline W&B run) and is removed (:func:`remove_refused_run_folders`), so a mistake leaves no
``runs/<time>/`` behind. A folder that held anything before the run is never removed.

Processes that are not a run's first (DDP ranks other than 0, SLURM tasks other than 0) join the run and take
no lock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.utils import get_class, get_method
from omegaconf import DictConfig, OmegaConf

from salvid.errors import SalvidError
from salvid.runtime import entry
from salvid.runtime.files import atomic_write_json, read_json_mapping, user_cache

_RANK_VARS = ("RANK", "LOCAL_RANK", "SLURM_PROCID")

_held: list[FileLock] = []
# output folders of this process's single run that did not exist before it, with the first of their missing
# ancestors (``outputs/`` of ``outputs/predict/runs/<time>``)
_created: list[tuple[Path, Path]] = []
# what Hydra and W&B write into a run folder before the task's own code writes anything
_RECORD_ONLY = (".hydra", "wandb")


class FolderInUseError(SalvidError):
    """Another process holds the output folder."""


def _joins_a_run() -> bool:
    return any(os.environ.get(var, "0") != "0" for var in _RANK_VARS)


def _lock_files(folder: Path) -> tuple[Path, Path]:
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:32]
    locks = user_cache() / "locks"
    return locks / f"{key}.lock", locks / f"{key}.json"


def lock_folder(folder: str | Path) -> None:
    """Hold ``folder`` for this process until :func:`release_folders` or the process ends."""
    if _joins_a_run():
        return
    folder = Path(folder)
    lock_file, owner_file = _lock_files(folder)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderInUseError(f"{folder}: another salvid run is writing here ({_holder(owner_file)}); wait for it "
                               "to end, or choose another paths.output_dir") from None
    _held.append(lock)
    owner = {"folder": str(folder.resolve()), "pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join([Path(sys.argv[0]).name,
                                                                                  *sys.argv[1:]])}
    atomic_write_json(owner_file, owner)


def _holder(owner_file: Path) -> str:
    owner = read_json_mapping(owner_file)
    if not all(k in owner for k in ("pid", "host", "started", "command")):
        return "its owner is not recorded"
    return f"pid {owner['pid']} on {owner['host']} since {owner['started']}: {owner['command']}"


def release_folders() -> None:
    """The run ended: release every folder this process holds (the next run in this process may lock it)."""
    while _held:
        _held.pop().release()


def remove_refused_run_folders() -> None:
    """The run was refused (a user's error): remove the output folders it created that hold only Hydra's
    record (:data:`_RECORD_ONLY` and log files), nothing of the task's own."""
    while _created:
        folder, top = _created.pop()
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        if not all(p.name in _RECORD_ONLY or (p.suffix == ".log" and p.is_file()) for p in entries):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        parent = folder.parent
        while parent == top or top in parent.parents:  # the folders Hydra made for it, if still empty
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


entry.after_run.append(release_folders)
entry.after_run.append(_created.clear)  # after the refusal's hook: the next run in this process starts afresh
entry.after_refusal.append(remove_refused_run_folders)


class RunGuard(Callback):
    """Hydra callback: schema, output location and lock, before Hydra writes (see the module docstring).

    Args:
        schema: the dotted name of the entry point's schema (a class of :mod:`salvid.runtime.schema`).
        output_check: the dotted name of a function ``(config, output_dir)`` that raises when ``output_dir``
            would write into the run's inputs; None when the entry point reads no inputs worth guarding.
        lock: whether the run holds its output folder; false for an entry point that writes no run folder
            (``export``: its run folder is the working directory, which runs beside it may share).
    """

    def __init__(self, schema: str, output_check: str | None = None, lock: bool = True):
        self.schema = schema
        self.output_check = output_check
        self.lock = lock

    def _check(self, config: DictConfig, output_dir: str) -> None:
        from salvid.runtime.schema import validate

        HydraConfig.instance().set_config(config)  # the ${hydra:...} values the config refers to
        task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        validate(get_class(self.schema), task)
        if self.output_check:
            check: Callable[[DictConfig, Path], None] = get_method(self.output_check)
            check(task, Path(output_dir))
        if self.lock:
            lock_folder(output_dir)

    def _guard(self, config: DictConfig, key: str) -> None:
        try:
            self._check(config, OmegaConf.select(config, key))
        except Exception as error:  # noqa: BLE001  (Hydra would only warn: end the process here)
            raise SystemExit(entry.report(error)) from None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = OmegaConf.select(config, "hydra.run.dir")
        if self.lock and folder and not os.path.lexists(folder) and not _joins_a_run():
            top = Path(folder).absolute()
            while not os.path.lexists(top.parent):
                top = top.parent
            _created.append((Path(folder).absolute(), top))
        self._guard(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._guard(config, "hydra.sweep.dir")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release_folders()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release_folders()
