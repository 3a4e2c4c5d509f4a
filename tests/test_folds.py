"""Cross-validation folds over sequences (data.folds / data.fold)."""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from salvid.data.folds import fold_names
from salvid.data.splits import split_sequences
from salvid.inference.scoring import load_sequences
from tests.helpers.layout_fixtures import box_mask, davis, frame, save

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
HOLDOUT = {"train": "train", "val": None, "test": None}  # data=davis2016_holdout's splits


def names(stages):
    return {stage: [s.name for s in seqs] for stage, seqs in stages.items()}


def test_fold_names_are_contiguous_blocks_of_the_sorted_names():
    shuffled = [f"s{i:02d}" for i in range(25)]
    random.Random(0).shuffle(shuffled)
    blocks = fold_names(shuffled, 3)
    assert [len(b) for b in blocks] == [9, 8, 8]
    assert sum(blocks, []) == sorted(shuffled)
    assert fold_names(sorted(shuffled, reverse=True), 3) == blocks  # listing order does not matter


def test_folds_partition_the_non_test_sequences_of_davis(davis_root):
    all_names = sorted(p.name for p in (davis_root / "JPEGImages" / "240p").iterdir())
    test, rest = set(all_names[-5:]), all_names[:-5]  # davis2016_holdout's test sequences, and the other 25
    seen: list[str] = []
    for k in range(3):
        stages = names(split_sequences("davis2016", davis_root, HOLDOUT, 0, 5, folds=3, fold=k, resolution="240p"))
        assert stages["val"] == stages["test"] and stages["val"]
        assert not set(stages["val"]) & set(stages["train"])
        assert sorted(stages["train"] + stages["val"]) == rest
        assert not test & set(stages["train"] + stages["val"])  # the test sequences enter no fold
        seen += stages["val"]
    assert sorted(seen) == rest and len(seen) == len(set(seen)) == 25


def _tiny_davis(root: Path, order: list[str]) -> Path:
    """Six 3-frame sequences; train.txt lists them in ``order`` (the last in val.txt)."""
    return davis(root, {name: 3 for name in order})


def test_folds_are_stable_by_name(tmp_path):
    order = ["f", "b", "e", "a", "d", "c", "z"]
    a = _tiny_davis(tmp_path / "a", order)
    b = _tiny_davis(tmp_path / "b", [*sorted(order[:-1], reverse=True), "z"])  # same names, other listing order
    for k in range(2):
        first = names(split_sequences("davis2016", a, HOLDOUT, 0, 1, folds=2, fold=k))
        second = names(split_sequences("davis2016", b, HOLDOUT, 0, 1, folds=2, fold=k))
        assert first["val"] == second["val"] == [["a", "b", "c"], ["d", "e"]][k]  # f (last by name): test hold-out
        assert sorted(first["train"]) == sorted(second["train"])
        assert "f" not in first["train"] + first["val"]


def test_train_only_sequences_always_train_and_never_change_the_folds(tmp_path):
    videos = _tiny_davis(tmp_path / "DAVIS", ["a", "b", "c", "d", "e", "z"])
    for i in range(3):  # still images whose names sort among the videos'
        save(frame(i), tmp_path / "images" / "DUTS-TR-Image" / f"c{i}.jpg")
        save(box_mask(i), tmp_path / "images" / "DUTS-TR-Mask" / f"c{i}.png")
    datasets = {"davis": {"layout": "davis2016", "root": "DAVIS", "splits": {"train": "train"}},
                "imgs": {"layout": "image_sod", "root": "images", "train_only": True, "splits": {"train": "all"}}}
    for k in range(2):
        plain = names(split_sequences("davis2016", videos, HOLDOUT, 0, 1, folds=2, fold=k))
        mixed = names(split_sequences("concat", tmp_path, HOLDOUT, 0, 1, folds=2, fold=k, datasets=datasets))
        assert mixed["val"] == [f"davis/{n}" for n in plain["val"]]
        assert sorted(n for n in mixed["train"] if n.startswith("davis/")) == [f"davis/{n}" for n in sorted(plain["train"])]
        assert sorted(n for n in mixed["train"] if n.startswith("imgs/")) == ["imgs/c0", "imgs/c1", "imgs/c2"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"folds": 3, "fold": 3}, r"data.fold=3: must be an integer in 0..2"),
        ({"folds": 1, "fold": 0}, r"data.folds=1: must be an integer >= 2"),
        ({"folds": 3, "fold": None}, r"data.fold=None"),
        ({"folds": 3, "fold": 0, "val_holdout": 4}, r"data.val_holdout=4: with data.folds .* data.val_holdout=0"),
        ({"folds": 6, "fold": 0}, r"data.folds=6: only 5 training sequences"),
    ],
)
def test_bad_fold_settings_are_named(tmp_path, overrides, message):
    root = _tiny_davis(tmp_path, ["a", "b", "c", "d", "e", "f", "z"])
    settings = {"val_holdout": 0, "test_holdout": 1, **overrides}
    with pytest.raises(ValueError, match=message):
        split_sequences("davis2016", root, HOLDOUT, **settings)


def test_cv_experiments_compose_with_the_same_folds(davis_root, duts_root, tmp_path):
    (tmp_path / "DAVIS-2016-train-240p").symlink_to(davis_root)
    (tmp_path / "DUTS-TR").symlink_to(duts_root)
    folds = {}
    for experiment, root in (("cv_fusion3d", davis_root), ("cv_fusion3d_duts", tmp_path)):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("train", [f"+experiment={experiment}", f"data.root={root}", "data.folds=3",
                                    "data.fold=1", "paths.output_dir=x"])
        assert cfg.data.val_holdout == 0 and cfg.data.test_holdout == 5 and cfg.model.family == "fusion3d"
        assert "per_sequence_test" in cfg.callbacks and cfg.init_weights is None
        dm = instantiate(cfg.data, _convert_="all")
        dm.setup()
        folds[experiment] = [s.name.removeprefix("davis/") for s in dm.sequences["val"]]
        assert [s.name for s in dm.sequences["val"]] == [s.name for s in dm.sequences["test"]]
    assert folds["cv_fusion3d"] == folds["cv_fusion3d_duts"] and len(folds["cv_fusion3d"]) == 8


def test_evaluate_scores_a_folds_held_out_sequences(davis_root):
    """`evaluate data=davis2016_holdout data.folds=3 data.fold=k data.val_holdout=0` scores what fold k's model
    of a cv experiment held out, and nothing else."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("evaluate", ["data=davis2016_holdout", f"data.root={davis_root}", "data.folds=3", "data.fold=1",
                                   "data.val_holdout=0"])
    scored = load_sequences(cfg)
    expected = names(split_sequences("davis2016", davis_root, HOLDOUT, 0, 5, folds=3, fold=1, resolution="240p"))
    assert [s.name for s in scored] == expected["test"] and len(expected["test"]) == 8


def _load_script():
    spec = importlib.util.spec_from_file_location("cross_validate", ROOT / "scripts" / "cross_validate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def _fake_run(run_dir: Path, fold: int, plcc: float, sequences: dict[str, float],
              data: dict | None = None) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(f"data:\n  folds: 3\n  fold: {fold}\n")
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"test/plcc": plcc, "test/mae": 0.1,
                                                               "test/excluded_frames": 0.0}, **(data or {})}))
    rows = "".join(f"{name},10,0,{value},0.1\n" for name, value in sequences.items())
    (run_dir / "test_per_sequence.csv").write_text("sequence,frames,excluded_frames,plcc,mae\n" + rows)


def test_cross_validate_script_reports_mean_spread_and_sequences(tmp_path, capsys):
    script = _load_script()
    for k, plcc in enumerate((0.5, 0.6, 0.7)):
        _fake_run(tmp_path / "base" / str(k), k, plcc, {f"seq{k}": plcc})
        _fake_run(tmp_path / "duts" / f"fold{k}", k, plcc + 0.05 * k, {f"davis/seq{k}": plcc + 0.05 * k})
    (tmp_path / "duts" / "killed" / ".hydra").mkdir(parents=True)
    (tmp_path / "duts" / "killed" / ".hydra" / "config.yaml").write_text("data:\n  folds: 3\n  fold: 0\n")
    assert script.main([str(tmp_path / "base"), str(tmp_path / "duts")]) == 0
    text = capsys.readouterr().out
    assert "| plcc | 0.6000 | 0.1000 | 0.5000 | 0.6000 | 0.7000 |" in text  # mean, sample std, per fold
    assert "| seq1 | 1 | 0.600 |" in text and "| davis/seq2 | 2 | 0.800 |" in text
    assert "| plcc | 0.0500 | 0.0500 | 2/3 | 0.0000 | 0.0500 | 0.1000 |" in text  # paired by fold
    assert "| seq2 | 2 | 0.100 |" in text  # the concat arm's davis/seq2 pairs with seq2
    assert "excluded_frames" not in text.split("Per held-out")[0]  # counts are not metrics
    assert f"Unfinished runs left out: {tmp_path / 'duts' / 'killed'}" in text


def _two_arms(root: Path, other: str) -> None:
    """``root/base`` (PLCC 0.5, 0.6, 0.7 on folds 0-2) and ``root/<other>`` (+0, +0.05, +0.1), one sequence each."""
    for k, plcc in enumerate((0.5, 0.6, 0.7)):
        _fake_run(root / "base" / str(k), k, plcc, {f"seq{k}": plcc})
        _fake_run(root / other / str(k), k, plcc + 0.05 * k, {f"seq{k}": plcc + 0.05 * k})


def test_cross_validate_script_writes_the_same_numbers_as_json(tmp_path, capsys):
    script = _load_script()
    _two_arms(tmp_path, "duts")
    out = tmp_path / "cv.json"
    assert script.main([str(tmp_path / "base"), str(tmp_path / "duts"), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["folds"] == 3
    base = summary["arms"]["base"]
    assert base["folds_finished"] == [0, 1, 2] and base["held_out"]["1"] == ["seq1"]
    assert base["metrics"]["plcc"]["mean"] == pytest.approx(0.6)
    assert base["metrics"]["plcc"]["std"] == pytest.approx(0.1)
    assert base["metrics"]["plcc"]["per_fold"] == {"0": 0.5, "1": 0.6, "2": 0.7}
    paired = summary["against_first"]["duts"]["plcc"]
    assert paired["mean_diff"] == pytest.approx(0.05) and paired["folds_better"] == 2
    assert "| plcc | 0.0500 | 0.0500 | 2/3 |" in capsys.readouterr().out  # the Markdown says the same


def test_cross_validate_json_takes_the_held_out_videos_from_the_runs_record(tmp_path, capsys):
    script = _load_script()
    record = {"data": {"test": {"videos": ["davis/bus", "davis/boat"], "still_images": 0, "frames": 100}}}
    _fake_run(tmp_path / "recorded" / "0", 0, 0.5, {}, record)
    _fake_run(tmp_path / "recorded" / "1", 1, 0.6, {"seq1": 0.6})  # an older run: its per-sequence file
    _fake_run(tmp_path / "recorded" / "2", 2, 0.7, {})  # neither: unknown, not "none"
    out = tmp_path / "cv.json"
    assert script.main([str(tmp_path / "recorded"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["arms"]["recorded"]["held_out"] == {
        "0": ["davis/bus", "davis/boat"], "1": ["seq1"], "2": None}


def test_a_recorded_arm_compares_like_its_runs(tmp_path, capsys):
    script = _load_script()
    _two_arms(tmp_path, "new")
    recorded = tmp_path / "recorded.json"
    assert script.main([str(tmp_path / "base"), "--json", str(recorded)]) == 0
    assert json.loads(recorded.read_text())["arms"]["base"]["per_sequence"]["2"] == {
        "seq2": {"frames": 10.0, "excluded_frames": 0.0, "plcc": 0.7, "mae": 0.1}}
    card = tmp_path / "card.json"  # a model card keeps the summary under cross_validation, beside other keys
    card.write_text(json.dumps({"name": "m", "cross_validation": json.loads(recorded.read_text())}))
    capsys.readouterr()
    assert script.main([str(tmp_path / "base"), str(tmp_path / "new")]) == 0
    from_runs = capsys.readouterr().out.split("## new - base")[1]
    for spec in (str(recorded), f"{recorded}:base", f"{card}:base"):
        assert script.main([spec, str(tmp_path / "new")]) == 0
        assert capsys.readouterr().out.split("## new - base")[1] == from_runs  # paired and per sequence alike
    assert "| plcc | 0.0500 | 0.0500 | 2/3 |" in from_runs and "| seq2 | 2 | 0.100 |" in from_runs


@pytest.mark.parametrize(("content", "spec", "message"), [
    ("{not json", "{f}", "cannot be read as JSON"),
    ('{"name": "m"}', "{f}", "records no arms; give a summary this script wrote with --json"),
    ('{"folds": 3, "arms": {"a": {}, "b": {}}}', "{f}", "records the arms ['a', 'b']; name one as"),
    ('{"folds": 3, "arms": {"a": {}}}', "{f}:b", "records no arm 'b' (it records ['a'])"),
    ('{"folds": 3, "arms": {"a": {"metrics": {"plcc": 0.5}}}}', "{f}:a", "arm 'a' is not a cross-validation record"),
])
def test_a_bad_recorded_arm_is_named_in_one_line(tmp_path, capsys, content, spec, message):
    script = _load_script()
    f = tmp_path / "cv.json"
    f.write_text(content)
    assert script.main([spec.format(f=f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {f}: ") and message in err and err.count("\n") == 1


def _fake_evaluation(out: Path, plcc: float, sequences: dict[str, float], methods: tuple[str, ...] = ("last",)) -> None:
    """What ``evaluate ... baselines=[] paths.output_dir=OUT`` writes: ``summary.json`` and ``per_sequence.csv``."""
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(
        {m: {"plcc": plcc, "mae": 0.1, "excluded_frames": 2, "duplicate_frames": 0} for m in methods}))
    rows = "".join(f"{m},{name},{value},0.1,10,2\n" for m in methods for name, value in sequences.items())
    (out / "per_sequence.csv").write_text("method,sequence,plcc,mae,frames,excluded_frames\n" + rows)


def test_cross_validate_compares_arms_scored_by_evaluate_on_each_folds_own_data(tmp_path, capsys):
    script = _load_script()
    for k, plcc in enumerate((0.4, 0.5, 0.3)):
        _fake_evaluation(tmp_path / "small" / "base" / str(k), plcc, {f"clip{k}": plcc})
        _fake_evaluation(tmp_path / "small" / "zoom" / str(k), plcc + 0.02 * (k + 1), {f"clip{k}": plcc + 0.1})
    out = tmp_path / "small.json"
    assert script.main([str(tmp_path / "small" / "base"), str(tmp_path / "small" / "zoom"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| plcc | 0.4000 | 0.1000 | 0.4000 | 0.5000 | 0.3000 |" in text
    assert "| plcc | 0.0400 | 0.0200 | 3/3 | 0.0200 | 0.0400 | 0.0600 |" in text  # paired by fold
    assert "| clip2 | 2 | 0.100 |" in text and "excluded_frames" not in text.split("Per held-out")[0]
    assert json.loads(out.read_text())["arms"]["zoom"]["held_out"] == {"0": ["clip0"], "1": ["clip1"], "2": ["clip2"]}


def test_a_missing_evaluation_shows_as_a_missing_fold_and_other_data_is_not_paired_with_runs(tmp_path, capsys):
    script = _load_script()
    _fake_evaluation(tmp_path / "small" / "0", 0.4, {"clip0": 0.4})
    (tmp_path / "small" / "2").mkdir()  # fold 2 not scored yet; fold 1 not even started
    assert script.main([str(tmp_path / "small")]) == 0
    text = capsys.readouterr().out
    assert "small: 1 of 3 folds" in text and f"Unfinished runs left out: {tmp_path / 'small' / '2'}" in text
    _fake_run(tmp_path / "runs" / "0", 0, 0.5, {"seq0": 0.5})
    assert script.main([str(tmp_path / "runs"), str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'small'}: scored by evaluate on other data" in err and err.count("\n") == 1


def test_an_evaluation_of_several_methods_is_not_a_fold(tmp_path, capsys):
    script = _load_script()
    _fake_evaluation(tmp_path / "small" / "0", 0.4, {"clip0": 0.4}, methods=("last", "center_prior"))
    assert script.main([str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err
    assert "scores 2 methods (center_prior, last); score each fold's model alone" in err and err.count("\n") == 1


def test_cross_validate_script_refuses_two_arms_of_one_name(tmp_path, capsys):
    script = _load_script()
    for arm in ("a/cv", "b/cv"):
        _fake_run(tmp_path / arm / "0", 0, 0.5, {})
    assert script.main([str(tmp_path / "a" / "cv"), str(tmp_path / "b" / "cv")]) == 2
    assert "these repeat one (['cv', 'cv']); give each arm's folder its own name" in capsys.readouterr().err


def test_cross_validate_script_names_a_doubled_fold(tmp_path, capsys):
    script = _load_script()
    _fake_run(tmp_path / "arm" / "a", 1, 0.5, {})
    _fake_run(tmp_path / "arm" / "b", 1, 0.6, {})
    assert script.main([str(tmp_path / "arm")]) == 2
    assert "both are fold 1" in capsys.readouterr().err


def test_per_sequence_test_results_name_each_sequence(tmp_path):
    from types import SimpleNamespace

    import torch

    from salvid.metrics import SaliencyMetrics
    from salvid.training.sequence_results import PerSequenceTestResults

    metrics = SaliencyMetrics(metrics=("plcc", "mae"))
    target = torch.zeros(3, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    perfect, blank = target.clone(), torch.full_like(target, 0.5)
    metrics.update(perfect[:2], target[:2], torch.tensor([0, 0]), torch.tensor([0, 1]))  # video 0: 2 perfect maps
    metrics.update(blank[:1], target[:1], torch.tensor([1]), torch.tensor([0]))  # video 1: 1 uninformative map
    sequences = [SimpleNamespace(name="davis/bear"), SimpleNamespace(name="davis/boat")]
    trainer = SimpleNamespace(datamodule=SimpleNamespace(sequences={"test": sequences}), is_global_zero=True)
    PerSequenceTestResults(tmp_path / "run" / "test_per_sequence.csv").on_test_epoch_end(
        trainer, SimpleNamespace(test_metrics=metrics))
    with (tmp_path / "run" / "test_per_sequence.csv").open() as f:
        rows = {row["sequence"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["davis/bear", "davis/boat"]
    assert rows["davis/bear"]["frames"] == "2" and rows["davis/boat"]["frames"] == "1"
    assert float(rows["davis/bear"]["plcc"]) == pytest.approx(1.0) and float(rows["davis/bear"]["mae"]) == 0.0
    assert float(rows["davis/boat"]["mae"]) == pytest.approx(0.5)
