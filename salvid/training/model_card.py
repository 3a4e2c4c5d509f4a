"""A shipped model's card: how a checkpoint was trained, from the checkpoint and the files its run left beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from salvid.checkpoints import read_checkpoint
from salvid.errors import DataError


def _read_json(path: Path, key: str | None = None) -> dict[str, Any]:
    """A JSON file's content; ``key``: the setting that named the file, for the error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        named = f"{key}={path}" if key else str(path)
        raise DataError(f"{named}: not a readable JSON file ({e}); give the file written for it") from e


def _without_machine_paths(config: dict[str, Any]) -> dict[str, Any]:
    """A training config fit to publish: where the run and its data lay on the training machine is dropped,
    and the dataset is named by its folder's name."""
    config.pop("paths", None)
    data = config.get("data") or {}
    if data.get("root"):
        data["root"] = Path(str(data["root"])).name
    return config


def model_card(ckpt_path: Path, trusted: bool, metrics: str | None, hardware: str | None,
               cross_validation: str | None = None) -> dict[str, Any]:
    """How the checkpoint was trained, from the checkpoint and the files its training run left beside it: the
    config, steps, wall time and hardware, and which sequences trained, selected and tested (``data_splits``);
    with ``metrics`` an ``evaluate`` summary of held-out sequences, with ``cross_validation`` the JSON of
    ``scripts/cross_validate.py --json`` (the folds that chose the recipe, their mean and spread)."""
    ckpt = read_checkpoint(ckpt_path, trusted)
    run_dir = ckpt_path.resolve().parent.parent  # <run>/checkpoints/<file>.ckpt
    hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if k != "model"}
    # checkpoint_epoch: Lightning's 0-based epoch counter when it saved (epoch003 in a file name); how many
    # epochs ran is run.epochs
    card: dict[str, Any] = {"source_checkpoint": ckpt_path.name, "module": hparams,
                            "steps": ckpt.get("global_step"), "checkpoint_epoch": ckpt.get("epoch")}
    for state_key, state in ckpt.get("callbacks", {}).items():
        if state_key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            card["selection"] = {"monitor": state.get("monitor"), "best_score": float(state["best_model_score"])}
    run_config = run_dir / ".hydra" / "config.yaml"
    if run_config.is_file():
        card["train_config"] = _without_machine_paths(yaml.safe_load(run_config.read_text(encoding="utf-8")))
    run_metrics = run_dir / "metrics.json"
    if run_metrics.is_file():
        recorded = _read_json(run_metrics)
        card["run"] = recorded.get("run", {})
        if recorded.get("data"):
            card["data_splits"] = recorded["data"]
        card["train_test_metrics"] = recorded.get("test")
    if hardware:
        card.setdefault("run", {})["hardware"] = hardware
    if metrics:
        card["heldout_metrics"] = _read_json(Path(metrics), "metrics")
    if cross_validation:
        summary = _read_json(Path(cross_validation), "cross_validation")
        if not isinstance(summary, dict) or not isinstance(summary.get("arms"), dict):
            raise DataError(f"cross_validation={cross_validation}: not the JSON of scripts/cross_validate.py "
                            "--json (no \"arms\"); write it with that script")
        card["cross_validation"] = summary
    kept_out = holdout_record(card)
    if kept_out:
        card["test_sequences_kept_out"] = kept_out
    return card


# per record key: (said when none of the test sequences is there, said of those that are, said when not recorded)
PLACES = {"in_training": ("in no training batch", "used in training", "training sequences not recorded"),
          "in_validation": ("in no validation", "used in validation", "validation sequences not recorded"),
          "in_cross_validation_folds": ("in no cross-validation fold", "held out by a cross-validation fold",
                                        "no cross-validation folds recorded")}


def holdout_record(card: dict[str, Any]) -> dict[str, Any] | None:
    """Where the card's test sequences were used, found from the card's own lists so anyone can check it: in
    training, in validation (which selects checkpoints), in a fold of the recorded cross-validation (which
    decided the recipe); and which weights are the model. A place is None where the card records no list for
    it. None when the card names no test sequences."""
    splits = card.get("data_splits") or {}
    test = sorted((splits.get("test") or {}).get("videos") or [])
    if not test:
        return None

    def used(videos: list[str]) -> list[str]:
        return sorted(set(test) & set(videos))

    arms = ((card.get("cross_validation") or {}).get("arms") or {}).values()
    folds = [s for arm in arms for held_out in (arm.get("held_out") or {}).values() for s in held_out]
    ran = "train" in splits  # a run records every split it had: then no validation list means no validation
    record: dict[str, Any] = {
        "sequences": test,
        "in_training": used(splits["train"].get("videos") or []) if ran else None,
        "in_validation": used((splits.get("val") or {}).get("videos") or []) if ran else None,
        "in_cross_validation_folds": used(folds) if folds else None,
        "weights": _weights(card),
    }
    said = [none if record[key] == [] else unknown if record[key] is None else f"{some} ({', '.join(record[key])})"
            for key, (none, some, unknown) in PLACES.items()]
    named = f"{len(test)} test sequence{'s' if len(test) > 1 else ''}"
    record["summary"] = f"{named}: {', '.join(said)}; the model is {record['weights']}"
    return record


def _weights(card: dict[str, Any]) -> str:
    if card.get("source_checkpoint") == "last.ckpt":
        return "the training run's last weights (no checkpoint selection)"
    monitor = (card.get("selection") or {}).get("monitor")
    if monitor:
        return f"the checkpoint of the best {monitor} on the validation sequences"
    return f"the checkpoint {card.get('source_checkpoint')}"
