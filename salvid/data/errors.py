"""The kinds of :class:`~salvid.errors.DataError` raised for bad data files; every message starts with the
offending file's path."""

from salvid.errors import DataError

__all__ = ["DataError", "ImageReadError", "MaskError", "SizeMismatchError", "VideoSourceError"]


class VideoSourceError(DataError):
    """A video cannot be opened or decoded."""


class ImageReadError(DataError):
    """A frame image cannot be opened or decoded (e.g. a truncated JPEG)."""


class MaskError(DataError):
    """A mask file cannot be read or has an unsupported image mode."""


class SizeMismatchError(DataError):
    """Two files that must share a height and width (frames of one sequence, a frame and its mask) differ."""
