"""Safe extraction of zip and tar archives.

Refused, naming the member: absolute paths, paths that climb out with ``..``, and symbolic or hard links whose
target lies outside the destination (tar also gets Python's ``data`` filter: no device files, no set-uid bits).
Zip symbolic links that stay inside are recreated as links. Extraction goes to a fresh temporary folder that
is renamed into place by the caller, so a half-extracted dataset never looks complete.
"""

from __future__ import annotations

import posixpath
import re
import stat
import tarfile
import zipfile
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """An archive member would be written, or would point, outside the destination."""


def _check_path(archive: Path, member: str, name: str) -> None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {member!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafeArchiveError(f"{archive}: member {member!r} climbs out of the destination ('..')")


def _check_link(archive: Path, member: str, target: str, relative_to: str) -> None:
    resolved = posixpath.normpath(posixpath.join(relative_to, target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: member {member!r} links outside the destination (to {target!r})")


def extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` (zip or tar, any compression) into the existing folder ``dest``."""
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    else:
        raise ValueError(f"{archive}: neither a zip nor a tar archive")


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        links = []
        for info in zf.infolist():
            _check_path(archive, info.filename, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                target = zf.read(info).decode("utf-8")
                _check_link(archive, info.filename, target, posixpath.dirname(info.filename))
                links.append((info.filename, target))
        link_names = {name for name, _ in links}
        zf.extractall(dest, [i for i in zf.infolist() if i.filename not in link_names])
        for name, target in links:
            path = dest / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_path(archive, m.name, m.name)
            if m.issym():
                _check_link(archive, m.name, m.linkname, posixpath.dirname(m.name))
            elif m.islnk():
                _check_path(archive, m.name, m.linkname)
        try:
            tf.extractall(dest, members, filter="data")
        except tarfile.FilterError as error:
            raise UnsafeArchiveError(f"{archive}: member {error.tarinfo.name!r} refused ({error})") from error
