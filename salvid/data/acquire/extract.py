"""Safe extraction of zip and tar archives into a dataset folder.

What can never happen, whatever an archive holds:

* a write outside the destination: members with absolute paths or ``..`` components are refused, and no
  write ever passes through a symbolic link. Links are created only after every file of their archive is
  written, a member below a link of its own archive is refused, and a write that would pass through a link
  already on disk (one from an earlier archive of the same dataset) is refused;
* a link that leads outside the dataset: once every archive of a dataset is extracted and every move is done
  (unwrapping a lone top-level folder, merging several archives), every symbolic link is resolved component by
  component, following chains of links, and the dataset is refused if any link leads outside its root or
  cannot be resolved in 40 steps (a loop). Resolution is relative to the root, so it holds wherever the root
  ends up;
* special files: device files and FIFOs are refused; hard links are written as copies of their target member
  (read from the archive, never from disk); set-uid bits are dropped.

:func:`extract_dataset` is the whole procedure :mod:`salvid.prepare` uses; :func:`extract` extracts one
archive into one folder and checks that folder.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from salvid.errors import UnsafeArchiveError

MAX_LINK_STEPS = 40  # Linux's limit on symbolic links followed while resolving one path


@dataclass
class _Member:
    name: str  # normalised relative POSIX path
    kind: str  # "dir", "file" or "symlink"
    open: Callable[[], IO[bytes]] | None = None  # file contents
    target: str = ""  # symlink target, as stored
    executable: bool = False


def _normalise(archive: Path, member: str) -> str:
    name = member.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {member!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {member!r} climbs out of the destination ('..')")
    return "/".join(parts)


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        name = _normalise(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            yield _Member(name, "symlink", target=zf.read(info).decode("utf-8"))
        elif info.is_dir() or stat.S_ISDIR(mode):
            yield _Member(name, "dir")
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: an archiver that records no file type
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a special file (mode {mode:o})")
        else:
            yield _Member(name, "file", open=lambda info=info: zf.open(info), executable=bool(mode & 0o111))


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[_Member]:
    for m in tf.getmembers():
        name = _normalise(archive, m.name)
        if m.issym():
            yield _Member(name, "symlink", target=m.linkname)
        elif m.isdir():
            yield _Member(name, "dir")
        elif m.isreg() or m.islnk():
            if m.islnk():
                try:
                    _normalise(archive, m.linkname)
                except UnsafeArchiveError:
                    raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a hard link outside the "
                                             f"destination (to {m.linkname!r})") from None
            # a hard link is read as its target member's data, from the archive
            yield _Member(name, "file", open=lambda m=m: _tar_open(archive, tf, m), executable=bool(m.mode & 0o111))
        else:
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a special file (device or FIFO)")


def _tar_open(archive: Path, tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    try:
        f = tf.extractfile(member)
    except KeyError as e:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} links to {member.linkname!r}, which the "
                                 "archive does not hold") from e
    if f is None:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} has no readable data")
    return f


def _real_dir(root: Path, parts: Iterable[str], archive: Path, member: str) -> Path:
    """``root/<parts>`` as a real folder, created where missing; refused if any step is a link or a file."""
    path = root
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            path.mkdir()
            continue
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive}: member {member!r} would be written through the link "
                                     f"{path.relative_to(root).as_posix()!r}")
        if not stat.S_ISDIR(mode):
            raise UnsafeArchiveError(f"{archive}: member {member!r} needs {path.relative_to(root).as_posix()!r} "
                                     "to be a folder, but it is a file")
    return path


def _write_file(root: Path, member: _Member, archive: Path) -> None:
    *parents, leaf = member.name.split("/")
    path = _real_dir(root, parents, archive, member.name) / leaf
    if path.is_symlink() or path.is_dir():
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} would replace a link or folder")
    mode = 0o777 if member.executable else 0o666  # narrowed by the umask; never set-uid
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out, member.open() as data:
        shutil.copyfileobj(data, out, 1 << 20)


@contextmanager
def _opened(archive: Path) -> Iterator[list[_Member]]:
    """The members of ``archive``, with the archive open for reading their data."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            yield list(_zip_members(archive, zf))
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            yield list(_tar_members(archive, tf))
    else:
        raise ValueError(f"{archive}: neither a zip nor a tar archive")


def _write_archive(archive: Path, dest: Path) -> None:
    """Every member of ``archive`` below ``dest``, links last; no link is followed."""
    archive = Path(archive)
    with _opened(archive) as members:
        links = {m.name: m for m in members if m.kind == "symlink"}
        for m in links.values():  # the plain cases, before anything is written; check_links has the last word
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(m.name), m.target or "."))
            if not m.target or m.target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} links outside the destination "
                                         f"(to {m.target!r})")
        written = [m for m in members if m.kind != "symlink" and m.name]
        for m in written:
            parts = m.name.split("/")
            under = next((p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if p in links), None)
            if under is not None:
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} lies below the link {under!r} of the "
                                         "same archive")
            if m.name in links:
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is both a link and a {m.kind}")
        for m in written:
            if m.kind == "dir":
                _real_dir(dest, m.name.split("/"), archive, m.name)
            else:
                _write_file(dest, m, archive)
        for m in links.values():
            *parents, leaf = m.name.split("/")
            path = _real_dir(dest, parents, archive, m.name) / leaf
            if os.path.lexists(path):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} would replace an existing file")
            path.symlink_to(m.target)


# -- where links lead ---------------------------------------------------------------------------------------


def _resolve(root: Path, start: list[str], target: str, link: str, steps: list[int]) -> list[str]:
    """The path, relative to ``root``, that ``target`` (a link's contents, seen from folder ``start``) leads
    to; raises when it leaves ``root``."""
    if target.startswith("/"):
        raise UnsafeArchiveError(f"link {link!r} points to the absolute path {target!r}")
    parts = list(start)
    for component in target.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise UnsafeArchiveError(f"link {link!r} leads outside the dataset (via {target!r})")
            parts.pop()
            continue
        parts.append(component)
        path = root.joinpath(*parts)
        if path.is_symlink():
            steps[0] += 1
            if steps[0] > MAX_LINK_STEPS:
                raise UnsafeArchiveError(f"link {link!r}: more than {MAX_LINK_STEPS} links in a row (a loop?)")
            parts = _resolve(root, parts[:-1], os.readlink(path), link, steps)
    return parts


def check_links(root: Path) -> None:
    """Refuse if any symbolic link below ``root`` leads outside it, directly or through other links."""
    root = Path(root)
    for folder, dirs, files in os.walk(root):  # does not descend into linked folders
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink():
                rel = path.relative_to(root).as_posix()
                _resolve(root, rel.split("/")[:-1], os.readlink(path), rel, [0])


def _holds(folder: Path, pattern: str) -> bool:
    """Whether ``folder`` holds a path matching ``pattern`` (shell wildcards per ``/``-separated component),
    never looking through a link: the links are not checked yet."""
    level = [folder]
    for part in pattern.split("/"):
        level = [child for parent in level if parent.is_dir() and not parent.is_symlink()
                 for child in parent.iterdir() if fnmatch.fnmatchcase(child.name, part)]
    return bool(level)


def unwrap(folder: Path, top: Sequence[str] = ()) -> None:
    """Move the contents of a lone top-level folder up (archives that wrap everything in ``DAVIS/``).

    ``top``: what the archive's contents should hold at their top, as patterns (``JPEGImages``; ``*/Imgs`` for
    a layout whose sequences sit at the top). A lone folder that already makes ``folder`` match one of them is
    content, not a wrapper, and stays: a lone ``JPEGImages/``, or the one sequence ``bear/Imgs/`` of a
    one-sequence archive. Without ``top`` nothing tells a wrapper from content, and a lone folder goes.
    """
    entries = list(folder.iterdir())
    if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
        return
    if any(_holds(folder, pattern) for pattern in top):
        return
    inner = entries[0].rename(folder / f".unwrap-{entries[0].name}")
    for child in inner.iterdir():
        child.rename(folder / child.name)  # a rename moves a link itself, never what it points to
    inner.rmdir()


def _merge(src: Path, dest: Path, archive: Path) -> None:
    """Move the tree ``src`` into the existing folder ``dest`` without following any link on either side."""
    for child in src.iterdir():
        target = dest / child.name
        if not os.path.lexists(target):
            child.rename(target)
        elif child.is_dir() and not child.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge(child, target, archive)
        elif child.is_file() and not child.is_symlink() and target.is_file() and not target.is_symlink():
            child.replace(target)
        else:
            raise UnsafeArchiveError(f"{archive}: {target.relative_to(dest.parent).as_posix()!r} is already "
                                     "there from another archive (a link, or a file where a folder goes)")


def extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` (zip or tar, any compression) into the folder ``dest`` (created if missing) and
    check that no link in ``dest`` leads outside it."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    _write_archive(Path(archive), Path(dest))
    try:
        check_links(dest)
    except UnsafeArchiveError as e:
        raise UnsafeArchiveError(f"{archive}: {e}") from None


def extract_dataset(archives: Iterable[tuple[Path, str] | tuple[Path, str, Sequence[str]]], dest: Path,
                    on_archive: Callable[[Path], None] | None = None) -> None:
    """Extract several archives into the existing folder ``dest``: each ``(archive, into)`` or ``(archive,
    into, top)`` goes to its own fresh folder, loses a lone top-level folder that is a wrapper (see
    :func:`unwrap`), then merges into ``dest/into``. Finally every link in ``dest`` is checked where it now
    lies."""
    dest, archives = Path(dest), list(archives)
    for archive, into, *top in archives:
        if on_archive is not None:
            on_archive(archive)
        target = _real_dir(dest, [p for p in into.split("/") if p], Path(archive), into)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            _write_archive(Path(archive), staging)
            unwrap(staging, *top)
            _merge(staging, target, Path(archive))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    try:
        check_links(dest)
    except UnsafeArchiveError as e:
        raise UnsafeArchiveError(f"{', '.join(str(a) for a, *_ in archives)}: {e}") from None
