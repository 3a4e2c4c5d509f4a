"""Process settings: only training processes cap oneDNN below AMX (inference keeps its bf16 speed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from salvid.runtime.environment import CPU_ISA_CAP, ISA_ENV

PRINT_ISA = f"import os; print(os.environ.get({ISA_ENV!r}, 'unset'))"


def _isa_after(imports: str, **env: str) -> str:
    child_env = {k: v for k, v in os.environ.items() if k != ISA_ENV} | env
    proc = subprocess.run([sys.executable, "-c", f"{imports}; {PRINT_ISA}"], env=child_env, capture_output=True,
                          text=True, timeout=120, check=True)
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("imports", ["import salvid, salvid.models", "import salvid.train",
                                     "import salvid.evaluate, salvid.predict, salvid.export"])
def test_importing_any_entry_point_leaves_the_cpu_isa_alone(imports: str):
    assert _isa_after(imports) == "unset"


@pytest.mark.parametrize(("family", "expected"), [("paper", CPU_ISA_CAP), ("fusion3d", "unset")])
def test_training_caps_the_cpu_isa_for_the_3d_network_only(family: str, expected: str):
    call = f"from salvid.runtime.environment import cap_cpu_isa_for_training; cap_cpu_isa_for_training({{'family': {family!r}}})"
    assert _isa_after(call) == expected


def test_inference_entry_points_load_no_lightning():
    code = "import sys, salvid.evaluate, salvid.predict; print(sorted(m for m in sys.modules if m == 'lightning' " \
           "or m.startswith(('lightning.', 'pytorch_lightning'))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_an_explicit_isa_setting_wins_over_the_training_cap():
    call = "from salvid.runtime.environment import cap_cpu_isa_for_training; cap_cpu_isa_for_training({'family': 'paper'})"
    assert _isa_after(call, **{ISA_ENV: "ALL"}) == "ALL"


def test_the_hardware_description_names_the_vector_instructions_that_decide_speed():
    from salvid.runtime.environment import cpu_model, hardware_description, parse_cpuinfo, vector_isa

    assert vector_isa({"avx2", "avx512f", "avx512_bf16", "amx_tile"}) == "AMX"
    assert vector_isa({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 with bf16, no AMX"
    assert vector_isa({"avx2", "avx512f"}) == "AVX-512, no bf16 instructions"
    assert vector_isa({"avx2", "fma"}) == "AVX2, no AVX-512"
    assert vector_isa({"neon"}) is None
    x86 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC 7B13\n"
           "flags\t\t: fpu avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: another\n")
    info = parse_cpuinfo(x86)
    assert (info["model name"], info["cpu family"], cpu_model(info)) == ("AMD EPYC 7B13", "25", "AMD EPYC 7B13")
    assert vector_isa(set(info["flags"].split())) == "AVX2, no AVX-512"
    arm = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n")
    assert "model name" not in arm and cpu_model(arm)  # the platform's name instead
    described = hardware_description()
    assert f"{os.cpu_count()} cores" in described
    if Path("/proc/cpuinfo").is_file() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "AVX" in described or "AMX" in described
