"""The pretrained models salvid ships (``salvid/pretrained/<name>.safetensors`` + ``<name>.json``): each loads
with its own config, gives maps that vary over the frame, and reproduces the held-out numbers its model card
states, on the data the card names (skipped, saying why, where that data is absent).

Written over whatever is shipped, keyed on the card's fields, so a newly exported model is tested as soon as
it lands.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import compose_config
from omegaconf import OmegaConf

from salvid.checkpoints import PRETRAINED_DIR, load_network
from salvid.data.sources import ImageFolder
from salvid.data.transforms import Augmentation
from salvid.inference.core import NetworkSaliency, iter_clips
from salvid.inference.scoring import evaluate
from tests.helpers.networks import assert_varied

CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"
SHIPPED = sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
# A card's held-out numbers are reproduced within this: maps are rescored by ``evaluate`` at the ground
# truth's resolution in fp32, while a card may have been written from the training run's own test (224x224,
# bf16 on a GPU). Measured for salvid-small-davis: |difference| <= 0.005 on the [0, 1] metrics, 0.025 on NSS.
REL_TOL, ABS_TOL = 0.02, 0.005
# Written by ``evaluate`` but not scores (or not comparable across definitions): compared exactly / skipped.
COUNTS = ("excluded_frames",)
NOT_SCORES = ("loss", "duplicate_frames")


def card(name: str) -> dict[str, Any]:
    return json.loads((PRETRAINED_DIR / f"{name}.json").read_text(encoding="utf-8"))


def heldout_scores(card: dict[str, Any]) -> dict[str, float]:
    """The network's held-out numbers in a card: its column of ``heldout_metrics``, the ``evaluate`` summary
    that ``salvid.export`` records (the network under its own name or ``salvid``, beside the baselines)."""
    summary = card["heldout_metrics"]
    return next((summary[k] for k in (card.get("name"), "salvid") if k in summary), summary)


def heldout_data(card: dict[str, Any], davis_240p: Callable[[], Path]) -> list[str]:
    """``evaluate`` overrides that select the held-out sequences the card names; a skip saying why where that
    data is absent. ``davis_240p`` gives the DAVIS-2016 240p test data (or skips)."""
    data = (card.get("train_config") or {}).get("data")
    if data is not None and data["layout"] == "concat":  # video and images: the held-out video is the test set
        scored = {name: d for name, d in data["datasets"].items() if not d.get("train_only")}
        assert len(scored) == 1, f"a concat card with held-out sequences in several datasets: {sorted(scored)}"
        (video,) = scored.values()
        root = Path(str(data["root"])) / str(video["root"])
        data = {**video, "root": root, "splits": data.get("splits"),
                "val_holdout": data.get("val_holdout", 0), "test_holdout": data.get("test_holdout", 0)}
    if data is not None:  # exported from a training run: its own data config
        root = Path(str(data["root"]))
        if root.name == "DAVIS-2016-train-240p":
            root = davis_240p()
        elif not root.is_dir():
            pytest.skip(f"the card's held-out data {root} is not on this machine")
        group = next((p.stem for p in sorted(CONF_DATA.glob("*.yaml"))
                      if yaml.safe_load(p.read_text()).get("layout") == data["layout"]), None)
        assert group, f"no data config of layout {data['layout']!r} in {CONF_DATA}"
        overrides = [f"data={group}", f"data.root={root}", "stage=test",
                     f"data.val_holdout={data.get('val_holdout', 0)}", f"data.test_holdout={data.get('test_holdout', 0)}"]
        overrides += [f"data.splits.{stage}={(data.get('splits') or {}).get(stage) or 'null'}"
                      for stage in ("train", "val", "test")]
        overrides += [f"++data.{k}={v}" for k, v in data.items() if k in ("resolution",)]
        return overrides
    text = json.dumps({k: v for k, v in card.items() if isinstance(v, str)})
    holdout = re.search(r"data\.test_holdout=(\d+)", text)
    if "DAVIS-2016" in text and "240p" in text and holdout:  # the DAVIS-2016 240p copy, held out by name
        val = re.search(r"data\.val_holdout=(\d+)", text)
        return ["data=davis2016_holdout", f"data.root={davis_240p()}", f"data.test_holdout={holdout.group(1)}",
                f"data.val_holdout={val.group(1) if val else 0}", "stage=test"]
    raise AssertionError(f"the model card names no held-out data this test knows how to find: {sorted(card)}")


def test_every_shipped_model_has_a_model_card():
    assert SHIPPED, f"no pretrained model in {PRETRAINED_DIR}"
    for name in SHIPPED:
        assert (PRETRAINED_DIR / f"{name}.json").is_file(), f"{name}.safetensors has no model card"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_with_its_config_and_gives_varied_maps(name, davis_root):
    net, config = load_network(name)
    assert config == card(name)["model"]
    assert not net.training and all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in net.parameters())
    runner = NetworkSaliency(net, precision="fp32")
    # a real clip (a person moving in front of banners), from the sequences no shipped model trained on
    source = ImageFolder.from_directory(next((davis_root / "JPEGImages").iterdir()) / "tennis")
    clips = [clip for t, clip in iter_clips(source, net.in_frames, [2, 5])]
    maps = runner.predict(clips)
    assert maps.shape == (2, *source.size)
    assert_varied(maps, what=f"{name}'s maps")
    assert np.abs(maps[0] - maps[1]).max() > 0.01  # different frames, different maps


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reproduces_its_cards_heldout_numbers(name, tmp_path, request):
    model_card = card(name)
    expected = heldout_scores(model_card)
    overrides = heldout_data(model_card, lambda: request.getfixturevalue("davis_root"))
    summary = evaluate(compose_config("evaluate", [f"ckpt_path={name}", *overrides, "baselines=[]",
                                                   "precision=fp32", "qualitative_frames=0",
                                                   "quantise_maps=false", f"paths.output_dir={tmp_path}"]))[name]
    compared = {k for k in expected if k not in NOT_SCORES and k in summary}
    assert len(compared) >= 5, f"the card shares too few metrics with evaluate: {sorted(expected)}"
    off = {k: (expected[k], round(summary[k], 4)) for k in compared if k not in COUNTS
           and not math.isclose(summary[k], expected[k], rel_tol=REL_TOL, abs_tol=ABS_TOL)}
    off.update({k: (expected[k], summary[k]) for k in compared if k in COUNTS and summary[k] != expected[k]})
    assert not off, f"{name}: card vs reproduced (card, now): {off}"


RECIPE_KEYS = ("model", "module", "seed", "trainer.max_epochs", "data.batch_size", "data.max_frame_step",
               "data.augment", "data.in_frames", "data.input_size")
# an augmentation a card does not record did not exist when it trained, so it trained as if the setting had its
# default; this holds while every augmentation added later defaults to off (as zoom_out does: 1, never)
UNRECORDED_AUGMENT = {f"data.augment.{key}": value for key, value in vars(Augmentation()).items()}


def recorded_preset(name: str) -> str | None:
    """The ``+experiment`` preset a shipped model's card says trained it (its ``task_name``), where it names one."""
    return (card(name).get("train_config") or {}).get("task_name")


def leaves(value: Any, key: str) -> dict[str, Any]:
    """``{"a.b": leaf}`` for every leaf of a (nested) config value."""
    if OmegaConf.is_dict(value):
        return {k: v for sub, item in value.items() for k, v in leaves(item, f"{key}.{sub}").items()}
    return {key: value}


@pytest.mark.parametrize("name", [n for n in SHIPPED if recorded_preset(n)])
def test_the_preset_a_shipped_model_names_is_still_its_recipe(name):
    """``python -m salvid.train +experiment=<task_name> data.root=DIR`` retrains the model the card describes:
    every recipe setting the card records (network, optimiser, schedule length, augmentation) is what the
    preset gives now. Settings added since an older card was written are not in it: an augmentation must then be
    off (its default), the others are not compared; nor is where the module's class lives."""
    preset = CONF_DATA.parent / "experiment" / f"{recorded_preset(name)}.yaml"
    assert preset.is_file(), f"{name}: its card names +experiment={recorded_preset(name)}, and {preset} is gone"
    recorded = OmegaConf.create(card(name)["train_config"])
    composed = compose_config("train", [f"+experiment={recorded_preset(name)}"])
    drift = {}
    for key in RECIPE_KEYS:
        for leaf, value in leaves(OmegaConf.select(recorded, key), key).items():
            now = OmegaConf.select(composed, leaf)
            if value is not None and leaf != "module._target_" and now != value:  # None: an older card's gap
                drift[leaf] = (value, now)
    if OmegaConf.select(recorded, "data.augment") is not None:
        for leaf, default in UNRECORDED_AUGMENT.items():
            now = OmegaConf.select(composed, leaf)
            if OmegaConf.select(recorded, leaf) is None and now != default:
                drift[leaf] = ("not recorded: the default " + repr(default), now)
    assert not drift, f"{name}: +experiment={recorded_preset(name)} no longer gives its recipe (card, preset): {drift}"
