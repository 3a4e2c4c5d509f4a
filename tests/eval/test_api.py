"""salvid from Python: ``salvid.load`` and ``predict_video``, and model folders shared as the hub shares them."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import salvid
from salvid.data.sources import open_video
from salvid.errors import CheckpointError, DataError
from salvid.inference.core import NetworkSaliency


def test_importing_salvid_loads_no_torch():
    code = "import salvid, sys; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_load_and_predict_give_the_networks_maps(eval_data, tiny_pretrained):
    video = next((eval_data / "videos").glob("test_*.mp4"))
    frames = list(open_video(video).read(range(6)))
    model = salvid.load(tiny_pretrained, precision="fp32")
    assert repr(model).startswith(f"SaliencyModel({model.name!r}, family='paper', input_size=[")
    assert "device='cpu'" in repr(model) and "precision='fp32'" in repr(model)
    maps = model.predict(frames)
    assert maps.shape == (6, *frames[0].shape[:2]) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0 and maps.std() > 0.01
    reference = NetworkSaliency(salvid.load(tiny_pretrained).net, precision="fp32")
    in_video = np.stack([p.saliency for p in reference.stream(open_video(video), 8, range(6))])
    # the same maps where the clips are the same: the last given frame has no t+1 here, in the video it has
    np.testing.assert_allclose(maps[:5], in_video[:5], atol=1e-5)
    whole = salvid.predict_video(video, tiny_pretrained, precision="fp32")
    assert whole.shape[0] == len(open_video(video)) and model.name == "tiny"
    with pytest.raises(DataError, match="frame 1 is float64"):
        model.predict([frames[0], frames[1].astype(float)])
    with pytest.raises(DataError, match=r"one \(\d+, \d+, 3\) frame; pass the clip's frames"):
        model.predict(frames[0])
    assert model.predict(np.stack(frames)).shape == maps.shape  # an (N, H, W, 3) array


def test_a_model_folder_round_trips_and_loads_by_hub_name(tiny_pretrained, tmp_path, monkeypatch):
    model = salvid.load(tiny_pretrained, precision="fp32")
    folder = model.save_pretrained(tmp_path / "tiny-folder")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["model"] == model.config
    frames = [np.full((48, 64, 3), v, np.uint8) for v in (10, 120, 240)]
    np.testing.assert_allclose(salvid.load(folder, precision="fp32").predict(frames), model.predict(frames), atol=1e-6)

    asked = {}

    def snapshot_download(repo_id, allow_patterns):  # the hub client, offline: the repository is this folder
        asked.update(repo_id=repo_id, allow_patterns=allow_patterns)
        return str(folder)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    from_hub = salvid.load("someone/tiny-folder", precision="fp32")
    assert asked == {"repo_id": "someone/tiny-folder", "allow_patterns": ["config.json", "model.safetensors"]}
    np.testing.assert_allclose(from_hub.predict(frames), model.predict(frames), atol=1e-6)


def test_a_model_folder_is_plain_data_checked_against_the_allow_list(tiny_pretrained, tmp_path):
    folder = salvid.load(tiny_pretrained).save_pretrained(tmp_path / "evil")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["_target_"] = "os.system"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="never instantiates targets from files"):
        salvid.load(folder)


def test_a_hub_name_without_the_hub_client_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match="pip install huggingface_hub"):
        salvid.load("someone/some-model")
    assert not Path("someone").exists()
