"""What a saliency method is: clips of frames in, maps out. The network (:mod:`salvid.inference.core`), the
classical baselines and folders of precomputed maps (:mod:`salvid.baselines`) all are one, so that one loop
scores them all from one decoding pass (:mod:`salvid.inference.scoring`)."""

from __future__ import annotations

import abc

import numpy as np

Clip = list[np.ndarray]  # in_frames RGB uint8 (H, W, 3) frames, the target frame in the middle


class SaliencyMethod(abc.ABC):
    """Anything that maps clips to saliency maps: the network, a baseline, a folder of precomputed maps.

    ``in_frames`` is the clip length it needs (1: the frame alone). :meth:`predict` returns (N, H, W) float32
    maps at the frames' resolution, of any range (metrics normalise each map).
    """

    name: str
    in_frames: int = 1

    def begin_sequence(self, name: str, frame_names: list[str]) -> None:  # noqa: B027  (optional hook)
        """Called before the first batch of each sequence (a maps folder needs to know where it is)."""

    @abc.abstractmethod
    def predict(self, clips: list[Clip], frame_ids: list[int]) -> np.ndarray:
        """Maps of the centre frames of ``clips`` (frame ``frame_ids[i]`` of the current sequence)."""
