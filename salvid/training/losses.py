"""Training losses on (logits, map, target); the paper's is the per-pixel squared error of eq. (2)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mse(logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (2): squared error averaged over the k maps of the batch and their h*w pixels."""
    return F.mse_loss(pred, target)


def bce(logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


def bce_iou(logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus a soft IoU term, common in salient-object detection for sharper object boundaries."""
    inter = (pred * target).flatten(1).sum(1)
    union = (pred + target - pred * target).flatten(1).sum(1)
    iou = 1.0 - (inter + 1.0) / (union + 1.0)
    return bce(logits, pred, target) + iou.mean()


LOSSES = {"mse": mse, "bce": bce, "bce_iou": bce_iou}
