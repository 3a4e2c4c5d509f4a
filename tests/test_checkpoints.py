"""The one weights loader: it never runs code from a file and builds only salvid's own network."""

import json
import pickle
import random
import re

import pytest
import torch
from safetensors import safe_open

from salvid.checkpoints import load_network, read_checkpoint, save_folder, save_pretrained
from salvid.errors import CheckpointError
from salvid.models import FusionNet3D, SaliencyNet3D
from salvid.models.config import validate_model_config
from tests.helpers.networks import assert_varied, calibrated

TINY = {"width_mult": 0.125, "input_size": [32, 32]}


class _Payload:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _lightning_like(net: SaliencyNet3D, config: dict) -> dict:
    return {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"model": config, "loss": "mse"}}


def test_a_lightning_checkpoint_round_trips(tmp_path):
    net = SaliencyNet3D(**TINY)
    torch.save(_lightning_like(net, TINY), tmp_path / "a.ckpt")
    loaded, config = load_network(tmp_path / "a.ckpt")
    assert config == TINY
    for k, v in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_a_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = _lightning_like(SaliencyNet3D(**TINY), TINY)
    ckpt["evil"] = _Payload(marker)
    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump(ckpt, f)
    with pytest.raises(CheckpointError, match=r"evil\.ckpt: refused.*trusted_checkpoint=true"):
        load_network(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_a_foreign_target_in_the_model_config_is_never_instantiated(tmp_path):
    config = {**TINY, "_target_": "os.system"}
    torch.save(_lightning_like(SaliencyNet3D(**TINY), config), tmp_path / "t.ckpt")
    with pytest.raises(CheckpointError, match=r"t\.ckpt: model config names _target_='os.system'"):
        load_network(tmp_path / "t.ckpt")


def test_unknown_or_non_plain_config_values_are_refused():
    with pytest.raises(CheckpointError, match=r"unknown model config keys \['shell'\]"):
        validate_model_config({**TINY, "shell": "rm -rf /"}, "x.json")
    with pytest.raises(CheckpointError, match="expected plain data"):
        validate_model_config({**TINY, "width_mult": {"nested": 1}}, "x.json")


def test_weights_from_another_configuration_are_named(tmp_path):
    torch.save(_lightning_like(SaliencyNet3D(**TINY), {**TINY, "width_mult": 0.25}), tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"other\.ckpt: weights do not fit"):
        load_network(tmp_path / "other.ckpt")


def test_corrupt_and_truncated_checkpoints_are_named(tmp_path):
    torch.save(_lightning_like(SaliencyNet3D(**TINY), TINY), tmp_path / "ok.ckpt")
    data = (tmp_path / "ok.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: not a readable checkpoint"):
        load_network(tmp_path / "cut.ckpt")
    with pytest.raises(CheckpointError, match=r"nothing\.ckpt"):
        load_network(tmp_path / "nothing.ckpt")


def _not_checkpoints(folder):
    """A text file and a video (an mp4 header, then noise): files a user may pass as ckpt_path by mistake."""
    (folder / "notes.txt").write_text("epoch 3: val_loss 0.21\n")
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + random.Random(0).randbytes(4096))
    return [folder / "notes.txt", folder / "clip.mp4"]


@pytest.mark.parametrize("trusted", [False, True])
def test_a_file_that_is_no_checkpoint_is_called_so_not_unsafe(tmp_path, trusted):
    for path in _not_checkpoints(tmp_path):
        with pytest.raises(CheckpointError) as info:
            load_network(path, trusted=trusted)
        message = str(info.value)
        assert message.startswith(f"{path}: not a checkpoint: salvid loads a .ckpt as torch.save writes it")
        assert ".safetensors" in message and "model folder" in message
        assert "trusted_checkpoint" not in message and "\n" not in message
        # training reads its resume checkpoints with read_checkpoint: the same verdict there
        with pytest.raises(CheckpointError, match=r"not a checkpoint: a checkpoint is the zip archive or the pickle"):
            read_checkpoint(path, trusted=trusted)


def test_a_folder_that_is_no_model_folder_says_what_it_lacks(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"/run: a folder, but not a model folder: it lacks model\.safetensors"):
        load_network(tmp_path / "run")


def test_a_damaged_pickle_is_called_damaged_and_only_a_well_formed_one_gets_the_trust_advice(tmp_path):
    import datetime

    ckpt = _lightning_like(SaliencyNet3D(**TINY), TINY)
    for name, use_zip in (("zip", True), ("legacy", False)):
        torch.save({**ckpt, "when": datetime.date(2020, 1, 2)}, tmp_path / f"{name}.ckpt",
                   _use_new_zipfile_serialization=use_zip)
        with pytest.raises(CheckpointError, match=rf"{name}\.ckpt: refused.*trusted_checkpoint=true"):
            read_checkpoint(tmp_path / f"{name}.ckpt")
    with open(tmp_path / "damaged.ckpt", "wb") as f:  # a pickle header, then bytes that are no opcodes
        f.write(pickle.dumps({"state_dict": {}}, protocol=2)[:4] + b"\xff" * 64)
    for trusted in (False, True):
        with pytest.raises(CheckpointError, match=r"damaged\.ckpt: not a readable checkpoint") as info:
            read_checkpoint(tmp_path / "damaged.ckpt", trusted=trusted)
        assert "trusted_checkpoint" not in str(info.value)


def test_safetensors_with_json_config(tmp_path):
    torch.manual_seed(0)
    net = calibrated(SaliencyNet3D(**TINY))
    save_pretrained(net, TINY, tmp_path / "m", {"trained_on": "test"})
    loaded, config = load_network(tmp_path / "m.safetensors")
    assert config == TINY
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        reference = net(x)
        assert_varied(reference)
        torch.testing.assert_close(loaded(x), reference)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["model"]["_target_"] = "builtins.eval"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="_target_"):
        load_network(tmp_path / "m.safetensors")


def test_unknown_pretrained_name_lists_what_exists():
    with pytest.raises(CheckpointError, match="not a pretrained name"):
        load_network("no-such-model")


def test_half_precision_storage_loads_back_close_to_the_original(tmp_path):
    torch.manual_seed(0)
    net = calibrated(SaliencyNet3D(**TINY))
    save_pretrained(net, TINY, tmp_path / "h", {}, half=True)
    loaded, _ = load_network(tmp_path / "h.safetensors")
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        reference = net(x)
        maps = loaded(x)
    assert_varied(reference)
    # float16 rounding of every weight, compounded through the layers: on this calibrated random network up to
    # ~0.02 on single pixels (mean ~0.003); a flat network had hidden that behind a difference of 0
    difference = (maps - reference).abs()
    assert difference.mean() < 0.01 and difference.max() < 0.05
    for a, b in zip(maps.flatten(1), reference.flatten(1), strict=True):
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99
    with safe_open(tmp_path / "h.safetensors", "pt") as f:  # stored as float16, not merely loadable
        assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {torch.float16}


def test_save_pretrained_creates_the_folders_it_writes_into(tmp_path):
    save_pretrained(SaliencyNet3D(**TINY), TINY, tmp_path / "a" / "b" / "m", {})
    _, config = load_network(tmp_path / "a" / "b" / "m.safetensors")
    assert config == TINY


@pytest.mark.parametrize("sidecar, message", [
    (None, r"m\.safetensors: model config .*m\.json is missing"),
    ("{not json", r"m\.json: not valid JSON"),
    ("[1, 2]", r"m\.json: expected a JSON object with a \"model\" entry"),
    ('{"model": 3}', r"m\.json: model config must be a mapping, got int"),
    (json.dumps({"model": {**TINY, "width_mult": 0}}), r"m\.json: model\.width_mult=0: must be > 0"),
])
def test_a_bad_model_config_beside_the_weights_is_named(tmp_path, sidecar, message):
    save_pretrained(SaliencyNet3D(**TINY), TINY, tmp_path / "m", {})
    if sidecar is None:
        (tmp_path / "m.json").unlink()
    else:
        (tmp_path / "m.json").write_text(sidecar)
    with pytest.raises(CheckpointError, match=message):
        load_network(tmp_path / "m.safetensors")


def test_a_saved_fusion3d_model_is_rebuilt_from_its_file_alone(tmp_path, monkeypatch):
    """The file holds every weight: loading never fetches the ImageNet backbone its config was trained from."""
    import salvid.models.backbones

    config = {"family": "fusion3d", "input_size": [64, 96], "pretrained": "none"}
    torch.manual_seed(0)
    net = calibrated(FusionNet3D(**{k: v for k, v in config.items() if k != "family"}))
    save_pretrained(net, {**config, "pretrained": "imagenet"}, tmp_path / "f", {})

    def no_imagenet():
        raise AssertionError("ImageNet weights were loaded for a model whose file holds every weight")

    monkeypatch.setattr(salvid.models.backbones, "imagenet_state_dict", no_imagenet)
    loaded, loaded_config = load_network(tmp_path / "f.safetensors")
    assert loaded_config["pretrained"] == "imagenet"  # the config as trained, reported unchanged
    x = torch.randn(2, 3, 3, 64, 96)
    with torch.no_grad():
        reference = net(x)
        assert_varied(reference)
        torch.testing.assert_close(loaded(x), reference)


FUSION_TINY = {"family": "fusion3d", "input_size": [64, 96], "pretrained": "none"}
HOSTILE = [  # a model card's own config, the setting it overrides, what the refusal says
    (TINY, {"input_size": [60000, 60000]}, r"model\.input_size=\[60000, 60000\]: .*each at most 4096 pixels"),
    (TINY, {"width_mult": 300}, r"model\.width_mult=300: must be > 0 and at most 4"),
    (TINY, {"width_mult": float("inf")}, r"model\.width_mult=inf: must be > 0 and at most 4"),
    (TINY, {"in_frames": 2001}, r"model\.in_frames=2001: must be odd, from 1 to 9"),
    (TINY, {"widths": [64, 128, 256, 512, 10**9]}, r"model\.widths=\[.*1000000000\]: .*from 1 to 2048"),
    (TINY, {"pool_strides": [[1, 1, 1]] * 20000}, r"model\.pool_strides=\[\[1, 1, 1\], .*\.\.\.\]: at most 8 encoder"),
    (TINY, {"width_mult": 4, "input_size": [32, 32], "convs_per_block": [8] * 5},
     r"model: the network would hold 1023 million weights \(4\.1 GB as float32\), more than the 500 million"),
    (FUSION_TINY, {"input_size": [60000, 60000]}, r"model\.input_size=\[60000, 60000\]: .*multiples of 32"),
    (FUSION_TINY, {"widths": [10**6, 32, 48, 96, 160]}, r"model\.widths=\[1000000, 32, 48, 96, 160\]: "),
    (FUSION_TINY, {"convs": "x" * 500}, r"model\.convs='x+\.\.\.x+': must be one of full, separable"),
    (FUSION_TINY, {"decoder_stride": 2**40}, r"model\.decoder_stride=1099511627776: must be 2 or 4"),
    (FUSION_TINY, {"decoder_stride": True}, r"model config decoder_stride=True: must be a number"),
]


def _never_built(monkeypatch):
    """Fail the test if the network or its weights are allocated: a hostile card is refused before that."""
    import salvid.checkpoints

    def allocation(*args, **kwargs):
        raise AssertionError("the network or its weights were allocated before the card was refused")

    monkeypatch.setattr(salvid.checkpoints, "build_network", allocation)
    monkeypatch.setattr(salvid.checkpoints, "load_file", allocation)


def _saved(folder, config, as_folder=False):
    family = {k: v for k, v in config.items() if k != "family"}
    net = FusionNet3D(**family) if config.get("family") == "fusion3d" else SaliencyNet3D(**family)
    if as_folder:
        save_folder(net, config, folder / "model", {})
        return folder / "model", folder / "model" / "config.json"
    save_pretrained(net, config, folder / "m", {})
    return folder / "m.safetensors", folder / "m.json"


@pytest.mark.parametrize("as_folder", [False, True], ids=["name.json", "folder"])
@pytest.mark.parametrize(("config", "change", "message"), HOSTILE,
                         ids=[f"{c.get('family', 'paper')}-{'+'.join(k)}" for c, k, _ in HOSTILE])
def test_a_card_asking_for_too_much_is_refused_naming_file_and_key_before_anything_is_allocated(
        tmp_path, monkeypatch, config, change, message, as_folder):
    spec, card_file = _saved(tmp_path, config, as_folder)
    card = json.loads(card_file.read_text())
    card["model"].update(change)
    card_file.write_text(json.dumps(card))
    _never_built(monkeypatch)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(card_file))}: {message}") as info:
        load_network(spec)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize("as_folder", [False, True], ids=["name.json", "folder"])
@pytest.mark.parametrize(("text", "message"), [
    ('{"model": ' + "[" * 100000 + "]" * 100000 + "}", r"JSON nested deeper than a model card is \(at most 32"),
    ('{"model": {"width_mult": 0.125}, "x": ' + "[" * 32 + "]" * 32 + "}", r"JSON nested deeper than a model card"),
    ('{"model": {"width_mult": 0.125}, "notes": "' + "x" * 1_000_000 + '"}', r"\d+ bytes, too large for a model card"),
], ids=["deep", "33-levels", "large"])
def test_a_card_too_deep_or_too_large_is_refused_in_one_line_naming_it(tmp_path, monkeypatch, text, message,
                                                                         as_folder):
    spec, card_file = _saved(tmp_path, TINY, as_folder)
    card_file.write_text(text)
    _never_built(monkeypatch)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(card_file))}: {message}"):
        load_network(spec)


def test_a_card_nested_32_levels_deep_still_loads(tmp_path):
    spec, card_file = _saved(tmp_path, TINY)
    card_file.write_text(json.dumps({"model": TINY, "notes": json.loads("[" * 31 + "]" * 31)}))
    assert load_network(spec)[1] == TINY


def test_a_checkpoint_whose_model_config_asks_for_too_much_is_refused_before_it_is_built(tmp_path, monkeypatch):
    torch.save(_lightning_like(SaliencyNet3D(**TINY), {**TINY, "width_mult": 300}), tmp_path / "wide.ckpt")
    _never_built(monkeypatch)
    with pytest.raises(CheckpointError, match=r"wide\.ckpt: model\.width_mult=300: must be > 0 and at most 4"):
        load_network(tmp_path / "wide.ckpt")


# -- remote checkpoints and the training loader -------------------------------------------------------------


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A loopback HTTP server serving ``tmp_path/served``; checkpoint downloads cached under tmp_path."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("SALVID_CACHE", str(tmp_path / "cache"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _evil(folder, marker):
    ckpt = _lightning_like(SaliencyNet3D(**TINY), TINY)
    ckpt["evil"] = _Payload(marker)
    with open(folder / "evil.ckpt", "wb") as f:
        pickle.dump(ckpt, f)


def test_a_checkpoint_url_is_downloaded_then_loaded_weights_only(http_folder, tmp_path):
    from salvid.training.checkpoint_plugin import AtomicCheckpointIO

    served, url = http_folder
    marker = tmp_path / "pwned"
    _evil(served, marker)
    torch.save(_lightning_like(SaliencyNet3D(**TINY), TINY), served / "good.ckpt")
    with pytest.raises(CheckpointError, match=r"/evil\.ckpt: refused.*trusted_checkpoint=true"):
        read_checkpoint(f"{url}/evil.ckpt")
    with pytest.raises(CheckpointError, match="refused"):
        load_network(f"{url}/evil.ckpt")
    # Lightning's own reader would unpickle a URL in full (torch.hub, weights_only=False); salvid's plugin,
    # which Lightning calls to resume, does not, even when Lightning asks for weights_only=False
    with pytest.raises(CheckpointError, match="refused"):
        AtomicCheckpointIO().load_checkpoint(f"{url}/evil.ckpt", weights_only=False)
    assert not marker.exists()
    net, config = load_network(f"{url}/good.ckpt")
    assert config == TINY
    with pytest.raises(CheckpointError, match=r"s3://b/x\.ckpt: .*http\(s\) URLs only"):
        read_checkpoint("s3://b/x.ckpt")


def test_trusted_checkpoint_is_honoured_by_the_training_loader(tmp_path):
    import datetime

    from salvid.training.checkpoint_plugin import AtomicCheckpointIO

    # a harmless object beyond tensors and plain data: refused unless trusted
    torch.save({"state_dict": {}, "when": datetime.date(2020, 1, 2)}, tmp_path / "dated.ckpt")
    with pytest.raises(CheckpointError, match=r"dated\.ckpt: refused"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "dated.ckpt")
    loaded = AtomicCheckpointIO(trusted=True).load_checkpoint(tmp_path / "dated.ckpt")
    assert loaded["when"] == datetime.date(2020, 1, 2)


def test_train_with_a_checkpoint_url_never_runs_its_code(http_folder, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    served, url = http_folder
    marker = tmp_path / "pwned"
    _evil(served, marker)
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SALVID_RANK0_CONFIG", "HYDRA_FULL_ERROR")}

    def train(*overrides):
        return subprocess.run([sys.executable, "-m", "salvid.train", "+experiment=demo", "logger=csv",
                               f"paths.root_dir={tmp_path}", *overrides],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=300)

    def assert_refused(result, name):
        assert result.returncode == 2, result.stderr[-3000:]
        assert not marker.exists()
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line.startswith("error: ") and f"{name}: refused" in last_line
        assert "Traceback" not in result.stderr

    assert_refused(train(f"ckpt_path={url}/evil.ckpt", f"hydra.run.dir={tmp_path}/run"), "/evil.ckpt")
    # the same file as a killed run's last.ckpt, which a rerun resumes by itself
    (served / "checkpoints").mkdir()
    (served / "evil.ckpt").rename(served / "checkpoints" / "last.ckpt")
    assert_refused(train(f"hydra.run.dir={served}"), "/last.ckpt")
    assert sorted(p.relative_to(served).as_posix() for p in served.rglob("*")) == ["checkpoints",
                                                                                   "checkpoints/last.ckpt"]


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.to(torch.int8), r"weight .* is int8, not floating point"),
    (lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), r"weight .* holds \d+ NaN or infinite"),
    (lambda t: t.index_fill(0, torch.tensor([0]), float("inf")), r"weight .* holds \d+ NaN or infinite"),
])
def test_weights_that_would_draw_garbage_are_refused_naming_the_tensor(damage, message, tmp_path):
    from safetensors.torch import load_file, save_file

    config = {"width_mult": 0.0625, "input_size": [32, 32]}
    save_pretrained(SaliencyNet3D(**config), config, tmp_path / "net", {})
    state = load_file(tmp_path / "net.safetensors")
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 5)  # a convolution's weight
    state[key] = damage(state[key])
    save_file(state, tmp_path / "net.safetensors")
    with pytest.raises(CheckpointError, match=message.replace("weight .*", f"weight {re.escape(key)}")):
        load_network(tmp_path / "net.safetensors")


def test_a_network_is_named_in_tables_by_what_the_user_gave():
    from salvid.checkpoints import DEFAULT_PRETRAINED, model_name

    assert model_name(None) == DEFAULT_PRETRAINED
    assert model_name("salvid-fusion3d-davis") == "salvid-fusion3d-davis"
    assert model_name("weights/mine.safetensors") == "mine"
    assert model_name("runs/lite2/checkpoints/last.ckpt") == "lite2"  # a run by its folder
    assert model_name("CV/recipe_duts/0/checkpoints/last.ckpt") == "recipe_duts-0"  # a multirun job, not "0"
    assert model_name("https://example.org/files/best.ckpt") == "best"
