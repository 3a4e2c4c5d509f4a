"""SaliencyMetrics' protocol: undefined cases, averaging, the DAVSOD rule, resizing, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from salvid.metrics import AUC, MAE, NSS, PLCC, EMeasure, FMeasure, SaliencyMetrics, SMeasure
from salvid.metrics import functional as F


def batch(n: int = 10, h: int = 24, w: int = 32, seed: int = 0):
    """Blob masks with noisy predictions; frame 2 has an empty mask."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.rand(n, 2, generator=g) * torch.tensor([h, w])
    radii = 3 + 5 * torch.rand(n, generator=g)
    dist = ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2).sqrt()
    masks = dist <= radii[:, None, None]
    masks[2] = False
    preds = masks.float() + 0.5 * torch.randn(n, h, w, generator=g)
    return preds, masks.to(torch.uint8) * 255


def per_frame(preds, masks) -> dict[str, np.ndarray]:
    pred, gt = F.normalize_prediction(preds), F.binarize_target(masks)
    return {
        "plcc": F.plcc(pred, gt).numpy(),
        "nss": F.nss(pred, gt).numpy(),
        "auc": F.auc(preds, gt).numpy(),
        "mae": F.mae(pred, gt).numpy(),
    }


def test_video_and_frame_averaging_differ_as_defined():
    preds, masks = batch()
    videos = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1, 2])  # unequal lengths make the two averages differ
    frames = torch.arange(10)
    scores = per_frame(preds, masks)
    by_video = SaliencyMetrics(("plcc", "nss", "auc", "mae"), average="video")
    by_frame = SaliencyMetrics(("plcc", "nss", "auc", "mae"), average="frame")
    for metric in (by_video, by_frame):
        metric.update(preds, masks, videos, frames)
    video_results, frame_results = by_video.compute(), by_frame.compute()
    for name, values in scores.items():
        video_means = [np.nanmean(values[videos.numpy() == v]) for v in (0, 1, 2)]
        assert video_results[name].item() == pytest.approx(np.mean(video_means), abs=1e-12)
        assert frame_results[name].item() == pytest.approx(np.nanmean(values), abs=1e-12)
        assert video_results[name].item() != pytest.approx(frame_results[name].item(), abs=1e-6)


def test_empty_masks_are_excluded_and_counted():
    preds, masks = batch()
    masks[5] = 0
    metric = SaliencyMetrics(("plcc", "nss", "auc", "smeasure"))
    metric.update(preds, masks, torch.tensor([0] * 5 + [1] * 5), torch.arange(10))
    results = metric.compute()
    assert results["excluded_frames"].item() == 2
    per_video = metric.compute_per_video()
    assert (per_video[0]["excluded_frames"], per_video[1]["excluded_frames"]) == (1, 1)
    scores = per_frame(preds, masks)
    assert per_video[0]["auc"] == pytest.approx(np.mean(scores["auc"][[0, 1, 3, 4]]), abs=1e-12)
    # S-measure is defined on empty masks (1 - mean prediction), so it keeps all frames
    pred = F.normalize_prediction(preds)
    expected_s = F.smeasure(pred, F.binarize_target(masks))[:5].mean().item()
    assert per_video[0]["smeasure"] == pytest.approx(expected_s, abs=1e-12)


def test_video_with_only_empty_masks_drops_out_of_the_video_mean():
    preds, masks = batch()
    masks[8:] = 0
    videos = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    metric = AUC()
    metric.update(preds, masks, videos, torch.arange(10))
    scores = per_frame(preds, masks)["auc"]
    expected = np.mean([np.nanmean(scores[:4]), np.nanmean(scores[4:8])])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)


def test_constant_prediction_scores_zero_zero_half():
    _, masks = batch()
    preds = torch.full((10, 24, 32), 7.0)
    metric = SaliencyMetrics(("plcc", "nss", "auc"), average="frame")
    metric.update(preds, masks, torch.zeros(10), torch.arange(10))
    results = metric.compute()
    assert results["plcc"].item() == 0 and results["nss"].item() == 0 and results["auc"].item() == 0.5
    assert results["excluded_frames"].item() == 1  # frame 2's empty mask


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_prediction_names_video_and_frame(bad):
    preds, masks = batch()
    preds[3, 4, 5] = bad
    with pytest.raises(ValueError, match="video 7 frame 103 contains NaN or Inf"):
        SaliencyMetrics().update(preds, masks, torch.full((10,), 7), torch.arange(100, 110))


def test_unnormalised_predictions_must_be_in_unit_range():
    preds, masks = batch()
    with pytest.raises(ValueError, match=r"video 0 frame 0 is outside \[0, 1\]"):
        SaliencyMetrics(normalize=False).update(preds, masks, torch.zeros(10), torch.arange(10))
    # the paper's metrics alone take any range
    PLCC(normalize=False).update(preds, masks, torch.zeros(10), torch.arange(10))


def test_float_target_outside_unit_range_is_an_error():
    preds, masks = batch()
    with pytest.raises(ValueError, match="pass 0..255 masks as uint8"):
        SaliencyMetrics().update(preds, masks.float(), torch.zeros(10), torch.arange(10))


def test_skip_first_last_drops_each_videos_first_and_last_annotated_frame():
    preds, masks = batch(n=12)
    videos = torch.tensor([3] * 5 + [9] * 4 + [4] * 3)
    frames = torch.tensor([10, 11, 12, 13, 14, 0, 5, 10, 15, 7, 8, 9])
    kept = torch.tensor([1, 2, 3, 6, 7, 10])
    skipping = SaliencyMetrics(skip_first_last=True)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(1))  # arrival order must not matter
    for part in order.split(5):
        skipping.update(preds[part], masks[part], videos[part], frames[part])
    plain = SaliencyMetrics()
    plain.update(preds[kept], masks[kept], videos[kept], frames[kept])
    for name, value in plain.compute().items():
        torch.testing.assert_close(skipping.compute()[name], value, rtol=0, atol=1e-12, equal_nan=True)
    assert skipping.compute_per_video() == plain.compute_per_video()


def test_predictions_are_resized_to_the_target_never_the_reverse():
    preds, masks = batch()
    small = preds[:, None, ::2, ::2].contiguous()  # (N, 1, H/2, W/2)
    resized = TF.interpolate(small, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    direct, manual = SaliencyMetrics(), SaliencyMetrics()
    direct.update(small, masks, torch.zeros(10), torch.arange(10))
    manual.update(resized, masks[:, None], torch.zeros(10), torch.arange(10))
    for name, value in manual.compute().items():
        torch.testing.assert_close(direct.compute()[name], value, rtol=0, atol=0, equal_nan=True)


def test_repeated_frames_count_once():
    preds, masks = batch()
    once, twice = SaliencyMetrics(), SaliencyMetrics()
    once.update(preds, masks, torch.zeros(10), torch.arange(10))
    twice.update(preds, masks, torch.zeros(10), torch.arange(10))
    twice.update(preds[:3], masks[:3], torch.zeros(3), torch.arange(3))  # DistributedSampler-style padding
    results = twice.compute()
    assert results.pop("duplicate_frames").item() == 3
    expected = once.compute()
    expected.pop("duplicate_frames")
    for name, value in expected.items():
        torch.testing.assert_close(results[name], value, rtol=0, atol=0)


def test_single_metric_classes_return_their_values():
    preds, masks = batch()
    args = (preds, masks, torch.tensor([0] * 5 + [1] * 5), torch.arange(10))
    full = SaliencyMetrics()
    full.update(*args)
    expected = full.compute()
    for cls, names in [(PLCC, ["plcc"]), (NSS, ["nss"]), (AUC, ["auc"]), (MAE, ["mae"]), (SMeasure, ["smeasure"]),
                       (FMeasure, ["maxF", "meanF", "adpF"]), (EMeasure, ["maxE", "meanE", "adpE"])]:  # fmt: skip
        metric = cls()
        metric.update(*args)
        value = metric.compute()
        values = [value] if len(names) == 1 else [value[name] for name in names]
        for name, got in zip(names, values, strict=True):
            torch.testing.assert_close(got, expected[name], rtol=0, atol=0)


def test_curves_are_averaged_like_the_scalars():
    preds, masks = batch()
    videos = torch.tensor([0] * 7 + [1] * 3)
    metric = SaliencyMetrics(("auc", "fmeasure", "emeasure"))
    metric.update(preds, masks, videos, torch.arange(10))
    curves = metric.curves()
    hist = F.threshold_histograms(F.normalize_prediction(preds), F.binarize_target(masks))
    f = F.fmeasure_curve(hist)
    expected_f = (f[:7].mean(0) + f[7:].mean(0)) / 2
    torch.testing.assert_close(curves["fmeasure"], expected_f, rtol=0, atol=1e-12)
    results = metric.compute()
    # the table's max F is the plotted curve's maximum; the mean of per-video maxima is named apart
    assert results["maxF"].item() == pytest.approx(curves["fmeasure"].max().item(), abs=1e-12)
    assert results["maxE"].item() == pytest.approx(curves["emeasure"].max().item(), abs=1e-12)
    assert results["meanMaxF"].item() == pytest.approx(
        (f[:7].mean(0).max() + f[7:].mean(0).max()).item() / 2, abs=1e-12
    )
    assert results["meanMaxF"] > results["maxF"]  # the two videos peak at different thresholds here
    fpr, tpr = F.roc_curve(hist)
    tpr_video0 = tpr[[0, 1, 3, 4, 5, 6]].mean(0)  # frame 2 has no foreground: no TPR
    torch.testing.assert_close(curves["tpr"], (tpr_video0 + tpr[7:].mean(0)) / 2, rtol=0, atol=1e-12)
    assert curves["fpr"][0] == 1 and curves["tpr"][0] == 1  # threshold 0 takes every pixel
    assert set(curves) == {"thresholds", "fpr", "tpr", "precision", "recall", "fmeasure", "emeasure"}


def test_update_without_ids_is_one_video_in_arrival_order():
    preds, masks = batch()
    bare, explicit = PLCC(), PLCC()
    bare.update(preds[:6], masks[:6])  # the torchmetrics call
    bare.update(preds[6:], masks[6:])
    explicit.update(preds, masks, torch.zeros(10), torch.arange(10))
    assert bare.compute().item() == explicit.compute().item()
    # one video: averaging over videos and over frames agree, except for the mean of per-unit maxima
    # (one video's maximum against each frame's)
    by_video, by_frame = SaliencyMetrics(average="video"), SaliencyMetrics(average="frame")
    for metric in (by_video, by_frame):
        metric.update(preds, masks)
    video_results, frame_results = by_video.compute(), by_frame.compute()
    for name, value in video_results.items():
        if name not in ("meanMaxF", "meanMaxE"):
            torch.testing.assert_close(frame_results[name], value, rtol=0, atol=1e-12)
    assert video_results["meanMaxF"] == video_results["maxF"] < frame_results["meanMaxF"]
    assert list(by_video.compute_per_video()) == [0]


def test_frames_without_ids_are_numbered_as_they_arrive():
    """With video ids only, the first and last frame to arrive in each video are its first and last."""
    preds, masks = batch(n=12)
    videos = torch.tensor([3] * 5 + [9] * 4 + [4] * 3)
    numbered = SaliencyMetrics(skip_first_last=True)
    for part in torch.arange(12).split(5):
        numbered.update(preds[part], masks[part], videos[part])
    given = SaliencyMetrics(skip_first_last=True)
    given.update(preds, masks, videos, torch.arange(12))
    assert numbered.compute_per_video() == given.compute_per_video()
    assert numbered.compute()["duplicate_frames"].item() == 0


def test_forward_without_ids_accumulates_every_batch():
    preds, masks = batch()
    metric, reference = MAE(), MAE()
    batch_values = [metric(preds[part], masks[part]) for part in torch.arange(10).split(4)]
    reference.update(preds, masks)
    assert metric.compute().item() == pytest.approx(reference.compute().item(), abs=1e-12)
    expected_first = F.mae(F.normalize_prediction(preds[:4]), F.binarize_target(masks[:4])).mean()
    assert batch_values[0].item() == pytest.approx(expected_first.item(), abs=1e-12)


def test_frame_ids_on_some_calls_only_is_an_error():
    preds, masks = batch()
    metric = SaliencyMetrics()
    metric.update(preds[:5], masks[:5], torch.zeros(5), torch.arange(5))
    with pytest.raises(ValueError, match="frame_ids missing on this call but given on earlier ones"):
        metric.update(preds[5:], masks[5:])
    metric.reset()
    metric.update(preds[5:], masks[5:])  # a fresh start may number its frames
    with pytest.raises(ValueError, match="frame_ids given on this call but missing on earlier ones"):
        metric.update(preds[:5], masks[:5], torch.zeros(5), torch.arange(5))


def test_frame_values_are_the_scores_behind_the_means_in_video_and_frame_order():
    preds, masks = batch()
    videos, frames = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]), torch.tensor([4, 3, 2, 1, 0, 9, 8, 7, 6, 5])
    expected = F.mae(F.normalize_prediction(preds), F.binarize_target(masks))
    for skip in (False, True):
        metric = SaliencyMetrics(("mae", "smeasure"), skip_first_last=skip)
        metric.update(preds[:4], masks[:4], videos[:4], frames[:4])  # over two batches
        metric.update(preds[4:], masks[4:], videos[4:], frames[4:])
        got_videos, got_frames, values = metric.frame_values("mae")
        order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]  # video 0 then 1, each by frame
        if skip:
            order = [8, 7, 6, 3, 2, 1]
        assert got_videos.tolist() == videos[order].tolist() and got_frames.tolist() == frames[order].tolist()
        torch.testing.assert_close(values, expected[order].to(values.dtype))
        per_video = metric.compute_per_video()
        assert per_video[0]["mae"] == pytest.approx(values[got_videos == 0].mean().item())
    with pytest.raises(ValueError, match="'plcc' is not kept here"):
        metric.frame_values("plcc")
