import errno
import json
import os
import re
import shutil
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config
from PIL import Image

from salvid.checkpoints import load_network
from salvid.data.errors import ImageReadError
from salvid.data.preprocess import normalise
from salvid.data.transforms import ClipTransform
from salvid.errors import ConfigError, DiskFullError, UnsafeOutputError
from salvid.inference import predicting
from salvid.inference.predicting import PredictInputError, predict
from salvid.inference.writers import VideoWriter
from tests.helpers.full_disk import fill_disk
from tests.helpers.networks import assert_varied


def run(input_, out, ckpt, *overrides):
    return predict(compose_config("predict", [f"input={input_}", f"paths.output_dir={out}", f"ckpt_path={ckpt}",
                                              "batch_size=4", *overrides]))


def video_frames(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_predict_on_a_video_writes_maps_videos_and_a_complete_status(eval_data, tiny_pretrained, tmp_path):
    (folder,) = run(eval_data / "videos" / "test_000.mp4", tmp_path / "out", tiny_pretrained)
    assert folder == (tmp_path / "out" / "test_000").resolve()
    pngs = sorted(p.name for p in (folder / "maps").iterdir())
    assert pngs == [f"{i:05d}.png" for i in range(8)]
    assert np.asarray(Image.open(folder / "maps" / "00000.png")).shape == (72, 96)
    for name in ("saliency.mp4", "overlay.mp4"):
        frames = video_frames(folder / name)
        assert len(frames) == 8 and frames[0].shape == (72, 96, 3)
    status = json.loads((folder / "status.json").read_text())
    assert status["complete"] and status["frames_written"] == 8


def test_with_write_pngs_false_only_the_videos_and_the_status_are_written(eval_data, tiny_pretrained, tmp_path):
    (folder,) = run(eval_data / "videos" / "test_000.mp4", tmp_path / "out", tiny_pretrained, "write_pngs=false")
    assert sorted(p.name for p in folder.iterdir()) == ["overlay.mp4", "saliency.mp4", "status.json"]
    assert len(video_frames(folder / "saliency.mp4")) == 8
    status = json.loads((folder / "status.json").read_text())
    assert status["complete"] and status["frames_written"] == 8


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_written_maps_are_the_networks_own_maps_at_each_frames_resolution(eval_data, tiny_pretrained, tmp_path,
                                                                          backend):
    """Each PNG holds the network's map of its frame (clip t-1, t, t+1, edges repeated, resized as training
    evaluates), upsampled bilinearly to the frame's own odd size, to within half a quantisation step, whichever
    backend computes it."""
    frames = [f[1:, 1:] for f in video_frames(eval_data / "videos" / "test_000.mp4")]  # 71x95: resized both ways
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"f{i:02d}.png")  # lossless: predict reads exactly these pixels
    (out,) = run(folder, tmp_path / "out", tiny_pretrained, "precision=fp32", "write_videos=false", "batch_size=3",
              f"backend={backend}")
    written = np.stack([np.asarray(Image.open(out / "maps" / f"f{i:02d}.png")) for i in range(len(frames))])

    net, _ = load_network(tiny_pretrained)
    transform = ClipTransform(net.input_size, train=False, in_frames=net.in_frames)
    n = len(frames)
    clips = [transform([frames[min(max(i, 0), n - 1)] for i in (t - 1, t, t + 1)], frames[t][..., 0])[0]
             for t in range(n)]
    x = normalise(torch.from_numpy(np.stack([np.stack(c) for c in clips]))).transpose(1, 2)  # (N, 3, T, h, w)
    with torch.no_grad():
        maps = F.interpolate(net(x), size=frames[0].shape[:2], mode="bilinear", align_corners=False)[:, 0].numpy()
    assert_varied(maps, what="the network's maps")
    assert written.shape == maps.shape and written.dtype == np.uint8
    assert np.abs(written / 255.0 - maps).max() <= 0.5 / 255 + 1e-5


def test_on_the_cpu_the_network_runs_alone_and_decoding_overlaps_writing(tiny_pretrained, tmp_path, monkeypatch):
    """On the CPU none of predict's own computing runs beside the network (its threads fill the cores): every frame is
    decoded and every map written while no batch is computed, and the next batch's frames are decoded on
    another thread while the last batch's maps are written."""
    from salvid.data.sources import ImageFolder
    from salvid.inference.core import NetworkSaliency

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(13):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(frames / f"{i:03d}.png")
    state = {"computing": False, "writing": 0}
    events = []
    lock = threading.Lock()
    caller = threading.get_ident()
    writing_started, decoded_meanwhile = threading.Event(), threading.Event()

    def log(kind):
        with lock:
            events.append((kind, state["computing"], state["writing"], threading.get_ident()))

    own_predict, own_decode, own_write = NetworkSaliency.predict, ImageFolder._decode, predicting.write_png

    def predict_alone(self, *args, **kwargs):
        state["computing"] = True
        try:
            return own_predict(self, *args, **kwargs)
        finally:
            state["computing"] = False

    def decode(self, indices, *halved):
        if threading.get_ident() != caller:  # the next frames: wait (a little) for the writing they may overlap
            writing_started.wait(timeout=10)
        log("decode")
        if state["writing"]:
            decoded_meanwhile.set()
        return own_decode(self, indices, *halved)

    def write(*args):
        state["writing"] += 1
        try:
            log("write")
            writing_started.set()
            if not decoded_meanwhile.wait(timeout=10):  # a slow disk: the next frames are decoded meanwhile
                decoded_meanwhile.set()  # they were not: wait no more, the log says so
            own_write(*args)
        finally:
            state["writing"] -= 1

    monkeypatch.setattr(NetworkSaliency, "predict", predict_alone)
    monkeypatch.setattr(ImageFolder, "_decode", decode)
    monkeypatch.setattr(predicting, "write_png", write)
    (out,) = run(frames, tmp_path / "out", tiny_pretrained, "write_videos=false", "device=cpu")
    assert len(list((out / "maps").iterdir())) == 13
    assert [e for e in events if e[1]] == []  # nothing decoded or written while the network ran
    assert {t for kind, *_, t in events if kind == "write"} == {caller}
    assert any(kind == "decode" and writing and t != caller for kind, _, writing, t in events)


def test_without_videos_jpeg_frames_are_decoded_shrunk_for_the_network_and_maps_keep_the_frames_size(
        tiny_pretrained, tmp_path, monkeypatch):
    """Only the network sees the frames' pixels when no video is written: JPEGs over twice its input size are then
    decoded at half size or less (libjpeg's scaled decoding, a fraction of the work), and the maps are still
    written at the frames' own size, close to the maps of the whole frames averaged down."""
    from salvid.data import sources

    net, _ = load_network(tiny_pretrained)
    size = (4 * net.input_size[0], 4 * net.input_size[1])
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):  # smooth content that moves, saved at high quality
        frame = np.roll(np.kron(base, np.ones((8, 8, 1), np.uint8)), 4 * i, axis=1)
        Image.fromarray(frame).save(frames / f"{i:05d}.jpg", quality=95)
    halved = []
    monkeypatch.setattr(sources, "_load_jpeg", lambda path, n=0, real=sources._load_jpeg: halved.append(n)
                        or real(path, n))
    maps = {}
    for videos in ("false", "true"):
        halved.clear()
        (out,) = run(frames, tmp_path / videos, tiny_pretrained, f"write_videos={videos}", "precision=fp32")
        maps[videos] = np.stack([np.asarray(Image.open(p)) for p in sorted((out / "maps").iterdir())])
        assert maps[videos].shape == (6, *size)
        assert set(halved) == ({2} if videos == "false" else {0})
    assert video_frames(tmp_path / "true" / "frames" / "overlay.mp4")[0].shape == (*size, 3)  # the whole frames
    assert_varied(maps["false"] / 255.0, what="the maps")
    assert np.abs(maps["false"].astype(int) - maps["true"]).mean() < 2


def test_png_compression_changes_the_files_size_never_the_maps(eval_data, tiny_pretrained, tmp_path):
    video = eval_data / "videos" / "test_000.mp4"
    outs = {level: run(video, tmp_path / str(level), tiny_pretrained, "precision=fp32", "write_videos=false",
                       f"png_compression={level}")[0] for level in (0, 9)}
    names = sorted(p.name for p in (outs[0] / "maps").iterdir())
    assert names == sorted(p.name for p in (outs[9] / "maps").iterdir()) and len(names) == 8
    for name in names:
        a, b = (outs[level] / "maps" / name for level in (0, 9))
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
        assert a.stat().st_size > b.stat().st_size  # level 0 stores, level 9 compresses


def test_predict_on_a_frame_folder_and_a_glob_names_maps_by_frame(eval_data, tiny_pretrained, tmp_path):
    frames = tmp_path / "walk"
    frames.mkdir()
    for i, frame in enumerate(video_frames(eval_data / "videos" / "test_001.mp4")[:5]):
        Image.fromarray(frame[1:, 1:]).save(frames / f"img_{i * 10:03d}.jpg")  # odd size: 71x95
    (folder,) = run(frames, tmp_path / "out", tiny_pretrained)
    assert sorted(p.name for p in (folder / "maps").iterdir()) == [f"img_{i * 10:03d}.png" for i in range(5)]
    assert len(video_frames(folder / "overlay.mp4")) == 5
    (folder,) = run(f"'{frames}/img_0[0-2]*.jpg'", tmp_path / "glob", tiny_pretrained, "write_videos=false")
    assert sorted(p.name for p in (folder / "maps").iterdir()) == ["img_000.png", "img_010.png", "img_020.png"]


def test_a_failure_keeps_the_maps_written_and_marks_the_output_incomplete(tiny_pretrained, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):  # noise: large enough that half a file keeps its header
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(frames / f"{i:05d}.jpg")
    data = (frames / "00039.jpg").read_bytes()
    (frames / "00039.jpg").write_bytes(data[: len(data) // 2])  # truncated: fails when its chunk is decoded
    with pytest.raises(ImageReadError, match="00039.jpg"):
        run(frames, tmp_path / "out", tiny_pretrained, "write_videos=false")
    status = json.loads((tmp_path / "out" / "frames" / "status.json").read_text())
    assert not status["complete"] and "00039.jpg" in status["error"]
    kept = sorted((tmp_path / "out" / "frames" / "maps").iterdir())
    assert status["frames_written"] == len(kept) > 0


def test_a_full_disk_ends_predict_with_one_line_and_the_status_records_it(eval_data, tiny_pretrained, tmp_path,
                                                                         monkeypatch):
    """The disk fills up once status.json is first written: the first map fails with an error naming its
    folder, and status.json, rewritten in place as no temporary file fits, records the failure."""
    out = tmp_path / "out"
    maps = out / "test_000" / "maps"
    fill_disk(monkeypatch, str(out), files_that_fit=1)
    with pytest.raises(DiskFullError, match=rf"^{re.escape(str(maps))}: no space left on device while writing "
                                            r"00000\.png"):
        run(eval_data / "videos" / "test_000.mp4", out, tiny_pretrained, "write_videos=false")
    monkeypatch.undo()
    status = json.loads((out / "test_000" / "status.json").read_text())
    assert status["state"] == "failed" and status["complete"] is False and status["frames_written"] == 0
    assert status["error"].startswith(f"{maps}: no space left on device while writing 00000.png")
    assert "\n" not in status["error"]
    assert sorted(p.name for p in maps.iterdir()) == []  # no partial map or temporary file left


def test_every_map_is_flushed_to_the_disk_off_the_writing_thread_before_the_folder_is_published(
        eval_data, tiny_pretrained, tmp_path, monkeypatch):
    """Maps are written without a temporary file (their folder is published whole): each is flushed (fsync) on a
    thread other than the caller's, which writes them, and every map and then the folder's names are flushed
    before the folder replaces OUT/<name>/."""
    flushed, published = [], []
    own_fsync, own_replace = predicting.fsync_path, predicting.replace_folder

    def fsync(path):
        own_fsync(path)
        flushed.append((Path(path), threading.get_ident()))

    def replace(new, final, aside):
        published.append((sorted(new.glob("maps/*")), list(flushed)))
        own_replace(new, final, aside)

    monkeypatch.setattr(predicting, "fsync_path", fsync)
    monkeypatch.setattr(predicting, "replace_folder", replace)
    (out,) = run(eval_data / "videos" / "test_000.mp4", tmp_path / "out", tiny_pretrained, "write_videos=false")
    ((maps, flushed_then),) = published
    assert [p.name for p in maps] == [f"{i:05d}.png" for i in range(8)]  # no temporary file
    assert sorted(p for p, _ in flushed_then[:-1]) == maps
    assert flushed_then[-1] == (maps[0].parent, threading.get_ident())
    assert threading.get_ident() not in {t for _, t in flushed_then[:-1]}
    assert sorted(p.name for p in (out / "maps").iterdir()) == [p.name for p in maps]


def test_a_full_disk_found_when_a_map_is_flushed_ends_predict_with_one_line_and_removes_that_map(
        eval_data, tiny_pretrained, tmp_path, monkeypatch):
    """Where space is allocated only when the data goes to the disk, a full disk shows at the flush: the run
    ends naming the folder and the map, which is removed (it may not be whole), and status.json counts the
    maps that are there."""
    own_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("00002.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        own_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    maps = out / "test_000" / "maps"
    with pytest.raises(DiskFullError, match=rf"^{re.escape(str(maps))}: no space left on device while writing "
                                            r"00002\.png; free some space there"):
        run(eval_data / "videos" / "test_000.mp4", out, tiny_pretrained, "write_videos=false")
    status = json.loads((out / "test_000" / "status.json").read_text())
    kept = sorted(p.name for p in maps.iterdir())
    assert status["state"] == "failed" and status["error"].startswith(f"{maps}: no space left on device")
    assert "00002.png" not in kept and {"00000.png", "00001.png"} <= set(kept)
    assert status["frames_written"] == len(kept)


def test_bad_inputs_are_named(tiny_pretrained, tmp_path):
    with pytest.raises(PredictInputError, match="nowhere.mp4: no such file or folder"):
        run(tmp_path / "nowhere.mp4", tmp_path / "out", tiny_pretrained)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="empty: no images"):
        run(tmp_path / "empty", tmp_path / "out", tiny_pretrained)
    with pytest.raises(PredictInputError, match="the glob matches nothing"):
        run(f"{tmp_path}/*.png", tmp_path / "out", tiny_pretrained)
    frame = tmp_path / "one" / "frame.png"
    frame.parent.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frame)
    with pytest.raises(ConfigError, match="backend='foo': must be one of auto, torch, onnxruntime"):
        run(frame, tmp_path / "out", tiny_pretrained, "backend=foo")


def test_output_dir_equal_to_the_input_folder_is_refused(eval_data, tiny_pretrained, tmp_path):
    frames = tmp_path / "frames"
    shutil.copytree(eval_data / "masks" / "test_000", frames)  # any images will do
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    with pytest.raises(UnsafeOutputError, match="is the input folder"):
        run(frames, frames, tiny_pretrained)
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before


def test_a_video_writer_that_cannot_open_raises_its_own_error_and_closes_quietly(tmp_path):
    """A rate the encoder cannot take fails on the first frame; closing afterwards (as ``predict`` always
    does) must not hide that error behind one of its own."""
    path = tmp_path / "v.mp4"
    with pytest.raises(OverflowError):
        with VideoWriter(path, 1e12) as video:
            video.write(np.zeros((8, 8, 3), np.uint8))
    video.close()
    assert not path.exists()


def frame_folder(path, count, size=(32, 48), seed=0, suffix=".png"):
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path / f"{i:05d}{suffix}")
    return path


def test_a_rerun_with_a_shorter_input_of_the_same_name_leaves_only_its_own_maps(tiny_pretrained, tmp_path):
    run(frame_folder(tmp_path / "first" / "clip", 12), tmp_path / "out", tiny_pretrained)
    (folder,) = run(frame_folder(tmp_path / "second" / "clip", 5, seed=1), tmp_path / "out", tiny_pretrained)
    assert sorted(p.name for p in (folder / "maps").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    assert len(video_frames(folder / "saliency.mp4")) == len(video_frames(folder / "overlay.mp4")) == 5
    status = json.loads((folder / "status.json").read_text())
    assert status["complete"] and status["frames_written"] == 5 and status["input"].startswith(str(tmp_path / "second"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip"]  # no working folder left behind


def test_a_failed_rerun_keeps_the_earlier_complete_result(tiny_pretrained, tmp_path):
    """A rerun that fails (here on a truncated frame; Ctrl-C and SIGTERM end the same way) does not replace a
    complete result with fewer maps: its own maps and status stay in its hidden folder until the next run."""
    run(frame_folder(tmp_path / "first" / "clip", 40, size=(64, 64)), tmp_path / "out", tiny_pretrained,
        "write_videos=false")
    folder = tmp_path / "out" / "clip"
    before = {p.name: p.read_bytes() for p in (folder / "maps").iterdir()}
    frames = frame_folder(tmp_path / "second" / "clip", 40, size=(64, 64), seed=1, suffix=".jpg")
    data = (frames / "00039.jpg").read_bytes()
    (frames / "00039.jpg").write_bytes(data[: len(data) // 2])  # truncated: fails when its chunk is decoded
    with pytest.raises(ImageReadError, match="00039.jpg"):
        run(frames, tmp_path / "out", tiny_pretrained, "write_videos=false")
    assert json.loads((folder / "status.json").read_text())["complete"]
    assert {p.name: p.read_bytes() for p in (folder / "maps").iterdir()} == before
    stopped = json.loads((tmp_path / "out" / ".clip.predicting" / "status.json").read_text())
    assert not stopped["complete"] and "00039.jpg" in stopped["error"] and stopped["frames_written"] > 0

    # a result that was not complete either is replaced: the folder shows the last run's own maps
    shutil.rmtree(folder)
    for _ in range(2):
        with pytest.raises(ImageReadError, match="00039.jpg"):
            run(frames, tmp_path / "out", tiny_pretrained, "write_videos=false")
    status = json.loads((folder / "status.json").read_text())
    assert not status["complete"] and "00039.jpg" in status["error"]
    kept = sorted(p.name for p in (folder / "maps").iterdir())
    assert status["frames_written"] == len(kept) > 0 and kept == [f"{i:05d}.png" for i in range(len(kept))]


class Killed(BaseException):
    """Stands for the process dying at once (SIGKILL, power loss): no handler or cleanup runs after it."""


def test_a_run_killed_before_it_ends_leaves_the_earlier_result_whole(tiny_pretrained, tmp_path, monkeypatch):
    from salvid.inference import predicting

    run(frame_folder(tmp_path / "first" / "clip", 12), tmp_path / "out", tiny_pretrained, "write_videos=false")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "clip" / "maps").iterdir()}

    def killed(*args):
        raise Killed

    monkeypatch.setattr(predicting, "replace_folder", killed)  # dies with every new map written, not yet moved
    with pytest.raises(Killed):
        run(frame_folder(tmp_path / "second" / "clip", 5, seed=1), tmp_path / "out", tiny_pretrained,
            "write_videos=false")
    folder = tmp_path / "out" / "clip"
    assert {p.name: p.read_bytes() for p in (folder / "maps").iterdir()} == before
    status = json.loads((folder / "status.json").read_text())
    assert status["complete"] and status["frames_written"] == 12
    monkeypatch.undo()
    run(tmp_path / "second" / "clip", tmp_path / "out", tiny_pretrained, "write_videos=false")
    assert len(list((folder / "maps").iterdir())) == 5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip"]  # the killed run's folder removed


@pytest.mark.parametrize("foreign", ["notes.txt", "maps/notes.txt", "mine"])
def test_a_folder_holding_what_predict_did_not_write_is_refused_before_any_work(tiny_pretrained, tmp_path, foreign):
    frames = frame_folder(tmp_path / "frames" / "clip", 3)
    run(frames, tmp_path / "out", tiny_pretrained, "write_videos=false")
    folder = tmp_path / "out" / "clip"
    (folder / foreign).parent.mkdir(exist_ok=True)
    if foreign == "mine":
        (folder / foreign).mkdir()
    else:
        (folder / foreign).write_text("a user's")
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    with pytest.raises(UnsafeOutputError, match=rf"clip: holds {foreign}, which predict did not write"):
        run(frames, tmp_path / "out", tiny_pretrained, "write_videos=false")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
