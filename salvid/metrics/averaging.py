"""From per-frame scores to per-video and dataset scores.

The paper's protocol averages each metric over the frames of a video, then over videos. Frames are
first put in (video, frame) order, so that the result does not depend on how frames were split
across batches or processes, and repeated (video, frame) pairs (a DistributedSampler pads its last
batch with repeats) are counted once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def frame_order(video_ids: Tensor, frame_ids: Tensor, skip_first_last: bool) -> tuple[Tensor, int]:
    """Indices of the frames to score, in (video, frame) order, and the number of repeats dropped.

    ``skip_first_last`` drops the first and last annotated frame of each video (the DAVSOD rule).
    """
    order = torch.argsort(frame_ids, stable=True)
    order = order[torch.argsort(video_ids[order], stable=True)]
    videos, frames = video_ids[order], frame_ids[order]
    first = torch.ones_like(videos, dtype=torch.bool)
    first[1:] = (videos[1:] != videos[:-1]) | (frames[1:] != frames[:-1])
    order, videos, frames = order[first], videos[first], frames[first]
    repeats = int((~first).sum())
    if skip_first_last:
        new_video = torch.ones_like(videos, dtype=torch.bool)
        new_video[1:] = videos[1:] != videos[:-1]
        last_of_video = torch.roll(new_video, -1)
        order = order[~(new_video | last_of_video)]
    return order, repeats


def video_means(values: Tensor, video_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean over each video's defined (non-NaN) frames.

    ``values`` is (F,) or (F, K) in frame order. Returns the sorted video ids, the means (NaN for a
    video with no defined frame) and the number of defined frames per video.
    """
    videos, inverse = torch.unique(video_ids, sorted=True, return_inverse=True)
    defined = ~torch.isnan(values)
    shape = (len(videos), *values.shape[1:])
    sums = torch.zeros(shape, dtype=torch.float64, device=values.device)
    sums.index_add_(0, inverse, torch.where(defined, values.double(), 0.0))
    counts = torch.zeros(shape, dtype=torch.float64, device=values.device)
    counts.index_add_(0, inverse, defined.double())
    return videos, sums / counts, counts


def average(values: Tensor, video_ids: Tensor, over: str) -> Tensor:
    """Mean over videos of the per-video means (``over="video"``) or over all defined frames."""
    if over == "frame":
        return values.double().nanmean(dim=0)
    return video_means(values, video_ids)[1].nanmean(dim=0)
