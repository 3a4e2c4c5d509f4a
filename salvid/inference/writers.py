"""Writing predicted maps: PNGs, a grey map video and a heat-map overlay video, frame by frame (PyAV)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from salvid.runtime.files import write_unsynced


def to_uint8(saliency: np.ndarray) -> np.ndarray:
    """[0, 1] float map -> (H, W) uint8."""
    return np.clip(np.rint(saliency * 255.0), 0, 255).astype(np.uint8)


def heatmap_overlay(frame: np.ndarray, saliency_u8: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The frame with the map drawn over it as a JET heat map (RGB uint8)."""
    heat = cv2.cvtColor(cv2.applyColorMap(saliency_u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(heat, alpha, frame, 1.0 - alpha, 0.0)


def encode_png(image: np.ndarray, compression: int = 1) -> bytes:
    """Grey (H, W) or RGB (H, W, 3) uint8 as PNG bytes (OpenCV's libpng), at zlib level ``compression`` (0-9).

    Every row is filtered with PNG's "up" filter (the row above subtracted) rather than libpng's per-row choice
    of five, and level 1 codes runs only (zlib's RLE strategy): a saliency map is smooth, with wide runs of
    equal values, so this is both the fastest and, at level 1, the smallest coding measured (docs/performance.md).
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    strategy = cv2.IMWRITE_PNG_STRATEGY_RLE if compression == 1 else cv2.IMWRITE_PNG_STRATEGY_DEFAULT
    # the level first: OpenCV resets the strategy when it reads the level
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression,
                                            cv2.IMWRITE_PNG_STRATEGY, strategy,
                                            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as PNG")
    return data.tobytes()


def write_png(path: Path, image: np.ndarray, compression: int = 1) -> None:
    """:func:`encode_png` into a folder published whole once complete, not yet flushed to the disk
    (:func:`salvid.runtime.files.write_unsynced`)."""
    write_unsynced(path, encode_png(image, compression))


class VideoWriter:
    """H.264 (yuv420p, playable everywhere) from RGB frames, opened on the first frame.

    yuv420p needs even sides: an odd height or width is padded by repeating the last row or column.
    Closing always finishes the file, so the frames written before an error stay playable.
    """

    def __init__(self, path: Path, fps: float, crf: int = 18):
        self.path = path
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._container is None:
            container = av.open(str(self.path), mode="w")
            try:
                stream = container.add_stream("libx264", rate=self.fps)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(self.crf)}
            except BaseException:  # nothing to finish: the caller sees this error, not one from close()
                container.close()
                self.path.unlink(missing_ok=True)
                raise
            self._container, self._stream = container, stream
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.mux(self._stream.encode())  # flush the encoder
            finally:
                container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
