import json
import shutil

import numpy as np
import pytest
from conftest import compose_config
from PIL import Image

from salvid.checkpoints import DEFAULT_PRETRAINED, PRETRAINED_DIR, CheckpointError, load_network
from salvid.predict import predict


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


@pytest.mark.skipif((PRETRAINED_DIR / f"{DEFAULT_PRETRAINED}.safetensors").is_file(),
                    reason="the default pretrained model is shipped in this checkout")
def test_missing_default_pretrained_model_says_what_to_do(tmp_path):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "00000.png")
    with pytest.raises(CheckpointError, match=f"default pretrained model '{DEFAULT_PRETRAINED}' is not in"):
        predict(compose_config("predict", [f"input={tmp_path}", f"paths.output_dir={tmp_path / 'out'}"]))
