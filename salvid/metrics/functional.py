"""Per-frame saliency metrics as pure, batched torch functions.

Every function takes a batch of N frames and returns one value per frame (or one curve per frame).
Conventions, applied here and nowhere else:

* ``resize_to_target``: predictions are resized to the ground truth's resolution (bilinear), never
  the other way round.
* ``binarize_target``: ground truth is foreground where it exceeds half of its value range
  (uint8: > 127.5; pysodmetrics uses > 128, which differs only on pixels of value exactly 128).
* ``normalize_prediction``: per-frame min-max to [0, 1] in float64; a constant frame is left
  unscaled, clipped to [0, 1] (pysodmetrics, whose input is 8-bit, leaves it at c / 255).
* The VSOD measures (MAE, S-, F-, E-measure) follow pysodmetrics 1.6.2 / the DAVSOD MATLAB toolbox:
  the same epsilon, the same 256 thresholds on ``floor(255 * pred)``, the same adaptive threshold
  ``min(2 * mean(pred), 1)`` and the same degenerate-case rules. One deliberate difference: when
  the mask's centroid falls on the last row or column, S-measure's split leaves an empty block;
  pysodmetrics then returns NaN, here the empty block carries no weight.

Undefined values are NaN: PLCC and AUC need foreground and background pixels, NSS needs foreground.
A constant prediction is not undefined: it scores PLCC = NSS = 0 and AUC = 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

EPS = float(np.spacing(1))  # the epsilon of MATLAB and pysodmetrics; part of the S/E-measure formulas
NUM_THRESHOLDS = 256
BETA2 = 0.3  # F-measure's beta^2, weighting precision over recall


def as_frames(x: Tensor) -> Tensor:
    """(N, 1, H, W) or (N, H, W) -> (N, H, W)."""
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected maps of shape (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    return x


def resize_to_target(pred: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of (N, H, W) predictions to the ground truth's (H', W')."""
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred
    return F.interpolate(pred[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def binarize_target(target: Tensor) -> Tensor:
    """Foreground where the mask exceeds half its range: uint8 masks are 0..255, others 0..1."""
    if target.dtype == torch.bool:
        return target
    if target.dtype == torch.uint8:
        return target > 127  # above 127.5, compared in integers
    if target.numel() and (target.min() < 0 or target.max() > 1):
        raise ValueError(
            f"ground truth of dtype {target.dtype} must lie in [0, 1] (pass 0..255 masks as uint8), "
            f"got values in [{target.min().item()}, {target.max().item()}]"
        )
    return target > 0.5


def nonfinite_frames(pred: Tensor) -> Tensor:
    """Indices of the frames of (N, H, W) ``pred`` that hold NaN or Inf."""
    lo, hi = frame_range(pred)  # NaN and Inf both show in the extremes
    return torch.nonzero(~(torch.isfinite(lo) & torch.isfinite(hi))).flatten()


def frame_range(pred: Tensor) -> tuple[Tensor, Tensor]:
    """Per-frame minimum and maximum, shape (N,) each (amin + amax beat aminmax on CPU)."""
    flat = pred.flatten(1)
    return flat.amin(dim=1), flat.amax(dim=1)


def normalize_prediction(pred: Tensor) -> Tensor:
    """Per-frame min-max normalisation of (N, H, W) maps to [0, 1], in float64.

    float64 keeps ``floor(255 * pred)`` and the threshold comparisons bit-identical to pysodmetrics,
    which works in float64 too.
    """
    lo, hi = frame_range(pred)
    lo, hi = lo.double()[:, None, None], hi.double()[:, None, None]
    span = hi - lo
    scaled = pred.double().sub_(lo).div_(torch.where(span > 0, span, 1.0))
    constant = (span == 0).flatten()
    if constant.any():
        scaled[constant] = pred[constant].double().clamp(0.0, 1.0)
    return scaled


def _frame_counts(mask: Tensor) -> Tensor:
    """Per-frame count of a boolean (N, H, W) mask; summing its bytes is ~3x faster than bool.sum."""
    return mask.view(torch.uint8).flatten(1).sum(dim=1, dtype=torch.int32)


@dataclass(frozen=True)
class BlockSums:
    """Per-frame sums over the four blocks that split each frame at its mask's rounded centroid.

    The split is the S-measure's (centroid + 1, as in the MATLAB code); summed over the blocks, the
    same sums give the whole-frame moments that PLCC, NSS and MAE need, so one pass over the pixels
    serves all four. Sums are float64; each field is (N, 4) in the order top-left, top-right,
    bottom-left, bottom-right.
    """

    x: Tensor
    xx: Tensor
    y: Tensor
    xy: Tensor
    xxy: Tensor
    area: Tensor
    constant: Tensor  # (N,) the map is constant, so its variances are exactly zero

    @property
    def size(self) -> Tensor:
        return self.area.sum(dim=1)


def block_sums(pred: Tensor, gt: Tensor) -> BlockSums:
    """Sums of x, x^2, y, xy and x^2 y per block, from two batched matrix products per quantity."""
    x = pred.double()
    n, h, w = x.shape
    rows = torch.arange(h, dtype=torch.float64, device=x.device)
    cols = torch.arange(w, dtype=torch.float64, device=x.device)
    # one scratch plane, refilled in place and always multiplied within float64: fresh full-size
    # temporaries and bool-by-float products cost more than the arithmetic on CPU
    plane = gt.double()
    count = plane.sum(dim=(1, 2)).clamp_min(1)
    cy = torch.round((plane.sum(dim=2) @ rows) / count) + 1
    cx = torch.round((plane.sum(dim=1) @ cols) / count) + 1
    top = rows[None] < cy[:, None]
    left = cols[None] < cx[:, None]
    row_split = torch.stack([top, ~top], dim=1).double()  # (N, 2, H)
    col_split = torch.stack([left, ~left], dim=2).double()  # (N, W, 2)

    def split_sums(plane: Tensor) -> Tensor:
        return torch.bmm(row_split, torch.bmm(plane, col_split)).flatten(1)

    sums = {"x": split_sums(x), "y": split_sums(plane)}
    sums["xy"] = split_sums(plane.mul_(x))
    sums["xxy"] = split_sums(plane.mul_(x))
    sums["xx"] = split_sums(torch.mul(x, x, out=plane))
    heights = torch.stack([cy, h - cy], dim=1)
    widths = torch.stack([cx, w - cx], dim=1)
    area = (heights[:, :, None] * widths[:, None, :]).flatten(1)
    lo, hi = frame_range(x)
    return BlockSums(**sums, area=area, constant=lo == hi)


def plcc(pred: Tensor, gt: Tensor) -> Tensor:
    """Pearson's linear correlation between each map and its binary mask (paper eq. 3)."""
    return plcc_from_sums(block_sums(pred, gt))


def plcc_from_sums(s: BlockSums) -> Tensor:
    n, sx, sy = s.size, s.x.sum(1), s.y.sum(1)
    cov = s.xy.sum(1) - sx * sy / n
    var_x = (s.xx.sum(1) - sx * sx / n).clamp_min(0)
    var_y = sy - sy * sy / n
    value = torch.where(s.constant, 0.0, cov / (var_x * var_y).sqrt())
    # a constant mask (empty or full) has no correlation to speak of
    return torch.where(var_y > 0, value, torch.nan)


def nss(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean of the standardised map (zero mean, unit population std) over the mask's pixels (eq. 6)."""
    return nss_from_sums(block_sums(pred, gt))


def nss_from_sums(s: BlockSums) -> Tensor:
    n, sx, sy = s.size, s.x.sum(1), s.y.sum(1)
    std = ((s.xx.sum(1) - sx * sx / n).clamp_min(0) / n).sqrt()
    value = torch.where(s.constant, 0.0, (s.xy.sum(1) / sy - sx / n) / std)
    return torch.where(sy > 0, value, torch.nan)


def auc(pred: Tensor, gt: Tensor) -> Tensor:
    """Exact pixel-level ROC AUC of each map against its mask, ties counted as 1/2 (as sklearn).

    AUC = P(score of a foreground pixel > score of a background pixel) + P(equal) / 2. Both classes
    are sorted and each foreground score is located among the background scores, so the result is
    exact for any float map. AUC is invariant to monotone maps, so it is computed on the map as given.
    """
    scores = pred.flatten(1).float()
    labels = gt.flatten(1)
    if scores.is_cuda:
        return _auc_batched(scores, labels)
    # numpy's SIMD sort is about 10x faster than torch.sort on CPU
    values = [_auc_numpy(s, lab) for s, lab in zip(scores.numpy(), labels.numpy(), strict=True)]
    return torch.tensor(values, dtype=torch.float64)


def _auc_numpy(scores: np.ndarray, labels: np.ndarray) -> float:
    pos = np.sort(scores[labels])
    neg = np.sort(scores[~labels])
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left").sum(dtype=np.int64)
    below_or_equal = np.searchsorted(neg, pos, side="right").sum(dtype=np.int64)
    return float((below + below_or_equal) / 2 / (len(pos) * len(neg)))


def _auc_batched(scores: Tensor, labels: Tensor) -> Tensor:
    """The same count for all frames at once: one int64 key per pixel orders by (frame, score)."""
    bits = (scores + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0, which must tie with it
    # flipping the magnitude bits of negative floats makes their int32 order the float order
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long()
    frame = torch.arange(scores.shape[0], device=scores.device)[:, None]
    keys = (frame << 32) + ordered
    pos = torch.sort(keys[labels]).values
    neg = torch.sort(keys[~labels]).values
    n_pos = labels.sum(dim=1)
    n_neg = labels.shape[1] - n_pos
    neg_start = torch.cumsum(n_neg, 0) - n_neg
    pos_frame = torch.repeat_interleave(torch.arange(len(n_pos), device=scores.device), n_pos)
    counts = (
        torch.searchsorted(neg, pos) + torch.searchsorted(neg, pos, right=True) - 2 * neg_start[pos_frame]
    )
    total = torch.zeros(len(n_pos), dtype=torch.float64, device=scores.device)
    total.index_add_(0, pos_frame, counts.double())
    pairs = (n_pos * n_neg).double()
    return torch.where(pairs > 0, total / 2 / pairs, torch.nan)


def mae(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean absolute error between the [0, 1] map and the binary mask."""
    return mae_from_sums(block_sums(pred, gt))


def mae_from_sums(s: BlockSums) -> Tensor:
    # with x in [0, 1]: |x - y| is x on the background and 1 - x on the foreground
    return (s.x.sum(1) - 2 * s.xy.sum(1) + s.y.sum(1)) / s.size


def threshold_histograms(pred: Tensor, gt: Tensor) -> Tensor:
    """(N, 2, 256) counts of ``floor(255 * pred)`` over foreground (0) and background (1) pixels.

    ``pred`` must be in [0, 1]; in float64 the product is exact for float32 inputs, as in pysodmetrics.
    """
    n = pred.shape[0]
    # one bincount over (frame, channel, level), built in place in int32
    index = torch.mul(pred.double().flatten(1), NUM_THRESHOLDS - 1).to(torch.int32)
    index.add_(gt.flatten(1).logical_not(), alpha=NUM_THRESHOLDS)
    index.add_(torch.arange(n, device=pred.device, dtype=torch.int32)[:, None] * (2 * NUM_THRESHOLDS))
    return torch.bincount(index.flatten(), minlength=n * 2 * NUM_THRESHOLDS).view(n, 2, NUM_THRESHOLDS)


def counts_per_threshold(histograms: Tensor) -> tuple[Tensor, Tensor]:
    """True and false positives (N, 256) when predicting foreground at ``floor(255 * pred) >= t``."""
    at_or_above = histograms.flip(-1).cumsum(-1).flip(-1).double()
    return at_or_above[:, 0], at_or_above[:, 1]


def fmeasure_from_counts(tp: Tensor, fp: Tensor, positives: Tensor, beta2: float = BETA2) -> Tensor:
    """F-measure; 0 where nothing is found (pysodmetrics' rule for empty predictions and masks)."""
    precision = tp / (tp + fp).clamp_min(1)
    recall = tp / positives.clamp_min(1)
    numerator = (1 + beta2) * precision * recall
    denominator = beta2 * precision + recall
    return torch.where(numerator > 0, numerator / torch.where(numerator > 0, denominator, 1.0), 0.0)


def precision_recall_curves(histograms: Tensor) -> tuple[Tensor, Tensor]:
    """Precision and recall (N, 256) at thresholds 0..255 (pysodmetrics' curves, index = threshold)."""
    tp, fp = counts_per_threshold(histograms)
    positives = histograms[:, 0].sum(dim=1, keepdim=True).double()
    return tp / (tp + fp).clamp_min(1), tp / positives.clamp_min(1)


def fmeasure_curve(histograms: Tensor, beta2: float = BETA2) -> Tensor:
    """F-measure (N, 256) at thresholds 0..255."""
    tp, fp = counts_per_threshold(histograms)
    positives = histograms[:, 0].sum(dim=1, keepdim=True).double()
    return fmeasure_from_counts(tp, fp, positives, beta2)


def roc_curve(histograms: Tensor) -> tuple[Tensor, Tensor]:
    """False and true positive rates (N, 256) at thresholds 0..255; NaN where a class is empty."""
    tp, fp = counts_per_threshold(histograms)
    totals = histograms.sum(dim=-1, keepdim=True).double()
    return fp / totals[:, 1], tp / totals[:, 0]


def adaptive_counts(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """True positives, false positives and positives (N,) at the threshold ``min(2 * mean, 1)``."""
    threshold = (2 * pred.double().flatten(1).mean(dim=1)).clamp_max(1.0)[:, None, None]
    found = pred.double() >= threshold
    found_count = _frame_counts(found).double()
    tp = _frame_counts(torch.logical_and(found, gt, out=found)).double()
    return tp, found_count - tp, _frame_counts(gt).double()


def adaptive_fmeasure(pred: Tensor, gt: Tensor, beta2: float = BETA2) -> Tensor:
    """F-measure of the map binarised at the adaptive threshold."""
    return fmeasure_from_counts(*adaptive_counts(pred, gt), beta2)


def emeasure_from_counts(tp: Tensor, fp: Tensor, positives: Tensor, size: int | Tensor) -> Tensor:
    """Enhanced-alignment measure of a binarised map from its confusion counts.

    With binary maps the alignment matrix takes one value per (prediction, mask) combination, so the
    sum over pixels is four products of counts. An empty mask scores the predicted-background
    fraction, a full mask the predicted-foreground fraction (pysodmetrics' rule). ``size`` is the
    frame's pixel count: an int, or a tensor that broadcasts against the counts when frames differ.
    """
    found = tp + fp
    fn = positives - tp
    tn = size - found - fn
    pred_mean = found / size
    gt_mean = positives / size
    parts = ((tp, 1 - pred_mean, 1 - gt_mean), (fp, 1 - pred_mean, -gt_mean),
             (fn, -pred_mean, 1 - gt_mean), (tn, -pred_mean, -gt_mean))  # fmt: skip
    enhanced = sum(count * ((2 * a * b / (a * a + b * b + EPS) + 1) ** 2 / 4) for count, a, b in parts)
    enhanced = torch.where(positives == 0, size - found, torch.where(positives == size, found, enhanced))
    return enhanced / (size - 1 + EPS)


def emeasure_curve(histograms: Tensor) -> Tensor:
    """E-measure (N, 256) at thresholds 0..255; each frame is scored at its own size."""
    tp, fp = counts_per_threshold(histograms)
    positives = histograms[:, 0].sum(dim=1, keepdim=True).double()
    # a metric's histograms pool frames of every video, and videos differ in resolution
    size = histograms.sum(dim=(1, 2)).double()[:, None]
    return emeasure_from_counts(tp, fp, positives, size)


def adaptive_emeasure(pred: Tensor, gt: Tensor) -> Tensor:
    """E-measure of the map binarised at the adaptive threshold."""
    return emeasure_from_counts(*adaptive_counts(pred, gt), gt[0].numel())


def smeasure(pred: Tensor, gt: Tensor, alpha: float = 0.5) -> Tensor:
    """Structure measure (Fan et al. 2017): alpha * object score + (1 - alpha) * region score.

    ``pred`` must be in [0, 1]. An empty mask scores 1 - mean(pred), a full mask mean(pred).
    """
    return smeasure_from_sums(block_sums(pred, gt), alpha)


def smeasure_from_sums(s: BlockSums, alpha: float = 0.5) -> Tensor:
    n = s.size
    fg_ratio = s.y.sum(1) / n
    score = alpha * _object_score(s) + (1 - alpha) * _region_score(s)
    mean = s.x.sum(1) / n
    return torch.where(fg_ratio == 0, 1 - mean, torch.where(fg_ratio == 1, mean, score.clamp_min(0)))


def _object_score(s: BlockSums) -> Tensor:
    """Foreground/background similarity from the mean and sample std of the map in each region."""
    n, fg_count = s.size, s.y.sum(1)
    bg_count = n - fg_count
    fg_sum, fg_squares = s.xy.sum(1), s.xxy.sum(1)
    bg_sum, bg_squares = s.x.sum(1) - fg_sum, s.xx.sum(1) - fg_squares

    def similarity(mean: Tensor, total: Tensor, squares: Tensor, count: Tensor) -> Tensor:
        var = ((squares - total * total / count.clamp_min(1)).clamp_min(0)) / (count - 1).clamp_min(1)
        std = torch.where((count > 1) & ~s.constant, var.sqrt(), 0.0)
        return 2 * mean / (mean * mean + 1 + std + EPS)

    fg = similarity(fg_sum / fg_count.clamp_min(1), fg_sum, fg_squares, fg_count)
    # the background is scored on 1 - x, which has the same variance as x
    bg = similarity(1 - bg_sum / bg_count.clamp_min(1), bg_sum, bg_squares, bg_count)
    return (fg * fg_count + bg * bg_count) / n


def _region_score(s: BlockSums) -> Tensor:
    """Area-weighted SSIM of the four blocks; an empty block carries no weight."""
    area = s.area
    safe_area = area.clamp_min(1)
    mx = s.x / safe_area
    my = s.y / safe_area
    mask_constant = (s.y == 0) | (s.y == area)  # its (co)variances are exactly zero
    var_x = torch.where(s.constant[:, None], 0.0, (s.xx - s.x * mx).clamp_min(0) / (area - 1 + EPS))
    var_y = torch.where(mask_constant, 0.0, (s.y - s.y * my) / (area - 1 + EPS))
    cov = torch.where(mask_constant, 0.0, (s.xy - s.x * my) / (area - 1 + EPS))
    a = 4 * mx * my * cov
    b = (mx * mx + my * my) * (var_x + var_y)
    ssim = torch.where(a != 0, a / (b + EPS), torch.where(b == 0, 1.0, 0.0))
    return (torch.where(area > 0, ssim, 0.0) * area).sum(dim=1) / s.size
