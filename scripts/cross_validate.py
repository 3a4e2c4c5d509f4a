"""Summarise cross-validation runs as Markdown: mean and spread of each held-out metric over folds.

    python scripts/cross_validate.py RUNS [RUNS ...] [--out FILE.md] [--json FILE.json]

Each RUNS is a folder holding the runs of one arm: a multirun folder (``python -m salvid.train -m
+experiment=cv_fusion3d data.fold=0,1,2 paths.output_dir=RUNS``) or any folder with one run per fold below
it. A RUNS may also be a folder of ``evaluate`` runs, one per fold in a subfolder named by the fold
(``RUNS/0``, ``RUNS/1``, ...: ``python -m salvid.evaluate ... ckpt_path=<fold k's checkpoint> baselines=[]
paths.output_dir=RUNS/k``), to compare arms on other data made from each fold's held-out sequences; their
``summary.json`` must score that one model. A RUNS may also be an arm recorded earlier, ``FILE.json:ARM``: this
script's ``--json`` summary or a model card with a ``cross_validation`` record
(``salvid/pretrained/salvid-fusion3d-davis-duts.json:duts``, the adopted recipe), so that a new arm is compared
with it without training it again (``:ARM`` may be left out when the file records one arm; per-sequence rows
only where the record holds them). A run is a folder with
``metrics.json`` (written when a run finishes) and ``.hydra/config.yaml`` (its fold: ``data.fold`` of
``data.folds``); ``test_per_sequence.csv`` beside them (``+experiment=cv_*``) gives the per-sequence table. A
fold's test set is its held-out fold, so ``test/*`` are the held-out metrics.

Printed per arm: each metric's mean and standard deviation over folds (sample std, n - 1) and its value per
fold, then one row per held-out sequence. With two or more arms, also each arm against the first: the mean and
std over folds of the per-fold difference (paired: the folds hold the same sequences), and per sequence.
Folders without ``metrics.json`` (unfinished runs) are listed and left out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Shown first, in this order (higher is better except mae and loss); other test metrics follow by name.
ORDER = ["plcc", "auc", "nss", "smeasure", "maxF", "meanF", "adpF", "maxE", "meanE", "adpE", "mae", "loss"]
LOWER_IS_BETTER = {"mae", "loss"}
SEQUENCE_METRICS = ["plcc", "auc", "nss", "smeasure", "maxF", "mae"]


class RunsError(ValueError):
    """A runs folder cannot be summarised; the message names the file and what to do."""


@dataclass
class Run:
    path: Path
    fold: int
    folds: int
    test: dict[str, float]
    held_out: list[str] | None = None  # the videos of the held-out fold (metrics.json's data record)
    sequences: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Arm:
    name: str
    runs: dict[int, Run]
    unfinished: list[Path]
    scored_by_evaluate: bool = False  # scores on other data than the folds' own held-out videos


def _load_run(metrics_path: Path) -> Run:
    run_dir = metrics_path.parent
    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise RunsError(f"{config_path}: missing; this script reads the fold of each run from it")
    data = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}).get("data") or {}
    fold, folds = data.get("fold"), data.get("folds")
    if not isinstance(fold, int) or not isinstance(folds, int):
        raise RunsError(f"{config_path}: data.fold={fold!r}, data.folds={folds!r}; not a cross-validation run "
                        "(train with data.folds=K data.fold=k)")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        test = {k.removeprefix("test/"): float(v) for k, v in metrics["test"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise RunsError(f"{metrics_path}: no test metrics ({error}); rerun the training command to finish it") \
            from None
    # the held-out videos as the run recorded them; older runs' only record is test_per_sequence.csv
    held_out = ((metrics.get("data") or {}).get("test") or {}).get("videos")
    run = Run(run_dir, fold, folds, {k: v for k, v in test.items() if not k.endswith("_frames")}, held_out)
    run.sequences = _read_sequences(run_dir / "test_per_sequence.csv")
    return run


def _read_sequences(path: Path, method: str | None = None) -> dict[str, dict[str, float]]:
    """``{sequence: {metric: value}}`` from a per-sequence CSV (only ``method``'s rows, where it names methods)."""
    sequences: dict[str, dict[str, float]] = {}
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row.pop("method", None) == method:
                    name = row.pop("sequence")
                    sequences[name] = {k: float(v) for k, v in row.items() if v not in ("", None)}
    return sequences


def _load_evaluated(summary_path: Path, folds: int) -> Run:
    """Fold k's scores from ``evaluate`` of one model into ``<RUNS>/<k>/``."""
    run_dir = summary_path.parent
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunsError(f"{summary_path}: cannot be read as JSON ({error})") from None
    methods = {name: scores for name, scores in summary.items() if isinstance(scores, dict)}
    if len(methods) != 1:
        raise RunsError(f"{summary_path}: scores {len(methods)} methods ({', '.join(sorted(methods))}); score each "
                        "fold's model alone (evaluate ... ckpt_path=<its checkpoint> baselines=[])")
    (method, scores), = methods.items()
    run = Run(run_dir, int(run_dir.name), folds, {k: float(v) for k, v in scores.items()
                                                    if isinstance(v, int | float) and not k.endswith("_frames")})
    run.sequences = _read_sequences(run_dir / "per_sequence.csv", method)
    run.held_out = sorted(run.sequences) or None
    return run


def load_arm(folder: Path) -> Arm:
    if not folder.is_dir():
        raise RunsError(f"{folder}: not a folder of runs")
    evaluated = sorted(p for p in folder.glob("*/summary.json") if p.parent.name.isdigit())
    if evaluated and not any(folder.rglob("metrics.json")):
        numbered = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
        folds = max(int(p.name) for p in numbered) + 1  # the highest fold present: a missing one shows as such
        runs = {run.fold: run for run in (_load_evaluated(p, folds) for p in evaluated)}
        unfinished = sorted(p for p in numbered if not (p / "summary.json").is_file())
        return Arm(folder.name if folder.name not in ("", ".") else str(folder), runs, unfinished, True)
    runs: dict[int, Run] = {}
    for metrics_path in sorted(folder.rglob("metrics.json")):
        run = _load_run(metrics_path)
        if run.fold in runs:
            raise RunsError(f"{run.path} and {runs[run.fold].path}: both are fold {run.fold}; keep one run per "
                            "fold in a folder")
        runs[run.fold] = run
    finished = {r.path for r in runs.values()}
    unfinished = sorted(p.parent.parent for p in folder.rglob(".hydra/config.yaml")
                        if p.parent.parent not in finished)
    if not runs:
        raise RunsError(f"{folder}: no finished run (no metrics.json below it)")
    folds = {r.folds for r in runs.values()}
    if len(folds) > 1:
        raise RunsError(f"{folder}: runs of different data.folds {sorted(folds)}; one arm uses one K")
    return Arm(folder.name if folder.name not in ("", ".") else str(folder), runs, unfinished)


def load_recorded(spec: str) -> Arm:
    """An arm as a ``--json`` summary or a model card's ``cross_validation`` recorded it: ``FILE.json:ARM``, or
    ``FILE.json`` for a file that records one arm."""
    path_text, name = spec.rsplit(":", 1) if ".json:" in spec else (spec, None)
    path = Path(path_text)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunsError(f"{path}: cannot be read as JSON ({error})") from None
    record = data.get("cross_validation", data) if isinstance(data, dict) else None
    arms = record.get("arms") if isinstance(record, dict) else None
    if not isinstance(arms, dict) or not arms:
        raise RunsError(f"{path}: records no arms; give a summary this script wrote with --json, or a model card "
                        "with cross_validation")
    if name is None:
        if len(arms) != 1:
            raise RunsError(f"{path}: records the arms {sorted(arms)}; name one as {path}:ARM")
        name = next(iter(arms))
    if name not in arms:
        raise RunsError(f"{path}: records no arm {name!r} (it records {sorted(arms)})")
    arm = arms[name]
    runs: dict[int, Run] = {}
    try:
        held_out, sequences = arm.get("held_out") or {}, arm.get("per_sequence") or {}
        for metric, stats in arm["metrics"].items():
            for fold, value in stats["per_fold"].items():
                run = runs.setdefault(int(fold), Run(path, int(fold), int(record["folds"]), {}, held_out.get(fold),
                                                     sequences.get(fold) or {}))
                run.test[metric] = float(value)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise RunsError(f"{path}: arm {name!r} is not a cross-validation record ({type(error).__name__}: "
                        f"{error})") from None
    if not runs:
        raise RunsError(f"{path}: arm {name!r} records no fold")
    return Arm(name, runs, [])


def load_arm_or_record(spec: str) -> Arm:
    """A folder of runs, or a recorded arm (``FILE.json[:ARM]``)."""
    return load_recorded(spec) if spec.endswith(".json") or ".json:" in spec else load_arm(Path(spec))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; nan for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _metrics(arms: list[Arm]) -> list[str]:
    present = {k for arm in arms for run in arm.runs.values() for k in run.test}
    return [m for m in ORDER if m in present] + sorted(present - set(ORDER))


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def arm_stats(arm: Arm, metrics: list[str]) -> dict[str, dict[str, object]]:
    """Per metric: mean and std over the arm's folds, and the value per fold."""
    stats = {}
    for m in metrics:
        per_fold = {f: run.test[m] for f, run in sorted(arm.runs.items()) if m in run.test}
        if not per_fold:  # a metric only another arm logged
            continue
        mean, std = mean_std(list(per_fold.values()))
        stats[m] = {"mean": mean, "std": std, "per_fold": per_fold}
    return stats


def paired_stats(base: Arm, other: Arm, metrics: list[str]) -> dict[str, dict[str, object]]:
    """Per metric: mean and std over folds of ``other - base`` (same fold), how many folds it was better on,
    and the difference per fold."""
    folds = sorted(set(base.runs) & set(other.runs))
    stats = {}
    for m in metrics:
        diffs = {f: other.runs[f].test[m] - base.runs[f].test[m] for f in folds
                 if m in other.runs[f].test and m in base.runs[f].test}
        if not diffs:
            continue
        mean, std = mean_std(list(diffs.values()))
        better = sum((d < 0) if m in LOWER_IS_BETTER else (d > 0) for d in diffs.values())
        stats[m] = {"mean_diff": mean, "std": std, "folds_better": better, "per_fold": diffs}
    return stats


def arm_report(arm: Arm, metrics: list[str]) -> list[str]:
    folds = sorted(arm.runs)
    k = next(iter(arm.runs.values())).folds
    lines = [f"## {arm.name}: {len(folds)} of {k} folds", ""]
    rows = [[m, _fmt(st["mean"]), _fmt(st["std"]), *(_fmt(st["per_fold"].get(f, math.nan)) for f in folds)]
            for m, st in arm_stats(arm, metrics).items()]
    lines += _table(["metric", "mean", "std", *(f"fold {f}" for f in folds)], rows)
    sequence_rows = [[name, str(f), *(_fmt(values.get(m, math.nan), 3) for m in SEQUENCE_METRICS)]
                     for f in folds for name, values in sorted(arm.runs[f].sequences.items())]
    if sequence_rows:
        lines += ["", f"Per held-out sequence ({arm.name}):", ""]
        lines += _table(["sequence", "fold", *SEQUENCE_METRICS], sequence_rows)
    else:
        lines += ["", "(no test_per_sequence.csv in these runs: no per-sequence table)"]
    return lines


def comparison_report(base: Arm, other: Arm, metrics: list[str]) -> list[str]:
    folds = sorted(set(base.runs) & set(other.runs))
    lines = [f"## {other.name} - {base.name}, paired by fold ({len(folds)} folds: {folds})", ""]
    if not folds:
        return lines + ["(no fold finished in both)"]
    rows = [[m, _fmt(st["mean_diff"]), _fmt(st["std"]), f"{st['folds_better']}/{len(st['per_fold'])}",
             *(_fmt(st["per_fold"].get(f, math.nan)) for f in folds)]
            for m, st in paired_stats(base, other, metrics).items()]
    lines += _table(["metric", "mean diff", "std", "folds better", *(f"fold {f}" for f in folds)], rows)
    sequence_rows = []
    for f in folds:
        a_seqs, b_seqs = _by_video(base.runs[f].sequences), _by_video(other.runs[f].sequences)
        for name in sorted(set(a_seqs) & set(b_seqs)):
            a, b = a_seqs[name], b_seqs[name]
            sequence_rows.append([name, str(f), *(_fmt(b.get(m, math.nan) - a.get(m, math.nan), 3)
                                                  for m in SEQUENCE_METRICS)])
    if sequence_rows:
        lines += ["", f"Per held-out sequence, {other.name} - {base.name}:", ""]
        lines += _table(["sequence", "fold", *SEQUENCE_METRICS], sequence_rows)
    return lines


def _by_video(sequences: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per-sequence rows keyed by the video's own name: a ``concat`` arm names it ``<dataset>/<video>``."""
    keyed = {name.rsplit("/", 1)[-1]: values for name, values in sequences.items()}
    return keyed if len(keyed) == len(sequences) else sequences


def report(arms: list[Arm]) -> str:
    metrics = _metrics(arms)
    lines = ["# Cross-validation", "",
             "Held-out metrics (each fold's test set is its held-out fold); std: sample standard deviation over "
             "folds.", ""]
    for arm in arms:
        lines += arm_report(arm, metrics) + [""]
        if arm.unfinished:
            lines += [f"Unfinished runs left out: {', '.join(str(p) for p in arm.unfinished)}", ""]
    for other in arms[1:]:
        lines += comparison_report(arms[0], other, metrics) + [""]
    return "\n".join(lines)


def summary(arms: list[Arm]) -> dict[str, object]:
    """The numbers of :func:`report` as data (a model card's ``cross_validation``, see ``salvid.export``): per
    arm its folds, held-out sequences and metric statistics; per later arm its paired differences from the
    first. NaN (the std of one fold) becomes null."""
    metrics = _metrics(arms)
    k = next(iter(arms[0].runs.values())).folds

    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {str(key): clean(v) for key, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value

    return clean({
        "folds": k,
        "arms": {arm.name: {"folds_finished": sorted(arm.runs),
                            "held_out": {f: run.held_out if run.held_out is not None else
                                         sorted(run.sequences) or None for f, run in sorted(arm.runs.items())},
                            "metrics": arm_stats(arm, metrics),
                            "per_sequence": {f: run.sequences for f, run in sorted(arm.runs.items())
                                             if run.sequences}} for arm in arms},
        "against_first": {other.name: paired_stats(arms[0], other, metrics) for other in arms[1:]},
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="folders of runs, or recorded arms FILE.json[:ARM], one per arm "
                        "(the first is the base)")
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON (for salvid.export "
                        "cross_validation=FILE)")
    args = parser.parse_args(argv)
    try:
        arms = [load_arm_or_record(f) for f in args.runs]
        names = [arm.name for arm in arms]
        if len(set(names)) < len(names):
            raise RunsError(f"{', '.join(str(f) for f in args.runs)}: arms are named by their folder's name (a "
                            f"recorded arm by its own), and these repeat one ({names}); give each arm's folder "
                            "its own name")
        kinds = {arm.scored_by_evaluate for arm in arms}
        if len(kinds) > 1:
            evaluated = [str(f) for f, arm in zip(args.runs, arms, strict=True) if arm.scored_by_evaluate]
            raise RunsError(f"{', '.join(evaluated)}: scored by evaluate on other data, while the other arms are "
                            "scored on their folds' held-out videos; compare arms scored on the same data")
    except RunsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = report(arms)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(summary(arms), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
