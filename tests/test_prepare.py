"""prepare end to end on loopback: download (with resume), verification, safe extraction, layout check, pack."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from salvid.data import prepare as prepare_module
from salvid.data.download import DownloadError, download, verify
from salvid.data.extract import UnsafeArchiveError, extract
from salvid.data.layouts import list_sequences
from salvid.data.pack import pack
from salvid.data.registry import Archive, DatasetSource
from tests.layout_fixtures import close, davis


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with single-range support; records the Range headers it saw."""

    files: dict[str, bytes] = {}
    ranges: list[str | None] = []
    honour_range = True

    def do_GET(self):
        data = self.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        self.ranges.append(requested)
        start = 0
        if requested and self.honour_range:
            start = int(re.match(r"bytes=(\d+)-", requested).group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.ranges, RangeHandler.honour_range = {}, [], True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield RangeHandler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def zip_of(folder: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{top}/{path.relative_to(folder)}")
    return buffer.getvalue()


def test_download_resumes_a_partial_file(server, tmp_path):
    handler, url = server
    handler.files["a.bin"] = data = bytes(range(256)) * 1000
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(data[:100_000])
    download(f"{url}/a.bin", dest)
    assert dest.read_bytes() == data and not (tmp_path / "a.bin.part").exists()
    assert handler.ranges == ["bytes=100000-"]


def test_download_restarts_when_the_server_ignores_range(server, tmp_path):
    handler, url = server
    handler.honour_range = False
    handler.files["a.bin"] = data = b"x" * 5000
    (tmp_path / "a.bin.part").write_bytes(b"garbage")
    download(f"{url}/a.bin", tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == data


def test_download_of_a_missing_url_names_it(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match=r"/nope.zip: HTTP 404"):
        download(f"{url}/nope.zip", tmp_path / "nope.zip")


def _source(url, sha256, layout="davis2016", **options):
    return DatasetSource(layout, (Archive("DAVIS-data.zip", url, sha256),), "https://example.org", "test", options)


def test_prepare_downloads_verifies_extracts_and_checks(server, tmp_path, monkeypatch, capsys):
    handler, url = server
    archive = zip_of(davis(tmp_path / "src", {"bear": 3, "boat": 2}), "DAVIS")
    handler.files["DAVIS-data.zip"] = archive
    monkeypatch.setitem(
        prepare_module.DATASETS, "tiny", _source(f"{url}/DAVIS-data.zip", hashlib.sha256(archive).hexdigest())
    )
    root = tmp_path / "data" / "DAVIS"
    prepare_module.main(["tiny", "--root", str(root)])
    out = capsys.readouterr().out
    assert re.search(r"2 sequences\s*│\s*5\s*│\s*5", out)  # the table's totals: frames, masks
    assert [s.name for s in list_sequences("davis2016", root, "train")] == ["bear"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["DAVIS", "downloads"]  # no partial folder
    prepare_module.main(["tiny", "--root", str(root)])
    assert "already prepared" in capsys.readouterr().out


def test_prepare_refuses_a_checksum_mismatch_before_extracting(server, tmp_path, monkeypatch):
    handler, url = server
    handler.files["DAVIS-data.zip"] = zip_of(davis(tmp_path / "src", {"bear": 3, "boat": 2}), "DAVIS")
    monkeypatch.setitem(prepare_module.DATASETS, "tiny", _source(f"{url}/DAVIS-data.zip", "0" * 64))
    root = tmp_path / "data" / "DAVIS"
    with pytest.raises(SystemExit, match=r"DAVIS-data.zip: sha256 \w+ does not match the expected 0000"):
        prepare_module.main(["tiny", "--root", str(root)])
    assert not root.exists() and not (tmp_path / "data" / "downloads" / "DAVIS-data.zip").exists()


def test_from_archive_without_checksum_is_verified_by_integrity(tmp_path, monkeypatch):
    archive = tmp_path / "DAVIS-data.zip"
    archive.write_bytes(zip_of(davis(tmp_path / "src", {"bear": 3, "boat": 2}), "DAVIS"))
    monkeypatch.setitem(prepare_module.DATASETS, "tiny", _source(None, None))
    prepare_module.main(["tiny", "--root", str(tmp_path / "DAVIS"), "--from-archive", str(archive)])
    assert len(list_sequences("davis2016", tmp_path / "DAVIS", "all")) == 2
    damaged = tmp_path / "damaged.zip"
    data = bytearray(archive.read_bytes())
    data[100:140] = bytes(40)  # inside the first member's data: its CRC no longer matches
    damaged.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="damaged.zip"):
        verify(damaged)


def _zip_with(name: str, data: bytes = b"evil", symlink_to: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("ok/file.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if symlink_to is not None:
            info.external_attr = (0o120777 << 16)
            data = symlink_to.encode()
        zf.writestr(info, data)
    return buffer.getvalue()


def _tar_with(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        ok = tarfile.TarInfo("ok/file.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        member = tarfile.TarInfo(name)
        member.type, member.linkname = kind, linkname
        member.size = 0 if linkname else 4
        tf.addfile(member, None if linkname else io.BytesIO(b"evil"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "member"),
    [
        (_zip_with("../evil.txt"), "../evil.txt"),
        (_zip_with("/tmp/evil.txt"), "/tmp/evil.txt"),
        (_zip_with("ok/link", symlink_to="../../outside"), "ok/link"),
        (_tar_with("ok/../../evil.txt"), "ok/../../evil.txt"),
        (_tar_with("/etc/evil.txt"), "/etc/evil.txt"),
        (_tar_with("ok/link", tarfile.SYMTYPE, "/etc/passwd"), "ok/link"),
        (_tar_with("ok/link", tarfile.SYMTYPE, "../../outside"), "ok/link"),
        (_tar_with("ok/hard", tarfile.LNKTYPE, "../outside"), "ok/hard"),
    ],
    ids=["zip-dotdot", "zip-absolute", "zip-symlink", "tar-dotdot", "tar-absolute", "tar-symlink-abs",
         "tar-symlink-up", "tar-hardlink"],
)
def test_unsafe_archives_are_refused_naming_the_member(tmp_path, archive, member):
    path = tmp_path / "archive.bin"
    path.write_bytes(archive)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(member))):
        extract(path, dest)
    assert not list(dest.rglob("*"))  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_safe_archive_with_inside_symlink_extracts(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(_zip_with("ok/link", symlink_to="file.txt"))
    extract(path, tmp_path / "d")
    assert (tmp_path / "d" / "ok" / "link").read_text() == "fine"


def test_an_unsafe_archive_leaves_no_dataset_folder(tmp_path, monkeypatch):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_with("../evil.txt"))
    monkeypatch.setitem(prepare_module.DATASETS, "tiny", _source(None, None))
    with pytest.raises(SystemExit, match="evil.txt"):
        prepare_module.main(["tiny", "--root", str(tmp_path / "data" / "DAVIS"), "--from-archive", str(archive)])
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


def test_pack_writes_the_videos_layout_and_reports_sizes(tmp_path):
    src = davis(tmp_path / "src", {"bear": 5, "boat": 4, "cows": 3})
    before, after = pack("davis2016", src, tmp_path / "packed", ["train", "val"])
    assert before > 0 and after > 0
    packed = list_sequences("videos", tmp_path / "packed", "train")
    original = list_sequences("davis2016", src, "train")
    assert [s.name for s in packed] == ["bear", "boat"]
    for a, b in zip(original, packed, strict=True):
        assert b.targets == a.targets
        frames_a, frames_b = a.open().read(a.targets), b.open().read(b.targets)
        assert all(close(x, y) for x, y in zip(frames_a, frames_b, strict=True))
        assert all((a.target(i) == b.target(i)).all() for i in a.targets)
    assert [s.name for s in list_sequences("videos", tmp_path / "packed", "val")] == ["cows"]
    assert not (tmp_path / "packed.partial").exists()
