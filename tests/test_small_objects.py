"""``prepare small-objects``: each sequence's object, shrunk, over a camera panning across the next sequence's
first frame, its own object removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salvid import prepare as prepare_module
from salvid.data.acquire.small_objects import panned_views
from salvid.data.layouts import list_sequences
from tests.helpers.layout_fixtures import save
from tests.test_prepare import run_main

SIZE = (80, 120)  # the view: 64x96; at --scale 0.5 each frame is pasted at 32x48 (0.4 of its size)
RED, GREEN = (230, 20, 20), (20, 230, 20)
# per sequence: frames, flat background colour, object colour, object box (rows, cols); box edges are multiples
# of 5 pixels, so that resampling them to 0.4 is exact
SEQUENCES = {
    "apple": (3, (110, 110, 110), RED, (slice(20, 60), slice(30, 90))),
    "grass": (2, (20, 20, 180), GREEN, (slice(10, 30), slice(10, 40))),
}


def _davis(root: Path) -> Path:
    for name, (count, background, colour, box) in SEQUENCES.items():
        for i in range(count):
            image = np.empty((*SIZE, 3), np.uint8)
            image[:] = background
            image[box] = colour
            mask = np.zeros(SIZE, np.uint8)
            mask[box] = 255
            save(image, root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg", quality=98)
            save(mask, root / "Annotations" / "480p" / name / f"{i:05d}.png")
    return root


def test_small_objects_pastes_each_object_shrunk_over_the_next_sequence_without_its_own(tmp_path, capsys):
    src = _davis(tmp_path / "DAVIS")
    prepare_module.main(["small-objects", "--root", str(src), "--out", str(tmp_path / "small"), "--scale", "0.5"])
    assert "2 small-object clips" in capsys.readouterr().out
    clips = {seq.name: seq for seq in list_sequences("davis2016", tmp_path / "small", "all", resolution="480p")}
    assert sorted(clips) == ["apple-on-grass", "grass-on-apple"]
    assert [len(clips[name].masks) for name in sorted(clips)] == [3, 2]  # the pasted sequence's frames

    # apple's red box, at 0.4 and centred in the 64x96 view: rows 20:60 -> 8:24 -> 24:40, cols 30:90 -> 12:36 -> 36:60
    clip = clips["apple-on-grass"]
    expected = np.zeros((64, 96), np.uint8)
    expected[24:40, 36:60] = 1
    for i, image in enumerate(clip.open().read(range(3))):
        assert image.shape == (64, 96, 3)
        np.testing.assert_array_equal(clip.salient_mask(i), expected)
        pasted = image[26:38, 38:58].reshape(-1, 3).astype(int)
        assert np.abs(pasted - RED).max() < 20
        rest = image[expected == 0].astype(int)
        assert np.abs(rest - SEQUENCES["grass"][1]).mean() < 6  # grass's own green object is gone
        assert (rest[:, 1] > 120).sum() == 0

    # grass's green box: rows 10:30 -> 4:12 -> 20:28, cols 10:40 -> 4:16 -> 28:40, over apple without its red box
    clip = clips["grass-on-apple"]
    image = clip.open().read([0])[0]
    assert clip.salient_mask(0)[20:28, 28:40].all() and clip.salient_mask(0).sum() == 8 * 12
    assert (image[..., 0].astype(int) - image[..., 1] > 60).sum() == 0  # no red left anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DAVIS", "small"]  # no partial folder left


def test_the_camera_pans_from_the_left_edge_to_the_right_edge_at_a_constant_speed():
    scene = np.arange(80 * 120).reshape(80, 120)
    views = panned_views(scene, 3)
    for view, left in zip(views, (0, 12, 24), strict=True):
        np.testing.assert_array_equal(view, scene[8:72, left:left + 96])


@pytest.mark.parametrize("case", ["scale", "unknown", "one", "exists"])
def test_small_objects_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, case):
    src = _davis(tmp_path / "DAVIS")
    out = tmp_path / "small"
    if case == "exists":
        out.mkdir()
        (out / "mine.txt").write_text("kept")
    extra = {"scale": ["--scale", "1.5"], "unknown": ["--sequences", "apple,pear"],
             "one": ["--sequences", "apple,apple"], "exists": []}[case]
    before = sorted(tmp_path.rglob("*"))
    line = run_main(["small-objects", "--root", str(src), "--out", str(out), *extra], capsys)
    assert {"scale": "--scale 1.5: must be between 0 and 1", "unknown": "--sequences pear: not a sequence of",
            "one": "at least two different sequences", "exists": "already exists"}[case] in line
    assert sorted(tmp_path.rglob("*")) == before
