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


# SSIM's Gaussian window (the usual sigma 1.5 in 11x11), constants for maps in [0, 1] (data range 1)
_SSIM_SIGMA, _SSIM_KERNEL = 1.5, 11
_SSIM_C1, _SSIM_C2 = 0.01**2, 0.03**2


def _gaussian_band(n: int, like: torch.Tensor) -> torch.Tensor:
    """(n - 10, n) matrix whose row i is the normalised Gaussian window over positions i..i+10: multiplying by it
    filters along one axis, only where the window lies inside the map."""
    offsets = torch.arange(_SSIM_KERNEL, device=like.device)
    window = torch.exp(-((offsets - _SSIM_KERNEL // 2) ** 2) / (2 * _SSIM_SIGMA**2)).to(like.dtype)
    rows = torch.arange(n - _SSIM_KERNEL + 1, device=like.device)[:, None]
    band = torch.zeros(n - _SSIM_KERNEL + 1, n, device=like.device, dtype=like.dtype)
    band[rows, rows + offsets] = window / window.sum()
    return band


def ssim_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM of maps in [0, 1], averaged where the window lies inside the map (as scikit-image does). SSIM
    compares local structure, so it weighs object boundaries, where per-pixel terms see few pixels.

    The separable Gaussian filter is two banded matrix products: on a CPU their backward pass is about 15x
    faster than that of the single-channel 11x11 convolution torchmetrics' SSIM uses (0.15 against 2.3 s for 8
    maps at 224x384 on one core of an AMD EPYC), which doubled the training step. Computed in fp32 also under
    bf16 autocast: its variances lose too much in bf16."""
    h, w = pred.shape[-2:]
    if min(h, w) < _SSIM_KERNEL:
        raise ValueError(f"the SSIM loss needs maps of at least {_SSIM_KERNEL}x{_SSIM_KERNEL} pixels, got {h}x{w}")
    with torch.autocast(pred.device.type, enabled=False):
        maps = pred.float().reshape(-1, h, w)
        masks = target.float().reshape(-1, h, w)
        rows, cols = _gaussian_band(h, maps), _gaussian_band(w, maps).T
        stacked = torch.cat([maps, masks, maps * maps, masks * masks, maps * masks])
        mu_p, mu_t, pp, tt, pt = (rows @ stacked @ cols).chunk(5)
        var_p, var_t, cov = pp - mu_p**2, tt - mu_t**2, pt - mu_p * mu_t
        ssim = ((2 * mu_p * mu_t + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
            (mu_p**2 + mu_t**2 + _SSIM_C1) * (var_p + var_t + _SSIM_C2))
        return 1.0 - ssim.mean()


def bce_iou_ssim(logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The hybrid loss of BASNet (Qin et al., CVPR 2019): pixel (BCE), region (soft IoU) and structure (SSIM)."""
    return bce_iou(logits, pred, target) + ssim_term(pred, target)


LOSSES = {"mse": mse, "bce": bce, "bce_iou": bce_iou, "bce_iou_ssim": bce_iou_ssim}
