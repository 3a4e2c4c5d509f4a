"""``prepare small-objects``: each sequence's object, shrunk, in a camera view panning over the next sequence's
first frame, whose own object is removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salvid import prepare as prepare_module
from salvid.data.acquire.small_objects import panned_views, paste_places, paste_small
from salvid.data.layouts import list_sequences
from tests.helpers.layout_fixtures import save
from tests.helpers.prepare_cli import run_main

SIZE = (80, 120)  # the view: 64x96 at rows 8:72; at --scale 0.625 a frame is pasted at 40x60 (half its size)
RED, GREEN, YELLOW, BLUE = (230, 20, 20), (20, 230, 20), (230, 230, 20), (20, 20, 180)
RAMP = np.repeat(np.repeat((2 * np.arange(SIZE[1]))[None, :, None], SIZE[0], 0), 3, 2).astype(np.uint8)
# per sequence: first frame name, frame count, background of the first frame, object colour, object box (rows,
# cols). apple's box has odd edges: its edge pixels at half size are half covered, its corners a quarter
APPLE_BOX = (slice(21, 59), slice(31, 91))
SEQUENCES = {
    "apple": (10, 3, (110, 110, 110), RED, APPLE_BOX),
    "grass": (0, 2, RAMP, GREEN, (slice(10, 30), slice(10, 40))),
    "cherry": (0, 2, BLUE, YELLOW, (slice(40, 60), slice(60, 80))),
}


def _davis(root: Path) -> Path:
    for name, (first, count, background, colour, box) in SEQUENCES.items():
        for i in range(count):
            image = np.empty((*SIZE, 3), np.uint8)
            image[:] = background if i == 0 else (250, 250, 250)  # only the first frame is the scene
            image[box] = colour
            mask = np.zeros(SIZE, np.uint8)
            mask[box] = 255
            save(image, root / "JPEGImages" / "480p" / name / f"{first + i:05d}.jpg", quality=98)
            save(mask, root / "Annotations" / "480p" / name / f"{first + i:05d}.png")
    return root


def test_small_objects_pastes_each_object_shrunk_in_the_next_sequences_panned_scene(tmp_path, capsys):
    src = _davis(tmp_path / "DAVIS")
    prepare_module.main(["small-objects", "--root", str(src), "--out", str(tmp_path / "small"), "--scale", "0.625",
                         "--sequences", "apple,grass,cherry"])
    out = capsys.readouterr().out
    assert "wrote apple-on-grass (3 frames, 0 with an empty mask)" in out and "3 small-object clips" in out
    clips = {seq.name: seq for seq in list_sequences("davis2016", tmp_path / "small", "all", resolution="480p")}
    assert sorted(clips) == ["apple-on-grass", "cherry-on-apple", "grass-on-cherry"]  # the order given, wrapped
    clip = clips["apple-on-grass"]
    assert [p.name for p in clip.frames] == ["00010.jpg", "00011.jpg", "00012.jpg"]  # the pasted sequence's

    # apple's box rows 21:59, cols 31:91 at half size: rows 10:30, cols 15:46, whose edge pixels are half covered
    # (kept) and corners a quarter (left out); centred in the 64x96 view at (12, 18)
    expected = np.zeros((64, 96), np.uint8)
    expected[22:42, 33:64] = 1
    expected[[22, 22, 41, 41], [33, 63, 33, 63]] = 0
    for i, (image, left) in enumerate(zip(clip.open().read(range(3)), (0, 12, 24), strict=True)):
        assert image.shape == (64, 96, 3)
        np.testing.assert_array_equal(clip.salient_mask(i), expected)
        assert np.abs(image[26:38, 37:60].reshape(-1, 3).astype(int) - RED).max() < 25
        # the camera pans over grass's first frame: its ramp, 2 grey levels a column, moves 12 columns a frame
        np.testing.assert_allclose(image[50, [5, 30, 90], 0], 2 * (np.array([5, 30, 90]) + left), atol=4)
        # the half-covered left edge blends half of the shrunk edge (red and grey) with the scene
        apple_background = 110 if i == 0 else 250
        edge_red = (RED[0] + apple_background) / 2 / 2 + 2 * (33 + left) / 2
        assert abs(int(image[31, 33, 0]) - edge_red) < 25  # a hard edge: 50 away
        rest = image[expected == 0].astype(int)
        assert (rest[:, 1] - rest[:, 0] > 30).sum() == 0  # grass's own green object is gone, rim and all

    # cherry's yellow box in apple's scene: apple's red box is gone everywhere
    image = clips["cherry-on-apple"].open().read([0])[0]
    assert (image[..., 0].astype(int) - image[..., 1] > 60).sum() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DAVIS", "small"]  # no partial folder left


def test_the_camera_pans_from_the_left_edge_to_the_right_edge_at_a_constant_speed():
    scene = np.arange(80 * 120).reshape(80, 120)
    views = panned_views(scene, 3)
    for view, left in zip(views, (0, 12, 24), strict=True):
        np.testing.assert_array_equal(view, scene[8:72, left:left + 96])


def test_a_travelling_object_crosses_the_view_from_left_to_right_at_a_constant_speed(tmp_path):
    src = _davis(tmp_path / "DAVIS")
    prepare_module.main(["small-objects", "--root", str(src), "--out", str(tmp_path / "small"), "--scale", "0.625",
                         "--sequences", "apple,grass", "--travel", "1"])
    clip = {seq.name: seq for seq in list_sequences("davis2016", tmp_path / "small", "all", resolution="480p")}[
        "apple-on-grass"]
    # the 60-column paste has 36 columns of room in the 96-column view: at its left edge, centre, right edge
    centred = np.zeros((64, 96), np.uint8)
    centred[22:42, 33:64] = 1
    centred[[22, 22, 41, 41], [33, 63, 33, 63]] = 0
    for i, (image, shift) in enumerate(zip(clip.open().read(range(3)), (-18, 0, 18), strict=True)):
        np.testing.assert_array_equal(clip.salient_mask(i), np.roll(centred, shift, axis=1))
        assert np.abs(image[26:38, 37 + shift:60 + shift].reshape(-1, 3).astype(int) - RED).max() < 25


def test_paste_places_cross_the_middle_of_the_room_at_a_constant_speed():
    np.testing.assert_allclose(paste_places(0.0, 3), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(paste_places(1.0, 3), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(paste_places(0.5, 5), [0.25, 0.375, 0.5, 0.625, 0.75])
    np.testing.assert_allclose(paste_places(1.0, 1), [0.5])


def test_a_paste_with_an_odd_room_is_centred_rounding_down_and_reaches_both_edges():
    background = np.zeros((6, 11, 3), np.uint8)  # a 4-column paste leaves 7 columns of room
    frame, mask = np.full((30, 55, 3), 200, np.uint8), np.ones((30, 55), np.uint8)
    for place, left in ((0.0, 0), (0.5, 3), (1.0, 7)):
        composite, target = paste_small(background, frame, mask, 4 / 11, place)
        columns = np.flatnonzero(target.any(0))
        assert columns.tolist() == list(range(left, left + 4))
        assert (composite[..., 0] > 0).any(0).nonzero()[0].tolist() == columns.tolist()


REFUSALS = {
    "scale": (["--scale", "1.5"], "--scale 1.5: must be between 0 and 1"),
    "travel": (["--travel", "-0.5"], "--travel -0.5: must be between 0 and 1"),
    "unknown": (["--sequences", "apple,pear"], "--sequences pear: not a sequence of"),
    "repeated": (["--sequences", "apple,grass,apple"], "--sequences apple: named twice"),
    "one": (["--sequences", "apple"], "needs at least two sequences"),
    "empty": (["--sequences", ","], "--sequences: names no sequence"),
    "option": (["--option", "height=3"], "--option height: small-objects takes only resolution="),
    "resolution": (["--option", "resolution=240p"],
                   "no such frame folder; this copy has ['480p']: set --option resolution=<one of them>"),
    "missing mask": ([], "apple/00011.jpg: has no mask"),
    "exists": ([], "already exists"),
    "inside": ([], "inside the dataset"),
    "holds the source": ([], "would hold the dataset"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_small_objects_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, case):
    src = _davis(tmp_path / ("small.partial" if case == "holds the source" else "DAVIS"))
    out = src / "small" if case == "inside" else tmp_path / "small"
    if case == "exists":
        out.mkdir()
        (out / "mine.txt").write_text("kept")
    if case == "missing mask":
        (src / "Annotations" / "480p" / "apple" / "00011.png").unlink()
    extra, message = REFUSALS[case]
    before = sorted(tmp_path.rglob("*"))
    line = run_main(["small-objects", "--root", str(src), "--out", str(out), *extra], capsys)
    assert message in line
    assert sorted(tmp_path.rglob("*")) == before
