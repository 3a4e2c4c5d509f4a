"""Score the network, baselines and precomputed maps on a dataset, in one pass over each sequence.

``python -m salvid.evaluate ckpt_path=<file or pretrained name> data=<dataset> data.root=DIR data.split=<split>
paths.output_dir=OUT [baselines=[...]] [maps_dirs={name: DIR}]`` writes to OUT:

* ``per_sequence.csv``: one row per method x sequence, every metric, scored and excluded frame counts;
* ``summary.json``: ``{method: {metric: mean over sequences, "excluded_frames": n, ...}}``;
* ``table.md`` (also printed): methods as columns, PLCC/AUC/NSS rows then the VSOD metrics;
* ``roc.png``, ``pr.png``, ``qualitative.png``.

Maps are scored at the ground truth's resolution. With ``logger=wandb`` the table, the per-sequence rows and
the figures are logged too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

import salvid  # noqa: F401  (sets process environment before torch loads)
from salvid import report
from salvid.baselines import BASELINES, BaselineUnavailable, MapsFolder
from salvid.checkpoints import CheckpointError, load_network
from salvid.data.layouts import Sequence
from salvid.inference import NetworkSaliency, SaliencyMethod, centre, frame_stems, iter_batches
from salvid.io import OutputGuard, atomic_write_json, atomic_write_text
from salvid.metrics import SaliencyMetrics
from salvid.runtime import CONF_DIR, wandb_mode
from salvid.train import instantiate_all

log = logging.getLogger(__name__)


def build_methods(cfg: DictConfig) -> list[SaliencyMethod]:
    """The network first, then the requested baselines (skipping, with the reason, those that cannot run)."""
    net, _ = load_network(cfg.ckpt_path, trusted=cfg.trusted_checkpoint)
    run = {"device": cfg.device, "precision": cfg.precision, "channels_last": cfg.channels_last}
    methods: list[SaliencyMethod] = [NetworkSaliency(net, cfg.method_name, **run)]
    for name in cfg.baselines:
        if name == "image_only":
            if cfg.image_only_ckpt is None:
                log.warning("baseline image_only skipped: no checkpoint of the 1-frame network given "
                            "(image_only_ckpt=<.ckpt, .safetensors or pretrained name>)")
                continue
            image_net, _ = load_network(cfg.image_only_ckpt, trusted=cfg.trusted_checkpoint)
            if image_net.in_frames != 1:
                raise CheckpointError(f"image_only_ckpt={cfg.image_only_ckpt}: a network of "
                                      f"{image_net.in_frames} input frames, not the 1-frame ablation")
            methods.append(NetworkSaliency(image_net, "image_only", **run))
        elif name in BASELINES:
            try:
                methods.append(BASELINES[name]())
            except BaselineUnavailable as e:
                log.warning("baseline %s skipped: %s", name, e)
        else:
            raise ValueError(f"baselines: unknown {name!r} (known: {sorted([*BASELINES, 'image_only'])})")
    methods += [MapsFolder(name, directory) for name, directory in (cfg.maps_dirs or {}).items()]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"two methods share a name: {names}")
    return methods


def load_sequences(cfg: DictConfig, network: NetworkSaliency) -> tuple[list[Sequence], Path]:
    """The sequences to score, listed by the data config's DataModule (its layout, splits and hold-outs)."""
    with open_dict(cfg):  # data configs size their inputs from ${model.*}: the loaded network's
        cfg.model = {"input_size": list(network.input_size), "in_frames": network.in_frames}
    data = OmegaConf.to_container(cfg.data, resolve=True)
    split = data.pop("split", None)
    stage = cfg.stage
    if split is not None:
        data["splits"], stage = {"train": None, "val": None, "test": split}, "test"
        data.update({k: 0 for k in ("val_holdout", "test_holdout") if k in data})
    datamodule = hydra.utils.instantiate(data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("test")
    if stage not in datamodule.sequences:
        raise ValueError(f"stage={stage}: the data config defines no {stage} sequences (set data.split=<split>)")
    return datamodule.sequences[stage], datamodule.root


def _qualitative_picks(sequences: list[Sequence], count: int) -> dict[int, int]:
    """{sequence index: frame} for up to ``count`` frames: the middle annotated frame of evenly spread sequences."""
    if count <= 0:
        return {}
    chosen = np.unique(np.linspace(0, len(sequences) - 1, min(count, len(sequences))).round().astype(int))
    return {int(s): sequences[s].targets[len(sequences[s].targets) // 2] for s in chosen}


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def score(cfg: DictConfig, methods: list[SaliencyMethod], sequences: list[Sequence]):
    """Stream every sequence once, scoring every method; returns the metrics and the qualitative samples."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    metrics = {m.name: SaliencyMetrics(average=cfg.metric_average, skip_first_last=cfg.skip_first_last)
               for m in methods}
    in_frames = max(m.in_frames for m in methods)
    picks = _qualitative_picks(sequences, cfg.qualitative_frames)
    samples: list[report.QualitativeSample] = []
    stems_of = [frame_stems(seq.frames, len(seq.masks)) for seq in sequences]
    for seq, stems in zip(sequences, stems_of, strict=True):  # before any work: a missing map fails fast
        for m in methods:
            if isinstance(m, MapsFolder):
                m.check(seq.name, stems, seq.targets)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("evaluating", total=sum(len(s.targets) for s in sequences))
        for v, seq in enumerate(sequences):
            progress.update(task, description=seq.name)
            for m in methods:
                m.begin_sequence(seq.name, stems_of[v])
            for ids, clips in iter_batches(seq.open(), in_frames, cfg.batch_size, seq.targets):
                masks = [seq.target(t) for t in ids]
                target = torch.from_numpy(np.stack(masks).astype(bool)) if len({m.shape for m in masks}) == 1 \
                    else None
                video_ids = torch.full((len(ids),), v)
                for m in methods:
                    maps = m.predict([centre(c, m.in_frames) for c in clips], ids)
                    if target is not None:
                        metrics[m.name].update(torch.from_numpy(maps), target, video_ids, torch.tensor(ids))
                    else:  # masks of differing sizes in one batch: score frame by frame
                        for i, t in enumerate(ids):
                            metrics[m.name].update(torch.from_numpy(maps[i : i + 1]),
                                                   torch.from_numpy(masks[i][None].astype(bool)),
                                                   video_ids[i : i + 1], torch.tensor([t]))
                    if picks.get(v) in ids:
                        i = ids.index(picks[v])
                        if not samples or samples[-1].title != f"{seq.name} #{picks[v]}":
                            frame = clips[i][len(clips[i]) // 2]
                            samples.append(report.QualitativeSample(f"{seq.name} #{picks[v]}", frame, masks[i]))
                        samples[-1].maps[m.name] = _unit(maps[i])
                progress.advance(task, len(ids))
    return metrics, samples


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    methods = build_methods(cfg)
    sequences, data_root = load_sequences(cfg, methods[0])
    checkpoint_files = [Path(p) for p in (cfg.ckpt_path, cfg.image_only_ckpt) if p and Path(p).is_file()]
    guard = OutputGuard(cfg.paths.output_dir, input_dirs=[data_root, *(cfg.maps_dirs or {}).values()],
                        input_files=checkpoint_files)
    metrics, samples = score(cfg, methods, sequences)

    summary: dict[str, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    for name, metric in metrics.items():
        summary[name] = {k: (int(v) if k.endswith("_frames") else float(v)) for k, v in metric.compute().items()}
        for v, values in metric.compute_per_video().items():
            rows.append({"method": name, "sequence": sequences[v].name, **values})
        curves[name] = {k: c.cpu().numpy() for k, c in metric.curves().items()}

    title = f"{len(sequences)} sequences of {data_root}"
    table = report.markdown_table(summary)
    atomic_write_json(guard.path("summary.json"), summary)
    atomic_write_text(guard.path("per_sequence.csv"), report.per_sequence_csv(rows))
    atomic_write_text(guard.path("table.md"), f"{title}\n\n{table}")
    report.save_figure(report.roc_figure(curves, summary), guard.path("roc.png"))
    report.save_figure(report.pr_figure(curves), guard.path("pr.png"))
    if samples:
        report.save_figure(report.qualitative_figure(samples, [m.name for m in methods]), guard.path("qualitative.png"))
    report.print_table(summary, title)
    _log_to_loggers(cfg, guard, summary, rows)
    log.info("results: %s", guard.output_dir)
    return summary


def _log_to_loggers(cfg: DictConfig, guard: OutputGuard, summary: dict, rows: list[dict[str, Any]]) -> None:
    """Scalars to every configured logger; with W&B also the tables (groupable by method) and the figures."""
    if cfg.get("logger") and "wandb" in cfg.logger:
        wandb_mode()
    loggers = instantiate_all(cfg.get("logger"))
    for lg in loggers:
        lg.log_metrics({f"{m}/{k}": v for m, values in summary.items() for k, v in values.items()})
        if hasattr(lg, "log_table"):  # WandbLogger
            header, table_rows = report.table_rows(summary)
            lg.log_table("evaluate/table", columns=header, data=[[c.replace("**", "") for c in r] for r in table_rows])
            columns = list(rows[0])
            lg.log_table("evaluate/per_sequence", columns=columns, data=[[r.get(c) for c in columns] for r in rows])
            figures = [f for f in ("roc.png", "pr.png", "qualitative.png") if guard.path(f).is_file()]
            lg.log_image("evaluate/figures", [str(guard.path(f)) for f in figures], caption=figures)
        lg.finalize("success")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
