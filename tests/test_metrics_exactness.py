"""The metrics against independent implementations, frame by frame and per video, to 1e-4.

References: sklearn (AUC), scipy / numpy formulas (PLCC, NSS), pysodmetrics (MAE, S-, F-, E-measure),
pysaliency (CC, NSS, AUC) when it can be loaded. Masks: generated ones (always) and real DAVIS-2016
masks from the DAVIS-2016 test data (when present). Predictions: noisy GT, blurred GT, random, constant and
a centre prior.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score

from salvid.metrics import SaliencyMetrics
from salvid.metrics import functional as F

psm = pytest.importorskip("py_sod_metrics")

TOL = 1e-4
# bear/00077 is stored with an alpha channel, bmx-bumps/00060 is empty
REAL_FRAMES = [
    "bear/00000",
    "bear/00077",
    "bmx-bumps/00059",
    "bmx-bumps/00060",
    "car-turn/00010",
    "elephant/00030",
]
PREDICTION_KINDS = ("noisy", "blurred", "random", "constant", "center")


def generated_masks() -> np.ndarray:
    """Ellipses of several sizes, plus the corner cases: empty, full, one pixel, a border object."""
    h, w = 72, 96
    yy, xx = np.mgrid[:h, :w]
    masks = [((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1 for cy, cx, ry, rx in
             [(36, 48, 20, 30), (20, 70, 8, 12), (50, 30, 15, 10), (10, 10, 5, 5)]]  # fmt: skip
    masks += [np.zeros((h, w), bool), np.ones((h, w), bool), (yy == 40) & (xx == 60), xx >= w - 3]
    return np.stack(masks).astype(np.uint8) * 255


def real_masks(davis_root: Path) -> np.ndarray:
    """Masks from the DAVIS-2016 240p test data (the ``davis_root`` fixture skips, saying where it looked, if absent)."""
    masks = davis_root / "Annotations" / "240p"
    return np.stack([np.array(Image.open(masks / f"{name}.png").convert("L")) for name in REAL_FRAMES])


def predictions(masks: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gt = (masks > 127).astype(np.float32)
    n, h, w = gt.shape
    if kind == "noisy":
        return gt + rng.normal(0, 0.4, gt.shape).astype(np.float32)
    if kind == "blurred":
        return np.stack([gaussian_filter(g, sigma=4) for g in gt]).astype(np.float32)
    if kind == "random":
        return rng.random(gt.shape, dtype=np.float32)
    if kind == "constant":
        return np.full(gt.shape, 0.5, np.float32)
    yy, xx = np.mgrid[:h, :w]
    prior = np.exp(-(((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2) / 2)
    return np.broadcast_to(prior, gt.shape).astype(np.float32).copy()


def minmax(pred: np.ndarray) -> np.ndarray:
    p = pred.astype(np.float64)
    return (p - p.min()) / (p.max() - p.min()) if p.max() > p.min() else np.clip(p, 0, 1)


def reference_scores(pred: np.ndarray, mask: np.ndarray) -> dict[str, float | np.ndarray]:
    """One frame scored by the reference implementations (pysodmetrics on the min-max normalised map)."""
    gt = mask > 127
    x = pred.astype(np.float64).ravel()
    both_classes = 0 < gt.sum() < gt.size
    constant = x.min() == x.max()
    ref = {
        "auc": roc_auc_score(gt.ravel(), pred.ravel()) if both_classes else np.nan,
        "plcc": (0.0 if constant else pearsonr(x, gt.ravel().astype(np.float64))[0])
        if both_classes
        else np.nan,
        "nss": (0.0 if constant else ((x - x.mean()) / x.std())[gt.ravel()].mean()) if gt.any() else np.nan,
    }
    p = minmax(pred)
    sm, mae, fm, em = psm.Smeasure(), psm.MAE(), psm.Fmeasure(), psm.Emeasure()
    for measure in (sm, mae, fm, em):
        measure.step(p, gt, normalize=False)
    f_results, e_results = fm.get_results(), em.get_results()
    ref.update(
        smeasure=sm.get_results()["sm"],
        mae=mae.get_results()["mae"],
        adpF=f_results["fm"]["adp"],
        adpE=e_results["em"]["adp"],
        # pysodmetrics orders its curves from threshold 255 down to 0; ours go up
        fcurve=np.flip(f_results["fm"]["curve"]),
        ecurve=np.flip(e_results["em"]["curve"]),
        precision=np.flip(f_results["pr"]["p"]),
        recall=np.flip(f_results["pr"]["r"]),
    )
    return ref


def salvid_scores(preds: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    raw = torch.from_numpy(preds)
    gt = F.binarize_target(torch.from_numpy(masks))
    pred = F.normalize_prediction(raw)
    hist = F.threshold_histograms(pred, gt)
    precision, recall = F.precision_recall_curves(hist)
    out = {
        "auc": F.auc(raw, gt),
        "plcc": F.plcc(pred, gt),
        "nss": F.nss(pred, gt),
        "smeasure": F.smeasure(pred, gt),
        "mae": F.mae(pred, gt),
        "adpF": F.adaptive_fmeasure(pred, gt),
        "adpE": F.adaptive_emeasure(pred, gt),
        "fcurve": F.fmeasure_curve(hist),
        "ecurve": F.emeasure_curve(hist),
        "precision": precision,
        "recall": recall,
    }
    return {name: value.numpy() for name, value in out.items()}


def assert_frames_match(preds: np.ndarray, masks: np.ndarray) -> None:
    ours = salvid_scores(preds, masks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysodmetrics warns that its Fmeasure class is deprecated
        refs = [reference_scores(p, m) for p, m in zip(preds, masks, strict=True)]
    for name, values in ours.items():
        expected = np.stack([ref[name] for ref in refs])
        if name == "smeasure":
            # pysodmetrics returns NaN when the centroid falls in the last row/column (an empty
            # block times weight 0); an empty block carries no weight here
            values, expected = values[~np.isnan(expected)], expected[~np.isnan(expected)]
        np.testing.assert_allclose(values, expected, atol=TOL, rtol=0, err_msg=name)


@pytest.mark.parametrize("kind", PREDICTION_KINDS)
def test_frames_match_references_on_generated_masks(kind):
    masks = generated_masks()
    assert_frames_match(predictions(masks, kind), masks)


@pytest.mark.parametrize("kind", PREDICTION_KINDS)
def test_frames_match_references_on_davis_masks(kind, davis_root):
    masks = real_masks(davis_root)
    assert_frames_match(predictions(masks, kind), masks)


def test_undefined_and_constant_rules_on_reference_cases():
    masks = generated_masks()
    ours = salvid_scores(predictions(masks, "constant"), masks)
    empty, full = 4, 5
    assert np.isnan(ours["plcc"][[empty, full]]).all() and np.isnan(ours["auc"][[empty, full]]).all()
    assert np.isnan(ours["nss"][empty]) and ours["nss"][full] == 0
    defined = [0, 1, 2, 3, 6, 7]
    assert (ours["plcc"][defined] == 0).all() and (ours["nss"][defined] == 0).all()
    assert (ours["auc"][defined] == 0.5).all()


def test_batched_auc_matches_sklearn():
    """The torch path used on GPUs, run here on CPU: ties, negative scores and -0.0 included."""
    masks = generated_masks()[[0, 1, 2, 3, 6, 7]] > 127
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(0, 1, masks.shape), 1).astype(np.float32)  # many ties
    scores[:, :5, :5] = -0.0
    scores[:, 5:10, :5] = 0.0
    ours = F._auc_batched(torch.from_numpy(scores).flatten(1), torch.from_numpy(masks).flatten(1))
    expected = [roc_auc_score(m.ravel(), s.ravel()) for m, s in zip(masks, scores, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(
        F.auc(torch.from_numpy(scores), torch.from_numpy(masks)).numpy(), expected, atol=1e-12
    )


def test_normalisation_matches_pysodmetrics_prepare_data():
    """On 8-bit maps; a constant map is the exception: pysodmetrics keeps c / 255, we clip c to [0, 1]."""
    masks = generated_masks()[[0, 1, 2, 3, 6, 7]]  # their blurred maps are not constant
    preds = (minmax(predictions(masks, "blurred")) * 200 + 20).astype(np.uint8)
    ours = F.normalize_prediction(torch.from_numpy(preds).float()).numpy()
    for frame, mask, pred in zip(ours, masks, preds, strict=True):
        expected, gt = psm.utils.prepare_data(pred, mask)
        np.testing.assert_allclose(frame, expected, atol=1e-12, rtol=0)
        assert np.array_equal(F.binarize_target(torch.from_numpy(mask)).numpy(), gt)
    constant = torch.tensor([[[0.25, 0.25]], [[3.0, 3.0]], [[-1.0, -1.0]]])
    assert F.normalize_prediction(constant).flatten().tolist() == [0.25, 0.25, 1.0, 1.0, 0.0, 0.0]


def test_video_protocol_matches_references_per_video():
    """SaliencyMetrics over 3 videos: per-video means of reference scores, then the mean over videos."""
    masks = generated_masks()
    preds = predictions(masks, "noisy", seed=3)
    videos = np.array([0, 0, 0, 0, 1, 1, 2, 2])  # video 1 holds the empty and the full mask
    metric = SaliencyMetrics()
    order = np.random.default_rng(0).permutation(len(masks))  # frames arrive shuffled, in two batches
    for batch in np.array_split(order, 2):
        metric.update(torch.from_numpy(preds[batch]), torch.from_numpy(masks[batch]),
                      torch.from_numpy(videos[batch]), torch.from_numpy(batch))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refs = [reference_scores(p, m) for p, m in zip(preds, masks, strict=True)]

    def video_value(video: int, name: str) -> float:
        frames = [refs[i] for i in np.flatnonzero(videos == video)]
        if name in ("maxF", "meanF", "maxE", "meanE"):
            curve = np.mean([ref["fcurve" if name.endswith("F") else "ecurve"] for ref in frames], axis=0)
            return curve.max() if name.startswith("max") else curve.mean()
        return (
            np.nanmean([ref[name] for ref in frames]) if any(~np.isnan([r[name] for r in frames])) else np.nan
        )

    per_video = metric.compute_per_video()
    results = metric.compute()
    for name in ("auc", "plcc", "nss", "smeasure", "mae", "adpF", "adpE", "maxF", "meanF", "maxE", "meanE"):
        expected = [video_value(v, name) for v in (0, 1, 2)]
        np.testing.assert_allclose([per_video[v][name] for v in (0, 1, 2)], expected, atol=TOL, err_msg=name)
        # the mean over videos of each video's max is meanMaxF/E; maxF/E (max of the averaged curve)
        # is checked against pysodmetrics in test_metrics_reference.py
        dataset_name = {"maxF": "meanMaxF", "maxE": "meanMaxE"}.get(name, name)
        np.testing.assert_allclose(results[dataset_name].item(), np.nanmean(expected), atol=TOL, err_msg=name)
    assert results["excluded_frames"].item() == 2
    assert [per_video[v]["excluded_frames"] for v in (0, 1, 2)] == [0, 2, 0]
    assert [per_video[v]["frames"] for v in (0, 1, 2)] == [4, 2, 2]


def _load_pysaliency_module(name: str):
    """pysaliency 0.2.22's package __init__ needs pkg_resources (gone from setuptools >= 81); its
    metrics and compiled ROC modules stand alone, so load those two files directly."""
    spec = importlib.util.find_spec("pysaliency")
    if spec is None:
        pytest.skip("pysaliency is not installed")
    folder = Path(spec.submodule_search_locations[0])
    path = next(iter(sorted(folder.glob(f"{name}*.so"))), folder / f"{name}.py")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ("noisy", "blurred", "constant", "center"))
def test_paper_metrics_match_pysaliency(kind):
    metrics = _load_pysaliency_module("metrics")
    roc = _load_pysaliency_module("roc_cython")
    masks = generated_masks()[[0, 1, 2, 3, 6, 7]]
    preds = predictions(masks, kind)
    ours = salvid_scores(preds, masks)
    for i, (pred, mask) in enumerate(zip(preds, masks, strict=True)):
        gt = mask > 127
        ys, xs = np.nonzero(gt)
        pred64 = pred.astype(np.float64)
        assert abs(ours["nss"][i] - metrics.NSS(pred64, xs, ys).mean()) < TOL
        assert abs(ours["plcc"][i] - metrics.CC(pred64, gt.astype(np.float64))) < TOL
        expected_auc = roc.general_roc(pred64[gt], pred64[~gt])[0]
        assert abs(ours["auc"][i] - expected_auc) < TOL
