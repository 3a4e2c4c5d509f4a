"""Writing outputs safely: atomic writes (a reader sees the old file or the new one, never half of one),
file names derived from data that cannot escape their folder, and output paths that never hit an input."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from salvid.errors import DiskFullError, UnsafeOutputError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def user_cache() -> Path:
    """salvid's per-user folder: ``$SALVID_CACHE``, else ``$XDG_CACHE_HOME/salvid``, else ``~/.cache/salvid``
    (downloaded checkpoints, exported models, ONNX graphs, machine probes, run locks)."""
    base = os.environ.get("SALVID_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "salvid"
    return Path(base).expanduser()


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends, and is deleted if the block raises.

    A write that fails for lack of space raises :class:`DiskFullError` naming the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give what a plain open() would
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            raise _disk_full(path, error, f" (a {path.name} already there is left as it was)") from error
        raise


def _disk_full(path: Path, error: OSError, kept: str = "") -> DiskFullError:
    return DiskFullError(f"{path.parent}: {os.strerror(error.errno).lower()} while writing {path.name}{kept}; free "
                         "some space there and run the command again")


def write_unsynced(path: str | Path, data: bytes) -> None:
    """``data`` as the file ``path``, neither atomic nor flushed to the disk: for the many files of a folder that
    is published whole once complete (:func:`replace_folder`), each flushed by :func:`fsync_path` before. A
    failed write removes the partial file; one that fails for lack of space raises :class:`DiskFullError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException as error:
        path.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            raise _disk_full(path, error) from error
        raise


def fsync_path(path: str | Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk. The space of a delayed allocation may be found
    missing only now: :class:`DiskFullError`."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise _disk_full(path, error) from error
        raise
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_temporary(path: Path) -> bool:
    """A file :func:`atomic_open` leaves behind only when its process is killed mid-write."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def replace_folder(new: Path, final: Path, aside: Path) -> None:
    """Move the complete folder ``new`` to ``final``. A folder already there is first renamed to ``aside`` (a
    folder cannot replace a folder) and then removed: whenever a reader looks, or the process is killed, ``final``
    is the old folder, briefly nothing, or the new one; never a mix of the two."""
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        os.rename(final, aside)
    os.rename(new, final)
    shutil.rmtree(aside, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | Path, rows: list[dict[str, Any]], first: Iterable[str] = ()) -> None:
    """``rows`` as a CSV table: the columns ``first``, then every other key in the order the rows first use it."""
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json_mapping(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when the file is missing, unreadable or not an object (a cache that is
    simply measured again)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def rewrite_json(path: str | Path, obj: Any) -> None:
    """:func:`atomic_write_json`, or on a full disk, where no temporary file fits, over the existing file in
    place: a small file's blocks are already allocated. For a status record that must say why a run failed."""
    try:
        atomic_write_json(path, obj)
    except DiskFullError:
        if not Path(path).is_file():
            raise
        with open(path, "r+b") as f:
            f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


_UNSAFE_CHARS = re.compile(r"[^\w.\-+=@,]", re.UNICODE)
_MAX_NAME_BYTES = 200


def safe_name(name: str) -> str:
    """One file-name component from a data-derived name (a sequence, a frame file stem).

    Path separators, control characters and anything else outside letters, digits and ``._-+=@,`` become
    ``_``; a name that is empty or starts with a dot (``.``, ``..``, hidden files) gets a leading ``_``. So
    a name from data can never climb out of, or point anywhere but, the folder it is joined to.
    """
    cleaned = _UNSAFE_CHARS.sub("_", str(name))
    if not cleaned or cleaned.startswith("."):
        cleaned = "_" + cleaned
    while len(cleaned.encode("utf-8")) > _MAX_NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned


class OutputGuard:
    """The one place evaluate/predict get their output paths from; no output can overwrite an input.

    Construction refuses an output folder that equals or lies inside an input folder (a dataset root, a
    frame folder, a maps folder), or that is an input file. :meth:`path` joins safe names below the output
    folder and refuses any result inside an input folder or equal to an input file (symlinks resolved),
    which covers an input folder placed inside the output folder.
    """

    def __init__(self, output_dir: str | Path, input_dirs: Iterable[str | Path] = (),
                 input_files: Iterable[str | Path] = ()):
        self.output_dir = Path(output_dir).resolve()
        self.input_dirs = [Path(d).resolve() for d in input_dirs]
        self.input_files = {Path(f).resolve() for f in input_files}
        for d in self.input_dirs:
            if self.output_dir == d or d in self.output_dir.parents:
                raise UnsafeOutputError(
                    f"output folder {self.output_dir} is {'the' if self.output_dir == d else 'inside the'} input "
                    f"folder {d}; choose an output folder outside the inputs (paths.output_dir=...)"
                )
        if self.output_dir in self.input_files:
            raise UnsafeOutputError(f"output folder {self.output_dir} is an input file")

    def path(self, *names: str) -> Path:
        """``output_dir/<safe_name(n1)>/<safe_name(n2)>...``, checked against the inputs."""
        return self._checked(self.output_dir.joinpath(*(safe_name(n) for n in names)))

    def hidden(self, name: str, tag: str, *names: str) -> Path:
        """``output_dir/.<safe_name(name)>.<tag>/<safe_name(n)>...``: a working folder beside ``path(name)`` (where
        a result is built before it replaces that folder), checked as :meth:`path` is."""
        folder = self.output_dir / f".{safe_name(name)}.{safe_name(tag)}"
        return self._checked(folder.joinpath(*(safe_name(n) for n in names)))

    def replaceable(self, path: Path) -> Path:
        """``path`` (from :meth:`path` or :meth:`hidden`), refused when an input lies inside it: for a folder
        that is replaced or removed whole."""
        resolved = path.resolve()
        for inside in (*self.input_dirs, *self.input_files):
            if resolved in inside.parents:
                raise UnsafeOutputError(f"{path}: refusing to replace a folder that holds the input {inside}")
        return path

    def _checked(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved in self.input_files:
            raise UnsafeOutputError(f"{path}: refusing to write over the input file {resolved}")
        for d in self.input_dirs:
            if resolved == d or d in resolved.parents:
                raise UnsafeOutputError(f"{path}: refusing to write inside the input folder {d}")
        return path
