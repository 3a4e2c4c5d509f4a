"""Entry points run as console scripts do: imported by a wrapper, from any working directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["train", "evaluate", "predict", "export"])
def test_console_script_style_call_finds_the_configs(module, tmp_path):
    # What pip's salvid-<entry> wrapper does: import main and call it, with __main__ being the wrapper.
    code = f"import sys; sys.argv = ['salvid-{module}', '--cfg', 'job']; from salvid.{module} import main; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "task_name" in result.stdout
