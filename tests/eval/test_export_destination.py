"""Where export writes: a per-user models folder by default, never the installed package; shipped names are
refused; a failed export leaves an earlier one of the same name as it was."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

import salvid
from salvid.checkpoints import DEFAULT_PRETRAINED, PRETRAINED_DIR, load_network
from salvid.errors import CheckpointError, ConfigError, UnsafeOutputError
from salvid.export import export
from salvid.inference.api import load
from salvid.inference.predicting import predict
from tests.helpers.train_cli import REPO

PACKAGE = Path(salvid.__file__).resolve().parent


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def user_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SALVID_CACHE", str(cache))
    return cache


@pytest.fixture
def package_kept():
    """The shipped files' digests; afterwards anything a regression added to the package is removed, so a
    failing run does not leave files in the installation."""
    before = set(PACKAGE.rglob("*"))
    shipped = digests(PRETRAINED_DIR)
    yield shipped
    for path in sorted(set(PACKAGE.rglob("*")) - before, reverse=True):
        if "__pycache__" not in path.parts:
            path.unlink() if path.is_file() else path.rmdir()


def run_export(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SALVID_RANK0_CONFIG", "HYDRA_FULL_ERROR",
                                                              "SALVID_SET_HYDRA_FULL_ERROR")}
    return subprocess.run([sys.executable, "-m", "salvid.export", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_default_export_goes_to_the_user_models_folder_and_loads_by_name(trained_ckpt, user_cache, package_kept,
                                                                         tmp_path):
    target = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=export-dest-test"]))
    assert target == user_cache / "models" / "export-dest-test.safetensors"
    assert target.with_suffix(".json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["export-dest-test.json",
                                                              "export-dest-test.safetensors"]  # no temporaries
    umask = os.umask(0)
    os.umask(umask)
    for written in target.parent.iterdir():  # what a plain open() gives: readable where the user's umask allows
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask, written
    assert not list(PACKAGE.rglob("export-dest-test*"))
    assert digests(PRETRAINED_DIR) == package_kept

    by_name, config = load_network("export-dest-test")
    by_file, _ = load_network(target)
    assert config["width_mult"] == 0.125
    for key, value in by_file.state_dict().items():
        assert np.array_equal(by_name.state_dict()[key].numpy(), value.numpy()), key
    assert load("export-dest-test", device="cpu", backend="torch").name == "export-dest-test"
    (tmp_path / "frames").mkdir()
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "frames" / "00000.png")
    (folder,) = predict(compose_config("predict", [f"input={tmp_path / 'frames'}", "ckpt_path=export-dest-test",
                                                   f"paths.output_dir={tmp_path / 'out'}", "backend=torch"]))
    assert (folder / "maps" / "00000.png").is_file()


def test_an_unknown_name_lists_the_exported_models_beside_the_shipped(trained_ckpt, user_cache, package_kept):
    export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=listed"]))
    with pytest.raises(CheckpointError, match=r"no-such-model: .*'listed'") as refused:
        load_network("no-such-model")
    assert str(user_cache / "models") in str(refused.value)


def test_exporting_under_a_shipped_name_is_refused_in_one_line_and_the_shipped_files_stay(trained_ckpt, tmp_path,
                                                                                          package_kept):
    shipped = next(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
    result = run_export(f"ckpt_path={trained_ckpt}", f"name={shipped}", "max_megabytes=0.001",
                        f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith(f"error: name={shipped}: ") and "shipped model" in lines[0]
    assert digests(PRETRAINED_DIR) == package_kept


@pytest.mark.parametrize("name", sorted({DEFAULT_PRETRAINED, *(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))}))
def test_a_shipped_name_is_refused_whatever_the_output_dir(trained_ckpt, tmp_path, package_kept, name):
    with pytest.raises(ConfigError, match=rf"^name={name}: .*shipped model.*choose another name"):
        export(compose_config("export", [f"ckpt_path={trained_ckpt}", f"name={name}",
                                         f"output_dir={tmp_path / 'models'}"]))
    assert not (tmp_path / "models").exists()
    assert digests(PRETRAINED_DIR) == package_kept


def test_an_output_dir_inside_the_package_is_refused_before_anything_is_written(trained_ckpt, tmp_path,
                                                                                package_kept):
    (tmp_path / "link").symlink_to(PACKAGE)
    for output_dir in (PRETRAINED_DIR, PACKAGE / "export-dest-test", tmp_path / "link" / "pretrained"):
        with pytest.raises(UnsafeOutputError, match=r"^output_dir=.*inside the installed salvid package"):
            export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=export-dest-test",
                                             f"output_dir={output_dir}"]))
    assert not list(PACKAGE.rglob("export-dest-test*"))
    assert digests(PRETRAINED_DIR) == package_kept


def test_a_too_large_export_leaves_the_earlier_export_of_that_name_intact(trained_ckpt, tmp_path):
    out = tmp_path / "models"
    first = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=tiny", f"output_dir={out}"]))
    before = digests(out)
    with pytest.raises(ConfigError, match=r"tiny.safetensors: .* MB exceeds max_megabytes=0.001"):
        export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=tiny", f"output_dir={out}",
                                         "overwrite=true", "max_megabytes=0.001", "hardware=second"]))
    assert digests(out) == before and sorted(p.name for p in out.iterdir()) == ["tiny.json", "tiny.safetensors"]
    load_network(first)


def test_an_earlier_export_is_replaced_only_with_overwrite_true(trained_ckpt, tmp_path):
    out = tmp_path / "models"
    args = [f"ckpt_path={trained_ckpt}", "name=tiny", f"output_dir={out}"]
    target = export(compose_config("export", [*args, "hardware=first"]))
    with pytest.raises(ConfigError, match=rf"^{target}: an earlier export .*overwrite=true"):
        export(compose_config("export", [*args, "hardware=second"]))
    assert json.loads(target.with_suffix(".json").read_text())["run"]["hardware"] == "first"
    assert export(compose_config("export", [*args, "hardware=second", "overwrite=true"])) == target
    assert json.loads(target.with_suffix(".json").read_text())["run"]["hardware"] == "second"
    assert sorted(p.name for p in out.iterdir()) == ["tiny.json", "tiny.safetensors"]


def test_a_user_file_cannot_shadow_a_shipped_model(tiny_pretrained, user_cache):
    shipped = next(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
    models = user_cache / "models"
    models.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        (models / f"{shipped}{suffix}").write_bytes(tiny_pretrained.with_suffix(suffix).read_bytes())
    _, config = load_network(shipped)
    assert config == json.loads((PRETRAINED_DIR / f"{shipped}.json").read_text())["model"]
    assert config != json.loads(tiny_pretrained.with_suffix(".json").read_text())["model"]


def test_onnx_graphs_of_an_earlier_export_are_kept_by_a_failed_export_and_go_with_a_replaced_one(trained_ckpt,
                                                                                                 tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "models"
    args = [f"ckpt_path={trained_ckpt}", "name=tiny", f"output_dir={out}", "overwrite=true"]
    export(compose_config("export", [*args, "format=onnx"]))
    before = {**digests(out), **digests(out / "tiny-onnx")}
    with pytest.raises(ConfigError, match="exceeds max_megabytes"):
        export(compose_config("export", [*args, "format=onnx", "max_megabytes=0.001"]))
    assert {**digests(out), **digests(out / "tiny-onnx")} == before
    export(compose_config("export", args))  # no graphs now: the earlier ones must not look like this model's
    assert sorted(p.name for p in out.iterdir()) == ["tiny.json", "tiny.safetensors"]
