"""Process settings: only training processes cap oneDNN below AMX (inference keeps its bf16 speed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from salvid.runtime import CPU_ISA_CAP, ISA_ENV

PRINT_ISA = f"import os; print(os.environ.get({ISA_ENV!r}, 'unset'))"


def _isa_after(imports: str, **env: str) -> str:
    child_env = {k: v for k, v in os.environ.items() if k != ISA_ENV} | env
    proc = subprocess.run([sys.executable, "-c", f"{imports}; {PRINT_ISA}"], env=child_env, capture_output=True,
                          text=True, timeout=120, check=True)
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("imports", "expected"), [
    ("import salvid, salvid.models", "unset"),  # library use and inference: no cap
    ("import salvid.train", CPU_ISA_CAP),
])
def test_only_training_caps_the_cpu_isa(imports: str, expected: str):
    assert _isa_after(imports) == expected


def test_an_explicit_isa_setting_wins_over_the_training_cap():
    assert _isa_after("import salvid.train", **{ISA_ENV: "ALL"}) == "ALL"
