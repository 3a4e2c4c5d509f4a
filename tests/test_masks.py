"""Mask loading: one binarisation rule over every image mode, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from salvid.data.errors import MaskError, SizeMismatchError
from salvid.data.masks import check_same_size, load_mask

# A 4x6 object: columns 1-3 fully on, column 4 an anti-aliased edge (200 above, 60 below half).
EXPECTED = np.zeros((4, 6), np.uint8)
EXPECTED[1:3, 1:4] = 1
EXPECTED[1, 4] = 1
GREY = np.zeros((4, 6), np.uint8)
GREY[1:3, 1:4] = 255
GREY[1, 4], GREY[2, 4] = 200, 60


def save(tmp_path, image: Image.Image, name: str = "mask.png"):
    path = tmp_path / name
    image.save(path)
    return path


def test_grey_0_255_with_antialiased_edge(tmp_path):
    mask = load_mask(save(tmp_path, Image.fromarray(GREY, "L")))
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, EXPECTED)


def test_grey_0_1_label_mask(tmp_path):
    labels = (GREY > 127).astype(np.uint8)
    np.testing.assert_array_equal(load_mask(save(tmp_path, Image.fromarray(labels, "L"))), EXPECTED)


def test_grey_with_alpha_ignores_alpha(tmp_path):
    # DAVIS-2016 has a mask saved as LA with an opaque alpha; a varying alpha must not matter either.
    alpha = np.full_like(GREY, 255)
    alpha[0] = 0
    image = Image.fromarray(np.stack([GREY, alpha], -1), "LA")
    np.testing.assert_array_equal(load_mask(save(tmp_path, image)), EXPECTED)


def test_rgb_uses_the_brightest_channel(tmp_path):
    red_object = np.zeros((4, 6, 3), np.uint8)
    red_object[..., 0] = GREY  # a red object on black: only one channel carries the mask
    np.testing.assert_array_equal(load_mask(save(tmp_path, Image.fromarray(red_object, "RGB"))), EXPECTED)


def test_rgba_ignores_alpha(tmp_path):
    rgba = np.stack([GREY, GREY, GREY, np.full_like(GREY, 255)], -1)
    rgba[0, 0, 3] = 0
    np.testing.assert_array_equal(load_mask(save(tmp_path, Image.fromarray(rgba, "RGBA"))), EXPECTED)


def test_palette_is_the_union_of_non_zero_indices(tmp_path):
    # DAVIS-2017 style: index 0 background, 1 and 2 two objects; index 1's colour is dark on purpose.
    indices = np.zeros((4, 6), np.uint8)
    indices[1:3, 1:3] = 1
    indices[1, 3:5] = 2
    indices[2, 3] = 2
    image = Image.fromarray(indices, "P")
    image.putpalette([0, 0, 0, 10, 0, 0, 0, 200, 0])
    path = save(tmp_path, image)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(load_mask(path), EXPECTED)


def test_one_bit(tmp_path):
    path = save(tmp_path, Image.fromarray(EXPECTED.astype(bool)).convert("1"))
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(load_mask(path), EXPECTED)


def test_sixteen_bit_grey(tmp_path):
    path = save(tmp_path, Image.fromarray(GREY.astype(np.uint16) * 257))
    np.testing.assert_array_equal(load_mask(path), EXPECTED)


def test_empty_mask_is_all_background(tmp_path):
    mask = load_mask(save(tmp_path, Image.fromarray(np.zeros((4, 6), np.uint8), "L")))
    assert mask.shape == (4, 6) and not mask.any()


def test_jpeg_mask_with_compression_noise(tmp_path):
    big = np.kron(GREY, np.ones((8, 8), np.uint8))
    path = tmp_path / "mask.jpg"
    Image.fromarray(big, "L").save(path, quality=75)
    np.testing.assert_array_equal(load_mask(path)[4::8, 4::8], EXPECTED)


def test_zero_byte_mask_names_the_file(tmp_path):
    path = tmp_path / "00000.png"
    path.write_bytes(b"")
    with pytest.raises(MaskError, match=r"00000\.png.*empty file"):
        load_mask(path)


def test_garbage_and_missing_masks_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(MaskError, match=r"garbage\.png"):
        load_mask(garbage)
    with pytest.raises(MaskError, match=r"missing\.png"):
        load_mask(tmp_path / "missing.png")


def test_truncated_png_names_the_file(tmp_path):
    path = save(tmp_path, Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8), "L"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MaskError, match=r"mask\.png"):
        load_mask(path)


def test_unsupported_mode_names_the_file(tmp_path):
    path = tmp_path / "mask.tiff"
    Image.fromarray(GREY.astype(np.float32)).save(path)
    with pytest.raises(MaskError, match=r"mask\.tiff.*unsupported mask mode 'F'"):
        load_mask(path)


def test_check_same_size_names_both_files():
    check_same_size("bear.mp4 frame 3", (240, 427), "bear/00003.png", (240, 427))
    with pytest.raises(SizeMismatchError, match=r"bear/00003\.png.*240x428.*bear\.mp4 frame 3.*240x427"):
        check_same_size("bear.mp4 frame 3", (240, 427), "bear/00003.png", (240, 428))
