"""Frames per second of the full metric set: salvid's SaliencyMetrics against sklearn + pysodmetrics.

Both sides score the same synthetic frames (elliptic masks, blurred noisy predictions) in one run
and produce the same numbers: PLCC, AUC, NSS, S-measure, max/mean/adaptive F- and E-measure, MAE.
The reference side needs the dev extras (scikit-learn, scipy, pysodmetrics).

    python -m salvid.bench.metrics [--frames 64] [--height 480] [--width 854] [--device cpu] [--threads N]

The reference side is single-threaded; ``--threads 1`` gives salvid the same share of the CPU.
``python -m salvid.bench metrics`` runs it as one section of the benchmark table.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from salvid.metrics import SaliencyMetrics

BATCH = 8
FRAMES_PER_VIDEO = 8


def synthetic_frames(
    num_frames: int, size: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 masks with one moving ellipse each, and float predictions: blurred mask plus noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    t = torch.linspace(0, 1, num_frames)[:, None, None]
    inside = ((yy - 0.3 - 0.4 * t) / 0.2) ** 2 + ((xx - 0.5) / (0.1 + 0.2 * t)) ** 2 <= 1
    masks = inside.to(torch.uint8) * 255
    kernel = torch.ones(1, 1, 15, 15) / 225
    blurred = F.conv2d(inside.float()[:, None], kernel, padding=7)[:, 0]
    preds = blurred + 0.3 * torch.rand(num_frames, h, w, generator=g)
    return preds, masks


def salvid_scores(preds, masks, videos, device: str) -> dict[str, float]:
    metric = SaliencyMetrics().to(device)
    for start in range(0, len(preds), BATCH):
        part = slice(start, start + BATCH)
        metric.update(
            preds[part].to(device), masks[part].to(device), videos[part], torch.arange(len(preds))[part]
        )
    return {name: float(value) for name, value in metric.compute().items()}


def reference_scores(preds, masks, videos) -> dict[str, float]:
    """Per frame with sklearn / scipy / numpy / pysodmetrics, averaged per video then over videos."""
    import py_sod_metrics as psm
    from scipy.stats import pearsonr
    from sklearn.metrics import roc_auc_score

    per_video: dict[int, dict[str, list]] = {}
    for pred, mask, video in zip(preds.numpy(), masks.numpy(), videos.tolist(), strict=True):
        gt = mask > 127
        x = pred.astype(np.float64)
        p = (x - x.min()) / (x.max() - x.min())
        values = per_video.setdefault(video, {"plcc": [], "auc": [], "nss": [], "sod": []})
        values["auc"].append(roc_auc_score(gt.ravel(), pred.ravel()))
        values["plcc"].append(pearsonr(x.ravel(), gt.ravel().astype(np.float64))[0])
        values["nss"].append(((x - x.mean()) / x.std())[gt].mean())
        if not values["sod"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pysodmetrics' Fmeasure class announces its deprecation
                values["sod"] = [psm.Smeasure(), psm.Fmeasure(), psm.Emeasure(), psm.MAE()]
        for measure in values["sod"]:
            measure.step(p, gt, normalize=False)
    rows, curves = [], []
    for values in per_video.values():
        sm, fm, em, mae = (m.get_results() for m in values["sod"])
        rows.append({
            "plcc": np.mean(values["plcc"]), "auc": np.mean(values["auc"]), "nss": np.mean(values["nss"]),
            "smeasure": sm["sm"], "mae": mae["mae"], "adpF": fm["fm"]["adp"], "adpE": em["em"]["adp"],
            "meanMaxF": fm["fm"]["curve"].max(), "meanMaxE": em["em"]["curve"].max(),
        })  # fmt: skip
        curves.append((fm["fm"]["curve"], em["em"]["curve"]))
    scores = {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}
    # max / mean over thresholds of the curve averaged over videos (the DAVSOD toolbox's maxF)
    f_curve, e_curve = (np.mean(c, axis=0) for c in zip(*curves, strict=True))
    scores.update(maxF=f_curve.max(), meanF=f_curve.mean(), maxE=e_curve.max(), meanE=e_curve.mean())
    return scores


def run(
    num_frames: int = 64, size: tuple[int, int] = (480, 854), device: str = "cpu", threads: int | None = None
) -> dict:
    """Time both sides on the same frames; return frames/s, their ratio and the largest score gap."""
    if threads is not None:
        torch.set_num_threads(threads)
    preds, masks = synthetic_frames(num_frames, size)
    videos = torch.arange(num_frames) // FRAMES_PER_VIDEO
    salvid_scores(preds[:BATCH], masks[:BATCH], videos[:BATCH], device)  # warm-up
    start = time.perf_counter()
    ours = salvid_scores(preds, masks, videos, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    salvid_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = reference_scores(preds, masks, videos)
    reference_seconds = time.perf_counter() - start
    return {
        "frames": num_frames,
        "size": tuple(size),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "salvid_fps": num_frames / salvid_seconds,
        "reference_fps": num_frames / reference_seconds,
        "speedup": reference_seconds / salvid_seconds,
        "max_abs_difference": max(abs(ours[name] - reference[name]) for name in reference),
    }


def bench_metrics(quick: bool, device: str) -> dict:
    """The benchmark section: 64 frames at 480x854 (``quick``: 16 at 120x214); an ``error`` entry instead when
    the reference side's packages are missing."""
    try:
        return run(16 if quick else 64, (120, 214) if quick else (480, 854), device)
    except ImportError as error:
        return {"error": f"the reference side needs the dev extras (scikit-learn, scipy, pysodmetrics): {error}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    result = run(args.frames, (args.height, args.width), args.device, args.threads)
    print(
        f"{result['frames']} frames at {result['size'][0]}x{result['size'][1]} on {result['device']} "
        f"({result['torch_threads']} torch threads)\n"
        f"  salvid SaliencyMetrics:     {result['salvid_fps']:8.1f} frames/s\n"
        f"  sklearn + pysodmetrics:     {result['reference_fps']:8.1f} frames/s\n"
        f"  speed-up:                   {result['speedup']:8.1f}x\n"
        f"  largest score difference:   {result['max_abs_difference']:.2e}"
    )


if __name__ == "__main__":
    main()
