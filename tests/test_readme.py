"""The README's commands work as written.

Every line of every ```bash block in README.md is a command (a trailing backslash continues it; comments are
bash's). They run in README order, with bash, in one fresh working directory, so a command may use what an
earlier one wrote (``runs/demo``), as a reader following the README would. Before a command that names
``clip.mp4`` a short video of that name is put there.

A command runs unless a rule below skips it, and the skip says why. Everything else must finish (exit 0)
within ``TIMEOUT`` seconds, and print none of the library noise the entry points silence. A new README command
that needs more than this machine's CPUs and the generated videos needs a rule here (or a placeholder such as
``data.root=DIR``), not a longer timeout: the README's examples are meant to be quick to try.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TIMEOUT = 600

# (pattern, why a command matching it does not run here), first match wins
SKIP_RULES = [
    (r"pip install", "set-up on a fresh machine: .ci/run runs it on a clean clone "
                     "(test_ci_runs_the_readme_setup_and_test_command checks they agree)"),
    (r"\bDIR\b|<[^>]+>", "needs a dataset or file of your own (a placeholder such as data.root=DIR)"),
    (r"trainer=(gpu|ddp)\b(?!_)", "needs GPUs"),
    (r"hydra/launcher=slurm", "needs a SLURM cluster"),
]
# what the entry points must not print: noise a user cannot act on
NOISE = ["litlogger", "LeafSpec", "`IterableDataset` has `__len__`", "anonymous setting", "FLOPs",
         "ONEDNN_MAX_CPU_ISA set after torch"]


def readme_commands(text: str) -> list[tuple[int, str]]:
    """``(line number, command)`` for every command in the ```bash blocks of ``text``."""
    commands: list[tuple[int, str]] = []
    in_bash, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash or (not pending and (not line.strip() or line.lstrip().startswith("#"))):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        commands.append((start, (pending + line.strip()).strip()))
        pending = ""
    return commands


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIP_RULES:
        if re.search(pattern, command):
            return reason
    return None


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_commands_and_they_are_collected():
    assert len(COMMANDS) >= 8
    runnable = [c for _, c in COMMANDS if skip_reason(c) is None]
    for needed in ("salvid.predict input=clip.mp4", "salvid.train +experiment=demo", "salvid.evaluate",
                   "salvid.train -m"):
        assert any(needed in c for c in runnable), f"no runnable README command with {needed!r}"


def test_ci_runs_the_readme_setup_and_test_command():
    """``.ci/run`` is the README's test command on a clean clone: the same installs, lint and tests."""
    (test_command,) = [c for _, c in COMMANDS if c.endswith("pytest")]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").replace(" -q", "")
    steps = [s.strip() for s in test_command.split("&&")]
    assert steps[0].startswith("python3.11 -m venv .venv") and "python3.11" in ci and "-m venv .venv" in ci
    for step in steps[1:]:
        assert step in ci, f"README step {step!r} is not in .ci/run"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def _clip(workdir: Path) -> None:
    from salvid.data.synthetic import generate_dataset

    videos = generate_dataset(workdir / ".clip-source", num_videos={"test": 1}, num_frames=16, seed=7)
    shutil.copy(next((videos / "videos").glob("*.mp4")), workdir / "clip.mp4")
    shutil.rmtree(workdir / ".clip-source")


def run_as_written(command: str, workdir: Path) -> None:
    """Run one README command with bash in ``workdir``; it must exit 0 and print none of ``NOISE``."""
    if "clip.mp4" in command and not (workdir / "clip.mp4").exists():
        _clip(workdir)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SALVID_RANK0_CONFIG", "SALVID_ROOT")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", WANDB_MODE="offline",
               NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(REPO))
    result = subprocess.run(["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command}\nexit {result.returncode}:\n{output[-6000:]}"
    noise = [n for n in NOISE if n in output]
    assert not noise, f"{command} printed {noise}:\n{output[-6000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for _, c in COMMANDS], ids=[f"README.md:{n}" for n, _ in COMMANDS])
def test_readme_command_runs_as_written(command, workdir):
    reason = skip_reason(command)
    if reason:
        pytest.skip(reason)
    run_as_written(command, workdir)


@pytest.mark.slow
def test_the_readme_demo_trains_to_a_plcc_well_above_the_untrained_network(workdir):
    """The demo's claim (docs/training.md: test PLCC 0.76, AUC 0.985, NSS 3.75 against 0, 0.5 and 0 untrained),
    asserted on the run the README's demo command made above (made here when this test runs alone)."""
    (command,) = [c for _, c in COMMANDS if c.startswith("python -m salvid.train +experiment=demo ")]
    run_dir = workdir / command.split("paths.output_dir=")[1].split()[0]
    if not (run_dir / "metrics.json").exists():
        run_as_written(command, workdir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    trained, untrained = metrics["test"], metrics["untrained"]
    assert untrained["test/plcc"] < 0.1 and untrained["test/auc"] < 0.6  # nearly flat maps
    assert trained["test/plcc"] > 0.6 and trained["test/plcc"] - untrained["test/plcc"] > 0.5
    assert trained["test/auc"] > 0.9 and trained["test/nss"] > 2.0
    # which videos trained, selected and tested: the generated 8 / 2 / 2, none in two stages
    splits = metrics["data"]
    assert [len(splits[s]["videos"]) for s in ("train", "val", "test")] == [8, 2, 2]
    assert len({v for s in splits.values() for v in s["videos"]}) == 12
    assert splits["train"]["still_images"] == 0 and splits["train"]["frames"] == 8 * 24


def readme_python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block of ``text``."""
    blocks, code, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == "```python":
            code, start = [], number + 1
        elif line.startswith("```") and code is not None:
            blocks.append((start, "\n".join(code)))
            code = None
        elif code is not None:
            code.append(line)
    return blocks


PYTHON_BLOCKS = readme_python_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("code", [c for _, c in PYTHON_BLOCKS], ids=[f"README.md:{n}" for n, _ in PYTHON_BLOCKS])
def test_readme_python_runs_as_written(code, workdir):
    assert PYTHON_BLOCKS, "the README shows salvid from Python"
    if not (workdir / "clip.mp4").exists():
        _clip(workdir)
    check = "\nassert maps.ndim == 3 and 0 <= maps.min() and maps.max() <= 1 and model.name\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run([sys.executable, "-c", code + check], cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, f"{code}\n{result.stderr[-4000:]}"


# the README's results table: row label -> the key of ``evaluate``'s summary (and of a model card's heldout_metrics)
TABLE_ROWS = {"PLCC": "plcc", "AUC": "auc", "NSS": "nss", "S-measure": "smeasure", "max F": "maxF", "mean F": "meanF",
              "adaptive F": "adpF", "max E": "maxE", "MAE (lower is better)": "mae",
              "frames excluded (undefined)": "excluded_frames"}


def results_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The first Markdown table of the README's ``## Results``: its method columns and ``{row label: cells}``."""
    section = text.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    table = section[section.index("\n|") + 1:]
    lines = [line for line in table.split("\n\n", 1)[0].splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return cells[0][1:], {row[0]: row[1:] for row in cells[2:]}


def test_the_readme_results_table_is_the_default_models_card():
    """Every number of the results table is the default model card's ``heldout_metrics`` (the one ``evaluate``
    run that scored every column), to the digits shown, and the bold one is each metric's best."""
    from salvid.checkpoints import DEFAULT_PRETRAINED, PRETRAINED_DIR

    card = json.loads((PRETRAINED_DIR / f"{DEFAULT_PRETRAINED}.json").read_text(encoding="utf-8"))
    summary = card["heldout_metrics"]
    methods, rows = results_table(README.read_text(encoding="utf-8"))
    assert methods[0] == DEFAULT_PRETRAINED and set(methods) <= set(summary), (methods, sorted(summary))
    assert set(rows) == set(TABLE_ROWS), f"rows the test does not know: {set(rows) ^ set(TABLE_ROWS)}"
    for label, cells in rows.items():
        key = TABLE_ROWS[label]
        shown = [cell.strip("*") for cell in cells]
        recorded = [summary[method][key] for method in methods]
        digits = [len(value.partition(".")[2]) for value in shown]
        assert shown == [f"{value:.{d}f}" for value, d in zip(recorded, digits, strict=True)], (label, shown, recorded)
        if key != "excluded_frames":
            best = (min if key == "mae" else max)(recorded)
            assert [cell.startswith("**") for cell in cells] == [value == best for value in recorded], (label, cells)
