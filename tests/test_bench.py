"""The benchmark entry point runs end to end on tiny settings and reports every field (no timing checks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_model_quick_writes_positive_numbers(tmp_path: Path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "salvid.bench", "model", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "salvid bench" in proc.stdout  # the table was printed
    results = json.loads(out.read_text())

    assert results["machine"]["cores"] >= 1
    assert _positive(results["peak"]["float32"])
    model = results["model"]["models"]["tiny"]
    assert _positive(model["gflop_per_frame"])
    assert model["gflop_per_train_sample"] > model["gflop_per_frame"]  # backward costs more than nothing
    for kind in ("forward", "train"):
        rows = model[kind]
        assert {(r["precision"], r["layout"]) for r in rows} >= {("float32", "ncdhw"), ("float32", "channels_last_3d")}
        for row in rows:
            assert _positive(row["rate"]) and _positive(row["fraction_of_peak"]), row
    if "bfloat16" in results["peak"]:  # CPU with bf16: the ISA-cap comparison ran both sides
        cap = results["model"]["isa_cap"]
        for side in ("capped", "uncapped"):
            assert _positive(cap[side]["bf16_matmul_gflops"])
    target = results["targets"][0]
    assert target["target"].startswith("model inference") and _positive(target["measured"])
