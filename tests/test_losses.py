"""The training losses: the SSIM term against scikit-image, and the hybrid loss's value and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from salvid.training.losses import bce_iou, bce_iou_ssim, ssim_term


def _maps(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, maps, masks) of 2 blob masks at 64x80 and noisy blurred maps of them."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(80.0), indexing="ij")
    masks = torch.stack([((yy - 30) ** 2 + (xx - 40) ** 2 < 400).float(),
                         ((yy - 10) ** 2 / 4 + (xx - 60) ** 2 < 100).float()])[:, None]
    maps = torch.nn.functional.avg_pool2d(masks, 7, 1, 3) * 0.8 + 0.1 + 0.1 * torch.rand(masks.shape, generator=g)
    return torch.logit(maps), maps, masks


def test_ssim_term_is_one_minus_scikit_image_ssim():
    _, maps, masks = _maps()
    expected = [structural_similarity(m[0].double().numpy(), t[0].double().numpy(), data_range=1.0,
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                for m, t in zip(maps, masks, strict=True)]
    assert 0.05 < np.mean(expected) < 0.95  # a map neither right nor unrelated
    assert ssim_term(maps, masks).item() == pytest.approx(1.0 - float(np.mean(expected)), abs=1e-5)


def test_ssim_term_is_zero_for_a_perfect_map_and_grows_with_blur():
    _, _, masks = _maps()
    assert ssim_term(masks, masks).item() == pytest.approx(0.0, abs=1e-6)
    blurred = torch.nn.functional.avg_pool2d(masks, 5, 1, 2)
    more = torch.nn.functional.avg_pool2d(masks, 15, 1, 7)
    assert 0.0 < ssim_term(blurred, masks).item() < ssim_term(more, masks).item()


def test_hybrid_loss_adds_the_ssim_term_and_ssim_trains_the_map():
    logits, maps, masks = _maps()
    assert bce_iou_ssim(logits, maps, masks).item() == pytest.approx(
        (bce_iou(logits, maps, masks) + ssim_term(maps, masks)).item(), rel=1e-6)
    # the SSIM term's own gradient: a small step against it raises the map's SSIM
    maps = maps.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ssim_term(maps, masks), maps)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert ssim_term(maps - 0.01 * grad / grad.abs().max(), masks) < ssim_term(maps, masks)


def test_ssim_term_takes_bf16_maps_of_any_leading_shape_and_ignores_autocast():
    _, maps, masks = _maps()
    expected = ssim_term(maps, masks).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in bf16-mixed training
        under_autocast = ssim_term(maps, masks)
        flat = ssim_term(maps.to(torch.bfloat16)[:, 0], masks[:, 0])  # (N, H, W) bf16 maps
    assert under_autocast.dtype == flat.dtype == torch.float32
    assert under_autocast.item() == pytest.approx(expected, abs=1e-6)
    assert flat.item() == pytest.approx(expected, abs=5e-3)  # only the maps' own bf16 rounding


def test_ssim_term_names_the_size_it_needs():
    with pytest.raises(ValueError, match="at least 11x11 pixels, got 8x80"):
        ssim_term(torch.rand(2, 1, 8, 80), torch.rand(2, 1, 8, 80))
