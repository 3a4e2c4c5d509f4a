"""precision=auto on a CPU: bf16 only where a probe measured it faster than fp32, the verdict kept per machine."""

import json

import pytest
import torch

from salvid.errors import ConfigError
from salvid.runtime import precision


@pytest.fixture
def bf16_cpu(monkeypatch, tmp_path):
    """A CPU that reports bf16 instructions, and an empty cache."""
    monkeypatch.setenv("SALVID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    return tmp_path / "cache"


def counting_probe(fp32_s, bf16_s):
    calls = []

    def probe():
        calls.append(1)
        return {"fp32_s": fp32_s, "bf16_s": bf16_s}
    return probe, calls


@pytest.mark.parametrize(("fp32_s", "bf16_s", "expected"), [(0.2, 0.05, True), (0.2, 0.4, False)])
def test_bf16_is_chosen_only_where_measured_faster_and_the_verdict_is_reused(bf16_cpu, fp32_s, bf16_s, expected):
    probe, calls = counting_probe(fp32_s, bf16_s)
    assert precision.bf16_is_faster(probe) is expected
    assert precision.bf16_is_faster(probe) is expected
    assert len(calls) == 1  # the second answer came from the cache
    saved = json.loads((bf16_cpu / "machine" / "precision.json").read_text())
    (entry,) = saved.values()
    assert entry["bf16_faster"] is expected
    assert precision.cpu_model() in next(iter(saved))  # keyed by the CPU model
    assert torch.__version__ in next(iter(saved))  # and the torch version


def test_a_new_torch_version_measures_again(bf16_cpu, monkeypatch):
    probe, calls = counting_probe(0.2, 0.05)
    precision.bf16_is_faster(probe)
    monkeypatch.setattr(torch, "__version__", "0.0.1-other")
    slower, slower_calls = counting_probe(0.2, 0.4)
    assert precision.bf16_is_faster(slower) is False
    assert len(calls) == len(slower_calls) == 1


def test_auto_precision_follows_the_probe(bf16_cpu, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "probe_bf16", lambda: {"fp32_s": 0.2, "bf16_s": 0.05})
    assert precision.autocast_dtype("auto", cpu) == torch.bfloat16
    (bf16_cpu / "machine" / "precision.json").unlink()
    monkeypatch.setattr(precision, "probe_bf16", lambda: {"fp32_s": 0.2, "bf16_s": 0.4})
    assert precision.autocast_dtype("auto", cpu) is None
    assert precision.autocast_dtype("bf16", cpu) == torch.bfloat16  # an explicit choice is never overruled


def test_a_cpu_without_bf16_instructions_is_never_probed(monkeypatch, tmp_path):
    monkeypatch.setenv("SALVID_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    probe, calls = counting_probe(0.2, 0.05)
    assert precision.bf16_is_faster(probe) is False and not calls


def test_a_corrupt_cache_file_is_measured_again(bf16_cpu):
    (bf16_cpu / "machine").mkdir(parents=True)
    (bf16_cpu / "machine" / "precision.json").write_text("not json")
    probe, calls = counting_probe(0.2, 0.05)
    assert precision.bf16_is_faster(probe) is True and len(calls) == 1


def test_the_real_probe_is_short_and_returns_both_timings():
    seconds = precision.probe_bf16()
    assert set(seconds) == {"fp32_s", "bf16_s"} and all(v > 0 for v in seconds.values())


def test_an_unknown_precision_names_the_key():
    with pytest.raises(ConfigError, match="precision='fp16'"):
        precision.autocast_dtype("fp16", torch.device("cpu"))
