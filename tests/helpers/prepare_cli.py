"""Running ``python -m salvid.prepare`` in-process, for the tests of its refusals."""

from __future__ import annotations

import pytest

from salvid import prepare as prepare_module


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """prepare's command line, expected to fail with one line and exit status 2; returns that line."""
    with pytest.raises(SystemExit) as exit_info:
        prepare_module.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]
