import json
import re
import shutil

import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

import salvid.checkpoints
from salvid.checkpoints import DEFAULT_PRETRAINED, PRETRAINED_DIR, load_network
from salvid.errors import CheckpointError
from salvid.inference.predicting import predict


def test_weights_of_another_model_configuration_are_refused_naming_the_file(tiny_pretrained, tmp_path):
    other = tmp_path / "other.safetensors"
    shutil.copy(tiny_pretrained, other)
    meta = json.loads(tiny_pretrained.with_suffix(".json").read_text())
    meta["model"]["width_mult"] = 0.25
    other.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"other.safetensors: weights do not fit the model config"):
        load_network(other)


def test_corrupt_checkpoints_are_refused_naming_the_file(trained_ckpt, tiny_pretrained, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained_ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.ckpt: not a readable checkpoint"):
        load_network(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    shutil.copy(tiny_pretrained.with_suffix(".json"), garbage.with_suffix(".json"))
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable safetensors file"):
        load_network(garbage)


def test_missing_default_pretrained_model_says_what_to_do(tmp_path, monkeypatch):
    """With the default model's files hidden (the package folder copied without them), predict fails with
    the one line saying what to do, naming the models that are there."""
    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    for path in PRETRAINED_DIR.iterdir():
        if path.stem != DEFAULT_PRETRAINED:
            shutil.copy(path, shipped / path.name)
    monkeypatch.setattr(salvid.checkpoints, "PRETRAINED_DIR", shipped)
    others = sorted(p.stem for p in shipped.glob("*.safetensors"))
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "00000.png")
    with pytest.raises(CheckpointError, match=rf"default pretrained model '{DEFAULT_PRETRAINED}' is not in this "
                       rf"installation \({re.escape(str(shipped))} holds {re.escape(str(others or 'none'))}\): "
                       r"reinstall salvid \(the default model ships inside the package\), or pass ckpt_path="):
        predict(compose_config("predict", [f"input={tmp_path / '00000.png'}", f"paths.output_dir={tmp_path / 'out'}"]))
