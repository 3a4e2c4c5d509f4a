"""What docs/security.md promises about salvid's own configs: they name only targets that load no pickle."""

from __future__ import annotations

from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parents[1] / "conf"

# Reviewed: none of these reads a pickle. A new target in a shipped config belongs here only after the same
# review.
REVIEWED_TARGETS = {
    "lightning.pytorch.Trainer",
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "lightning.pytorch.callbacks.RichModelSummary",
    "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.loggers.WandbLogger",
    "salvid.training.callbacks.ModelCheckpoint",  # writes checkpoints; the one it resumes is read by the safe loader
    "salvid.training.callbacks.ModelSummary",
    "salvid.training.callbacks.Preemption",  # writes a checkpoint on a signal, reads none
    "salvid.training.callbacks.TrainingProgress",
    "salvid.training.checkpoint_plugin.AtomicCheckpointIO",
    "salvid.data.datamodule.EpochToStream",
    "salvid.data.datamodule.SaliencyDataModule",
    "salvid.training.loggers.WandbLogger",
    "salvid.training.module.SaliencyModule",
    "salvid.training.loggers.ResumableCSVLogger",
    "salvid.training.run_records.RngState",
    "salvid.training.run_folder.ResumeCheck",
    "salvid.training.sweep.SweepSummary",
    "salvid.training.sequence_results.PerSequenceTestResults",  # writes a CSV
    "salvid.runtime.run_guard.RunGuard",  # checks the config and the output folder, takes a lock; reads no file
}


def _targets(node, where: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield value, where
            else:
                yield from _targets(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value, where)


def shipped_targets() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        for target, where in _targets(yaml.safe_load(path.read_text(encoding="utf-8")), path.relative_to(CONF)):
            found.setdefault(target, []).append(str(where))
    return found


def test_shipped_configs_name_only_reviewed_targets():
    found = shipped_targets()
    assert "salvid.training.module.SaliencyModule" in found, "the search for _target_ is broken"
    unreviewed = {t: w for t, w in found.items() if t not in REVIEWED_TARGETS}
    assert not unreviewed, f"targets not reviewed for pickle loading: {unreviewed}"


def test_the_shipped_targets_are_classes_defined_where_they_are_named():
    # each must be a class defined in the module (or package) it is named by: a function such as torch.load
    # fails, and so does anything reached through a name another module imported
    import importlib
    import inspect

    for target in shipped_targets():
        module, _, name = target.rpartition(".")
        obj = getattr(importlib.import_module(module), name)
        assert inspect.isclass(obj) and (obj.__module__ + ".").startswith(module + "."), target
