"""Every output of every metric class against the field's reference implementations, to 1e-6.

References: pysodmetrics 1.6.2 for S-measure, MAE, F- and E-measure (scalars and curves), one instance per
video for ``average="video"`` and one over all frames for ``average="frame"``; sklearn, scipy and numpy for
the paper's AUC, PLCC and NSS, with undefined frames left out of the means and counted. The sets hold
several videos of different sizes that mix empty, full and ordinary masks, with real-valued predictions,
and frames arrive shuffled, videos interleaved, in several ``update`` calls with a few repeats.

One difference from pysodmetrics is deliberate and kept out of these sets: when a mask's centroid falls
on the last row or column, pysodmetrics' S-measure is NaN (an empty block times weight 0); here the
empty block carries no weight (see ``test_smeasure_with_an_empty_block_stays_defined``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score

from salvid.metrics import AUC, MAE, NSS, PLCC, EMeasure, FMeasure, SaliencyMetrics, SMeasure
from salvid.metrics import functional as F

psm = pytest.importorskip("py_sod_metrics")

ATOL = 1e-6
AVERAGES = ("video", "frame")
# each class's compute() outputs, in the order FMeasure / EMeasure return them
CLASSES = {
    PLCC: ("plcc",),
    NSS: ("nss",),
    AUC: ("auc",),
    MAE: ("mae",),
    SMeasure: ("smeasure",),
    FMeasure: ("maxF", "meanF", "adpF", "meanMaxF"),
    EMeasure: ("maxE", "meanE", "adpE", "meanMaxE"),
}
CURVES = ("precision", "recall", "fmeasure", "emeasure", "fpr", "tpr")


@dataclass
class Video:
    video_id: int
    preds: np.ndarray  # (n, h, w) float32, any range
    masks: np.ndarray  # (n, h, w) uint8, 0 or 255


def real_valued(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A blurred, noisy, shaded version of the mask: many distinct levels, far from binary."""
    n, h, w = gt.shape
    shade = np.linspace(0, 0.3, w)[None, None, :] + np.linspace(0, 0.2, h)[None, :, None]
    blurred = np.stack([gaussian_filter(g.astype(np.float64), sigma=3) for g in gt])
    return (3 * (0.6 * blurred + 0.3 * rng.random(gt.shape) + shade) - 1).astype(np.float32)


def ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def generated_videos() -> list[Video]:
    rng = np.random.default_rng(15)
    videos = []
    # a moving object with one frame where it has left the picture
    h, w = 60, 80
    gt = np.stack([ellipse(h, w, 25 + 3 * t, 20 + 8 * t, 12, 16) for t in range(5)])
    gt[2] = False
    videos.append(Video(3, real_valued(gt, rng), gt))
    # a full mask, a large and a small object, and a constant prediction
    h, w = 72, 96
    gt = np.stack([np.ones((h, w), bool), ellipse(h, w, 36, 48, 30, 40), ellipse(h, w, 15, 70, 5, 8),
                   ellipse(h, w, 40, 30, 14, 10)])  # fmt: skip
    preds = real_valued(gt, rng)
    preds[3] = 0.4
    videos.append(Video(8, preds, gt))
    # nothing annotated in the whole video: the paper's metrics have no frame to average here
    h, w = 48, 64
    gt = np.zeros((3, h, w), bool)
    videos.append(Video(1, real_valued(gt, rng), gt))
    # a one-pixel object and an object on the right border
    h, w = 40, 40
    yy, xx = np.mgrid[:h, :w]
    gt = np.stack([(yy == 20) & (xx == 11), xx >= w - 3])
    videos.append(Video(5, real_valued(gt, rng), gt))
    return [Video(v.video_id, v.preds, v.masks.astype(np.uint8) * 255) for v in videos]


DAVIS_VIDEOS = {  # bmx-bumps/00060 is empty; one video is cropped so that the sizes differ
    0: ["bear/00000", "bear/00020", "bear/00077"],
    1: ["bmx-bumps/00058", "bmx-bumps/00059", "bmx-bumps/00060", "bmx-bumps/00061"],
    2: ["car-turn/00010", "car-turn/00030"],
}


def davis_videos(root: Path) -> list[Video]:
    rng = np.random.default_rng(16)
    videos = []
    for video_id, names in DAVIS_VIDEOS.items():
        folder = root / "Annotations" / "240p"
        masks = np.stack([np.array(Image.open(folder / f"{n}.png").convert("L")) > 127 for n in names])
        if video_id == 2:
            masks = masks[:, 20:200, 50:350]
        videos.append(Video(video_id, real_valued(masks, rng), masks.astype(np.uint8) * 255))
    return videos


def centroid_on_last_row_or_column(mask: np.ndarray) -> bool:
    if not mask.any() or mask.all():
        return False
    cy, cx = np.argwhere(mask).mean(axis=0).round().astype(int) + 1
    return cy == mask.shape[0] or cx == mask.shape[1]


# ------------------------------------------------------------------------------------------- references


def minmax(pred: np.ndarray) -> np.ndarray:
    """The normalisation both sides apply: per frame to [0, 1] in float64, a constant frame clipped."""
    p = pred.astype(np.float64)
    return (p - p.min()) / (p.max() - p.min()) if p.max() > p.min() else np.clip(p, 0, 1)


def paper_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """AUC / PLCC / NSS of one frame; NaN where the paper's definition has no value."""
    both = 0 < gt.sum() < gt.size
    x = pred.astype(np.float64).ravel()
    constant = x.min() == x.max()  # no correlation and no standardised map: 0, as documented
    return {
        "auc": roc_auc_score(gt.ravel(), pred.ravel()) if both else np.nan,
        "plcc": (0.0 if constant else pearsonr(x, gt.ravel().astype(np.float64))[0]) if both else np.nan,
        "nss": (0.0 if constant else ((x - x.mean()) / x.std())[gt.ravel()].mean()) if gt.any() else np.nan,
    }


def roc_points(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """TPR and FPR when predicting foreground at floor(255 * map) >= t, t = 0..255 (NaN for an empty class)."""
    levels = np.floor(minmax(pred) * 255)
    above = levels[..., None] >= np.arange(256)
    return {
        "tpr": above[gt].mean(axis=0) if gt.any() else np.full(256, np.nan),
        "fpr": above[~gt].mean(axis=0) if (~gt).any() else np.full(256, np.nan),
    }


def pysodmetrics_group(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, object]:
    """pysodmetrics over one group of frames (a video, or the whole set)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its Fmeasure class announces its deprecation
        sm, mae, fm, em = psm.Smeasure(), psm.MAE(), psm.Fmeasure(), psm.Emeasure()
    for pred, gt in zip(preds, gts, strict=True):
        for measure in (sm, mae, fm, em):
            measure.step(minmax(pred), gt, normalize=False)
    f, e = fm.get_results(), em.get_results()
    return {
        "smeasure": sm.get_results()["sm"],
        "mae": mae.get_results()["mae"],
        "adpF": f["fm"]["adp"],
        "adpE": e["em"]["adp"],
        # pysodmetrics orders its curves from threshold 255 down to 0; salvid's go up
        "fmeasure": np.flip(f["fm"]["curve"]),
        "emeasure": np.flip(e["em"]["curve"]),
        "precision": np.flip(f["pr"]["p"]),
        "recall": np.flip(f["pr"]["r"]),
        "frame_maxF": np.array([c.max() for c in fm.changeable_fms]),
        "frame_maxE": np.array([c.max() for c in em.changeable_ems]),
    }


def group_reference(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, object]:
    ref = pysodmetrics_group(preds, gts)
    frames = [{**paper_scores(p, g), **roc_points(p, g)} for p, g in zip(preds, gts, strict=True)]
    for name in ("auc", "plcc", "nss", "tpr", "fpr"):
        ref[f"frame_{name}"] = np.stack([f[name] for f in frames])
    return ref


def nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the defined values; NaN where none is defined (no warning)."""
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    count = defined.sum(axis=0)
    total = np.where(defined, values, 0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def unit_summary(ref: dict[str, object]) -> dict[str, object]:
    """One video's values (or, with frame averaging, the set's, before the per-unit maxima)."""
    out = {name: ref[name] for name in ("smeasure", "mae", "adpF", "adpE")}
    out.update({name: ref[name] for name in ("fmeasure", "emeasure", "precision", "recall")})
    out.update({name: nanmean(ref[f"frame_{name}"]) for name in ("auc", "plcc", "nss", "tpr", "fpr")})
    return out


def expected_results(videos: list[Video], average: str) -> dict[str, object]:
    """compute() and curves() as the references define them."""
    gts = [[m > 127 for m in v.masks] for v in videos]
    if average == "frame":
        ref = group_reference([p for v in videos for p in v.preds], [g for gt in gts for g in gt])
        out = unit_summary(ref)
        out["meanMaxF"], out["meanMaxE"] = ref["frame_maxF"].mean(), ref["frame_maxE"].mean()
    else:
        units = [unit_summary(group_reference(list(v.preds), gt)) for v, gt in zip(videos, gts, strict=True)]
        # every scalar and every curve: the mean over videos of each video's mean (videos without a
        # defined frame left out); maxF/maxE are read off that averaged curve, as the DAVSOD toolbox does
        out = {name: nanmean(np.stack([u[name] for u in units])) for name in units[0]}
        out["meanMaxF"] = np.mean([u["fmeasure"].max() for u in units])
        out["meanMaxE"] = np.mean([u["emeasure"].max() for u in units])
    for suffix, curve in (("F", "fmeasure"), ("E", "emeasure")):
        out[f"max{suffix}"], out[f"mean{suffix}"] = out[curve].max(), out[curve].mean()
    return out


def per_video_expected(videos: list[Video]) -> dict[int, dict[str, float]]:
    out = {}
    for v in videos:
        gt = [m > 127 for m in v.masks]
        summary = unit_summary(group_reference(list(v.preds), gt))
        values = {name: summary[name] for name in ("plcc", "auc", "nss", "smeasure", "mae", "adpF", "adpE")}
        values.update(maxF=summary["fmeasure"].max(), meanF=summary["fmeasure"].mean(),
                      maxE=summary["emeasure"].max(), meanE=summary["emeasure"].mean())  # fmt: skip
        values["frames"] = len(gt)
        values["excluded_frames"] = sum(not (0 < g.sum() < g.size) for g in gt)  # PLCC/AUC need both classes
        out[v.video_id] = values
    return out


# ------------------------------------------------------------------------------------------- salvid side

REPEATS = 2  # frames sent twice, as a DistributedSampler pads its last batch


def feed(metric: SaliencyMetrics, videos: list[Video], repeats: int = REPEATS, seed: int = 0) -> None:
    """Each video's frames shuffled and cut into chunks of at most 2; videos interleaved chunk by chunk;
    then the first video's first ``repeats`` frames again."""
    rng = np.random.default_rng(seed)
    queues = []
    for v in videos:
        order = rng.permutation(len(v.preds))
        queues.append([(v, chunk) for chunk in np.array_split(order, (len(order) + 1) // 2)])
    calls = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
    calls.append((videos[0], np.arange(repeats)))
    for v, chunk in calls:
        metric.update(torch.from_numpy(v.preds[chunk]), torch.from_numpy(v.masks[chunk]),
                      torch.full((len(chunk),), v.video_id), torch.from_numpy(chunk))  # fmt: skip


def excluded_by_class(videos: list[Video], metrics: tuple[str, ...]) -> int:
    """Frames left out of the paper's metrics: no foreground (all three) or no background (PLCC, AUC)."""
    count = 0
    for v in videos:
        for mask in v.masks > 127:
            empty, full = not mask.any(), mask.all()
            count += bool(empty and metrics) or bool(full and {"plcc", "auc"} & set(metrics))
    return count


@pytest.fixture(scope="module")
def generated():
    videos = generated_videos()
    assert not any(centroid_on_last_row_or_column(m > 127) for v in videos for m in v.masks)
    return videos, {average: expected_results(videos, average) for average in AVERAGES}


@pytest.fixture(scope="module")
def davis(davis_root):
    videos = davis_videos(davis_root)
    assert not any(centroid_on_last_row_or_column(m > 127) for v in videos for m in v.masks)
    return videos, {average: expected_results(videos, average) for average in AVERAGES}


def check_classes(videos: list[Video], expected: dict[str, object], average: str) -> None:
    for cls, names in CLASSES.items():
        metric = cls(average=average)
        feed(metric, videos)
        got = metric.compute()
        got = {names[0]: got} if len(names) == 1 else got
        assert tuple(got) == names, cls.__name__
        for name in names:
            np.testing.assert_allclose(got[name].item(), expected[name], atol=ATOL, rtol=0,
                                       err_msg=f"{cls.__name__} {name} average={average}")  # fmt: skip


def check_collection(videos: list[Video], expected: dict[str, object], average: str) -> None:
    metric = SaliencyMetrics(average=average)
    feed(metric, videos)
    got = metric.compute()
    assert got.pop("duplicate_frames").item() == REPEATS
    assert got.pop("excluded_frames").item() == excluded_by_class(videos, ("plcc", "auc", "nss"))
    assert set(got) == {name for names in CLASSES.values() for name in names}
    for name, value in got.items():
        np.testing.assert_allclose(value.item(), expected[name], atol=ATOL, rtol=0, err_msg=f"{name} {average}")
    curves = metric.curves()
    assert curves.pop("thresholds").tolist() == list(range(256))
    assert set(curves) == set(CURVES)
    for name, curve in curves.items():
        np.testing.assert_allclose(curve.numpy(), expected[name], atol=ATOL, rtol=0, err_msg=f"{name} {average}")
    # the table's max F is the maximum of the plotted curve
    assert got["maxF"].item() == pytest.approx(curves["fmeasure"].max().item(), abs=1e-12)
    per_video = metric.compute_per_video()
    for video_id, values in per_video_expected(videos).items():
        assert per_video[video_id].keys() == values.keys()
        for name, value in values.items():
            np.testing.assert_allclose(per_video[video_id][name], value, atol=ATOL, rtol=0,
                                       err_msg=f"video {video_id} {name}")  # fmt: skip


@pytest.mark.parametrize("average", AVERAGES)
def test_every_class_matches_the_references(generated, average):
    videos, expected = generated
    check_classes(videos, expected[average], average)


@pytest.mark.parametrize("average", AVERAGES)
def test_collection_scalars_curves_and_per_video_match_the_references(generated, average):
    videos, expected = generated
    check_collection(videos, expected[average], average)


@pytest.mark.parametrize("average", AVERAGES)
def test_every_class_matches_the_references_on_davis_masks(davis, average):
    videos, expected = davis
    check_classes(videos, expected[average], average)
    check_collection(videos, expected[average], average)


def test_the_sets_exercise_every_rule(generated):
    """The cases the counting rules are about are present, and the two max-F variants differ."""
    videos, expected = generated
    masks = [m > 127 for v in videos for m in v.masks]
    assert any(not m.any() for m in masks) and any(m.all() for m in masks)
    assert len({v.masks.shape[1:] for v in videos}) == len(videos)  # every video its own size
    assert all(len(np.unique(v.preds)) > 100 for v in videos)  # far from binary
    assert np.isnan(paper_scores(videos[2].preds[0], videos[2].masks[0] > 127)["auc"])
    for average in AVERAGES:
        assert expected[average]["meanMaxF"] > expected[average]["maxF"] + 1e-3
        assert expected[average]["meanMaxE"] > expected[average]["maxE"] + 1e-3
    assert expected["video"]["maxE"] != pytest.approx(expected["frame"]["maxE"], abs=1e-3)


def test_emeasure_of_frames_of_different_sizes_matches_pysodmetrics():
    """Three frames of different sizes, one with an empty mask, each its own video, averaged over frames."""
    videos = generated_videos()
    picked = [Video(i, v.preds[:1], v.masks[:1]) for i, v in enumerate(videos[:3])]
    assert not picked[2].masks.any()
    metric = EMeasure(average="frame")
    feed(metric, picked, repeats=1)
    expected = expected_results(picked, "frame")
    got = metric.compute()
    for name in ("maxE", "meanE", "adpE", "meanMaxE"):
        np.testing.assert_allclose(got[name].item(), expected[name], atol=ATOL, rtol=0, err_msg=name)


def test_smeasure_with_an_empty_block_stays_defined():
    """A centroid on the last column: pysodmetrics gives NaN; here the empty blocks carry no weight."""
    gt = np.zeros((20, 30), bool)
    gt[5:15, -1] = True
    assert centroid_on_last_row_or_column(gt)
    pred = minmax(real_valued(gt[None], np.random.default_rng(0))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's mean of an empty slice
        assert np.isnan(pysodmetrics_group([pred], [gt])["smeasure"])
    # pysodmetrics' own object and block scores, the blocks weighted by area and the empty ones skipped
    sm = psm.Smeasure()
    cy, cx = np.argwhere(gt).mean(axis=0).round().astype(int) + 1
    blocks = [(slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, None)),
              (slice(cy, None), slice(0, cx)), (slice(cy, None), slice(cx, None))]  # fmt: skip
    region = sum(sm.ssim(pred[b], gt[b]) * pred[b].size / gt.size for b in blocks if pred[b].size)
    expected = max(0.0, 0.5 * sm.object(pred, gt) + 0.5 * region)
    value = F.smeasure(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None]).item()
    assert value == pytest.approx(expected, abs=1e-12)
