"""The LightningDataModule: a dataset layout -> triplet streams -> batches on the model's device."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from salvid.data.layouts import DatasetError, Sequence, video_folder
from salvid.data.stream import TripletStream
from salvid.data.transforms import ClipTransform

log = logging.getLogger(__name__)

LAYOUTS: dict[str, Callable[..., list[Sequence]]] = {"videos": video_folder}

# ImageNet statistics: the usual choice for natural video; applied on the device, after the uint8 transfer.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class SaliencyDataModule(L.LightningDataModule):
    """Streams (t-1, t, t+1) triplets of a dataset layout.

    Args:
        layout: name of a dataset layout (see ``LAYOUTS``).
        root: the dataset's folder, as distributed.
        splits: split name for each of ``train``/``val``/``test`` (``None`` for none). With ``val: null`` and
            ``val_holdout: k``, the last ``k`` training sequences (sorted by name) are held out for validation.
        synthetic: parameters of :func:`salvid.data.synthetic.generate_dataset`; when set, ``root`` is generated
            (once, by rank 0) if it does not hold that dataset yet.
        input_size, in_frames: the network's input.
        batch_size, num_workers: of every dataloader.
        chunk_len, buffer_size: see :mod:`salvid.data.stream`.
        layout_args: extra keyword arguments of the layout (e.g. DAVIS ``resolution``).
    """

    def __init__(
        self,
        layout: str,
        root: str,
        splits: dict[str, str | None],
        input_size: tuple[int, int] = (224, 224),
        in_frames: int = 3,
        batch_size: int = 8,
        num_workers: int = 0,
        chunk_len: int = 16,
        buffer_size: int = 64,
        val_holdout: int = 0,
        synthetic: dict[str, Any] | None = None,
        layout_args: dict[str, Any] | None = None,
        seed: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"data.layout={layout!r}: must be one of {sorted(LAYOUTS)}")
        self.layout = layout
        self.root = Path(root)
        self.splits = dict(splits)
        self.input_size = tuple(input_size)
        self.in_frames = in_frames
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.chunk_len = chunk_len
        self.buffer_size = buffer_size
        self.val_holdout = val_holdout
        self.synthetic = synthetic
        self.layout_args = layout_args or {}
        self.seed = seed
        self.pin_memory = pin_memory
        self.sequences: dict[str, list[Sequence]] = {}
        self._resume: tuple[int, int] | None = None  # (epoch, batches done), from a checkpoint

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            from salvid.data.synthetic import generate_dataset

            generate_dataset(self.root, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if self.sequences:
            return
        if not self.root.exists():
            raise DatasetError(f"data.root={self.root}: folder does not exist")
        lister = LAYOUTS[self.layout]
        for stage_name in ("train", "val", "test"):
            split = self.splits.get(stage_name)
            if split is not None:
                self.sequences[stage_name] = lister(self.root, split, **self.layout_args)
        if self.val_holdout and self.splits.get("val") is None and "train" in self.sequences:
            train = sorted(self.sequences["train"], key=lambda s: s.name)
            if self.val_holdout >= len(train):
                raise ValueError(f"data.val_holdout={self.val_holdout}: only {len(train)} training sequences")
            self.sequences["train"], self.sequences["val"] = train[: -self.val_holdout], train[-self.val_holdout :]
        for stage_name, seqs in self.sequences.items():
            frames = sum(len(s.targets) for s in seqs)
            log.info("%s: %d sequences, %d annotated frames (%s)", stage_name, len(seqs), frames, self.root)

    def _loader(self, stage: str, train: bool) -> DataLoader:
        if stage not in self.sequences:
            raise ValueError(f"no {stage} data: set data.splits.{stage} (or data.val_holdout for validation)")
        trainer = self.trainer
        stream = TripletStream(
            self.sequences[stage],
            ClipTransform(self.input_size, train, self.in_frames),
            in_frames=self.in_frames,
            shuffle=train,
            chunk_len=self.chunk_len,
            buffer_size=self.buffer_size,
            batch_size=self.batch_size,
            seed=self.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )
        if train and self._resume is not None:
            stream.resume_at(*self._resume)
            self._resume = None
        return DataLoader(
            stream,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=train and self.num_workers > 0,
            drop_last=False,
            # Its own generator: creating an iterator draws a seed, which would otherwise advance the global
            # RNG at moments that differ between an uninterrupted and a resumed run.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def state_dict(self) -> dict[str, int]:
        """Where training stands in its epoch; Lightning stores it in checkpoints (see ``load_state_dict``)."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        return {
            "epoch": trainer.current_epoch,
            "batches": trainer.fit_loop.epoch_loop.batch_progress.current.ready,
            "epoch_batches": int(trainer.num_training_batches),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the training stream where the checkpoint left it: mid-epoch, skip the batches already seen."""
        if not state:
            return
        if state["batches"] >= state["epoch_batches"]:
            self._resume = (state["epoch"] + 1, 0)
        else:
            self._resume = (state["epoch"], state["batches"])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """uint8 (N, T, H, W, 3) -> normalised float (N, 3, T, H, W), on the device: 4x less to transfer."""
        frames = batch["frames"]
        batch["image"] = frames[:, self.in_frames // 2]
        x = frames.permute(0, 4, 1, 2, 3).float().div_(255.0)
        mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1, 1)
        std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1, 1)
        batch["frames"] = (x - mean) / std
        batch["mask"] = batch["mask"].unsqueeze(1).float()
        return batch


class EpochToStream(L.Callback):
    """Tells the training stream which epoch starts, so its shuffle changes per epoch (even with persistent
    workers) and is the same on every rank."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if isinstance(dataset, TripletStream):
            dataset.set_epoch(trainer.current_epoch)
