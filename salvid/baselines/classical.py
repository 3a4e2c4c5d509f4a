"""Classical saliency baselines: no training, one frame (or three for motion) in, a map out."""

from __future__ import annotations

import cv2
import numpy as np

from salvid.methods import Clip, SaliencyMethod


class BaselineUnavailable(RuntimeError):
    """A baseline cannot run in this environment; the message says why and how to enable it."""


class _PerFrame(SaliencyMethod):
    """A method computed clip by clip."""

    def predict(self, clips: list[Clip], frame_ids: list[int]) -> np.ndarray:
        return np.stack([self.map(clip) for clip in clips]).astype(np.float32)

    def map(self, clip: Clip) -> np.ndarray:
        raise NotImplementedError


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


class CenterPrior(_PerFrame):
    """A Gaussian centred on the frame, standard deviation ``sigma`` times the frame's height and width.

    Objects in hand-held video sit near the centre, so this image-independent map is a strong floor.
    """

    name = "center_prior"

    def __init__(self, sigma: float = 0.25):
        if sigma <= 0:
            raise ValueError(f"center_prior sigma={sigma}: must be > 0")
        self.sigma = sigma
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def map(self, clip: Clip) -> np.ndarray:
        h, w = clip[0].shape[:2]
        if (h, w) not in self._cache:
            y = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
            x = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
            self._cache[(h, w)] = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * self.sigma**2))
        return self._cache[(h, w)]


class FrameDifference(_PerFrame):
    """Motion saliency: |I_t - I_{t-1}| + |I_{t+1} - I_t| of blurred grey frames, then smoothed.

    No motion compensation, so camera motion lights up textured background too.
    """

    name = "frame_difference"
    in_frames = 3

    def __init__(self, blur_sigma: float = 0.02):
        self.blur_sigma = blur_sigma  # fraction of the shorter frame side

    def map(self, clip: Clip) -> np.ndarray:
        prev, cur, nxt = (cv2.GaussianBlur(_gray(f), (5, 5), 0) for f in clip)
        diff = np.abs(cur - prev) + np.abs(nxt - cur)
        sigma = max(1.0, self.blur_sigma * min(cur.shape))
        return cv2.GaussianBlur(diff, (0, 0), sigma)


class SpectralResidual(_PerFrame):
    """Hou & Zhang, "Saliency Detection: A Spectral Residual Approach", CVPR 2007.

    On the grey frame resized to ``width`` pixels wide: the log amplitude spectrum minus its 3x3 local mean
    is the residual; back with the original phase, squared, Gaussian-smoothed (``sigma`` pixels at that
    width), and resized to the frame.
    """

    name = "spectral_residual"

    def __init__(self, width: int = 64, sigma: float = 3.0):
        self.width = width
        self.sigma = sigma

    def map(self, clip: Clip) -> np.ndarray:
        frame = clip[len(clip) // 2]
        h, w = frame.shape[:2]
        small_h = max(1, round(h * self.width / w))
        gray = cv2.resize(_gray(frame), (self.width, small_h), interpolation=cv2.INTER_AREA)
        spectrum = np.fft.fft2(gray)
        log_amplitude = np.log(np.abs(spectrum) + 1e-8)
        residual = log_amplitude - cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REPLICATE)
        saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
        saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), self.sigma)
        return cv2.resize(saliency, (w, h), interpolation=cv2.INTER_LINEAR)


class OpenCVFineGrained(_PerFrame):
    """OpenCV's fine-grained static saliency (Montabone & Soto 2010); needs ``opencv-contrib``."""

    name = "opencv_fine_grained"

    def __init__(self):
        if not hasattr(cv2, "saliency"):
            raise BaselineUnavailable(
                f"opencv_fine_grained needs OpenCV's contrib modules (cv2 {cv2.__version__} has no cv2.saliency): "
                "pip install opencv-contrib-python-headless (replacing opencv-python-headless)"
            )
        self._detector = cv2.saliency.StaticSaliencyFineGrained_create()

    def map(self, clip: Clip) -> np.ndarray:
        frame = clip[len(clip) // 2]
        ok, saliency = self._detector.computeSaliency(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("cv2.saliency.StaticSaliencyFineGrained failed on a frame")
        return saliency.astype(np.float32)
