"""The metrics benchmark runs and both of its sides compute the same scores (its speed is not tested)."""

import pytest

from salvid.bench import metrics as bench_metrics

pytest.importorskip("py_sod_metrics")


def test_benchmark_sides_agree_on_a_small_run():
    result = bench_metrics.run(num_frames=16, size=(48, 64))
    assert result["max_abs_difference"] < 1e-9
    assert result["salvid_fps"] > 0 and result["reference_fps"] > 0
    assert result["speedup"] == pytest.approx(result["salvid_fps"] / result["reference_fps"])
