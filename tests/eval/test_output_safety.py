import os

import pytest

from salvid.errors import UnsafeOutputError
from salvid.runtime.files import OutputGuard, safe_name


@pytest.mark.parametrize(
    "name, expected",
    [("bear", "bear"), ("../evil", "_.._evil"), ("a/b\\c", "a_b_c"), ("..", "_.."), (".", "_."), ("", "_"),
     ("x\x00y", "x_y"), ("/etc/passwd", "_etc_passwd"), ("blackswan-2", "blackswan-2"), (".hidden", "_.hidden")],
)
def test_safe_name_is_one_harmless_component(name, expected):
    assert safe_name(name) == expected
    assert os.sep not in safe_name(name) and safe_name(name) not in (".", "..")


def test_output_dir_equal_to_or_inside_an_input_dir_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(UnsafeOutputError, match="is the input folder"):
        OutputGuard(data, input_dirs=[data])
    with pytest.raises(UnsafeOutputError, match="inside the input folder"):
        OutputGuard(data / "results", input_dirs=[data])
    with pytest.raises(UnsafeOutputError, match="is the input folder"):  # same folder spelled differently
        OutputGuard(tmp_path / "data" / ".." / "data", input_dirs=[data])


def test_output_paths_never_reach_an_input(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"input")
    inputs = tmp_path / "out" / "frames"  # an input folder inside the output folder
    inputs.mkdir(parents=True)
    (tmp_path / "out" / "link.png").symlink_to(video)
    guard = OutputGuard(tmp_path / "out", input_dirs=[inputs], input_files=[video])
    assert guard.path("seq", "00000.png") == tmp_path.resolve() / "out" / "seq" / "00000.png"
    assert guard.path("../clip.mp4") == tmp_path.resolve() / "out" / "_.._clip.mp4"
    with pytest.raises(UnsafeOutputError, match="inside the input folder"):
        guard.path("frames", "00000.png")
    with pytest.raises(UnsafeOutputError, match="over the input file"):
        guard.path("link.png")
    assert video.read_bytes() == b"input"


def test_replace_folder_swaps_a_whole_folder_and_leaves_no_trace(tmp_path):
    from salvid.runtime.files import replace_folder

    final, new, aside = tmp_path / "clip", tmp_path / ".clip.new", tmp_path / ".clip.old"
    (final / "maps").mkdir(parents=True)
    (final / "maps" / "00059.png").write_bytes(b"old")
    (new / "maps").mkdir(parents=True)
    (new / "maps" / "00000.png").write_bytes(b"new")
    aside.mkdir()  # left by a killed run
    replace_folder(new, final, aside)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["clip", "clip/maps",
                                                                                 "clip/maps/00000.png"]
    (new / "maps").mkdir(parents=True)
    replace_folder(new, tmp_path / "fresh", aside)  # nothing there yet
    assert (tmp_path / "fresh" / "maps").is_dir() and not new.exists()


def test_a_folder_that_holds_an_input_is_never_replaced(tmp_path):
    frames = tmp_path / "out" / "clip" / "frames"
    frames.mkdir(parents=True)
    guard = OutputGuard(tmp_path / "out", input_dirs=[frames])
    with pytest.raises(UnsafeOutputError, match="refusing to replace a folder that holds the input"):
        guard.replaceable(guard.path("clip"))
    assert guard.replaceable(guard.path("other")) == tmp_path.resolve() / "out" / "other"
    assert guard.hidden("clip", "predicting", "maps") == tmp_path.resolve() / "out" / ".clip.predicting" / "maps"
