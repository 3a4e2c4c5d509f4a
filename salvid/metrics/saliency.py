"""torchmetrics classes: per-frame scores are kept with their (video, frame) ids, averaged in compute.

Keeping per-frame values as "cat" states (a few bytes per frame, plus two 256-bin histograms for the
curve measures) makes the per-video averages under DDP identical to a single-process run, and lets
compute() apply the per-video protocol and the DAVSOD first/last-frame rule after the fact.

Which frames count for which metric, and the two max-F / max-E variants, are set out in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from salvid.metrics import functional as F
from salvid.metrics.averaging import average, frame_order, video_means

METRICS = ("plcc", "auc", "nss", "smeasure", "fmeasure", "mae", "emeasure")
AVERAGES = ("video", "frame")  # one mean per video, then over videos (the paper's protocol); or over all frames
# per-frame values stored for each metric; the F/E-measure curves are rebuilt from the histograms
_FRAME_VALUES = {
    "plcc": ("plcc",),
    "auc": ("auc",),
    "nss": ("nss",),
    "smeasure": ("smeasure",),
    "fmeasure": ("adpF",),
    "mae": ("mae",),
    "emeasure": ("adpE",),
}
_UNDEFINED_WITHOUT_MASK = ("plcc", "nss", "auc")  # NaN on an empty mask; such frames are counted
_NEEDS_UNIT_RANGE = ("smeasure", "fmeasure", "mae", "emeasure")
_FROM_SUMS = {
    "plcc": F.plcc_from_sums,
    "nss": F.nss_from_sums,
    "mae": F.mae_from_sums,
    "smeasure": F.smeasure_from_sums,
}
_CURVE_MEASURES = {"fmeasure": ("F", F.fmeasure_curve), "emeasure": ("E", F.emeasure_curve)}
DEFAULT_VIDEO = 0  # the video of frames passed without video ids


class SaliencyMetrics(Metric):
    """The paper's PLCC / AUC / NSS and the VSOD set (S-, F-, E-measure, MAE) over a video dataset.

    Args:
        metrics: names from ``METRICS``.
        average: ``"video"`` (mean over each video's frames, then over videos: the paper's protocol)
            or ``"frame"`` (mean over all frames).
        normalize: min-max normalise each predicted frame to [0, 1]; if False, predictions must
            already lie in [0, 1].
        skip_first_last: drop the first and last annotated frame of each video (the DAVSOD rule).

    ``update(preds, target, video_ids=None, frame_ids=None)``: ``preds`` (N, 1, H, W) or (N, H, W) of
    any float range, resized bilinearly to the target's size when it differs; ``target`` (N, H, W) or
    (N, 1, H, W), uint8 0..255 or bool/float 0..1; ids are (N,) integers.

    Without ``video_ids`` every frame belongs to one video (``DEFAULT_VIDEO``), so ``average="video"``
    gives the frame averages (``meanMaxF``/``meanMaxE`` aside: one video's maximum). Without ``frame_ids`` frames are numbered in the order they arrive
    (under DDP, rank r's k-th frame is number k * world_size + r, which is the dataset index under an
    unshuffled DistributedSampler); such frames are never repeats of one another, so the padding a
    DistributedSampler adds is only dropped when ids are given. Pass frame ids on every call or on none.

    ``maxF`` / ``maxE`` are the maximum over thresholds of the averaged curve (the DAVSOD toolbox and
    pysodmetrics); ``meanMaxF`` / ``meanMaxE`` average each video's (``average="frame"``: each
    frame's) own maximum instead, so they are never lower.
    """

    full_state_update = False
    is_differentiable = False

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
        average: str = "video",
        normalize: bool = True,
        skip_first_last: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        unknown = set(metrics) - set(METRICS)
        if unknown or not metrics:
            raise ValueError(f"metrics must be a non-empty subset of {METRICS}, got {tuple(metrics)}")
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        self.metrics = tuple(metrics)
        self.average = average
        self.normalize = normalize
        self.skip_first_last = skip_first_last
        self.keeps_histograms = bool({"auc", "fmeasure", "emeasure"} & set(self.metrics))
        self.add_state("video_ids", default=[], dist_reduce_fx="cat")
        self.add_state("frame_ids", default=[], dist_reduce_fx="cat")
        for name in self._value_names():
            self.add_state(name, default=[], dist_reduce_fx="cat")
        if self.keeps_histograms:
            self.add_state("histograms", default=[], dist_reduce_fx="cat")
        # numbering of frames passed without ids; never reset, since only uniqueness and order matter,
        # and forward() resets the states around each batch
        self._arrivals = 0
        self._frame_ids_given: bool | None = None

    def _value_names(self) -> list[str]:
        return [value for name in self.metrics for value in _FRAME_VALUES[name]]

    def update(
        self, preds: Tensor, target: Tensor, video_ids: Tensor | None = None, frame_ids: Tensor | None = None
    ) -> None:
        raw = F.as_frames(preds)
        target = F.as_frames(target)
        video_ids = (
            torch.full((len(raw),), DEFAULT_VIDEO, device=self.device)
            if video_ids is None
            else torch.as_tensor(video_ids, device=self.device).long().flatten()
        )
        self._check_frame_id_use(given=frame_ids is not None)
        frame_ids = (
            self._arrival_ids(len(raw))
            if frame_ids is None
            else torch.as_tensor(frame_ids, device=self.device).long().flatten()
        )
        if not (len(raw) == len(target) == len(video_ids) == len(frame_ids)):
            raise ValueError(
                f"batch sizes differ: preds {len(raw)}, target {len(target)}, "
                f"video_ids {len(video_ids)}, frame_ids {len(frame_ids)}"
            )
        self._check_finite(raw, video_ids, frame_ids)
        raw = F.resize_to_target(raw.float(), target.shape[-2:])
        gt = F.binarize_target(target)
        pred = (
            F.normalize_prediction(raw)
            if self.normalize
            else self._checked_unit_range(raw, video_ids, frame_ids)
        )

        values = {}
        if {"plcc", "nss", "mae", "smeasure"} & set(self.metrics):
            sums = F.block_sums(pred, gt)  # one pass over the pixels for these four
            for name, from_sums in _FROM_SUMS.items():
                if name in self.metrics:
                    values[name] = from_sums(sums)
        if "auc" in self.metrics:
            values["auc"] = F.auc(raw, gt).to(self.device)
        if {"fmeasure", "emeasure"} & set(self.metrics):
            counts = F.adaptive_counts(pred, gt)
            if "fmeasure" in self.metrics:
                values["adpF"] = F.fmeasure_from_counts(*counts)
            if "emeasure" in self.metrics:
                values["adpE"] = F.emeasure_from_counts(*counts, gt[0].numel())
        for name, value in values.items():
            getattr(self, name).append(value)
        if self.keeps_histograms:
            self.histograms.append(F.threshold_histograms(pred, gt))
        self.video_ids.append(video_ids)
        self.frame_ids.append(frame_ids)

    def _check_frame_id_use(self, given: bool) -> None:
        """Numbered frames must not meet given ones: their numbers could repeat a given id."""
        stored = any(len(ids) for ids in self.frame_ids)
        if stored and self._frame_ids_given is not None and self._frame_ids_given != given:
            now, before = ("given", "missing") if given else ("missing", "given")
            raise ValueError(
                f"{type(self).__name__}.update: frame_ids {now} on this call but {before} on earlier ones; "
                "frames numbered in arrival order could repeat a given id (pass frame_ids on every call or on "
                "none, or call reset() first)"
            )
        self._frame_ids_given = given

    def _arrival_ids(self, n: int) -> Tensor:
        rank, world = 0, 1
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(self.process_group), dist.get_world_size(self.process_group)
        ids = (self._arrivals + torch.arange(n, device=self.device)) * world + rank
        self._arrivals += n
        return ids

    @staticmethod
    def _check_finite(pred: Tensor, video_ids: Tensor, frame_ids: Tensor) -> None:
        bad = F.nonfinite_frames(pred)
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"prediction for video {int(video_ids[i])} frame {int(frame_ids[i])} contains NaN or Inf "
                f"({len(bad)} such frame(s) in this batch)"
            )

    def _checked_unit_range(self, pred: Tensor, video_ids: Tensor, frame_ids: Tensor) -> Tensor:
        if set(self.metrics) & set(_NEEDS_UNIT_RANGE) or self.keeps_histograms:
            flat = pred.flatten(1)
            outside = torch.nonzero((flat.amin(dim=1) < 0) | (flat.amax(dim=1) > 1)).flatten()
            if len(outside):
                i = int(outside[0])
                raise ValueError(
                    f"prediction for video {int(video_ids[i])} frame {int(frame_ids[i])} is outside [0, 1] "
                    "and normalize=False"
                )
        return pred.double()

    def _ordered_states(self) -> tuple[dict[str, Tensor], Tensor, int]:
        """Per-frame states in (video, frame) order after the frame selection, and the repeats dropped.

        Call with the states synced across processes: compute() syncs them itself, the other readers
        use ``self.sync_context()``.
        """
        video_ids = dim_zero_cat(self.video_ids)
        order, repeats = frame_order(video_ids, dim_zero_cat(self.frame_ids), self.skip_first_last)
        names = self._value_names() + (["histograms"] if self.keeps_histograms else [])
        states = {name: dim_zero_cat(getattr(self, name))[order] for name in names}
        return states, video_ids[order], repeats

    def _excluded(self, states: dict[str, Tensor], reference: Tensor) -> Tensor:
        excluded = torch.zeros_like(reference, dtype=torch.bool)
        for name in _UNDEFINED_WITHOUT_MASK:
            if name in states:
                excluded |= torch.isnan(states[name])
        return excluded

    def compute(self) -> dict[str, Tensor]:
        states, video_ids, repeats = self._ordered_states()
        results = {name: average(states[name], video_ids, self.average) for name in self._value_names()}
        if self.keeps_histograms:
            results.update(self._curve_summaries(states["histograms"], video_ids))
        results["excluded_frames"] = self._excluded(states, video_ids).sum()
        results["duplicate_frames"] = torch.tensor(repeats, device=self.device)
        return {name: results[name] for name in self._result_names()}

    def _result_names(self) -> list[str]:
        names = []
        for name in self.metrics:
            if name == "fmeasure":
                names += ["maxF", "meanF", "adpF", "meanMaxF"]
            elif name == "emeasure":
                names += ["maxE", "meanE", "adpE", "meanMaxE"]
            else:
                names.append(name)
        return names + ["excluded_frames", "duplicate_frames"]

    def _unit_curves(self, curves: Tensor, video_ids: Tensor) -> Tensor:
        """(U, T) curves of the averaging units: each video's mean curve, or each frame's curve."""
        if self.average == "frame":
            return curves
        return video_means(curves, video_ids)[1]

    def _averaged_curve(self, curves: Tensor, video_ids: Tensor) -> Tensor:
        """(T,) mean curve over the averaging units; NaN points (ROC of a one-class frame) are left out."""
        return self._unit_curves(curves, video_ids).nanmean(dim=0)

    def _curve_summaries(self, histograms: Tensor, video_ids: Tensor) -> dict[str, Tensor]:
        """F and E: max and mean over thresholds of the averaged curve, and the mean of each unit's max."""
        out = {}
        for name, (suffix, curve_fn) in _CURVE_MEASURES.items():
            if name in self.metrics:
                units = self._unit_curves(curve_fn(histograms), video_ids)
                curve = units.mean(dim=0)
                out[f"max{suffix}"] = curve.amax()
                out[f"mean{suffix}"] = curve.mean()
                out[f"meanMax{suffix}"] = units.amax(dim=-1).mean()
        return out

    def compute_per_video(self) -> dict[int, dict[str, float]]:
        """Each video's metrics (means over its frames) with its scored and excluded frame counts."""
        with self.sync_context():
            states, video_ids, _ = self._ordered_states()
        videos, _, frames = video_means(torch.zeros_like(video_ids, dtype=torch.float64), video_ids)
        per_video = {name: video_means(states[name], video_ids)[1] for name in self._value_names()}
        for name, (suffix, curve_fn) in _CURVE_MEASURES.items():
            if name in self.metrics:
                curve = video_means(curve_fn(states["histograms"]), video_ids)[1]
                per_video[f"max{suffix}"] = curve.amax(dim=-1)
                per_video[f"mean{suffix}"] = curve.mean(dim=-1)
        excluded = video_means(self._excluded(states, video_ids).double(), video_ids)[1] * frames
        names = [name for name in self._result_names() if name in per_video]
        return {
            int(video): {
                **{name: float(per_video[name][i]) for name in names},
                "frames": int(frames[i]),
                "excluded_frames": int(excluded[i]),
            }
            for i, video in enumerate(videos.tolist())
        }

    def frame_values(self, name: str) -> tuple[Tensor, Tensor, Tensor]:
        """``(video_ids, frame_ids, values)`` of one per-frame value (``smeasure``, ``mae``, ``plcc``, ``nss``,
        ``auc``, ``adpF``, ``adpE``) for the frames :meth:`compute` averages, in (video, frame) order: the
        scores behind the means, kept anyway, so finding a method's worst frames costs nothing more."""
        if name not in self._value_names():
            raise ValueError(f"frame_values: {name!r} is not kept here (kept: {self._value_names()})")
        with self.sync_context():
            video_ids, frame_ids = dim_zero_cat(self.video_ids), dim_zero_cat(self.frame_ids)
            order, _ = frame_order(video_ids, frame_ids, self.skip_first_last)
            values = dim_zero_cat(getattr(self, name))[order]
        return video_ids[order], frame_ids[order], values

    def curves(self) -> dict[str, Tensor]:
        """Mean curves over thresholds 0..255 of ``floor(255 * pred)``, averaged like the scalars.

        ``fpr``/``tpr`` (ROC, when "auc" is computed; frames with an empty class are left out),
        ``precision``/``recall``/``fmeasure`` (when "fmeasure" is), ``emeasure`` (when "emeasure" is).
        """
        if not self.keeps_histograms:
            raise ValueError("curves need one of 'auc', 'fmeasure' or 'emeasure' among the metrics")
        with self.sync_context():
            states, video_ids, _ = self._ordered_states()
        histograms = states["histograms"]
        curves: dict[str, Tensor] = {"thresholds": torch.arange(F.NUM_THRESHOLDS, device=self.device)}
        if "auc" in self.metrics:
            curves["fpr"], curves["tpr"] = F.roc_curve(histograms)
        if "fmeasure" in self.metrics:
            curves["precision"], curves["recall"] = F.precision_recall_curves(histograms)
            curves["fmeasure"] = F.fmeasure_curve(histograms)
        if "emeasure" in self.metrics:
            curves["emeasure"] = F.emeasure_curve(histograms)
        for name in curves.keys() - {"thresholds"}:
            curves[name] = self._averaged_curve(curves[name], video_ids)
        return curves


class _OneMetric(SaliencyMetrics):
    """SaliencyMetrics restricted to one metric; compute() returns that metric's value(s) only."""

    name: str
    outputs: tuple[str, ...]

    def __init__(
        self, average: str = "video", normalize: bool = True, skip_first_last: bool = False, **kwargs
    ):
        super().__init__((self.name,), average, normalize, skip_first_last, **kwargs)

    def compute(self) -> Tensor | dict[str, Tensor]:
        results = super().compute()
        if len(self.outputs) == 1:
            return results[self.outputs[0]]
        return {name: results[name] for name in self.outputs}


class PLCC(_OneMetric):
    """Pearson correlation of map and mask (paper eq. 3); undefined on empty or full masks."""

    name, outputs, higher_is_better = "plcc", ("plcc",), True


class NSS(_OneMetric):
    """Normalized scanpath saliency over the mask's pixels (paper eq. 6); undefined on empty masks."""

    name, outputs, higher_is_better = "nss", ("nss",), True


class AUC(_OneMetric):
    """Exact pixel-level ROC AUC (paper eqs. 4-5); undefined on empty or full masks."""

    name, outputs, higher_is_better = "auc", ("auc",), True


class MAE(_OneMetric):
    """Mean absolute error of the [0, 1] map against the binary mask."""

    name, outputs, higher_is_better = "mae", ("mae",), False


class SMeasure(_OneMetric):
    """Structure measure, alpha = 0.5."""

    name, outputs, higher_is_better = "smeasure", ("smeasure",), True


class FMeasure(_OneMetric):
    """Max and mean over 256 thresholds of the averaged curve, adaptive F-measure and the mean of
    each video's max (``meanMaxF``), beta^2 = 0.3."""

    name, outputs, higher_is_better = "fmeasure", ("maxF", "meanF", "adpF", "meanMaxF"), True


class EMeasure(_OneMetric):
    """Max and mean over 256 thresholds of the averaged curve, adaptive enhanced-alignment measure and
    the mean of each video's max (``meanMaxE``)."""

    name, outputs, higher_is_better = "emeasure", ("maxE", "meanE", "adpE", "meanMaxE"), True
