"""Every dataset layout on generated fixtures in its distributed shape, and on the real DAVIS-2016 240p copy when present."""

from __future__ import annotations

import numpy as np
import pytest

from salvid.data.inventory import count_sequences
from salvid.data.layouts import DatasetError, list_sequences
from salvid.data.layouts.fbms import fbms_mask
from salvid.data.splits import split_sequences
from tests.helpers.layout_fixtures import H, W, box_mask, davis, frame, save


def test_davis2016_split_lines_and_pairing(tmp_path):
    root = davis(tmp_path, {"bear": 4, "boat": 3, "cows": 5})
    train = list_sequences("davis2016", root, "train")
    assert [s.name for s in train] == ["bear", "boat"]
    assert [len(s.masks) for s in train] == [4, 3]
    assert train[0].frames[2].name == "00002.jpg" and train[0].masks[2].name == "00002.png"
    assert [s.name for s in list_sequences("davis2016", root, "val")] == ["cows"]
    assert len(list_sequences("davis2016", root, "all")) == 3
    np.testing.assert_array_equal(train[0].salient_mask(1), box_mask(1) // 255)


def test_davis2017_palette_masks_are_the_union_of_objects(tmp_path):
    root = davis(tmp_path, {"dogs": 3}, resolution="Full-Resolution", palette=True)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("dogs\n")
    (seq,) = list_sequences("davis2016", root, "val", resolution="Full-Resolution")
    mask = seq.salient_mask(0)
    assert mask.sum() == 32 and mask[3, 3] == 1 and mask[12, 22] == 1


def test_davis_wrong_resolution_names_the_folders_found(tmp_path):
    root = davis(tmp_path, {"bear": 2, "boat": 2}, resolution="240p")
    with pytest.raises(DatasetError, match=r"480p.*\['240p'\]"):
        list_sequences("davis2016", root, "train")


def test_davis_missing_split_suggests_holdout(tmp_path):
    root = davis(tmp_path, {"bear": 2, "boat": 2})
    with pytest.raises(DatasetError, match="trainval.*test_holdout"):
        list_sequences("davis2016", root, "trainval")


def test_segtrackv2_prefixed_bmp_frames_and_multi_object_union(tmp_path):
    for i in range(3):
        save(frame(i), tmp_path / "JPEGImages" / "girl" / f"girl_{i:05d}.bmp")
        save(box_mask(i), tmp_path / "GroundTruth" / "girl" / f"girl_{i:05d}.bmp")
        save(frame(i), tmp_path / "JPEGImages" / "bmx" / f"bmx_{i + 6668:05d}.png")
        one, two = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
        one[0:4, 0:4], two[20:24, 28:32] = 255, 255
        save(np.stack([one] * 3, -1), tmp_path / "GroundTruth" / "bmx" / "1" / f"bmx_{i + 6668:05d}.png")
        save(two, tmp_path / "GroundTruth" / "bmx" / "2" / f"{i + 6668:05d}.png")  # no prefix: pairs by number
    bmx, girl = list_sequences("segtrackv2", tmp_path, "all")
    assert isinstance(bmx.masks[0], tuple) and len(bmx.masks[0]) == 2
    assert bmx.salient_mask(0).sum() == 32
    assert girl.frames[0].suffix == ".bmp" and len(girl.annotated_frames) == 3



def test_a_missing_split_file_of_any_layout_names_the_key_and_the_fix(tmp_path):
    """SegTrackV2 (like VOT2016, DAVSOD and the videos layout) keeps split files beside the sequences: a split
    the config asks for that has no file says which key asked and how to use every sequence instead."""
    for i in range(2):
        save(frame(i), tmp_path / "JPEGImages" / "girl" / f"{i:05d}.png")
        save(box_mask(i), tmp_path / "GroundTruth" / "girl" / f"{i:05d}.png")
    with pytest.raises(DatasetError, match=r"split 'train', which data\.splits\.train=train asks for \(looked for "
                                           r"train\.txt\); this copy has no split files: use every sequence and "
                                           r"hold some out for validation and test with data\.splits\.train=all "
                                           r"data\.splits\.val=null data\.splits\.test=null data\.val_holdout=N "
                                           r"data\.test_holdout=N$"):
        split_sequences("segtrackv2", tmp_path, {"train": "train", "test": None})
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "mine.txt").write_text("girl\n")
    with pytest.raises(DatasetError, match=r"this copy has the split\(s\) \['mine'\]: set data\.splits\.train to "
                                           r"mine, or use every sequence with data\.splits\.train=all$"):
        split_sequences("segtrackv2", tmp_path, {"train": "train", "test": None})
    assert [s.name for s in split_sequences("segtrackv2", tmp_path, {"train": "mine", "test": None})["train"]] == [
        "girl"]

def test_vot2016_frames_and_segmentation_folders(tmp_path):
    for i in range(1, 4):
        save(frame(i), tmp_path / "bag" / f"{i:08d}.jpg")
        save(frame(i), tmp_path / "ball1" / "color" / f"{i:08d}.jpg")
        save(box_mask(i), tmp_path / "segmentation" / "bag" / f"{i:08d}.png")
        save(box_mask(i), tmp_path / "segmentation" / "ball1" / f"{i:08d}.png")
    (tmp_path / "bag" / "groundtruth.txt").write_text("1,2,3,4\n")
    bag, ball = list_sequences("vot2016", tmp_path, "all")
    assert (bag.name, ball.name) == ("bag", "ball1")
    assert ball.frames[0].parent.name == "color" and len(bag.annotated_frames) == 3


@pytest.mark.parametrize("layout", ["davsod", "usvd"])
def test_davsod_style_sparse_masks(tmp_path, layout):
    for i in range(5):
        save(frame(i), tmp_path / "select_0001" / "Imgs" / f"{i:04d}.jpg")
        if i % 2 == 0:
            save(box_mask(i), tmp_path / "select_0001" / "GT_object_level" / f"{i:04d}.png")
    (seq,) = list_sequences(layout, tmp_path, "all")
    assert seq.annotated_frames == [0, 2, 4] and len(seq.masks) == 5


def test_fbms_sparse_colour_ground_truth(tmp_path):
    seq_dir = tmp_path / "Trainingset" / "cars1"
    for i in range(1, 8):
        save(frame(i), seq_dir / f"cars1_{i:02d}.jpg")
    white = np.full((H, W, 3), 255, np.uint8)
    white[5:9, 5:9] = (255, 0, 0)  # object 1
    white[15:17, 20:24] = (0, 0, 0)  # object 2, black on a white background
    save(white, seq_dir / "GroundTruth" / "cars1_01_gt.ppm")
    grey = np.zeros((H, W), np.uint8)
    grey[2:4, 2:5] = 200
    save(grey, seq_dir / "GroundTruth" / "cars1_05_gt.pgm")
    save(grey, seq_dir / "GroundTruth" / "cars1_05_PROB_gt.pgm")  # probability map beside it: ignored
    for i in (1, 2):
        save(frame(i), tmp_path / "Testset" / "tennis" / f"tennis{i:03d}.jpg")
    save(grey, tmp_path / "Testset" / "tennis" / "GroundTruth" / "tennis001_gt.pgm")
    (cars,) = list_sequences("fbms", tmp_path, "train")
    assert cars.annotated_frames == [0, 4]
    assert cars.salient_mask(0).sum() == 16 + 8 and cars.salient_mask(4).sum() == 6
    assert [s.name for s in list_sequences("fbms", tmp_path, "all")] == ["cars1", "tennis"]
    assert fbms_mask(seq_dir / "GroundTruth" / "cars1_01_gt.ppm")[6, 6] == 1


def test_concat_prefixes_names_maps_splits_and_sets_weights(tmp_path):
    davis(tmp_path / "A", {"bear": 3, "boat": 3})
    davis(tmp_path / "B", {"cows": 3, "dogs": 3})
    datasets = {
        "a": {"layout": "davis2016", "root": "A", "weight": 2.0, "splits": {"train": "all"}},
        "b": {"layout": "davis2016", "root": str(tmp_path / "B"), "splits": {"test": "val"}},
    }
    train = list_sequences("concat", tmp_path, "train", datasets=datasets)
    assert [(s.name, s.weight) for s in train] == [("a/bear", 2.0), ("a/boat", 2.0)]
    assert [s.name for s in list_sequences("concat", tmp_path, "test", datasets=datasets)] == ["b/dogs"]


def test_missing_dataset_says_where_and_how_to_prepare(tmp_path):
    with pytest.raises(DatasetError) as info:
        list_sequences("davis2016", tmp_path / "nowhere", "train")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert f"python -m salvid.prepare davis2016 --root {tmp_path / 'nowhere'}" in str(info.value)


def test_unknown_layout_option_is_named_with_the_nearest_or_where_it_belongs(tmp_path):
    # a DatasetError (a salvid error): the entry points end it in one line
    with pytest.raises(DatasetError, match="^data.resolutoin: not an option of layout 'davis2016' .*; did you mean "
                                           "resolution[?]$"):
        list_sequences("davis2016", tmp_path, "train", resolutoin="240p")
    with pytest.raises(DatasetError, match=r"^data.resolution: not an option of layout 'concat' .*goes under "
                                           r"data.datasets.<name> \(e.g. \+data.datasets.<name>.resolution\)$"):
        list_sequences("concat", tmp_path, "train", datasets={}, resolution="240p")


def test_davis_240p_train_split(davis_root):
    sequences = list_sequences("davis2016", davis_root, "train", resolution="240p")
    assert len(sequences) == 30
    counts = count_sequences(sequences)
    assert sum(c.frames for c in counts) == 2079
    assert all(c.targets == c.frames for c in counts)  # DAVIS annotates every frame
    assert {c.size for c in counts} == {(240, 427)}
    assert 0 < sum(c.empty for c in counts) < 100  # the object leaves the frame in a few


def test_a_copy_with_only_the_val_split_says_what_would_work(tmp_path):
    root = davis(tmp_path / "davis", {"bear": 2, "camel": 2})
    (root / "ImageSets" / "480p" / "train.txt").unlink()
    with pytest.raises(DatasetError) as raised:
        list_sequences("davis2016", root, "train", resolution="480p")
    message = str(raised.value)
    assert "this copy has the split(s) ['val']" in message and "data.test_holdout=N" in message
    assert message.count("ImageSets/480p/train.txt") == 1  # each path once
    # where a config asks for the split, the message names the key that asked and what it can be instead
    with pytest.raises(DatasetError, match=r"split 'train', which data\.splits\.train=train asks for .*; this copy "
                                           r"has the split\(s\) \['val'\]: set data\.splits\.train to val, or use "
                                           r"every sequence with data\.splits\.train=all$"):
        split_sequences("davis2016", root, {"train": "train", "test": None}, resolution="480p")
    with pytest.raises(DatasetError, match=r"which data\.splits\.test=train asks for .*: set data\.splits\.test to "
                                           r"val, or hold training sequences out instead with data\.splits\.test=null "
                                           r"data\.test_holdout=N$"):
        split_sequences("davis2016", root, {"train": "val", "test": "train"}, resolution="480p")
