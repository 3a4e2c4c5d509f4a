"""The LightningModule: a network of any family (:mod:`salvid.models`), its loss and optimiser, and the saliency
metrics.

Hyperparameters are plain values (no ``_target_``), so a checkpoint rebuilds the network from data alone.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch

from salvid.errors import ConfigError
from salvid.metrics import SaliencyMetrics
from salvid.models import build_network, channels_last_enabled
from salvid.runtime.schema import loss_misfit
from salvid.training.losses import LOSSES

log = logging.getLogger(__name__)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# stepped every batch, over the run's whole length
SCHEDULERS = {"cosine": torch.optim.lr_scheduler.CosineAnnealingLR}
# Metrics cheap enough to run every validation epoch; the test stage computes the full set.
VAL_METRICS = ("plcc", "auc", "nss", "mae")
TEST_METRICS = ("plcc", "auc", "nss", "smeasure", "fmeasure", "mae", "emeasure")


class SaliencyModule(L.LightningModule):
    """Trains a network of :mod:`salvid.models` on triplet batches.

    A batch is a dict: ``frames`` (N, 3, T, H, W) normalised, ``mask`` (N, 1, H, W) in {0, 1},
    ``video_id`` and ``frame_id`` (N,) for per-video metrics, ``image`` (N, H, W, 3) uint8 of frame t
    for the logged examples.

    Args:
        model: the model config (``family`` and its network's arguments, see :func:`salvid.models.build_network`).
        loss: ``"mse"`` (eq. 2 of the paper), ``"bce"``, ``"bce_iou"`` or ``"bce_iou_ssim"``
            (:mod:`salvid.training.losses`).
        optimizer: ``name`` (``adam``, the paper's, or ``adamw``), ``lr``, ``betas``, ``weight_decay`` and
            ``backbone_lr`` (the learning rate of a pretrained backbone; null: ``lr``).
        scheduler: ``None`` or ``{"name": "cosine"}`` (cosine decay over all training steps).
        metric_average: ``"video"`` (the paper's protocol) or ``"frame"``.
        log_images: how many (frame | ground truth | map) examples to log per validation epoch.
        channels_last: run the network in channels_last memory format (see
            :func:`salvid.models.channels_last_enabled`).
    """

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        loss: str = "mse",
        scheduler: dict[str, Any] | None = None,
        metric_average: str = "video",
        log_images: int = 4,
        channels_last: str | bool = "auto",
    ):
        super().__init__()
        if channels_last not in ("auto", True, False):
            raise ConfigError(f"module.channels_last={channels_last!r}: must be auto, true or false")
        if loss not in LOSSES:
            raise ConfigError(f"module.loss={loss!r}: must be one of {sorted(LOSSES)}")
        self.save_hyperparameters()
        if optimizer.get("name") not in OPTIMIZERS:
            raise ConfigError(f"module.optimizer.name={optimizer.get('name')!r}: must be one of {sorted(OPTIMIZERS)}")
        if not optimizer.get("lr", 0) > 0 or (optimizer.get("backbone_lr") or 1) <= 0:
            raise ConfigError(f"module.optimizer.lr={optimizer.get('lr')!r}, backbone_lr="
                              f"{optimizer.get('backbone_lr')!r}: learning rates must be > 0")
        self.net = build_network(model)
        misfit = loss_misfit(loss, self.net.output_activation)
        if misfit:
            raise ConfigError(misfit)
        self.loss_fn = LOSSES[loss]
        self.optimizer_cfg = optimizer
        self.scheduler_cfg = scheduler
        self.val_metrics = SaliencyMetrics(metrics=VAL_METRICS, average=metric_average)
        self.test_metrics = SaliencyMetrics(metrics=TEST_METRICS, average=metric_average)
        self.log_images = log_images
        self._examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # this validation's picks

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)

    def setup(self, stage: str) -> None:
        self.net.use_channels_last(channels_last_enabled(self.hparams.channels_last))

    def _shared_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net.logits(batch["frames"])
        pred = self.net.activate(logits)
        return self.loss_fn(logits.float(), pred.float(), batch["mask"]), pred

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["mask"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, pred = self._shared_step(batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["mask"]))
        self.val_metrics.update(pred.float(), batch["mask"], batch["video_id"], batch["frame_id"])
        if self.log_images:
            self._collect_examples(batch, pred)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)
        if self.log_images and self._examples:
            shown = [e for e in self._examples if e[1].any()][: self.log_images] or self._examples[: self.log_images]
            self._log_examples({"image": torch.stack([e[0] for e in shown]), "mask": torch.stack([e[1] for e in shown])},
                               torch.stack([e[2] for e in shown]))
        self._examples = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, pred = self._shared_step(batch)
        self.log("test/loss", loss, sync_dist=True, batch_size=len(batch["mask"]))
        self.test_metrics.update(pred.float(), batch["mask"], batch["video_id"], batch["frame_id"])

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def _log_metrics(self, stage: str, metrics: SaliencyMetrics) -> None:
        values = metrics.compute()
        metrics.reset()
        sanity = self._trainer is not None and self._trainer.sanity_checking
        if stage == "val" and not sanity and math.isnan(float(values.get("plcc", 0.0))):
            log.warning("val/plcc is NaN: none of the validation frames could be scored (%d excluded: empty or "
                        "constant masks), so the checkpoints are ranked on no score; validate on more frames "
                        "(trainer.limit_val_batches) or on other sequences", int(values.get("excluded_frames", 0)))
        for name, value in values.items():
            # compute() already gathered every rank's frames, so each rank holds the same value; sync_dist
            # averages identical numbers and keeps Lightning from warning about epoch-level logging under DDP
            self.log(f"{stage}/{name}", value.float(), prog_bar=name in ("plcc", "auc"), sync_dist=True)

    def _collect_examples(self, batch: dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        """Keep validation frames to show: those with an object in their mask first (a frame without one shows
        nothing of the model), then the first frames as a fallback, ``log_images`` of each at most."""
        kept_with_object = sum(bool(e[1].any()) for e in self._examples)
        for i in range(len(pred)):
            has_object = bool(batch["mask"][i].any())
            if (has_object and kept_with_object < self.log_images) or len(self._examples) < self.log_images:
                self._examples.append((batch["image"][i].cpu(), batch["mask"][i].cpu(), pred[i].detach().float().cpu()))
                kept_with_object += has_object

    def _log_examples(self, batch: dict[str, torch.Tensor], pred: torch.Tensor) -> None:
        """Log (frame | ground truth | map) rows to loggers that take images (W&B, TensorBoard), as uint8 RGB:
        W&B shows float images as they are, so maps in [0, 1] would look black."""
        n = min(self.log_images, len(pred))
        image = batch["image"][:n].float() / 255.0  # (n, H, W, 3)
        gt = batch["mask"][:n, 0, ..., None].expand(-1, -1, -1, 3).float()
        sal = pred[:n, 0, ..., None].expand(-1, -1, -1, 3).float()
        rows = torch.cat([image, gt, sal], dim=2)  # side by side along the width
        rows = rows.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # WandbLogger
                logger.log_image("val/examples", [r for r in rows], step=self.global_step,
                                 caption=["frame | ground truth | map"] * n)
            elif hasattr(getattr(logger, "experiment", None), "add_images"):  # TensorBoard
                logger.experiment.add_images("val/examples", rows, self.global_step, dataformats="NHWC")

    def configure_optimizers(self):
        cfg = self.optimizer_cfg
        backbone = getattr(self.net, "backbone", None)
        in_backbone = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in in_backbone]},
                  {"params": [p for p in trainable if id(p) in in_backbone], "lr": cfg.get("backbone_lr") or cfg["lr"]}]
        optimizer = OPTIMIZERS[cfg["name"]]([g for g in groups if g["params"]], lr=cfg["lr"],
                                            betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"])
        if not self.scheduler_cfg:
            return optimizer
        name = self.scheduler_cfg.get("name")
        if name not in SCHEDULERS:
            raise ConfigError(f"module.scheduler.name={name!r}: must be one of {list(SCHEDULERS)} (or module.scheduler=null)")
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = SCHEDULERS[name](optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
