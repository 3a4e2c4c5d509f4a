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


def _test_data() -> Path:
    """Real datasets for the tests that need them: ``$SALVID_TEST_DATA``, else the data folder the test
    machines keep beside the checkout (docs/development.md lists what it holds)."""
    if os.environ.get("SALVID_TEST_DATA"):
        return Path(os.environ["SALVID_TEST_DATA"])
    return Path(__file__).resolve().parents[2] / "shared" / "data"


TEST_DATA = _test_data()
DAVIS_240P = TEST_DATA / "DAVIS-2016-train-240p"
DUTS_SAMPLE = TEST_DATA / "DUTS-TR-sample"


@pytest.fixture(scope="session")
def davis_root() -> Path:
    if not (DAVIS_240P / "JPEGImages").is_dir():
        pytest.skip(f"DAVIS-2016 test data not found at {DAVIS_240P} (set SALVID_TEST_DATA to the folder that holds it)")
    return DAVIS_240P


@pytest.fixture(scope="session")
def duts_root() -> Path:
    if not (DUTS_SAMPLE / "DUTS-TR-Image").is_dir():
        pytest.skip(f"DUTS-TR sample not found at {DUTS_SAMPLE} (set SALVID_TEST_DATA to the folder that holds it)")
    return DUTS_SAMPLE
