"""Training losses on (logits, map, target); the paper's is the per-pixel squared error of eq. (2)."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torchmetrics.functional.image import structural_similarity_index_measure


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


# SSIM's Gaussian window (the usual sigma 1.5 in 11x11): nearer the border than half of it, it sees padding
_SSIM_SIGMA, _SSIM_KERNEL = 1.5, 11
_SSIM_BORDER = (_SSIM_KERNEL - 1) // 2


def ssim_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM of maps in [0, 1] (torchmetrics' SSIM map, averaged where the window lies inside the map, as
    scikit-image does). SSIM compares local structure, so it weighs object boundaries, where per-pixel terms see
    few pixels. Computed in fp32 also under bf16 autocast: its variances lose too much in bf16."""
    with torch.autocast(pred.device.type, enabled=False):
        maps = pred.float().reshape(-1, 1, *pred.shape[-2:])
        masks = target.float().reshape(-1, 1, *target.shape[-2:])
        _, ssim_map = structural_similarity_index_measure(maps, masks, data_range=1.0, sigma=_SSIM_SIGMA,
                                                          kernel_size=_SSIM_KERNEL, return_full_image=True)
        b = _SSIM_BORDER
        return 1.0 - ssim_map[..., b:-b, b:-b].mean()


def bce_iou_ssim(logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The hybrid loss of BASNet (Qin et al., CVPR 2019): pixel (BCE), region (soft IoU) and structure (SSIM)."""
    return bce_iou(logits, pred, target) + ssim_term(pred, target)


LOSSES = {"mse": mse, "bce": bce, "bce_iou": bce_iou, "bce_iou_ssim": bce_iou_ssim}
