"""Test setup: quiet, offline, CPU; real DAVIS-2016 data when present."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# salvid's cache (downloads, exported ONNX graphs, the bf16 probe's verdict) stays out of the user's own
os.environ.setdefault("SALVID_CACHE", tempfile.mkdtemp(prefix="salvid-test-cache-"))

import multiprocessing  # noqa: E402

import pytest  # noqa: E402

from salvid.runtime.environment import cap_cpu_isa_for_training  # noqa: E402

# Tests train in this process, so they get the training processes' oneDNN cap.
cap_cpu_isa_for_training({"family": "paper"})

# This one process accumulates threads from many tests (W&B, progress bars, video decoders); a dataloader
# worker forked while one of them holds a lock can hang at start-up (seen once: both workers idle in their
# seeding code, the suite stalled). Workers start from a clean, single-threaded fork server instead.
multiprocessing.set_forkserver_preload(["torch", "salvid.data.stream"])
multiprocessing.set_start_method("forkserver", force=True)


def _test_data(name: str, marker: str) -> Path:
    """``$SALVID_TEST_DATA/<name>``, the real dataset some tests read (docs/development.md lists them); the test
    skips, saying why, when it is not there."""
    if not os.environ.get("SALVID_TEST_DATA"):
        pytest.skip(f"{name} test data: SALVID_TEST_DATA is not set (set it to the folder that holds {name})")
    root = Path(os.environ["SALVID_TEST_DATA"]) / name
    if not (root / marker).is_dir():
        pytest.skip(f"{name} test data not found at {root} (set SALVID_TEST_DATA to the folder that holds it)")
    return root


@pytest.fixture(scope="session")
def davis_root() -> Path:
    return _test_data("DAVIS-2016-train-240p", "JPEGImages")


@pytest.fixture(scope="session")
def duts_root() -> Path:
    return _test_data("DUTS-TR-sample", "DUTS-TR-Image")
