"""A disk that fills up, for the tests of what a failed write leaves behind.

salvid writes its outputs through :func:`salvid.runtime.files.atomic_open`, which opens a temporary file with
``os.fdopen``. :func:`install` replaces ``os.fdopen`` so that, among the files whose path contains ``where``,
the first ``files_that_fit`` are written normally and every later one fails after ``bytes_that_fit`` bytes
with ``OSError(ENOSPC)``, raised by the buffered writer as on a real full disk. Files opened otherwise
(``open()``, C libraries) are unaffected. Linux only: it reads a descriptor's path from /proc.
"""

from __future__ import annotations

import errno
import io
import os
from typing import Any

_real_fdopen = os.fdopen


class _FullRaw(io.RawIOBase):
    def __init__(self, fd: int, room: int) -> None:
        self.fd, self.room = fd, room

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, data: Any) -> int:
        data = bytes(data)
        if len(data) > self.room:
            os.write(self.fd, data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return os.write(self.fd, data)

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def install(where: str, files_that_fit: int = 0, bytes_that_fit: int = 1000) -> None:
    """Make the disk full for files whose path contains ``where`` (see the module's docstring)."""
    written = [0]

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any):
        if "w" not in mode or where not in os.readlink(f"/proc/self/fd/{fd}"):
            return _real_fdopen(fd, mode, *args, **kwargs)
        written[0] += 1
        if written[0] <= files_that_fit:
            return _real_fdopen(fd, mode, *args, **kwargs)
        return io.BufferedWriter(_FullRaw(fd, bytes_that_fit))

    os.fdopen = fdopen


def fill_disk(monkeypatch, where: str, files_that_fit: int = 0, bytes_that_fit: int = 1000) -> None:
    """:func:`install` for the duration of a test."""
    monkeypatch.setattr(os, "fdopen", os.fdopen)  # restored after the test
    install(where, files_that_fit, bytes_that_fit)
