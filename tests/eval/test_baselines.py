import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from salvid.baselines import (
    BaselineUnavailable,
    CenterPrior,
    FrameDifference,
    MapsFolder,
    MissingMapsError,
    OpenCVFineGrained,
    SpectralResidual,
)

H, W = 60, 80


def textured_background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(90, 130, (H, W)).astype(np.float32), (0, 0), 2)
    return np.repeat(noise[..., None], 3, axis=-1).astype(np.uint8)


def with_square(frame: np.ndarray, y: int, x: int, side: int = 12, colour=(230, 40, 40)) -> tuple[np.ndarray, np.ndarray]:
    frame = frame.copy()
    frame[y : y + side, x : x + side] = colour
    mask = np.zeros((H, W), bool)
    mask[y : y + side, x : x + side] = True
    return frame, mask


def auc(saliency: np.ndarray, mask: np.ndarray) -> float:
    return roc_auc_score(mask.ravel(), saliency.ravel())


def test_center_prior_ranks_centred_objects_high_and_corner_objects_low():
    prior = CenterPrior()
    centred, centred_mask = with_square(textured_background(), H // 2 - 6, W // 2 - 6)
    corner, corner_mask = with_square(textured_background(), 0, 0)
    assert auc(prior.predict([[centred]], [0])[0], centred_mask) > 0.95
    assert auc(prior.predict([[corner]], [0])[0], corner_mask) < 0.1


def test_spectral_residual_finds_a_small_distinct_object():
    frame, mask = with_square(np.full((H, W, 3), 110, np.uint8), 8, 50, side=8)
    saliency = SpectralResidual().predict([[frame]], [0])[0]
    assert saliency.shape == (H, W)
    assert auc(saliency, mask) > 0.9


def test_frame_difference_follows_the_moving_object_and_is_flat_without_motion():
    background = textured_background()
    clip, masks = zip(*(with_square(background, 20, 20 + 4 * i) for i in range(3)), strict=True)
    saliency = FrameDifference().predict([list(clip)], [1])[0]
    assert auc(saliency, masks[1]) > 0.9
    still = FrameDifference().predict([[background] * 3], [1])[0]
    assert np.abs(still).max() == 0


def test_opencv_fine_grained_runs_or_says_what_to_install():
    frame, mask = with_square(textured_background(), 20, 30)
    if not hasattr(cv2, "saliency"):
        with pytest.raises(BaselineUnavailable, match="opencv-contrib-python-headless"):
            OpenCVFineGrained()
        return
    saliency = OpenCVFineGrained().predict([[frame]], [0])[0]
    assert saliency.shape == (H, W) and auc(saliency, mask) > 0.5


def test_maps_folder_missing_frames_names_the_folder_and_frames(tmp_path):
    (tmp_path / "bear").mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "bear" / "00000.png")
    maps = MapsFolder("fang", tmp_path)
    with pytest.raises(MissingMapsError, match=r"bear.*fang.*2 of 3 annotated frames.*00001, 00002"):
        maps.check("bear", ["00000", "00001", "00002"], [0, 1, 2])
    with pytest.raises(MissingMapsError, match="leaves the maps folder"):
        maps.check("../elsewhere", ["00000"], [0])
    with pytest.raises(MissingMapsError, match="folder not found"):
        MapsFolder("lggr", tmp_path / "absent")
