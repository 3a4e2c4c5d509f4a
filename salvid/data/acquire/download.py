"""Resumable HTTP(S) download and archive verification, with the standard library and a rich progress bar.

A download writes ``<file>.part`` and renames it to ``<file>`` only once complete, so a finished name is never
a partial file. A later run resumes a ``.part`` with an HTTP Range request; a server that ignores the range
(answers 200) makes it start over. Verification happens before anything is extracted: the sha256 when the
registry knows it (a mismatch deletes the downloaded file and stops, naming both digests), else the archive's
own integrity (zip member CRCs, a full tar read) and the size when known.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from salvid.errors import DownloadError

CHUNK = 1 << 20


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()
    )


def download(url: str, dest: Path, progress: Progress | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``); returns ``dest``. An existing ``dest`` is kept."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing after the end: the .part is already whole
            part.rename(dest)
            return dest
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from error
    with response:
        if offset and response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise DownloadError(f"{url}: server resumed at {response.headers.get('Content-Range')!r}, not {offset}")
            mode = "ab"
        else:
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        owned = progress is None
        progress = progress or progress_bar()
        try:
            if owned:
                progress.start()
            task = progress.add_task(f"download {dest.name}", total=total, completed=offset)
            with open(part, mode) as f:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    progress.advance(task, len(chunk))
        finally:
            if owned:
                progress.stop()
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{url}: connection closed at {part.stat().st_size} of {total} bytes; run again to resume")
    part.rename(dest)
    return dest


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None = None, size: int | None = None) -> str:
    """Check an archive before extraction; returns its sha256. Raises ``DownloadError`` naming the file."""
    path = Path(path)
    if size is not None and path.stat().st_size != size:
        raise DownloadError(f"{path}: {path.stat().st_size} bytes, expected {size}")
    actual = sha256sum(path)
    if sha256 is not None:
        if actual != sha256.lower():
            raise DownloadError(f"{path}: sha256 {actual} does not match the expected {sha256}")
        return actual
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise DownloadError(f"{path}: member {bad!r} fails its CRC check (damaged archive)")
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile():
                        with archive.extractfile(member) as f:
                            while f.read(CHUNK):
                                pass
        else:
            raise DownloadError(f"{path}: neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise DownloadError(f"{path}: damaged archive ({error})") from error
    return actual
