"""Every probe of ``scripts/error_probes.py`` (bad values, paths and files given to each entry point) ends in
one line ``error: ...`` with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.train_cli import REPO


@pytest.mark.slow
def test_every_probe_ends_in_one_line_with_exit_status_2():
    result = subprocess.run([sys.executable, "scripts/error_probes.py", "--check"], cwd=REPO, capture_output=True,
                            text=True, timeout=1800)
    bad = [line for line in result.stdout.splitlines() if line.startswith("BAD")]
    assert result.returncode == 0 and not bad, result.stdout[-6000:] + result.stderr[-2000:]
    assert "probes end in one line with exit status 2" in result.stdout
