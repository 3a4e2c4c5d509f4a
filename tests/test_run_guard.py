"""A run owns its output folder: a second run into it is refused naming the holder, and a refused run writes
nothing, not even Hydra's own files; config values are judged by the schema of their group."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from salvid.errors import ConfigError
from salvid.runtime import schema
from salvid.runtime.entry import entry_point
from tests.helpers.layout_fixtures import frame, save
from tests.helpers.train_cli import REPO, compose_config
from tests.test_cli_errors import one_error_line, run

HOLD = textwrap.dedent("""
    import sys, time
    from salvid.runtime.run_guard import lock_folder
    lock_folder(sys.argv[1])
    print("held", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path/out``."""
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield out, process
    process.kill()
    process.wait()


@pytest.mark.parametrize("entry", ["salvid.train", "salvid.predict", "salvid.evaluate"])
def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(tmp_path, holder, entry):
    out, process = holder
    (out / "results.csv").write_text("earlier\n")
    frames = save(frame(0), tmp_path / "frames" / "00000.jpg").parent
    args = {"salvid.predict": [f"input={frames}"], "salvid.evaluate": ["baselines=[center_prior]"],
            "salvid.train": []}[entry]
    line = one_error_line(run(entry, *args, f"paths.output_dir={out}", f"paths.root_dir={tmp_path}"))
    assert f"{out}: another salvid run is writing here (pid {process.pid} on " in line
    assert "choose another paths.output_dir" in line
    assert [p.name for p in out.iterdir()] == ["results.csv"]  # nothing of the refused run, nor of the lock
    assert (out / "results.csv").read_text() == "earlier\n"


def test_the_folder_is_free_again_when_its_holder_ends(tmp_path, holder):
    out, process = holder
    process.kill()
    process.wait()
    line = one_error_line(run("salvid.predict", f"input={tmp_path}/missing.mp4", f"paths.output_dir={out}"))
    assert "no such file or folder" in line  # got past the lock, to the input


def test_an_output_folder_inside_the_dataset_is_refused_before_anything_is_written(tmp_path):
    dataset = tmp_path / "SegTrackv2"
    (dataset / "JPEGImages").mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for entry, args in [("salvid.evaluate", ["data=segtrackv2", f"data.root={dataset}", "baselines=[center_prior]"]),
                        ("salvid.train", ["data=segtrackv2", f"data.root={dataset}"])]:
        line = one_error_line(run(entry, *args, f"paths.output_dir={dataset}/results"))
        assert f"output folder {dataset}/results is inside the input folder {dataset}" in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no .hydra/, no log, no folder


def test_a_multirun_into_the_dataset_is_refused_before_any_job_runs(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    line = one_error_line(run("salvid.train", "-m", f"data.root={dataset}", f"paths.output_dir={dataset}/sweep",
                              "seed=1,2"))
    assert f"output folder {dataset}/sweep is inside the input folder {dataset}" in line
    assert list(dataset.iterdir()) == []  # no job folder, no summary.csv


def test_predict_into_its_own_input_folder_leaves_no_hydra_files_there(tmp_path):
    frames = save(frame(0), tmp_path / "frames" / "00000.jpg").parent
    line = one_error_line(run("salvid.predict", f"input={frames}", f"paths.output_dir={frames}"))
    assert "is the input folder" in line
    assert [p.name for p in frames.iterdir()] == ["00000.jpg"]


@pytest.mark.parametrize("case", ["dataset", "concat dataset", "checkpoint", "fold"])
def test_a_missing_dataset_or_checkpoint_and_a_fold_out_of_range_write_nothing(tmp_path, case):
    out, missing = tmp_path / "run", tmp_path / "missing"
    args, expected = {
        "dataset": (["data=davis2016_holdout", f"data.root={missing}"],
                    f"error: davis2016 dataset not found: {missing} does not exist. Prepare it with "
                    f"`python -m salvid.prepare davis2016 --root {missing}` (the official 480p release; `python -m "
                    "salvid.prepare downscale --root <it> --out <copy>` makes the 427x240 copy of "
                    "data=davis2016_holdout) or point data.root at an existing copy"),
        "concat dataset": (["data=davis_duts", f"data.root={tmp_path}"],
                           f"error: davis2016 dataset not found: {tmp_path / 'DAVIS-2016-train-240p'} does not exist"),
        "checkpoint": ([f"ckpt_path={missing}.ckpt"], f"error: {missing}.ckpt: checkpoint not found (ckpt_path)"),
        "fold": (["+experiment=cv_fusion3d", f"data.root={tmp_path}", "data.fold=3"],
                 "error: data.fold=3: must be an integer in 0..2 with data.folds=3 (sweep them: data.fold=0,1,2)"),
    }[case]
    line = one_error_line(run("salvid.train", *args, f"paths.output_dir={out}"))
    assert line.startswith(expected)
    assert not out.exists()


def test_a_value_refused_by_the_schema_writes_nothing(tmp_path):
    out = tmp_path / "run"
    line = one_error_line(run("salvid.train", "module.loss=foo", f"paths.output_dir={out}"))
    assert line == "error: module.loss='foo': must be 'mse', 'bce', 'bce_iou' or 'bce_iou_ssim'"
    assert not out.exists()


@pytest.mark.parametrize(("override", "expected"), [
    ("module.optimizer.betas=[0.9,1.5]", "module.optimizer.betas[1]=1.5: must be < 1"),
    ("module.optimizer.betas=[0.9]", "module.optimizer.betas=[0.9]: too few values"),
    ("module.optimizer.lr=nan", "module.optimizer.lr=nan: must be a finite number"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: must be >= 1, or -1 (no limit) with trainer.max_steps or "
                             "trainer.max_time set"),
    ("+module.lrr=1", "module.lrr: not a setting of module; check its spelling"),
    ("module.channels_last=foo", "module.channels_last='foo': must be 'auto', or must be a valid boolean"),
    ("+experiment=cv_fusion3d data.fold=5", "data.fold=5: must be an integer in 0..2 with data.folds=3 (sweep them: "
                                           "data.fold=0,1,2)"),
])
def test_the_schema_names_the_key_the_value_and_what_it_must_be(override, expected):
    with pytest.raises(ConfigError) as error:
        schema.validate(schema.TrainConfig, compose_config(override.split()))
    assert str(error.value) == expected


def test_every_shipped_experiment_fits_the_schema():
    for experiment in sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")):
        schema.validate(schema.TrainConfig, compose_config([f"+experiment={experiment}"]))


def test_the_names_the_schema_allows_are_the_ones_the_code_knows():
    from salvid.metrics.saliency import AVERAGES
    from salvid.training.losses import LOSSES
    from salvid.training.module import OPTIMIZERS, SCHEDULERS

    assert set(schema.LOSSES) == set(LOSSES)
    assert set(schema.OPTIMIZERS) == set(OPTIMIZERS)
    assert set(schema.SCHEDULERS) == set(SCHEDULERS)
    assert set(schema.METRIC_AVERAGES) == set(AVERAGES)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENOTDIR])
def test_an_os_error_a_user_can_fix_is_one_line_naming_the_path(capsys, code):
    @entry_point
    def writes():
        raise OSError(code, "the OS's words", "/data/out/x.png")

    with pytest.raises(SystemExit) as exit_info:
        writes()
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: /data/out/x.png: the OS's words; ") and "\n" not in line


def test_hydra_lists_the_options_of_a_misspelt_group_on_its_one_line():
    options = ", ".join(sorted(path.stem for path in (REPO / "conf" / "model").glob("*.yaml")))
    line = one_error_line(run("salvid.train", "model=fusion3D"))
    assert line == f"error: In 'train': Could not find 'model/fusion3D'; available options in 'model': {options}"


def test_an_unquoted_non_ascii_path_says_how_to_quote_it(tmp_path):
    line = one_error_line(run("salvid.train", f"paths.output_dir={tmp_path}/vidéo"))
    assert f"""quote it, with the quotes kept from the shell: 'paths.output_dir="{tmp_path}/vidéo"'""" in line


READ_ONLY = textwrap.dedent("""
    import errno, os, pathlib, runpy, sys
    denied = sys.argv.pop(1)  # writing below this folder is refused, as on a read-only folder (root ignores modes)
    real_mkdir, real_open = pathlib.Path.mkdir, os.open
    def mkdir(self, *args, **kwargs):
        if str(self).startswith(denied):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)
    def open_(path, *args, **kwargs):
        if str(path).startswith(denied):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    pathlib.Path.mkdir, os.open = mkdir, open_
    sys.argv[0] = "salvid.predict"
    runpy.run_module("salvid.predict", run_name="__main__")
""")


def test_an_output_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    frames = save(frame(0), tmp_path / "frames" / "00000.jpg").parent
    denied = tmp_path / "read-only"
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SALVID_SET_HYDRA_FULL_ERROR")}
    result = subprocess.run([sys.executable, "-c", READ_ONLY, str(denied), f"input={frames}",
                             f"paths.output_dir={denied}/out"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    line = one_error_line(result)
    assert line.startswith(f"error: {denied}/out") and "Permission denied; choose a folder you may write to" in line


@pytest.mark.parametrize(("signum", "status", "line"), [(signal.SIGINT, 130, "stopped by Ctrl-C (SIGINT)"),
                                                        (signal.SIGTERM, 143, "stopped by SIGTERM")])
def test_a_stopped_entry_point_ends_in_one_line_with_the_signals_status(capsys, signum, status, line):
    """Ctrl-C and SIGTERM stop an entry point as an exception, so that its cleanup runs, then one line."""
    cleaned, before = [], signal.getsignal(signal.SIGTERM)

    @entry_point
    def works():
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the signal arrives first
        finally:
            cleaned.append(True)

    with pytest.raises(SystemExit) as exit_info:
        works()
    assert exit_info.value.code == status and cleaned == [True]
    assert capsys.readouterr().err.strip() == line
    assert signal.getsignal(signal.SIGTERM) == before  # the entry point's own handler only while it runs
