"""Errors raised for bad data files; every message starts with the offending file's path."""


class DataError(ValueError):
    """A data file is missing, unreadable or inconsistent with another file."""


class VideoSourceError(DataError):
    """A video cannot be opened or decoded."""


class ImageReadError(DataError):
    """A frame image cannot be opened or decoded (e.g. a truncated JPEG)."""


class MaskError(DataError):
    """A mask file cannot be read or has an unsupported image mode."""


class SizeMismatchError(DataError):
    """Two files that must share a height and width (frames of one sequence, a frame and its mask) differ."""
