"""A researcher's loop: ``predict`` maps for a dataset, then ``evaluate`` them beside the live network, and
published maps in the layouts benchmarks distribute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from salvid.baselines import MissingMapsError
from salvid.baselines.maps_folder import MapsFolder

REPO = Path(__file__).resolve().parents[2]


def salvid(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", f"salvid.{module}", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_predicted_maps_score_exactly_as_the_live_network(eval_data, tiny_pretrained, tmp_path):
    # the user's two commands: maps for the test videos, then the table with them beside the network; predict in
    # evaluate's precision (its own default, auto, may pick bf16 where a probe measured it faster)
    salvid("predict", f"input='{eval_data}/videos/test_*.mp4'", f"ckpt_path={tiny_pretrained}",
           "paths.output_dir=predicted", "write_videos=false", "precision=fp32", cwd=tmp_path)
    salvid("evaluate", f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={eval_data}", "data.split=test",
           "baselines=[]", "+maps_dirs.mine=predicted", "paths.output_dir=table", cwd=tmp_path)
    summary = json.loads((tmp_path / "table" / "summary.json").read_text())
    live, saved = summary["tiny"], summary["mine"]
    assert set(live) == set(saved)
    for metric, value in live.items():  # the same maps, quantised the same way: the same table
        assert saved[metric] == pytest.approx(value, abs=1e-6), metric


@pytest.mark.slow
def test_float_maps_are_scored_when_asked(eval_data, tiny_pretrained, tmp_path):
    salvid("evaluate", f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={eval_data}", "data.split=test",
           "baselines=[]", "quantise_maps=false", "paths.output_dir=float", cwd=tmp_path)
    salvid("evaluate", f"ckpt_path={tiny_pretrained}", "data=videos", f"data.root={eval_data}", "data.split=test",
           "baselines=[]", "paths.output_dir=quantised", cwd=tmp_path)
    as_float = json.loads((tmp_path / "float" / "summary.json").read_text())["tiny"]
    quantised = json.loads((tmp_path / "quantised" / "summary.json").read_text())["tiny"]
    assert as_float["plcc"] == pytest.approx(quantised["plcc"], abs=0.01)
    assert as_float != quantised  # the switch changes what is scored


def test_benchmark_layout_one_folder_per_dataset_is_read_as_distributed(tmp_path):
    method = tmp_path / "MyMethod"
    for dataset, sequence in (("DAVIS", "bear"), ("SegTrack-V2", "bmx")):
        (method / dataset / sequence).mkdir(parents=True)
        shutil.copyfile(_png(tmp_path), method / dataset / sequence / "00000.png")
    maps = MapsFolder("mine", method)
    maps.check("bear", ["00000"], [0])
    maps.check("bmx", ["00000"], [0])
    (method / "FBMS" / "bear").mkdir(parents=True)
    with pytest.raises(MissingMapsError, match=r"several dataset folders \(DAVIS, FBMS\).*maps_dirs\.mine="):
        maps.check("bear", ["00000"], [0])


def _png(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    path = tmp_path / "map.png"
    if not path.exists():
        Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    return path


@pytest.mark.slow
def test_a_davis_tree_predicted_by_folder_glob_then_a_subset_evaluated(tiny_pretrained, tmp_path):
    from tests.helpers.layout_fixtures import davis

    root = davis(tmp_path / "DAVIS", {"bear": 4, "camel": 4, "dog": 4})  # bear, camel in train; dog in val
    salvid("predict", f"input='{root}/JPEGImages/480p/*'", f"ckpt_path={tiny_pretrained}", "paths.output_dir=maps",
           "write_videos=false", cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "maps").iterdir() if (p / "maps").is_dir()) == ["bear", "camel", "dog"]
    salvid("evaluate", f"ckpt_path={tiny_pretrained}", "data=davis2016", f"data.root={root}", "data.split=train",
           "data.sequences=[camel]", "baselines=[]", "+maps_dirs.mine=maps", "paths.output_dir=table", cwd=tmp_path)
    rows = (tmp_path / "table" / "per_sequence.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[:2] for r in rows) == [["mine", "camel"], ["tiny", "camel"]]


def test_an_unknown_sequence_is_named_with_those_there_are(eval_data, tiny_pretrained, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "salvid.evaluate", f"ckpt_path={tiny_pretrained}", "data=videos",
                           f"data.root={eval_data}", "data.split=test", "data.sequences=[nope]", "baselines=[]",
                           "paths.output_dir=out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: data.sequences: ['nope'] not among the 2 sequences "
                                                    "scored here (test_000, test_001)")
