import json

import numpy as np
from conftest import compose_config

from salvid.checkpoints import load_network
from salvid.export import export
from salvid.inference.core import NetworkSaliency


def test_export_writes_a_loadable_pretrained_model_with_its_card(trained_ckpt, tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"salvid": {"plcc": 0.5}, "center_prior": {"plcc": 0.3}}))
    target = export(compose_config("export", [f"ckpt_path={trained_ckpt}", "name=../tiny test",
                                              f"output_dir={tmp_path / 'pretrained'}", f"metrics={summary}",
                                              "hardware=test machine"]))
    assert target == tmp_path / "pretrained" / "_.._tiny_test.safetensors"  # the name cannot leave the folder
    card = json.loads(target.with_suffix(".json").read_text())
    assert card["model"]["width_mult"] == 0.125 and card["steps"] == 4
    assert card["module"]["loss"] == "mse" and card["run"]["hardware"] == "test machine"
    assert card["heldout_metrics"]["center_prior"]["plcc"] == 0.3
    exported, _ = load_network(target)
    original, _ = load_network(trained_ckpt)
    clips = [[np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8)] * 3 for i in range(2)]
    a = NetworkSaliency(exported, precision="fp32").predict(clips)
    b = NetworkSaliency(original, precision="fp32").predict(clips)
    np.testing.assert_array_equal(a, b)
