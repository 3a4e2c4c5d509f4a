"""The kinds of :class:`~salvid.errors.DataError` raised for bad data: each message names the offending file,
folder or setting."""

from salvid.errors import DataError

__all__ = ["DataError", "DatasetError", "ImageReadError", "MaskError", "SizeMismatchError", "VideoSourceError"]


class DatasetError(DataError):
    """A dataset on disk is missing or malformed, or a setting of its layout is wrong; the message names the path
    or the setting and what is wrong."""


class VideoSourceError(DataError):
    """A video cannot be opened or decoded."""


class ImageReadError(DataError):
    """A frame image cannot be opened or decoded (e.g. a truncated JPEG)."""


class MaskError(DataError):
    """A mask file cannot be read or has an unsupported image mode."""


class SizeMismatchError(DataError):
    """Two files that must share a height and width (frames of one sequence, a frame and its mask) differ."""
