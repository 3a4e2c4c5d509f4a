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
