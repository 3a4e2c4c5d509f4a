"""Frame sources: decord and PyAV videos, image folders, and their errors on bad files."""

from __future__ import annotations

import shutil
import warnings

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from salvid.data import sources
from salvid.data.errors import ImageReadError, SizeMismatchError, VideoSourceError
from salvid.data.sources import DecordVideo, FrameCountWarning, ImageFolder, PyAVVideo, open_video
from salvid.data.synthetic import render_sequence, write_mp4

NUM_FRAMES, SIZE = 20, (64, 96)
VIDEO_CLASSES = [DecordVideo, PyAVVideo]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A short mp4 and the exact frames it was encoded from."""
    frames, _ = render_sequence(7, NUM_FRAMES, SIZE)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_mp4(path, frames, fps=10)
    return path, frames


def packets_in_file_order(path):
    """(byte offset, size) of every video packet, ordered by where its data lies in the file."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    return sorted(packets)


@pytest.mark.parametrize("video_class", VIDEO_CLASSES)
def test_video_decodes_close_to_what_was_written(written, video_class):
    path, frames = written
    video = video_class(path)
    assert len(video) == NUM_FRAMES and video.frames_reported == NUM_FRAMES
    assert video.size == SIZE
    decoded = video.read(range(NUM_FRAMES))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # crf 12 H.264 with 4:2:0 chroma: measured mean abs error ~1.5 levels, mostly at saturated edges.
    error = np.abs(decoded.astype(np.int16) - frames).mean(axis=(1, 2, 3))
    assert error.max() < 3.0, error
    # Frames are in order: each decoded frame is closest to the frame written at its index.
    distances = np.abs(decoded[:, None].astype(np.int16) - frames[None]).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(distances.argmin(axis=1), np.arange(NUM_FRAMES))


def test_decord_and_pyav_agree(written):
    path, _ = written
    by_decord = DecordVideo(path).read(range(NUM_FRAMES)).astype(np.int16)
    by_pyav = PyAVVideo(path).read(range(NUM_FRAMES)).astype(np.int16)
    # Same FFmpeg H.264 decoder and RGB conversion underneath: measured identical.
    assert np.abs(by_decord - by_pyav).mean() < 0.5


@pytest.mark.parametrize("video_class", VIDEO_CLASSES)
def test_read_repeated_and_unordered_indices(written, video_class):
    path, _ = written
    video = video_class(path)
    reference = video.read(range(NUM_FRAMES))
    # Edge padding repeats indices, e.g. the triplet (t-1, t, t+1) at t = 0.
    np.testing.assert_array_equal(video.read([0, 0, 1]), reference[[0, 0, 1]])
    np.testing.assert_array_equal(video.read([18, 19, 19]), reference[[18, 19, 19]])
    np.testing.assert_array_equal(video.read([5, 2, 5, 11]), reference[[5, 2, 5, 11]])
    assert video.read([]).shape == (0, *SIZE, 3)


@pytest.mark.parametrize("video_class", VIDEO_CLASSES)
def test_out_of_range_index_names_the_file(written, video_class):
    path, _ = written
    with pytest.raises(IndexError, match=r"clip\.mp4.*\[20\].*20 frames"):
        video_class(path).read([19, 20])


def test_pyav_sequential_reads_continue_and_rewind(written):
    path, _ = written
    reference = DecordVideo(path).read(range(NUM_FRAMES))
    video = PyAVVideo(path)
    for chunk in ([0, 1, 2], [2, 3, 4], [10, 11], [3, 4, 5], [19]):  # forward, overlapping, back, end
        np.testing.assert_array_equal(video.read(chunk), reference[chunk])


def test_open_video_prefers_decord(written):
    assert isinstance(open_video(written[0]), DecordVideo)


def test_open_video_falls_back_to_pyav_with_one_warning(written, monkeypatch):
    monkeypatch.setattr(sources, "decord", None)
    monkeypatch.setattr(
        sources, "_DECORD_IMPORT_ERROR", ImportError("No module named 'decord'"), raising=False
    )
    sources._warn_decord_missing.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = open_video(written[0]), open_video(written[0])
    sources._warn_decord_missing.cache_clear()
    assert isinstance(first, PyAVVideo) and isinstance(second, PyAVVideo)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "decord is not importable" in messages[0] and "PyAV" in messages[0]


@pytest.mark.parametrize("video_class", VIDEO_CLASSES)
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is not a video" * 50, "Invalid data"),
        (None, "no such file"),
    ],
)
def test_unopenable_video_names_the_file(tmp_path, video_class, content, reason):
    path = tmp_path / "broken.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoSourceError, match=rf"broken\.mp4: cannot open video \(.*{reason}"):
        video_class(path)


def test_decord_cannot_open_a_video_cut_in_half(written, tmp_path):
    path = tmp_path / "half.mp4"
    data = written[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoSourceError, match=r"half\.mp4: cannot open video \(.*truncated or corrupt"):
        DecordVideo(path)


def corrupt_last_packets(source, target, count):
    """Copy ``source`` with the data of its last ``count`` packets zeroed: the index still lists them."""
    data = bytearray(source.read_bytes())
    for position, size in packets_in_file_order(source)[-count:]:
        data[position : position + size] = bytes(size)
    target.write_bytes(bytes(data))


def cut_inside_last_packet(source, target):
    """Copy ``source`` cut short in the middle of its last packet (an interrupted download)."""
    position, size = packets_in_file_order(source)[-1]
    target.write_bytes(source.read_bytes()[: position + size // 2])


@pytest.mark.parametrize("damage", ["zeroed tail", "cut tail"])
def test_over_reported_frame_count_is_trimmed_with_a_warning(written, tmp_path, damage):
    path, _ = written
    damaged = tmp_path / "damaged.mp4"
    if damage == "zeroed tail":
        corrupt_last_packets(path, damaged, 3)
    else:
        cut_inside_last_packet(path, damaged)
    intact = DecordVideo(path).read(range(NUM_FRAMES))
    # decord is erratic on damaged streams, so open_video hands them to PyAV.
    with pytest.raises(VideoSourceError, match="damaged"):
        DecordVideo(damaged)
    lengths = {}
    for video_class in (open_video, PyAVVideo):
        with pytest.warns(
            FrameCountWarning,
            match=r"damaged\.mp4: container reports 20 frames but only the first \d+ decode",
        ):
            video = video_class(damaged)
        assert video.frames_reported == NUM_FRAMES
        assert isinstance(video, PyAVVideo)
        lengths[video_class] = len(video)
        assert 0 < len(video) < NUM_FRAMES
        # Every frame kept decodes to the intact video's frame, and the last one is readable.
        np.testing.assert_array_equal(video.read(range(len(video))), intact[: len(video)])
    assert lengths[open_video] == lengths[PyAVVideo]


def write_images(folder, frames, suffix=".png"):
    folder.mkdir(exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        paths.append(folder / f"{index:05d}{suffix}")
        Image.fromarray(frame).save(paths[-1])
    return paths


def test_image_folder_reads_pngs_exactly(tmp_path):
    frames, _ = render_sequence(3, 6, (32, 48))
    write_images(tmp_path / "seq", frames)
    (tmp_path / "seq" / "notes.txt").write_text("not a frame")
    folder = ImageFolder.from_directory(tmp_path / "seq")
    assert len(folder) == 6 and folder.size == (32, 48)
    np.testing.assert_array_equal(folder.read([0, 0, 1, 5]), frames[[0, 0, 1, 5]])


def test_image_folder_converts_grey_jpegs_to_rgb(tmp_path):
    frames, _ = render_sequence(3, 2, (32, 48))
    grey = frames.mean(axis=-1).astype(np.uint8)
    paths = write_images(tmp_path / "seq", grey, suffix=".jpg")
    decoded = ImageFolder(paths).read([0, 1])
    assert decoded.shape == (2, 32, 48, 3)
    assert np.abs(decoded[..., 1].astype(np.int16) - grey).mean() < 3


def test_image_folder_frames_of_different_sizes_name_both_files(tmp_path):
    frames, _ = render_sequence(3, 3, (32, 48))
    paths = write_images(tmp_path / "seq", frames)
    Image.fromarray(frames[2][:30]).save(paths[2])
    with pytest.raises(SizeMismatchError, match=r"00002\.png: frame is 30x48 .*00000\.png is 32x48"):
        ImageFolder(paths)


def test_truncated_jpeg_names_the_file_when_read(tmp_path):
    frames, _ = render_sequence(3, 3, (256, 256))
    paths = write_images(tmp_path / "seq", frames, suffix=".jpg")
    # Keep the header (tables, ~600 bytes) and cut the entropy-coded data short.
    paths[1].write_bytes(paths[1].read_bytes()[: paths[1].stat().st_size * 3 // 4])
    folder = ImageFolder(paths)  # the header is intact: only decoding finds the damage
    folder.read([0, 2])
    with pytest.raises(ImageReadError, match=r"00001\.jpg: cannot decode image \(.*truncated"):
        folder.read([1])


def _pillow_rgb(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_jpeg_frames_decode_to_pillows_pixels_whatever_the_decoder(tmp_path, monkeypatch):
    """Whole colour and grey JPEGs are decoded by OpenCV, others by Pillow; a frame is the same either way."""
    frames, _ = render_sequence(5, 4, (48, 64))
    paths = write_images(tmp_path / "seq", frames, suffix=".jpg")
    Image.fromarray(frames[1][..., 0]).save(paths[1])  # grey
    Image.fromarray(frames[2]).convert("CMYK").save(paths[2])  # CMYK: Pillow's conversion to RGB
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": ignored by both decoders, as in training
    Image.fromarray(frames[3]).save(paths[3], exif=exif)
    used = []
    monkeypatch.setattr(sources, "_load_jpeg", lambda path, halved=0, real=sources._load_jpeg:
                        used.append(path.name) or real(path, halved))
    read = ImageFolder(paths).read(range(4))
    assert used == ["00000.jpg", "00001.jpg", "00003.jpg"]
    for frame, path in zip(read, paths, strict=True):
        assert frame.shape == (48, 64, 3) and np.array_equal(frame, _pillow_rgb(path))


@pytest.mark.parametrize(("size", "halved"), [((96, 128), 2), ((98, 130), 1), ((97, 131), 0)])
def test_image_folder_frames_come_shrunk_towards_a_size_only_when_asked(tmp_path, size, halved):
    """JPEGs at 1/2**n of their sides as libjpeg's scaled decoding gives them, close to the whole frame averaged
    down; a frame Pillow decodes is averaged down to the same size, so every frame stacks. Halved only as far
    as the sides divide: the shrunk frame covers the whole one exactly."""
    frames, _ = render_sequence(5, 3, size)
    paths = write_images(tmp_path / "seq", frames, suffix=".jpg")
    Image.fromarray(frames[2]).convert("CMYK").save(paths[2])  # decoded by Pillow
    folder = ImageFolder(paths)
    shrunk = folder.read([0, 1, 2, 0], at_least=(24, 32))  # 96x128 halves twice and stays at least 24x32
    expected = (size[0] >> halved, size[1] >> halved)
    assert shrunk.shape == (4, *expected, 3) and np.array_equal(shrunk[0], shrunk[3])
    for frame, path in zip(shrunk[:3], paths, strict=True):
        averaged = cv2.resize(_pillow_rgb(path), expected[::-1], interpolation=cv2.INTER_AREA)
        assert np.abs(frame.astype(int) - averaged).mean() < 0.5
    flag = {0: cv2.IMREAD_COLOR, 1: cv2.IMREAD_REDUCED_COLOR_2, 2: cv2.IMREAD_REDUCED_COLOR_4}[halved]
    assert np.array_equal(shrunk[0], cv2.imdecode(np.fromfile(paths[0], np.uint8), flag)[..., ::-1])
    assert np.array_equal(shrunk[2], cv2.resize(_pillow_rgb(paths[2]), expected[::-1], interpolation=cv2.INTER_AREA))
    assert np.array_equal(folder.read([0, 1], at_least=(64, 64)), folder.read([0, 1]))  # under twice: whole
    assert folder.read([1]).shape == (1, *size, 3)


def test_unreadable_or_missing_images_name_the_file(tmp_path):
    frames, _ = render_sequence(3, 2, (32, 48))
    paths = write_images(tmp_path / "seq", frames)
    paths[1].write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"00001\.png: cannot open image"):
        ImageFolder(paths)
    with pytest.raises(ImageReadError, match=r"empty: no images"):
        ImageFolder.from_directory((tmp_path / "empty").mkdir() or tmp_path / "empty")
    shutil.rmtree(tmp_path / "seq")
    with pytest.raises(ImageReadError, match=r"seq: not a directory"):
        ImageFolder.from_directory(tmp_path / "seq")


def test_16_bit_grey_frames_keep_their_range(tmp_path):
    ramp = (np.arange(64, dtype=np.uint32)[None, :].repeat(8, axis=0) * 1040).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "00000.png")  # a 16-bit greyscale PNG
    with Image.open(tmp_path / "00000.png") as image:
        assert image.mode.startswith("I")  # Pillow reads it as a wide grey image
    frame = ImageFolder.from_directory(tmp_path).read([0])[0]
    assert frame.dtype == np.uint8 and frame.shape == (8, 64, 3)
    np.testing.assert_array_equal(frame[..., 0], np.round(ramp / 257.0).astype(np.uint8))  # not a flat 255
    assert frame.min() == 0 and frame.max() == 255 and len(np.unique(frame)) == 64


def test_a_float_image_frame_is_refused_naming_the_file(tmp_path):
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "00000.tiff")
    with pytest.raises(ImageReadError, match=r"00000.tiff: a floating-point image"):
        sources._load_rgb(tmp_path / "00000.tiff")


# -- rotation: a phone records its orientation beside the picture; both decoders show the picture upright ----


def _quadrants(height: int = 64, width: int = 96) -> np.ndarray:
    """Red, green / blue, white quadrants: any quarter turn or flip is visible."""
    image = np.full((height, width, 3), 255, np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2 :] = (0, 255, 0)
    image[height // 2 :, : width // 2] = (0, 0, 255)
    return image


def _write_rotated(path, degrees: int, how: str) -> np.ndarray:
    """A 4-frame video whose picture is ``_quadrants()``, to be shown turned ``degrees`` counter-clockwise:
    ``matrix``, a display matrix in an mp4 (as phones write); ``tag``, a ``rotate`` tag (clockwise) in an mkv.
    Returns the frames as they should be shown."""
    image = _quadrants()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv444p"
        if how == "matrix":
            if not hasattr(stream, "set_display_rotation"):
                pytest.skip(f"PyAV {av.__version__} cannot write a display matrix")
            stream.set_display_rotation(degrees)
        else:
            stream.metadata["rotate"] = str(-degrees % 360)
        for _ in range(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return np.stack([np.rot90(image, degrees // 90)] * 4)


@pytest.mark.parametrize(("degrees", "how"), [(90, "matrix"), (-90, "matrix"), (180, "matrix"), (90, "tag")])
def test_pyav_turns_a_rotated_video_upright_as_decord_does(tmp_path, degrees, how):
    path = tmp_path / ("phone.mp4" if how == "matrix" else "phone.mkv")
    shown = _write_rotated(path, degrees, how)
    by_pyav = PyAVVideo(path)
    assert by_pyav.size == shown.shape[1:3]
    frames = by_pyav.read(range(4))
    assert frames.shape == shown.shape and np.abs(frames.astype(int) - shown).max() <= 8
    if sources.decord is not None:
        by_decord = DecordVideo(path)
        assert by_decord.size == by_pyav.size
        assert np.abs(by_decord.read(range(4)).astype(int) - frames).max() <= 2


def test_display_matrix_rotation_reads_ffmpegs_convention():
    from types import SimpleNamespace

    from salvid.data.sources import display_matrix_rotation, quarter_turns

    def matrix(a, b, c, d):  # 16.16 fixed point, w = 1 in 2.30
        return np.array([a, b, 0, c, d, 0, 0, 0, 1 << 30], np.int32).tobytes()

    one = 1 << 16
    assert display_matrix_rotation(matrix(one, 0, 0, one)) == 0
    assert display_matrix_rotation(matrix(0, -one, one, 0)) == 90  # what a phone held upright records
    assert display_matrix_rotation(matrix(0, one, -one, 0)) == -90
    assert abs(display_matrix_rotation(matrix(-one, 0, 0, -one))) == 180
    # a PyAV without VideoFrame.rotation: the side data is read; a rotate tag counts clockwise
    class SideData:  # as PyAV's: a type with a name, and the bytes
        type = SimpleNamespace(name="DISPLAYMATRIX")

        def __bytes__(self):
            return matrix(0, -one, one, 0)

    assert quarter_turns(SimpleNamespace(side_data=[SideData()]), {}) == 1
    assert quarter_turns(SimpleNamespace(rotation=0), {"ROTATE": "90"}) == 3
    assert quarter_turns(SimpleNamespace(rotation=0), {"rotate": "bogus"}) == 0


def test_videos_opening_in_overlapping_threads_give_stderr_back(written):
    """The first of two overlapping openers exits first: stderr must still be the process's own afterwards (a
    thread restoring what it saw would leave it pointing at /dev/null for good, hiding every later error)."""
    import os
    import threading

    def identity():
        stat = os.fstat(2)
        return stat.st_dev, stat.st_ino

    before = identity()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with sources._native_stderr_silenced():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with sources._native_stderr_silenced():
            second_in.set()
            first_out.wait(5)
            assert identity() == (os.stat(os.devnull).st_dev, os.stat(os.devnull).st_ino)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first_out.is_set() and second_in.is_set()
    assert identity() == before
    for _ in range(3):  # and through the public path, in threads
        workers = [threading.Thread(target=DecordVideo, args=(written[0],)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert identity() == before


def test_a_folder_of_frames_plays_in_frame_number_order(tmp_path):
    """Frames numbered without zero padding (``frame2.jpg`` before ``frame10.jpg``) play in number order; hidden
    files (macOS's ``._frame1.jpg``) are not frames; two files of one number are refused, naming both."""
    frames, _ = render_sequence(3, 11, (32, 48))
    for i, image in enumerate(frames):
        Image.fromarray(image).save(tmp_path / f"frame{i}.png")
    (tmp_path / "._frame1.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    folder = ImageFolder.from_directory(tmp_path)
    assert [p.name for p in folder.paths] == [f"frame{i}.png" for i in range(11)]
    np.testing.assert_array_equal(folder.read([2, 10]), frames[[2, 10]])
    Image.fromarray(frames[0]).save(tmp_path / "other0.png")
    with pytest.raises(ImageReadError, match=r"frame0\.png: same frame number as .*other0\.png|other0\.png: same "
                                             r"frame number as .*frame0\.png"):
        ImageFolder.from_directory(tmp_path)
