"""Frame sources: the decoded RGB frames of one sequence, from a video file or a list of image files.

A source only decodes. Which frames to read (triplets, edge padding) and transforms live elsewhere.
``read`` takes indices in any order, repeats allowed; each distinct frame is decoded once per call.
Video sources decode fastest when successive calls ask for ascending frames (sequential decoding).

Containers can over-report their frame count (a truncated or corrupt tail: the index lists frames whose
data does not decode). Video sources check that the last reported frame decodes; when it does not, they
trim to the frames that decode and warn with a ``FrameCountWarning`` naming the file and both counts.
``frames_reported`` keeps the container's count so callers can count trimmed videos.
"""

from __future__ import annotations

import abc
import functools
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from salvid.data.errors import ImageReadError, SizeMismatchError, VideoSourceError
from salvid.data.preprocess import halvings

if TYPE_CHECKING:
    import av

try:
    import decord
except ImportError as error:  # no wheel for some platforms, e.g. macOS arm64
    decord = None
    _DECORD_IMPORT_ERROR = error

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
_AVERROR_INVALIDDATA = 1094995529  # FFmpeg's error tag 'INDA', as decord prints it


class FrameCountWarning(UserWarning):
    """A video decodes fewer frames than its container reports; the source uses the frames that decode."""


class FrameSource(abc.ABC):
    """Decoded frames of one sequence as (N, H, W, 3) uint8 RGB arrays."""

    path: Path  # the file (or folder) to name in errors

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of frames that decode."""

    @property
    @abc.abstractmethod
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""

    def read(self, indices: Sequence[int], at_least: tuple[int, int] | None = None) -> np.ndarray:
        """Frames at ``indices`` as (len(indices), H, W, 3) uint8 RGB; indices may repeat.

        ``at_least`` (height, width): only a shrunk copy of at least this size is needed (the network's input), so
        a source may return the frames halved as :func:`salvid.data.preprocess.halvings` allows: an image folder
        does (to 1/2, 1/4 or 1/8 of their sides, where they divide), as JPEGs decode at that size in a fraction of
        the time; video sources return them whole.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out_of_range = indices[(indices < 0) | (indices >= len(self))]
        if out_of_range.size:
            raise IndexError(
                f"{self.path}: frame indices {out_of_range.tolist()} out of range for {len(self)} frames"
            )
        if indices.size == 0:
            return np.empty((0, *self.size, 3), dtype=np.uint8)
        unique, inverse = np.unique(indices, return_inverse=True)
        return (self._decode(unique) if at_least is None else self._decode_shrunk(unique, at_least))[inverse]

    @abc.abstractmethod
    def _decode(self, indices: np.ndarray) -> np.ndarray:
        """Frames at distinct, ascending, in-range ``indices``."""

    def _decode_shrunk(self, indices: np.ndarray, at_least: tuple[int, int]) -> np.ndarray:
        """:meth:`_decode`, shrunk where the decoder can do it for less work (see :meth:`read`)."""
        return self._decode(indices)


def _open_failure_reason(path: Path, error: Exception) -> str:
    """A short reason why a video does not open; decord's own message does not say, FFmpeg's does."""
    if not path.is_file():
        return "no such file"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    import av  # imported where used: image-folder datasets need no FFmpeg

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
    except av.FFmpegError as probe_error:
        return probe_error.strerror or str(probe_error)
    return _decord_reason(error)


def _decord_reason(error: Exception) -> str:
    """decord's message without its log prefix, e.g. 'av_read_frame failed with 1094995529'."""
    reason = re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*(Error:\s*)?", "", str(error).strip().splitlines()[0])
    if reason.endswith(str(_AVERROR_INVALIDDATA)):
        reason += ": invalid data, the file is truncated or corrupt"
    return reason


def _warn_trimmed(path: Path, reported: int, decodable: int) -> None:
    warnings.warn(
        f"{path}: container reports {reported} frames but only the first {decodable} decode; "
        f"using {decodable} frames",
        FrameCountWarning,
        stacklevel=3,
    )


# Videos whose first and last frame decoded, by file identity: checking the last frame decodes from the
# previous keyframe (2 s for a 200-frame 428x240 clip with one keyframe), far too much to repeat for every
# chunk a training stream opens.
_CHECKED_VIDEOS: dict[tuple[str, int, int], tuple[int, tuple[int, int]]] = {}


def _file_identity(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


_SILENCE_LOCK = threading.Lock()
_silencers = 0
_saved_stderr = -1


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """decord's own FFmpeg writes its complaints ("moov atom not found") straight to the process's stderr; the
    error salvid raises names the file and the reason, so those lines are held back while a video opens.

    File descriptor 2 belongs to the whole process and videos open in threads (``inventory.count_sequences``):
    the first opener redirects it and the last one restores it, so no thread restores another's redirection."""
    global _silencers, _saved_stderr
    with _SILENCE_LOCK:
        if _silencers == 0:
            sys.stderr.flush()
            _saved_stderr = os.dup(2)
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
        _silencers += 1
    try:
        yield
    finally:
        with _SILENCE_LOCK:
            _silencers -= 1
            if _silencers == 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)


class DecordVideo(FrameSource):
    """A video decoded by decord; ``read`` fetches all requested frames in one ``get_batch``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._open()
        self.frames_reported = len(self._reader)
        key = _file_identity(self.path)
        if key in _CHECKED_VIDEOS:  # checked before in this process: skip decoding its first and last frame
            self._len, self._size = _CHECKED_VIDEOS[key]
            return
        try:
            self._size = self._reader.get_batch([0]).shape[1:3]
        except decord.DECORDError as error:
            reason = _decord_reason(error)
            if "DECORDArrayCopyFromTo" in reason:  # measured, even widths 16-258: 16, 24, 48, 72 fail
                reason += "; decord 0.6 cannot decode some small frame widths: re-encode or use PyAVVideo"
            raise VideoSourceError(f"{self.path}: cannot decode its first frame ({reason})") from error
        self._len = self._count_decodable()
        _CHECKED_VIDEOS[key] = (self._len, self._size)

    def _open(self) -> None:
        try:
            with _native_stderr_silenced():
                self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1)
        except (RuntimeError, decord.DECORDError) as error:
            raise VideoSourceError(
                f"{self.path}: cannot open video ({_open_failure_reason(self.path, error)})"
            ) from error

    def __len__(self) -> int:
        return self._len

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _try_decode(self, index: int) -> np.ndarray | None:
        try:
            return self._reader.get_batch([index]).asnumpy()[0]
        except decord.DECORDError:
            return None

    def _count_decodable(self) -> int:
        """The container's count, checked by decoding the last frame.

        decord's threaded decoder behaves erratically once it meets a damaged packet (a later read may fail,
        even of frame 0), so a video whose last frame does not decode is refused here and handed to PyAV by
        :func:`open_video`, which decodes sequentially and trims deterministically.
        """
        if self._try_decode(self.frames_reported - 1) is None:
            raise VideoSourceError(f"{self.path}: the last of {self.frames_reported} reported frames does not decode")
        return self.frames_reported

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        try:
            return self._reader.get_batch(indices.tolist()).asnumpy()
        except decord.DECORDError as error:
            raise VideoSourceError(
                f"{self.path}: cannot decode frames {indices.tolist()} ({_decord_reason(error)})"
            ) from error


def display_matrix_rotation(matrix: bytes) -> float:
    """The counter-clockwise angle in degrees by which a display matrix (FFmpeg's DISPLAYMATRIX side data:
    nine native int32, 16.16 fixed point) turns the picture to show it upright; as ``av_display_rotation_get``."""
    m = np.frombuffer(matrix, dtype=np.int32, count=9).astype(np.float64)
    scale0, scale1 = np.hypot(m[0], m[3]), np.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return 0.0
    return float(-np.degrees(np.arctan2(m[1] / scale1, m[0] / scale0)))


def quarter_turns(frame: av.VideoFrame, metadata: dict[str, str]) -> int:
    """Counter-clockwise quarter turns (for ``np.rot90``) that show a decoded frame upright, as decord shows
    it: the display matrix (mp4/mov, where phones record their orientation), else a ``rotate`` tag (degrees
    clockwise, as Matroska files written by FFmpeg carry it). Rounded to a multiple of 90 degrees; flips in
    the matrix are ignored, as decord ignores them."""
    degrees = getattr(frame, "rotation", None)
    if degrees is None:  # a PyAV without VideoFrame.rotation: read the matrix itself
        matrix = next((bytes(d) for d in frame.side_data if d.type.name == "DISPLAYMATRIX"), None)
        degrees = 0.0 if matrix is None else display_matrix_rotation(matrix)
    if not degrees:
        tag = next((value for key, value in metadata.items() if key.lower() == "rotate"), "0")
        try:
            degrees = -float(tag)
        except ValueError:  # not a number: no rotation to honour
            degrees = 0.0
    return round(degrees / 90) % 4


class PyAVVideo(FrameSource):
    """A video decoded by PyAV, sequentially; the fallback where decord cannot be imported.

    Opening decodes the whole video once to count the frames that decode (PyAV cannot seek to a frame
    index). Reads continue from the last decoded frame when asked for later frames, else rewind. Frames come
    out turned upright by the video's rotation (:func:`quarter_turns`), as decord returns them, so a phone
    video has the same shape and orientation from either decoder.
    """

    def __init__(self, path: str | Path):
        import av

        self._av = av
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
            stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError) as error:
            raise VideoSourceError(
                f"{self.path}: cannot open video ({_open_failure_reason(self.path, error)})"
            ) from error
        self.frames_reported = stream.frames  # 0 where the container does not record it
        metadata = dict(stream.metadata)
        self._len = 0
        for frame in self._decoded_frames():
            if self._len == 0:
                self._turns = quarter_turns(frame, metadata)
                self._size = (frame.width, frame.height) if self._turns % 2 else (frame.height, frame.width)
            self._len += 1
        if self._len == 0:
            raise VideoSourceError(f"{self.path}: cannot open video (no frame decodes)")
        if self._len < self.frames_reported:
            _warn_trimmed(self.path, self.frames_reported, self._len)
        self._rewind()

    def __len__(self) -> int:
        return self._len

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _decoded_frames(self) -> Iterator[av.VideoFrame]:
        """Frames from the start, ending at the first frame that fails to decode."""
        self._container.close()
        self._container = self._av.open(str(self.path))
        try:
            yield from self._container.decode(video=0)
        except self._av.FFmpegError:
            return

    def _rewind(self) -> None:
        self._frames = self._decoded_frames()
        self._position = 0  # index of the frame self._frames yields next

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        if indices[0] < self._position:
            self._rewind()
        out = []
        for index in indices:
            for frame in self._frames:
                self._position += 1
                if self._position - 1 == index:
                    out.append(np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), self._turns)))
                    break
            else:
                raise VideoSourceError(f"{self.path}: frame {index} no longer decodes")
        return np.stack(out)


@functools.cache
def _warn_decord_missing() -> None:
    warnings.warn(
        f"decord is not importable ({_DECORD_IMPORT_ERROR}); decoding videos with PyAV instead (slower)",
        stacklevel=3,
    )


def open_video(path: str | Path) -> FrameSource:
    """A decord source; a PyAV source where decord cannot be imported (with a one-time warning) or cannot
    decode the video (a damaged or over-reporting container, some small frame widths)."""
    if decord is None:
        _warn_decord_missing()
        return PyAVVideo(path)
    try:
        return DecordVideo(path)
    except VideoSourceError:
        return PyAVVideo(path)  # decodes what decord could not, or raises its own error naming the file


def _image_header(path: Path) -> tuple[tuple[int, int], bool]:
    """((height, width), whether OpenCV decodes it to the same pixels as Pillow) from the image header, without
    decoding the pixels. That holds for 8-bit colour and grey JPEGs; CMYK's conversion to RGB differs."""
    try:
        with Image.open(path) as image:
            return (image.height, image.width), image.format == "JPEG" and image.mode in ("RGB", "L")
    except (OSError, UnidentifiedImageError) as error:
        raise ImageReadError(f"{path}: cannot open image ({error})") from error


_JPEG_END = b"\xff\xd9"


# OpenCV's flags that have libjpeg decode at 1/2, 1/4 or 1/8 of the size (combined with RGB: colour)
_SHRUNK = {0: 0, 1: cv2.IMREAD_REDUCED_GRAYSCALE_2, 2: cv2.IMREAD_REDUCED_GRAYSCALE_4,
           3: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _load_jpeg(path: Path, halved: int = 0) -> np.ndarray | None:
    """A whole JPEG (one that ends with its end-of-image marker) decoded by OpenCV: the same pixels as Pillow
    (both are libjpeg-turbo; EXIF orientation ignored by both) in under half the time. None for a truncated
    file, which OpenCV would fill with grey, one with bytes other than zero padding after the marker, or one
    OpenCV cannot decode: Pillow then decodes it or names the damage.

    ``halved`` (0-3): decoded at 1/2**halved of its sides by libjpeg's scaled inverse DCT, in a fraction of the
    time of the whole image; close to the whole image averaged down (a fraction of a grey level apart on average),
    not the same pixels."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.rstrip(b"\x00").endswith(_JPEG_END):
        return None
    frame = cv2.imdecode(np.frombuffer(data, np.uint8),
                         _SHRUNK[halved] | cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    return frame if frame is not None and frame.ndim == 3 else None


# Pillow's modes of 16-bit (and 32-bit integer) grey images: converting them to RGB clips at 255, which turns a
# 16-bit frame white
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _rgb8(image: Image.Image, path: Path) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB; 16-bit grey by its full range."""
    if image.mode in _WIDE_GREY:
        values = np.asarray(image).astype(np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ImageReadError(f"{path}: {image.mode} image with values outside 0-65535; save frames as 8- or "
                                 "16-bit images")
        grey = np.round(values / 257.0).astype(np.uint8)  # 65535 -> 255
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        raise ImageReadError(f"{path}: a floating-point image (mode F) has no fixed range; save frames as 8- or "
                             "16-bit images")
    return np.asarray(image.convert("RGB"))


def _load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return _rgb8(image, path)
    except (
        OSError,
        UnidentifiedImageError,
        SyntaxError,
    ) as error:  # PIL raises SyntaxError for some broken PNGs
        raise ImageReadError(f"{path}: cannot decode image ({error})") from error


def frame_key(path: Path) -> int | str:
    """A file's frame number (the last digits of its stem, a ``_gt`` suffix aside), else its stem."""
    stem = re.sub(r"_gt$", "", path.stem, flags=re.IGNORECASE)
    digits = re.search(r"(\d+)$", stem)
    return int(digits.group(1)) if digits else stem


def frame_order(key: int | str) -> tuple[int, int | str]:
    """Sort key of :func:`frame_key`'s keys: numbered frames in number order, then named ones by name."""
    return (0, key) if isinstance(key, int) else (1, key)


class ImageFolder(FrameSource):
    """Frames stored as image files (jpg/png/bmp), one file per frame, in the given order.

    Construction reads every header, so frames of different sizes fail early, naming both files. Pixels
    are decoded on ``read``; a file that does not decode (e.g. a truncated JPEG) raises then, naming it.
    """

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ImageFolder needs at least one image path")
        self.path = self.paths[0].parent
        self._size, fast = _image_header(self.paths[0])
        self._opencv = [fast]  # per frame: decoded by OpenCV (faster), else by Pillow
        for path in self.paths[1:]:
            size, fast = _image_header(path)
            self._opencv.append(fast)
            if size != self._size:
                raise SizeMismatchError(
                    f"{path}: frame is {size[0]}x{size[1]} (HxW) but {self.paths[0]} "
                    f"is {self._size[0]}x{self._size[1]}"
                )

    @classmethod
    def from_directory(cls, directory: str | Path) -> ImageFolder:
        """The images in ``directory`` in frame order (:func:`frame_key`: ``frame2.jpg`` before ``frame10.jpg``);
        hidden files are not frames."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ImageReadError(f"{directory}: not a directory")
        found: dict[int | str, Path] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                continue
            key = frame_key(path)
            if key in found:
                raise ImageReadError(f"{path}: same frame number as {found[key]}; cannot tell which comes first, "
                                     "so rename one (or keep each video's frames in a folder of their own)")
            found[key] = path
        if not found:
            raise ImageReadError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return cls([found[k] for k in sorted(found, key=frame_order)])

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _decode(self, indices: np.ndarray, halved: int = 0) -> np.ndarray:
        return np.stack([self._load(i, halved) for i in indices])

    def _decode_shrunk(self, indices: np.ndarray, at_least: tuple[int, int]) -> np.ndarray:
        # halved only as far as the sides divide, so that the shrunk frame covers the whole one pixel for pixel
        n = min(halvings(self._size, at_least), 3)
        while n and any(side % (1 << n) for side in self._size):
            n -= 1
        return self._decode(indices, n)

    def _load(self, i: int, halved: int = 0) -> np.ndarray:
        frame = _load_jpeg(self.paths[i], halved) if self._opencv[i] else None
        if frame is not None:
            return frame
        frame = _load_rgb(self.paths[i])
        if halved:  # as libjpeg shrinks the others
            frame = cv2.resize(frame, (self._size[1] >> halved, self._size[0] >> halved), interpolation=cv2.INTER_AREA)
        return frame
