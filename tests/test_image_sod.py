"""Image salient-object sets (layout image_sod) and pseudo-clips of still images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from salvid.data.acquire.registry import DATASETS, prepare_command
from salvid.data.layouts import DatasetError, list_sequences
from salvid.data.masks import load_mask
from salvid.data.pseudo_clips import PseudoClip
from salvid.data.sources import ImageFolder
from salvid.data.stream import TripletStream
from tests.helpers.layout_fixtures import save

CONF = Path(__file__).resolve().parents[1] / "conf"
H, W = 48, 64


def load_rgb(path: Path) -> np.ndarray:
    return ImageFolder([path]).read([0])[0]


def square(top: int, left: int, side: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a white square, and its 0/255 mask."""
    image = np.full((H, W, 3), 60, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    image[top : top + side, left : left + side] = 250
    mask[top : top + side, left : left + side] = 255
    return image, mask


def image_set(root: Path, positions: dict[str, tuple[int, int]], images: str = "DUTS-TR-Image",
              masks: str = "DUTS-TR-Mask") -> Path:
    for name, (top, left) in positions.items():
        image, mask = square(top, left)
        save(image, root / images / f"{name}.jpg", quality=95)
        save(mask, root / masks / f"{name}.png")
    return root


def bright(frame: np.ndarray) -> np.ndarray:
    return frame.mean(axis=-1) > 155


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_images_and_masks_pair_by_name(tmp_path):
    # each name has its square elsewhere, so a mask paired with the wrong image would not cover its square
    positions = {"zeta": (2, 3), "alpha": (20, 40), "ILSVRC2012_test_00000004": (10, 20), "m_7": (30, 5)}
    root = image_set(tmp_path, positions)
    sequences = list_sequences("image_sod", root, "all")
    assert [s.name for s in sequences] == sorted(positions)
    for seq in sequences:
        (frame,), (mask,) = seq.frames, seq.masks
        assert frame.stem == mask.stem == seq.name and seq.annotated_frames == [0]
        image = seq.open().read([0])[0]
        assert iou(bright(image), seq.salient_mask(0).astype(bool)) > 0.95


def test_a_missing_mask_is_one_clear_error(tmp_path):
    root = image_set(tmp_path, {"a": (0, 0), "b": (5, 5), "c": (9, 9)})
    (root / "DUTS-TR-Mask" / "b.png").unlink()
    with pytest.raises(DatasetError) as error:
        list_sequences("image_sod", root, "all")
    message = str(error.value)
    assert str(root / "DUTS-TR-Image" / "b.jpg") in message and "no mask b.png" in message
    assert str(root / "DUTS-TR-Mask") in message and "1 image(s) without a mask" in message


def test_a_mask_without_image_and_a_doubled_name_are_errors(tmp_path):
    root = image_set(tmp_path, {"a": (0, 0), "b": (5, 5)})
    save(square(1, 1)[1], root / "DUTS-TR-Mask" / "stray.png")
    with pytest.raises(DatasetError, match=r"stray\.png: mask without an image"):
        list_sequences("image_sod", root, "all")
    (root / "DUTS-TR-Mask" / "stray.png").unlink()
    save(square(1, 1)[0], root / "DUTS-TR-Image" / "a.png")
    with pytest.raises(DatasetError, match=r"a\.png: same name as .*a\.jpg"):
        list_sequences("image_sod", root, "all")


def test_folder_names_and_splits_are_checked(tmp_path):
    root = image_set(tmp_path, {"a": (0, 0)}, images="images", masks="ground_truth_mask")  # ECSSD's names
    with pytest.raises(DatasetError, match="DUTS-TR-Image: folder not found .*images / masks"):
        list_sequences("image_sod", root, "all")
    assert [s.name for s in list_sequences("image_sod", root, "all", images="images", masks="ground_truth_mask")] \
        == ["a"]
    with pytest.raises(DatasetError, match="no split 'train'"):
        list_sequences("image_sod", root, "train", images="images", masks="ground_truth_mask")


def test_images_and_masks_in_one_folder(tmp_path):
    # MSRA10K: Imgs/<name>.jpg beside Imgs/<name>.png
    root = image_set(tmp_path, {"a": (0, 0), "b": (20, 30)}, images="Imgs", masks="Imgs")
    sequences = list_sequences("image_sod", root, "all", images="Imgs", masks="Imgs")
    assert [(s.frames[0].name, s.masks[0].name) for s in sequences] == [("a.jpg", "a.png"), ("b.jpg", "b.png")]


def test_listing_reads_no_pixels_and_scales_to_full_duts(tmp_path):
    # 10,553 empty files as DUTS-TR names them: listing must not open them (they would not decode)
    for folder, suffix in (("DUTS-TR-Image", ".jpg"), ("DUTS-TR-Mask", ".png")):
        (tmp_path / folder).mkdir()
        for i in range(10_553):
            (tmp_path / folder / f"ILSVRC2012_test_{i:08d}{suffix}").touch()
    start = time.perf_counter()
    sequences = list_sequences("image_sod", tmp_path, "all")
    assert len(sequences) == 10_553
    assert time.perf_counter() - start < 5.0  # measured ~0.1 s; generous for a loaded 2-core machine
    assert len({id(s.make_clip) for s in sequences}) == 1  # one motion object shared, not one per image


def test_pseudo_clip_centre_mask_moves_with_the_centre_frame():
    image, mask = square(16, 24)
    frames, moved_mask = PseudoClip(shift=0.1, rotate=5.0, scale=0.05)([image] * 3, mask, seed=3)
    moved_mask = moved_mask.astype(bool)
    assert iou(moved_mask, mask.astype(bool)) < 0.9  # the mask did move...
    assert iou(bright(frames[1]), moved_mask) > 0.9  # ...with the centre frame's object
    for neighbour in (frames[0], frames[2]):  # the neighbours moved elsewhere
        assert iou(bright(neighbour), moved_mask) < 0.9
        assert np.abs(neighbour.astype(int) - frames[1].astype(int)).mean() > 1
    again, again_mask = PseudoClip(shift=0.1, rotate=5.0, scale=0.05)([image] * 3, mask, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    assert np.array_equal(again_mask.astype(bool), moved_mask)  # a seed gives one clip


def test_pseudo_clip_object_moves_against_its_background_and_leaves_no_copy():
    image, mask = square(24, 24)
    image[::4] = 90  # stripes: a background with texture to fill the hole from
    still_camera = PseudoClip(shift=0.0, rotate=0.0, scale=0.0, object_shift=0.1)
    frames, centre_mask = still_camera([image] * 3, mask, seed=1)
    assert np.array_equal(frames[1], image) and np.array_equal(centre_mask, mask)  # the centre frame as it was
    centres = []
    for neighbour in (frames[0], frames[2]):
        ys, xs = np.nonzero(bright(neighbour))
        assert abs(len(ys) - 16 * 16) <= 2 * 16 + 1  # the whole object once (edges resampled): no copy left behind
        assert ys.max() - ys.min() <= 17 and xs.max() - xs.min() <= 17
        centres.append(np.array([ys.mean(), xs.mean()]))
    assert np.abs(centres[1] - centres[0]).max() >= 2  # t-1 and t+1 displaced by -step and +step...
    assert np.abs((centres[0] + centres[1]) / 2 - (24 + 7.5)).max() <= 0.75  # ...about the centre frame's place
    assert np.array_equal(still_camera([image] * 3, mask, seed=1)[0][0], frames[0])  # a seed gives one clip


def _striped_scene(folder: Path, size: tuple[int, int] = (H, W)) -> tuple[Path, Path]:
    """A striped scene with its own object, a black square at its lower right, and that object's mask."""
    h, w = size
    scene = np.full((h, w, 3), 200, np.uint8)
    scene[:, ::4] = 120
    scene[h // 2 : h // 2 + h // 3, w * 5 // 8 : w * 5 // 8 + w // 4] = 0
    scene_mask = (scene[..., 0] == 0).astype(np.uint8) * 255
    save(scene, folder / "scene.png")
    save(scene_mask, folder / "scene_mask.png")
    return folder / "scene.png", folder / "scene_mask.png"


@pytest.mark.parametrize("scene_size", [(H, W), (2 * H + 5, W - 7)])  # another size: resized to the image's
def test_paste_sets_the_object_on_another_scene_with_that_scenes_object_removed(tmp_path, scene_size):
    image, mask = square(4, 4)  # a white square on grey
    scenes = (_striped_scene(tmp_path, scene_size),)
    still = {"shift": 0.0, "rotate": 0.0, "scale": 0.0}
    frames, clip_mask = PseudoClip(**still, paste=1.0)([image] * 3, mask, seed=0, scenes=scenes)
    assert np.array_equal(clip_mask, mask)  # the object stays where it was, and so does its mask
    centre = frames[1].astype(int)
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[2], frames[1])  # no object_shift: still
    assert (centre[6:18, 6:18] > 240).all()  # the object, whole...
    assert {120, 200} <= set(np.unique(centre[30:, :30]))  # ...over the other scene's stripes
    assert centre[24:40, 40:56].min() > 60  # whose own object is inpainted away
    # with object_shift the object moves over that scene, not over its own image's background
    moving = PseudoClip(**still, paste=1.0, object_shift=0.1)([image] * 3, mask, seed=0, scenes=scenes)[0]
    for neighbour in (moving[0], moving[2]):
        assert bright(neighbour).sum() > 0.8 * 16 * 16 and not (neighbour == 60).all(axis=-1).any()
    # no scenes (an evaluation stream), or paste 0: the image's own background
    for clip, given in ((PseudoClip(**still, paste=1.0), ()), (PseudoClip(**still, paste=0.0), scenes)):
        assert (clip([image] * 3, mask, seed=0, scenes=given)[0][1][30:, :30] == 60).all()


def test_training_streams_paste_onto_their_own_still_images_and_evaluation_never(tmp_path):
    root = image_set(tmp_path, {"flat": (4, 6)})  # a white square on flat grey...
    scene, scene_mask = _striped_scene(tmp_path)  # ...and a striped image of the same set
    save(load_rgb(scene), root / "DUTS-TR-Image" / "striped.jpg", quality=95)
    save(load_mask(scene_mask) * 255, root / "DUTS-TR-Mask" / "striped.png")
    sequences = list_sequences("image_sod", root, "all", paste=1.0, motion={"shift": 0.0, "rotate": 0.0,
                                                                            "scale": 0.0})
    assert sequences[0].make_clip.paste == 1.0
    training, evaluation = (TripletStream(sequences, shuffle=shuffle, batch_size=1) for shuffle in (True, False))
    assert [image.stem for image, _ in training.scenes] == ["flat", "striped"] and evaluation.scenes == ()
    backgrounds = {epoch: _stream_samples(sequences, True, epoch)["flat"]["frames"][1][30:, :30]
                   for epoch in range(4)}
    assert any(b.std() > 20 for b in backgrounds.values())  # training: some epochs' clips set it on the stripes
    for name, sample in _stream_samples(sequences, shuffle=False).items():  # evaluation: each image as it is
        assert np.array_equal(sample["frames"][1], load_rgb(root / "DUTS-TR-Image" / f"{name}.jpg")), name


@pytest.mark.parametrize(("options", "match"), [
    ({"paste": 1.5}, r"^data\.paste=1\.5: must be a probability in \[0, 1\]"),
    ({"paste": True}, r"^data\.paste=True: must be a probability"),
    ({"paste": 0.5, "pseudo_clip": False}, r"^data\.paste=0\.5: pastes pseudo-clips, and pseudo_clip is false"),
    ({"motion": {"object_shift": 0.7}}, r"^data\.motion: .*object_shift=0\.7: a pseudo-clip's motion must be small"),
])
def test_a_bad_pseudo_clip_option_is_named_by_its_whole_key(tmp_path, options, match):
    root = image_set(tmp_path / "duts", {"a": (4, 6)})
    with pytest.raises(DatasetError, match=match):
        list_sequences("image_sod", root, "all", **options)
    inside_concat = match.replace(r"^data\.", r"^data\.datasets\.duts\.")
    with pytest.raises(DatasetError, match=inside_concat):
        list_sequences("concat", tmp_path, "all",
                       datasets={"duts": {"layout": "image_sod", "root": "duts", "train_only": True, **options}})


@pytest.mark.parametrize("bad", [{"shift": -0.1}, {"scale": 0.7}, {"rotate": "a lot"}, {"object_shift": 0.5}])
def test_pseudo_clip_refuses_bad_limits(bad):
    with pytest.raises(DatasetError, match=f"motion.*{next(iter(bad))}"):
        PseudoClip(**bad)


def test_unknown_motion_key_is_named(tmp_path):
    root = image_set(tmp_path, {"a": (0, 0)})
    with pytest.raises(DatasetError, match="motion.speed: not a motion limit"):
        list_sequences("image_sod", root, "all", motion={"speed": 3})


def _stream_samples(sequences, shuffle: bool, epoch: int = 0) -> dict[str, dict]:
    stream = TripletStream(sequences, shuffle=shuffle, batch_size=1)
    stream.set_epoch(epoch)
    return {sequences[x["video_id"]].name: x for x in stream}


def test_stream_makes_pseudo_clips_or_identical_copies(tmp_path):
    root = image_set(tmp_path, {"a": (4, 6), "b": (24, 40)})
    moving = list_sequences("image_sod", root, "all", motion={"shift": 0.1, "rotate": 4.0})
    for name, sample in _stream_samples(moving, shuffle=True).items():
        frames, mask = sample["frames"], sample["mask"].astype(bool)
        assert frames.shape == (3, H, W, 3)
        assert iou(bright(frames[1]), mask) > 0.85, name  # the target is the centre frame's
        assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    # evaluation: the same clip whatever the epoch; training: a new motion each epoch
    first, later = _stream_samples(moving, False, 0), _stream_samples(moving, False, 5)
    assert np.array_equal(first["a"]["frames"], later["a"]["frames"])
    first, later = _stream_samples(moving, True, 0), _stream_samples(moving, True, 1)
    assert not np.array_equal(first["a"]["frames"], later["a"]["frames"])

    still = list_sequences("image_sod", root, "all", pseudo_clip=False)
    for seq in still:
        sample = _stream_samples(still, shuffle=True)[seq.name]
        assert np.array_equal(sample["frames"][0], sample["frames"][1])
        assert np.array_equal(sample["frames"][1], sample["frames"][2])
        assert np.array_equal(sample["mask"], load_mask(seq.masks[0]))


@pytest.mark.parametrize("pseudo_clip", [True, False])
def test_split_record_names_the_videos_and_counts_the_still_images(tmp_path, pseudo_clip):
    from salvid.data.datamodule import SaliencyDataModule
    from tests.helpers.layout_fixtures import davis

    davis(tmp_path / "davis", {"a": 3, "b": 4, "c": 2, "d": 3})
    image_set(tmp_path / "duts", {"x": (4, 6), "y": (24, 40), "z": (8, 8)})
    datasets = {"davis": {"layout": "davis2016", "root": "davis", "splits": {"train": "train"}},
                "duts": {"layout": "image_sod", "root": "duts", "pseudo_clip": pseudo_clip, "train_only": True,
                         "splits": {"train": "all"}}}
    dm = SaliencyDataModule("concat", str(tmp_path), {"train": "train", "val": None, "test": None},
                            val_holdout=1, test_holdout=1, datasets=datasets)
    dm.setup()
    record = dm.split_record()
    # the fixture's last sequence (d) is DAVIS's val split; of a, b, c the hold-outs take the last by name
    assert record["train"] == {"videos": ["davis/a"], "still_images": 3, "frames": 3}  # the video's frames only
    assert record["val"] == {"videos": ["davis/b"], "still_images": 0, "frames": 4}
    assert record["test"] == {"videos": ["davis/c"], "still_images": 0, "frames": 2}


def test_pseudo_clip_switch_must_be_a_boolean(tmp_path):
    root = image_set(tmp_path, {"a": (0, 0)})
    with pytest.raises(DatasetError, match="pseudo_clip='yes'"):
        list_sequences("image_sod", root, "all", pseudo_clip="yes")


def test_duts_registry_entry_reads_the_distributed_layout(duts_root):
    source = DATASETS["duts"]
    assert source.layout == "image_sod" and source.archives[0].filename == "DUTS-TR.zip"
    sequences = list_sequences(source.layout, duts_root, "all", **source.options)
    assert len(sequences) == 499
    assert all(s.frames[0].stem == s.masks[0].stem for s in sequences)
    first = sequences[0]
    assert first.open().size == first.salient_mask(0).shape
    assert prepare_command("image_sod", "data/DUTS-TR") == "python -m salvid.prepare duts --root data/DUTS-TR"


def test_davis_duts_config_keeps_images_in_training(davis_root, duts_root, tmp_path):
    # data.root holds both copies under their own names, as the config's datasets.*.root say
    (tmp_path / "DAVIS-2016-train-240p").symlink_to(davis_root)
    (tmp_path / "DUTS-TR").symlink_to(duts_root)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", ["model=fusion3d", "data=davis_duts", f"data.root={tmp_path}", "paths.output_dir=x"])
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup()
    names = {stage: [s.name for s in seqs] for stage, seqs in dm.sequences.items()}
    assert sum(n.startswith("duts/") for n in names["train"]) == 499
    assert len(names["train"]) == 499 + 21
    for stage, count in (("val", 4), ("test", 5)):  # the same hold-outs as data=davis2016_holdout
        assert len(names[stage]) == count and all(n.startswith("davis/") for n in names[stage])
    davis = sorted(p.name for p in (davis_root / "JPEGImages" / "240p").iterdir())
    assert names["test"] == [f"davis/{n}" for n in davis[-5:]]
    assert names["val"] == [f"davis/{n}" for n in davis[-9:-5]]
