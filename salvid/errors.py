"""salvid's error types: one base, :class:`SalvidError`, and a kind per concern.

A ``SalvidError`` is a mistake in what the user gave (a config value, a data file, a checkpoint, an output
location): its message names the key or file, says what is wrong and what to do. The entry points print it as
one line and exit with status 2 (:mod:`salvid.runtime.entry`); any other exception is a bug and keeps its
traceback. Subclass the kind that fits, beside the code that raises it, and it is reported the same way.
"""

from __future__ import annotations


class SalvidError(ValueError):
    """Bad input a user can fix; the message names the key or file and what to do."""


class ConfigError(SalvidError):
    """A config value makes no sense; the message names the key, the value and what is allowed."""


class DataError(SalvidError):
    """A data file or dataset folder is missing, unreadable or inconsistent; the message starts with its path."""


class CheckpointError(SalvidError):
    """A weights file cannot be used; the message names the file and why."""


class UnsafeOutputError(SalvidError):
    """An output location would overwrite or land inside an input; the message names both."""


class UnsafeArchiveError(SalvidError):
    """A dataset archive would write outside its destination, or holds something that is not a plain file."""


class DownloadError(SalvidError):
    """A download failed or its file does not match what was expected."""


class DiskFullError(SalvidError):
    """A write failed for lack of space (or quota); the message names the folder. Files are written to a
    temporary name (or folder) and renamed, so what was there before is intact."""
