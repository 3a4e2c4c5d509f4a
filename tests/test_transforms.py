"""The training augmentation: one set of random parameters per clip, its strength set by ``data.augment``."""

import cv2
import numpy as np
import pytest
import torch

from salvid.data.preprocess import halvings, normalise, normalise_frame, resize_frame
from salvid.data.transforms import Augmentation, ClipTransform
from salvid.errors import ConfigError
from tests.helpers.train_cli import compose_config


def _clip(seed=0):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    return frames, mask


def test_every_frame_and_the_mask_get_the_same_crop_and_flip():
    frames, mask = _clip()
    frames = [frames[0]] * 3  # identical frames stay identical: no frame gets parameters of its own
    out, out_mask = ClipTransform((32, 48), train=True)(frames, mask, seed=3)
    assert all(np.array_equal(out[0], f) for f in out[1:])
    assert out[0].shape == (32, 48, 3) and out_mask.shape == (32, 48)


def test_no_augmentation_is_a_plain_resize_and_the_default_is_not():
    frames, mask = _clip()
    plain = ClipTransform((32, 48), train=False)(frames, mask)
    off = ClipTransform((32, 48), train=True, augment=Augmentation(min_scale=1.0, flip=0.0, colour=0.0))
    seen = [off(frames, mask, seed=s) for s in range(5)]
    for out, out_mask in seen:  # full-frame crops at the output's aspect ratio: the plain resize, up to rounding
        assert np.abs(out[1].astype(int) - plain[0][1]).mean() < 12 and out_mask.shape == plain[1].shape
    default = ClipTransform((32, 48), train=True)
    drawn = [default(frames, mask, seed=s)[0][1] for s in range(5)]
    assert any(np.abs(d.astype(int) - plain[0][1]).mean() > 20 for d in drawn)


def test_stronger_crops_zoom_in_further():
    frames, mask = _clip()
    frames = [np.zeros((48, 64, 3), np.uint8)] * 3
    kept = {}
    for min_scale in (1.0, 0.3):
        t = ClipTransform((48, 64), train=True, augment=Augmentation(min_scale=min_scale, flip=0.0, colour=0.0))
        kept[min_scale] = np.mean([(t(frames, mask, seed=s)[1] > 0).mean() for s in range(40)])
    assert kept[0.3] > 1.5 * kept[1.0]  # the object fills more of the crop on average


def test_zoom_out_shrinks_frames_and_mask_together_onto_a_black_canvas():
    _, mask = _clip()
    frames = [np.full((48, 64, 3), 200, np.uint8)] * 3  # a bright frame: the canvas shows as black
    kept, shrunk = {}, {}
    for zoom_out in (1.0, 3.0):
        t = ClipTransform((48, 64), train=True,
                          augment=Augmentation(min_scale=1.0, flip=0.0, colour=0.0, zoom_out=zoom_out))
        outs = [t(frames, mask, seed=s) for s in range(40)]
        kept[zoom_out] = np.mean([(m > 0).mean() for _, m in outs])
        shrunk[zoom_out] = 0
        for out, out_mask in outs:
            assert all(f.shape == (48, 64, 3) for f in out) and out_mask.shape == (48, 64)
            assert all(np.array_equal(out[0], f) for f in out[1:])  # one placement for every frame
            canvas = out[0].max(axis=2) == 0
            assert not (out_mask > 0)[canvas].any()  # the mask moved with the frames: none of it on the canvas
            shrunk[zoom_out] += bool(canvas.any())
    assert shrunk[1.0] == 0 and 10 <= shrunk[3.0] <= 30  # about half the clips, and only with zoom_out > 1
    places = {(t(frames, mask, seed=s)[0][0].max(axis=2) > 0).tobytes() for s in range(40)}
    assert len(places) > 5  # shrunk by different factors to different places
    assert all(np.array_equal(a, b) for a, b in zip(t(frames, mask, seed=7)[0], t(frames, mask, seed=7)[0], strict=True))
    assert kept[3.0] < 0.8 * kept[1.0]  # the object covers less of the input on average


def _checkerboard(h, w):
    y, x = np.mgrid[:h, :w]
    return np.repeat((((x + y) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize(("shape", "expected"), [((480, 854), 1), ((1080, 1920), 2), ((447, 854), 0),
                                                 ((240, 427), 0), ((2160, 3840), 3)])
def test_a_frame_is_halved_while_it_stays_at_least_the_input_size(shape, expected):
    assert halvings(shape, (224, 384)) == expected


def test_a_frame_over_twice_the_input_is_averaged_before_the_bilinear_resize():
    fine = _checkerboard(480, 854)  # the finest texture there is: its proper shrunk image is flat grey
    bilinear = cv2.resize(fine, (384, 224), interpolation=cv2.INTER_LINEAR)
    assert bilinear.std() > 30  # bilinear alone skips pixels: a moire pattern
    out = resize_frame(fine, (224, 384))
    assert out.shape == (224, 384, 3) and out.std() < 1 and abs(out.mean() - 127.5) < 1


def test_a_frame_under_twice_the_input_size_is_resized_bilinearly_as_it_is():
    frame = np.random.default_rng(0).integers(0, 256, (447, 767, 3), dtype=np.uint8)
    assert np.array_equal(resize_frame(frame, (224, 384)),
                          cv2.resize(frame, (384, 224), interpolation=cv2.INTER_LINEAR))


def test_training_crops_a_large_frame_at_the_scale_inference_sees_it():
    rng = np.random.default_rng(1)
    large = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(3)]
    mask = np.zeros((96, 128), np.uint8)
    mask[21:61, 41:81] = 255  # odd edges: the pixel at a block's centre and at its corner differ
    halved = [cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in large]
    t = ClipTransform((32, 48), train=True)
    for seed in range(5):  # the same crops of the frames averaged to half their size
        out, out_mask = t(large, mask, seed=seed)
        ref, ref_mask = t(halved, mask[1::2, 1::2], seed=seed)  # the centre of each averaged 2x2 block
        assert all(np.array_equal(a, b) for a, b in zip(out, ref, strict=True))
        assert np.array_equal(out_mask, ref_mask)
    fine = [_checkerboard(96, 128)] * 3
    assert ClipTransform((32, 48), train=True, augment=Augmentation(min_scale=1.0, colour=0.0))(
        fine, mask, seed=0)[0][0].std() < 1


@pytest.mark.parametrize(("override", "expected"), [
    ("data.augment.min_scale=0", r"data\.augment\.min_scale=0(\.0)?: must be > 0"),
    ("data.augment.colour=1.5", r"data\.augment\.colour=1\.5: must be <= 1"),
    ("data.augment.zoom_out=0.5", r"data\.augment\.zoom_out=0\.5: must be >= 1"),
    ("+data.augment.blur=1", r"data\.augment\.blur"),
])
def test_bad_augmentation_keys_are_refused_naming_the_key(override, expected):
    from salvid.training.fit import check_config

    with pytest.raises(ConfigError, match=expected):
        check_config(compose_config(["+experiment=pretrain_fusion3d", "data.root=somewhere", override]))


def test_the_inference_normalisation_by_table_is_bit_for_bit_the_training_one():
    """Every level of every channel, and a frame of an odd size: the table lookup gives exactly the floats of
    normalise(), laid out channels last."""
    levels = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)[..., [0, 1, 0]]
    frames = [levels.astype(np.uint8), np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)]
    for frame in frames:
        table = normalise_frame(frame)
        assert table.dtype == np.float32 and table.shape == frame.shape
        np.testing.assert_array_equal(table, normalise(torch.from_numpy(frame)).movedim(-3, -1).numpy())
