"""prepare end to end on loopback: download (with resume), verification, safe extraction, layout check, pack."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from salvid import prepare as prepare_module
from salvid.data.acquire.download import DownloadError, download, verify
from salvid.data.acquire.extract import UnsafeArchiveError, extract
from salvid.data.acquire.pack import pack
from salvid.data.acquire.registry import DATASETS, Archive, DatasetSource
from salvid.data.layouts import list_sequences
from tests.helpers.layout_fixtures import box_mask, close, davis, frame, save
from tests.helpers.prepare_cli import run_main


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


def test_prepare_refuses_a_checksum_mismatch_before_extracting(server, tmp_path, monkeypatch, capsys):
    handler, url = server
    handler.files["DAVIS-data.zip"] = zip_of(davis(tmp_path / "src", {"bear": 3, "boat": 2}), "DAVIS")
    monkeypatch.setitem(prepare_module.DATASETS, "tiny", _source(f"{url}/DAVIS-data.zip", "0" * 64))
    root = tmp_path / "data" / "DAVIS"
    line = run_main(["tiny", "--root", str(root)], capsys)
    assert re.search(r"DAVIS-data.zip: sha256 \w+ does not match the expected 0000", line)
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


# -- a lone top-level folder: a wrapper goes, contents stay -----------------------------------------------


def _sequence(folder: Path, frames: str, masks: str, suffix: str = ".png") -> None:
    """Three frames ``<frames>/<stem>.jpg`` and their masks ``<masks>/<stem><suffix>``; a ``{i}`` in the
    stems numbers them."""
    for i in range(3):
        save(frame(i), folder / frames.format(i=i + 1))
        save(box_mask(i), folder / (masks.format(i=i + 1)))


# For each dataset whose one-sequence archive holds a single folder: what each of its archives holds at the
# top, and the sequences prepare must then find.
ONE_SEQUENCE = {
    "davsod": ([lambda d: _sequence(d, "bear/Imgs/{i:05d}.jpg", "bear/GT_object_level/{i:05d}.png")], ["bear"]),
    "usvd": ([lambda d: _sequence(d, "bear/Imgs/{i:05d}.jpg", "bear/GT_object_level/{i:05d}.png")], ["bear"]),
    "vot2016": ([lambda d: _sequence(d, "bag/{i:08d}.jpg", "unused/{i:08d}.png"),
                 lambda d: _sequence(d, "unused/{i:08d}.jpg", "bag/{i:08d}.png")], ["bag"]),
    "fbms": ([lambda d: _sequence(d, "Trainingset/cars1/cars1_{i:02d}.jpg",
                                  "Trainingset/cars1/GroundTruth/cars1_{i:02d}_gt.pgm"),
              lambda d: _sequence(d, "Testset/cats1/cats1_{i:02d}.jpg",
                                  "Testset/cats1/GroundTruth/cats1_{i:02d}_gt.pgm")], ["cars1", "cats1"]),
}


def _zip_tree(folder: Path, path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(folder.rglob("*")):
            if "unused" not in file.relative_to(folder).parts:
                zf.write(file, prefix + file.relative_to(folder).as_posix())
    return path


@pytest.mark.parametrize("wrapper", ["", "wrapper/"], ids=["bare", "wrapped"])
@pytest.mark.parametrize("name", sorted(ONE_SEQUENCE))
def test_a_lone_folder_is_unwrapped_only_when_it_wraps_the_contents(tmp_path, capsys, name, wrapper):
    # A one-sequence archive of a layout whose sequences (or sets) sit at the top holds one folder, which is
    # the sequence itself: unwrapping it would leave the sequence's insides at the root.
    writers, expected = ONE_SEQUENCE[name]
    archives = []
    for k, write in enumerate(writers):
        write(tmp_path / f"src{k}")
        archives += ["--from-archive", str(_zip_tree(tmp_path / f"src{k}", tmp_path / f"a{k}.zip", wrapper))]
    root = tmp_path / "data" / name
    prepare_module.main([name, "--root", str(root), *archives])
    source = DATASETS[name]
    assert [s.name for s in list_sequences(source.layout, root, "all", **source.options)] == expected


def test_every_registry_archive_says_what_its_top_holds():
    # without it a lone folder is always unwrapped, which a one-sequence archive cannot survive
    assert [(name, a.filename) for name, s in DATASETS.items() for a in s.archives if not a.top] == []


# -- --root that is a link ---------------------------------------------------------------------------------


def test_a_root_that_links_to_an_empty_folder_is_prepared_through_the_link(tmp_path, capsys):
    # data kept on another disk behind data/<name>: the link stays and leads to the prepared copy
    _sequence(tmp_path / "src", "bear/Imgs/{i:05d}.jpg", "bear/GT_object_level/{i:05d}.png")
    archive = _zip_tree(tmp_path / "src", tmp_path / "DAVSOD.zip")
    (tmp_path / "disk" / "DAVSOD").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    root = tmp_path / "data" / "DAVSOD"
    root.symlink_to(tmp_path / "disk" / "DAVSOD")
    prepare_module.main(["davsod", "--root", str(root), "--from-archive", str(archive)])
    assert root.is_symlink() and [s.name for s in list_sequences("davsod", root, "all")] == ["bear"]
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["DAVSOD"]  # no partial folder left


@pytest.mark.parametrize("target", ["missing", "file"])
def test_a_root_that_links_to_no_folder_is_refused_in_one_line(tmp_path, target):
    if target == "file":
        (tmp_path / "file").write_text("not a folder")
    root = tmp_path / "root"
    root.symlink_to(tmp_path / target)
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SALVID_SET_HYDRA_FULL_ERROR")}
    result = subprocess.run([sys.executable, "-m", "salvid.prepare", "davsod", "--root", str(root),
                             "--from-archive", str(tmp_path / "DAVSOD.zip")],
                            cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    state = "does not exist" if target == "missing" else "is not a folder"
    assert result.stderr == (f"error: {root}: --root is a link to {(tmp_path / target).resolve()}, which {state}; create that "
                             "folder (empty) or give another --root\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"root", target} - {"missing"})


def test_a_root_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "root").write_text("not a folder")
    line = run_main(["davsod", "--root", str(tmp_path / "root"), "--from-archive", str(tmp_path / "a.zip")], capsys)
    assert line == f"error: {tmp_path / 'root'}: --root is a file, not a folder; give a folder (new or empty) as --root"


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


def test_an_unsafe_archive_leaves_no_dataset_folder(tmp_path, monkeypatch, capsys):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_with("../evil.txt"))
    monkeypatch.setitem(prepare_module.DATASETS, "tiny", _source(None, None))
    line = run_main(["tiny", "--root", str(tmp_path / "data" / "DAVIS"), "--from-archive", str(archive)], capsys)
    assert "evil.txt" in line
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


# -- links: resolved where they end up, after every move; never followed while extracting ------------------


def make_archive(path: Path, members: list[tuple[str, bytes | str | None]]) -> Path:
    """A zip or tar (by ``path``'s suffix) of ``members``: (name, bytes) a file, (name, "->target") a symbolic
    link, (name, None) a folder."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, content in members:
                info = zipfile.ZipInfo(name + ("/" if content is None else ""))
                info.create_system = 3
                if isinstance(content, str):
                    info.external_attr = 0o120777 << 16
                    content = content.removeprefix("->").encode()
                elif content is None:
                    info.external_attr = (0o040755 << 16) | 0x10
                    content = b""
                else:
                    info.external_attr = 0o100644 << 16
                zf.writestr(info, content)
    else:
        with tarfile.open(path, "w:gz") as tf:
            for name, content in members:
                info = tarfile.TarInfo(name)
                if isinstance(content, str):
                    info.type, info.linkname = tarfile.SYMTYPE, content.removeprefix("->")
                    tf.addfile(info)
                elif content is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(info)
                else:
                    info.size = len(content)
                    tf.addfile(info, io.BytesIO(content))
    return path


FORMATS = ["zip", "tar.gz"]


def _prepare_from(tmp_path, monkeypatch, archives: list[Path], intos: list[str] | None = None) -> Path:
    intos = intos or [""] * len(archives)
    source = DatasetSource("davis2016", tuple(Archive(a.name, into=i) for a, i in zip(archives, intos, strict=True)),
                           "https://example.org", "test")
    monkeypatch.setitem(prepare_module.DATASETS, "linked", source)
    return tmp_path / "data" / "root"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_link_that_leaves_the_root_only_once_its_folder_is_unwrapped_is_refused(tmp_path, monkeypatch, capsys,
                                                                                  fmt):
    # Inside the archive W/l -> ../x is W/../x = x, inside; unwrapping W/ moves l to the root, where ../x is
    # beside the root.
    archive = make_archive(tmp_path / f"a.{fmt}", [("W", None), ("W/a.txt", b"a"), ("W/l", "->../x")])
    root = _prepare_from(tmp_path, monkeypatch, [archive])
    line = run_main(["linked", "--root", str(root), "--from-archive", str(archive)], capsys)
    assert "link 'l' leads outside the dataset" in line
    assert not root.exists() and sorted(p.name for p in root.parent.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_chain_of_links_that_leads_outside_is_refused(tmp_path, fmt):
    # each link alone stays inside (d/esc reads as d/up/../secret = d/secret), but d/up is the root itself,
    # so d/esc resolves to the root's parent
    archive = make_archive(tmp_path / f"a.{fmt}", [("d", None), ("d/up", "->.."), ("d/esc", "->up/../secret")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"link 'd/esc' leads outside the dataset"):
        extract(archive, dest)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_second_archive_never_writes_through_a_link_of_the_first(tmp_path, monkeypatch, capsys, fmt):
    # The first archive leaves l -> ../x once unwrapped; the second holds l/victim.txt. Written through the
    # link, it would replace data/x/victim.txt beside the root.
    victim = tmp_path / "data" / "x" / "victim.txt"
    victim.parent.mkdir(parents=True)
    victim.write_text("original")
    first = make_archive(tmp_path / f"first.{fmt}", [("W", None), ("W/a.txt", b"a"), ("W/l", "->../x")])
    second = make_archive(tmp_path / f"second.{fmt}", [("l", None), ("l/victim.txt", b"overwritten")])
    root = _prepare_from(tmp_path, monkeypatch, [first, second])
    line = run_main(["linked", "--root", str(root), "--from-archive", str(first), "--from-archive", str(second)],
                    capsys)
    assert "second" in line and "'l'" in line
    assert victim.read_text() == "original"
    assert not root.exists() and sorted(p.name for p in root.parent.iterdir()) == ["x"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_link_that_stays_inside_is_still_never_written_through(tmp_path, fmt):
    from salvid.data.acquire.extract import extract_dataset

    first = make_archive(tmp_path / f"first.{fmt}", [("real", None), ("real/a.txt", b"a"), ("alias", "->real")])
    second = make_archive(tmp_path / f"second.{fmt}", [("alias", None), ("alias/b.txt", b"b"), ("c.txt", b"c")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"second\.\S+: 'dest/alias' is already there"):
        extract_dataset([(first, ""), (second, "")], dest)
    assert not (dest / "real" / "b.txt").exists()
    # within one archive, a member below one of its own links is refused before anything is written
    both = make_archive(tmp_path / f"both.{fmt}", [("real", None), ("alias", "->real"), ("alias/b.txt", b"b")])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"'alias/b.txt' lies below the link 'alias'"):
        extract(both, fresh)
    assert not list(fresh.rglob("*"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_links_that_stay_inside_after_unwrapping_are_kept(tmp_path, fmt):
    from salvid.data.acquire.extract import extract_dataset

    archive = make_archive(tmp_path / f"a.{fmt}", [("W", None), ("W/sub", None), ("W/sub/a.txt", b"a"),
                                                   ("W/sub/l", "->../sub/a.txt"), ("W/top", "->sub")])
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_dataset([(archive, "")], dest)
    assert (dest / "sub" / "l").read_text() == "a" and (dest / "top" / "a.txt").read_text() == "a"
    assert (dest / "top").is_symlink()


def test_pack_writes_the_videos_layout_and_reports_sizes(tmp_path):
    src = davis(tmp_path / "src", {"bear": 5, "boat": 4, "cows": 3})
    before, after = pack("davis2016", src, tmp_path / "packed", ["train", "val"])
    assert before > 0 and after > 0
    packed = list_sequences("videos", tmp_path / "packed", "train")
    original = list_sequences("davis2016", src, "train")
    assert [s.name for s in packed] == ["bear", "boat"]
    for a, b in zip(original, packed, strict=True):
        assert b.annotated_frames == a.annotated_frames
        frames_a, frames_b = a.open().read(a.annotated_frames), b.open().read(b.annotated_frames)
        assert all(close(x, y) for x, y in zip(frames_a, frames_b, strict=True))
        assert all((a.salient_mask(i) == b.salient_mask(i)).all() for i in a.annotated_frames)
    assert [s.name for s in list_sequences("videos", tmp_path / "packed", "val")] == ["cows"]
    assert not (tmp_path / "packed.partial").exists()


def _davis_96x128(root: Path) -> Path:
    """A DAVIS-2016 copy of 96x128 frames whose mask boxes have even edges, so halving them is exact."""
    for name, n in {"bear": 3, "boat": 2}.items():
        for i in range(n):
            save(frame(i, (96, 128)), root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg")
            mask = np.zeros((96, 128), np.uint8)
            mask[20:60, 30 + 4 * i : 90 + 4 * i] = 255
            save(mask, root / "Annotations" / "480p" / name / f"{i:05d}.png")
    (root / "ImageSets" / "480p").mkdir(parents=True)
    for split, name in (("train", "bear"), ("val", "boat")):
        (root / "ImageSets" / "480p" / f"{split}.txt").write_text(
            f"/JPEGImages/480p/{name}/00000.jpg /Annotations/480p/{name}/00000.png\n")
    (root / "Annotations" / "db_info.yml").write_text("sequences: []\n")
    return root


def test_downscale_writes_a_smaller_davis_copy_that_reads_like_the_original(tmp_path, capsys):
    src = _davis_96x128(tmp_path / "DAVIS")
    prepare_module.main(["downscale", "--root", str(src), "--out", str(tmp_path / "small"), "--height", "48"])
    assert "2 sequences at 48p" in capsys.readouterr().out
    small = tmp_path / "small"
    (bear,) = list_sequences("davis2016", small, "train", resolution="48p")
    (boat,) = list_sequences("davis2016", small, "val", resolution="48p")
    assert (bear.name, boat.name, len(bear.masks), len(boat.masks)) == ("bear", "boat", 3, 2)
    for i, image in enumerate(bear.open().read(range(3))):
        assert image.shape == (48, 64, 3) and close(image, frame(i, (48, 64)))
    for i in bear.annotated_frames:
        expected = np.zeros((48, 64), np.uint8)
        expected[10:30, 15 + 2 * i : 45 + 2 * i] = 1
        np.testing.assert_array_equal(bear.salient_mask(i), expected)
        assert set(np.unique(np.asarray(Image.open(small / "Annotations" / "48p" / "bear" / f"{i:05d}.png")))) == {0, 255}
    assert (small / "ImageSets" / "48p" / "train.txt").read_text() == \
        "/JPEGImages/48p/bear/00000.jpg /Annotations/48p/bear/00000.png\n"
    assert (small / "Annotations" / "db_info.yml").read_text() == "sequences: []\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DAVIS", "small"]  # no partial folder left


@pytest.mark.parametrize("case", ["exists", "inside", "height"])
def test_downscale_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, case):
    src = _davis_96x128(tmp_path / "DAVIS")
    out = {"exists": tmp_path / "small", "inside": src / "small", "height": tmp_path / "small"}[case]
    if case == "exists":
        out.mkdir()
        (out / "mine.txt").write_text("kept")
    before = sorted(p for p in tmp_path.rglob("*"))
    line = run_main(["downscale", "--root", str(src), "--out", str(out), "--height", "8" if case == "height" else "48"],
                    capsys)
    assert {"exists": "already exists", "inside": "inside the dataset", "height": "--height 8"}[case] in line
    assert sorted(p for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("case", ["exists", "inside"])
def test_pack_refuses_an_existing_destination_or_one_inside_the_source(tmp_path, capsys, case):
    src = davis(tmp_path / "DAVIS", {"bear": 3})
    out = {"exists": tmp_path / "packed", "inside": src / "packed"}[case]
    if case == "exists":
        out.mkdir()
        (out / "mine.txt").write_text("kept")
    before = sorted(tmp_path.rglob("*"))
    line = run_main(["pack", "davis2016", "--root", str(src), "--out", str(out)], capsys)
    assert {"exists": "already exists", "inside": "inside the dataset"}[case] in line
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", ["check", "pack"])
def test_a_missing_resolution_folder_names_prepares_own_option(tmp_path, capsys, command):
    """The DAVIS layout names its resolution as the configs set it (data.resolution); on prepare's command line
    the message says --option resolution=..."""
    root = davis(tmp_path / "davis", {"bear": 2}, resolution="240p")
    extra = ["--out", str(tmp_path / "packed")] if command == "pack" else []
    line = run_main([command, "davis2016", "--root", str(root), *extra], capsys)
    assert line.endswith("no such frame folder; this copy has ['240p']: set --option resolution=<one of them>")
    assert not (tmp_path / "packed").exists()
