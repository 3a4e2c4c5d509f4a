"""The demo's claim (docs/training.md), asserted: ``python -m salvid.train +experiment=demo`` trains the tiny
network on the generated videos to test PLCC 0.76, AUC 0.985, NSS 3.75 against 0, 0.5 and 0 untrained."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from salvid.training.fit import train

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.slow
def test_the_demo_trains_to_a_plcc_well_above_the_untrained_network(tmp_path):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=demo", "logger=csv"], return_hydra_config=True)
    cfg.paths.root_dir = str(tmp_path)  # the synthetic videos are generated under it
    cfg.paths.output_dir = str(tmp_path / "run")
    del cfg.hydra
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    trained, untrained = metrics["test"], metrics["untrained"]
    assert untrained["test/plcc"] < 0.1 and untrained["test/auc"] < 0.6  # nearly flat maps
    assert trained["test/plcc"] > 0.6 and trained["test/plcc"] - untrained["test/plcc"] > 0.5
    assert trained["test/auc"] > 0.9 and trained["test/nss"] > 2.0
    # which videos trained, selected and tested: the generated 8 / 2 / 2, none in two stages
    splits = metrics["data"]
    assert [len(splits[s]["videos"]) for s in ("train", "val", "test")] == [8, 2, 2]
    assert len({v for s in splits.values() for v in s["videos"]}) == 12
    assert splits["train"]["still_images"] == 0 and splits["train"]["frames"] == 8 * 24
