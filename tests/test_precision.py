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


def test_trainer_precision_auto_is_bf16_mixed_only_where_bf16_pays(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for faster in (False, True):
        monkeypatch.setattr(precision, "bf16_is_faster", lambda faster=faster: faster)
        expected = "bf16-mixed" if faster else "32-true"
        assert precision.trainer_precision("auto", "cpu") == expected
        assert precision.trainer_precision("auto", "auto") == expected
    # a family whose bf16 CPU training needs the oneDNN cap is slower in bf16 there: fp32, without probing
    monkeypatch.setattr(precision, "bf16_is_faster", lambda: pytest.fail("probed"))
    assert precision.trainer_precision("auto", "cpu", cpu_bf16_capped=True) == "32-true"
    # any other value is Lightning's own, passed through
    assert precision.trainer_precision("bf16-mixed", "cpu", cpu_bf16_capped=True) == "bf16-mixed"
    assert precision.trainer_precision(32, "cpu") == 32


@pytest.mark.parametrize("bf16", [False, True])
def test_trainer_precision_auto_on_a_gpu_follows_its_native_bf16(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision, "cuda_has_native_bf16", lambda: bf16)
    monkeypatch.setattr(precision, "bf16_is_faster", lambda: pytest.fail("a GPU run probes no CPU"))
    expected = "bf16-mixed" if bf16 else "32-true"
    for accelerator in ("gpu", "cuda", "auto"):
        assert precision.trainer_precision("auto", accelerator) == expected
    assert precision.trainer_precision("auto", "gpu", cpu_bf16_capped=True) == expected  # the cap is the CPU's


def test_trainer_precision_auto_elsewhere_is_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(precision, "bf16_is_faster", lambda: pytest.fail("not a CPU run"))
    assert precision.trainer_precision("auto", "auto") == "32-true"
    assert precision.trainer_precision("auto", "mps") == "32-true"


def test_the_gpu_bf16_question_is_answered_without_cuda_here():
    # asked in a child process (this one must not initialise CUDA before Lightning forks): no GPU here, so False
    assert precision.cuda_has_native_bf16() is (torch.cuda.is_available()
                                                and torch.cuda.is_bf16_supported(including_emulation=False))
