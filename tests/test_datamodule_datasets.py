"""DataModule over real layouts: holdouts, weights, the summary, the experiment configs."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from salvid.data.datamodule import SaliencyDataModule
from salvid.data.layouts import DatasetError, list_sequences
from salvid.data.stream import TripletStream
from tests.helpers.layout_fixtures import davis

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_holdouts_take_distinct_sequences_for_val_and_test(tmp_path):
    root = davis(tmp_path, {n: 3 for n in ("a", "b", "c", "d", "e", "f")})
    dm = SaliencyDataModule(
        "davis2016", str(root), {"train": "train", "val": None, "test": None}, val_holdout=1, test_holdout=2
    )
    dm.setup()
    names = {stage: [s.name for s in seqs] for stage, seqs in dm.sequences.items()}
    assert names == {"train": ["a", "b"], "val": ["c"], "test": ["d", "e"]}  # "f" is the val split


def test_weights_repeat_sequences_per_epoch_and_len_holds(tmp_path):
    root = davis(tmp_path, {"a": 8, "b": 8, "c": 2})
    a, b = list_sequences("davis2016", root, "train")
    stream = TripletStream([dataclasses.replace(a, weight=3.0), dataclasses.replace(b, weight=0.5)], shuffle=True,
                           chunk_len=2, seed=1)
    for epoch in range(3):
        stream.set_epoch(epoch)
        ids = Counter(int(s["video_id"]) for s in stream)
        assert sum(ids.values()) == len(stream) == 28  # 3 * 8 + 0.5 * 8
        assert ids[0] >= 3 * 8 - 2 and ids[1] <= 8  # the fit to len() may pad or cut one chunk
    eval_stream = TripletStream([dataclasses.replace(a, weight=3.0), b])
    assert len(list(eval_stream)) == 16  # evaluation ignores weights


def test_setup_logs_counts_per_stage(tmp_path, caplog):
    root = davis(tmp_path, {"a": 3, "b": 4, "c": 2})
    dm = SaliencyDataModule("davis2016", str(root), {"train": "train", "val": None, "test": "val"})
    with caplog.at_level(logging.INFO, logger="salvid.data.datamodule"):
        dm.setup()
    assert "train: 2 sequences, 7 frames, 7 targets (0 empty masks)" in caplog.text
    assert "test: 1 sequences, 2 frames" in caplog.text


def test_missing_root_names_the_prepare_command(tmp_path):
    dm = SaliencyDataModule("segtrackv2", str(tmp_path / "SegTrackv2"), {"train": "all"})
    with pytest.raises(DatasetError, match=r"python -m salvid.prepare segtrackv2 --root .*SegTrackv2"):
        dm.setup()


@pytest.mark.parametrize("experiment", ["davis", "segtrackv2", "paper"])
def test_experiments_compose_and_instantiate(experiment, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", [f"+experiment={experiment}", f"paths.data_dir={tmp_path}", "paths.output_dir=x"])
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, SaliencyDataModule)
    with pytest.raises(DatasetError, match="python -m salvid.prepare"):
        dm.setup()  # nothing prepared in tmp_path: the message says how


def test_davis_experiment_on_the_240p_train_copy(davis_root, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", ["+experiment=davis", f"data.root={davis_root}", "data.resolution=240p",
                                "data.splits.test=null", "data.test_holdout=5", "paths.output_dir=x"])
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup()
    sizes = {stage: len(seqs) for stage, seqs in dm.sequences.items()}
    assert sizes == {"train": 21, "val": 4, "test": 5}
    batch = next(iter(dm.val_dataloader()))
    assert batch["frames"].shape[1:] == (3, *cfg.model.input_size, 3)
