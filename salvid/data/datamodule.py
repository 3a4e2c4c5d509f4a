"""The LightningDataModule: a dataset layout -> triplet streams -> batches on the model's device."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from salvid.data.inventory import SequenceCounts, check_mask_resize, count_sequences
from salvid.data.layouts import VideoSequence, check_options
from salvid.data.layouts.base import SkippedInput
from salvid.data.preprocess import normalise
from salvid.data.sources import FrameCountWarning
from salvid.data.splits import split_sequences
from salvid.data.stream import TripletStream
from salvid.data.transforms import Augmentation, ClipTransform
from salvid.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["EpochToStream", "SaliencyDataModule"]

class SaliencyDataModule(L.LightningDataModule):
    """Streams (t-1, t, t+1) triplets of a dataset layout.

    Args:
        layout: name of a dataset layout (see :data:`salvid.data.layouts.LAYOUTS`).
        root: the dataset's folder, as distributed.
        splits: split name for each of ``train``/``val``/``test`` (``None`` for none, ``all`` for every sequence).
        val_holdout, test_holdout: with ``splits.val`` (``splits.test``) null, hold out ``k`` training sequences
            for validation (test): sorted by name, the last ``test_holdout`` go to test and the ``val_holdout``
            before them to validation. For a copy that lacks a split (e.g. DAVIS-2016's training sequences alone).
        folds, fold: cross-validation (:mod:`salvid.data.folds`): the training sequences left after the test
            hold-out, sorted by name, in ``folds`` blocks; block ``fold`` validates and tests. null: off.
        mask_resize: ``error`` (a mask of another size than its frame stops setup, naming both files) or
            ``nearest`` (resize such masks to the frame, nearest neighbour; counted at setup).
        synthetic: parameters of :func:`salvid.data.synthetic.generate_dataset`; when set, ``root`` is generated
            (once, by rank 0) if it does not hold that dataset yet.
        input_size, in_frames: the network's input.
        batch_size, num_workers: of every dataloader.
        chunk_len, buffer_size, max_frame_step: see :mod:`salvid.data.stream` (max_frame_step: training clips
            take frames k apart, k drawn from 1..max_frame_step; 1 keeps them consecutive).
        augment: the training augmentation's strength, keys of :class:`salvid.data.transforms.Augmentation`.
        **layout_options: options of the layout (e.g. DAVIS ``resolution``; concat ``datasets``).

    ``setup`` lists the sequences, checks them (:mod:`salvid.data.inventory`) and logs per stage the counts of
    sequences, frames, targets, empty masks, frames without mask, short sequences and everything skipped.
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
        test_holdout: int = 0,
        folds: int | None = None,
        fold: int | None = None,
        mask_resize: str = "error",
        max_frame_step: int = 1,
        augment: dict[str, float] | None = None,
        synthetic: dict[str, Any] | None = None,
        seed: int = 0,
        pin_memory: bool | None = None,
        **layout_options: Any,
    ):
        super().__init__()
        check_options(layout, layout_options)
        check_mask_resize(mask_resize)
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
        self.test_holdout = test_holdout
        self.folds = folds
        self.fold = fold
        self.mask_resize = mask_resize
        self.max_frame_step = max_frame_step
        self.augment = Augmentation(**{k: v for k, v in (augment or {}).items() if v is not None})  # null: default
        self.synthetic = synthetic
        self.layout_options = layout_options
        self.seed = seed
        # pinned host memory speeds host-to-GPU copies and is useless without a GPU
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.sequences: dict[str, list[VideoSequence]] = {}
        self.counts: dict[str, list[SequenceCounts]] = {}
        self._resume: tuple[int, int] | None = None  # (epoch, batches done), from a checkpoint

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            from salvid.data.synthetic import generate_dataset

            generate_dataset(self.root, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if self.sequences:
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedInput)
            warnings.simplefilter("always", FrameCountWarning)
            self.sequences = split_sequences(self.layout, self.root, self.splits, self.val_holdout,
                                             self.test_holdout, self.folds, self.fold, **self.layout_options)
        for stage_name, seqs in self.sequences.items():
            self.counts[stage_name] = count_sequences(seqs, self.mask_resize)
        self._log_summary(caught)

    def split_record(self) -> dict[str, dict[str, Any]]:
        """Per stage (after ``setup``): the video sequences by name, how many still images (pseudo-clips), and
        how many frames those videos have. What a run records, and a model card shows, about the data it trained,
        selected and was tested on; still images are counted, not named (a full image set has thousands)."""
        record = {}
        for stage_name, seqs in self.sequences.items():
            counts = self.counts[stage_name]  # setup counted every stage, in the order of seqs
            record[stage_name] = {"videos": sorted(s.name for s in seqs if not s.still),
                                  "still_images": sum(s.still for s in seqs),
                                  "frames": sum(c.frames for s, c in zip(seqs, counts, strict=True) if not s.still)}
        return record

    def _log_summary(self, caught: list[warnings.WarningMessage]) -> None:
        for stage_name, counts in self.counts.items():
            short = sum(c.frames < self.in_frames for c in counts)
            log.info(
                "%s: %d sequences, %d frames, %d targets (%d empty masks%s), %d frames without mask (context "
                "only), %d sequences shorter than %d frames (edge-padded) [%s]",
                stage_name, len(counts), sum(c.frames for c in counts), sum(c.targets for c in counts),
                sum(c.empty for c in counts),
                f", {sum(c.resized for c in counts)} resized to their frame" if self.mask_resize != "error" else "",
                sum(c.unannotated for c in counts), short, self.in_frames, self.root,
            )
        skipped = [w for w in caught if issubclass(w.category, (SkippedInput, FrameCountWarning))]
        for kind, n in Counter(w.category.__name__ for w in skipped).items():
            first = next(str(w.message) for w in skipped if w.category.__name__ == kind)
            log.warning("skipped while listing: %d x %s (first: %s)", n, kind, first)
        for w in caught:
            if w not in skipped:  # not ours to count: pass on
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _loader(self, stage: str, train: bool) -> DataLoader:
        if not self.sequences.get(stage):
            raise ConfigError(f"no {stage} sequences: set data.splits.{stage}, or data.{stage}_holdout for "
                              "val/test (and leave training sequences for train)")
        trainer = self.trainer
        stream = TripletStream(
            self.sequences[stage],
            ClipTransform(self.input_size, train, self.in_frames, self.augment),
            in_frames=self.in_frames,
            shuffle=train,
            chunk_len=self.chunk_len,
            buffer_size=self.buffer_size,
            batch_size=self.batch_size,
            seed=self.seed,
            mask_resize=self.mask_resize,
            max_frame_step=self.max_frame_step,
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

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """uint8 (N, T, H, W, 3) -> normalised float (N, 3, T, H, W), on the device: 4x less to transfer."""
        frames = batch["frames"]
        batch["image"] = frames[:, self.in_frames // 2]
        batch["frames"] = normalise(frames).transpose(1, 2)
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
