"""``evaluate`` on a small copy: every sequence held out for testing."""

import pytest
from conftest import compose_config

from salvid.data.splits import split_sequences
from salvid.data.synthetic import generate_dataset
from salvid.inference.scoring import evaluate


@pytest.fixture(scope="module")
def three_sequences(tmp_path_factory):
    """A copy with 3 training sequences and no val or test split."""
    root = tmp_path_factory.mktemp("small") / "copy"
    return generate_dataset(root, num_videos={"train": 3}, num_frames=5, size=(48, 64), seed=1)


def test_holding_out_every_sequence_scores_all_of_them(three_sequences, tiny_pretrained, tmp_path):
    evaluate(compose_config("evaluate", [
        f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={three_sequences}", "data.val_holdout=0",
        "data.test_holdout=3", "data.splits={train: train, val: null, test: null}", "baselines=[center_prior]",
        f"paths.output_dir={tmp_path / 'out'}", "batch_size=4", "qualitative_frames=0"]))
    table = (tmp_path / "out" / "table.md").read_text()
    assert "3 sequences, 15 annotated frames" in table


def test_holding_out_more_than_there_are_says_how_to_score_every_sequence(three_sequences):
    with pytest.raises(ValueError, match=r"data.test_holdout=4: only 3 training sequences.*data.split="):
        split_sequences("videos", three_sequences, {"train": "train"}, test_holdout=4)
    stages = split_sequences("videos", three_sequences, {"train": "train"}, val_holdout=0, test_holdout=3)
    assert [s.name for s in stages["test"]] == ["train_000", "train_001", "train_002"] and stages["train"] == []
