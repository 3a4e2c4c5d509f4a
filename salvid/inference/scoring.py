"""Scoring saliency methods on a dataset: the network, baselines and folders of precomputed maps, in one pass
over each sequence, then the tables and figures of ``salvid.evaluate``.

Writes into the output folder:

* ``per_sequence.csv``: one row per method x sequence, every metric, scored and excluded frame counts;
* ``summary.json``: ``{method: {metric: mean over sequences, "excluded_frames": n, ...}}``;
* ``table.md`` (also printed) and ``table.tex`` (LaTeX, booktabs, best value bold): methods as columns,
  PLCC/AUC/NSS rows then the VSOD metrics;
* ``roc.png``, ``pr.png``, ``qualitative.png`` (and PDFs);
* with ``failure_gallery``: ``failures/<sequence>.png``, the frame of each sequence where one method (the
  network, or ``failure_method``) has its lowest S-measure, and ``failures.md`` listing them, worst first;
* ``status.json``: ``complete: false`` (``state: running``) from the start, with the dataset and the methods;
  ``complete: true`` once every result is written, or ``state: failed`` and the error.

Each file is written under a temporary name and renamed into place. Results an earlier evaluate left in the
folder are removed when the run starts (only the files named here, and the PNGs in ``failures/``), so a rerun never presents them as its own.
Maps are scored at the ground truth's resolution. With ``logger=wandb`` the table, the per-sequence rows and
the figures are logged too.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from salvid.baselines import BASELINES, BaselineUnavailable, MapsFolder
from salvid.checkpoints import load_network, model_name, trained_sequences
from salvid.data.layouts import VideoSequence, layout_options
from salvid.data.layouts.base import MissingSplitError
from salvid.data.splits import split_sequences
from salvid.errors import CheckpointError, ConfigError
from salvid.inference import report
from salvid.inference.core import NetworkSaliency, frame_stems, iter_batches, middle_frames
from salvid.inference.pipeline import prefetched
from salvid.inference.tta import network_saliency
from salvid.inference.writers import to_uint8
from salvid.methods import SaliencyMethod
from salvid.metrics import SaliencyMetrics
from salvid.runtime import progress
from salvid.runtime.configs import instantiate_all
from salvid.runtime.entry import stop_line
from salvid.runtime.figures import save_figure
from salvid.runtime.files import (
    OutputGuard,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    is_temporary,
)
from salvid.runtime.tracking import finish_wandb_run, wandb_mode

log = logging.getLogger(__name__)

# every result file evaluate writes (qualitative.* only when frames are shown), and its record of the run
RESULT_FILES = ("summary.json", "per_sequence.csv", "table.md", "table.tex", "roc.png", "roc.pdf", "pr.png", "pr.pdf",
                "qualitative.png", "qualitative.pdf", "failures.md")
STATUS = "status.json"
GALLERY = "failures"  # the folder of the failure gallery's images, listed by failures.md


def build_methods(cfg: DictConfig) -> list[SaliencyMethod]:
    """The network first, then the requested baselines, the image-only ablation when its checkpoint is given,
    more networks and maps folders. A baseline asked for that cannot run here is an error saying why. ``tta``
    applies to every network, not to baselines and maps folders."""
    net, config = load_network(cfg.ckpt_path, trusted=cfg.trusted_checkpoint)
    run = {"device": cfg.device, "precision": cfg.precision, "channels_last": cfg.channels_last,
           "backend": cfg.backend, "tta": cfg.tta}
    name = cfg.method_name or model_name(cfg.ckpt_path)
    methods: list[SaliencyMethod] = [network_saliency(net, name, **run, model_config=config)]
    baselines = list(cfg.baselines)
    if cfg.image_only_ckpt is not None and "image_only" not in baselines:
        baselines.append("image_only")
    for name in baselines:
        if name == "image_only":
            if cfg.image_only_ckpt is None:
                raise ConfigError("baselines: image_only needs the 1-frame network's checkpoint "
                                  "(image_only_ckpt=<.ckpt, .safetensors or pretrained name>)")
            image_net, image_config = load_network(cfg.image_only_ckpt, trusted=cfg.trusted_checkpoint)
            if image_net.in_frames != 1:
                raise CheckpointError(f"image_only_ckpt={cfg.image_only_ckpt}: a network of "
                                      f"{image_net.in_frames} input frames, not the 1-frame ablation")
            methods.append(network_saliency(image_net, "image_only", **run, model_config=image_config))
        elif name in BASELINES:
            try:
                methods.append(BASELINES[name]())
            except BaselineUnavailable as e:
                raise ConfigError(f"baselines: {name} cannot run here: {e}") from None
        else:
            raise ConfigError(f"baselines: unknown {name!r} (known: {sorted([*BASELINES, 'image_only'])})")
    for name, spec in (cfg.networks or {}).items():
        other, other_config = load_network(spec, trusted=cfg.trusted_checkpoint)
        methods.append(network_saliency(other, name, **run, model_config=other_config))
    methods += [MapsFolder(name, directory) for name, directory in (cfg.maps_dirs or {}).items()]
    names = [m.name for m in methods]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise ConfigError(f"two methods share the name {', '.join(shared)} (methods: {names}); rename one: the "
                          "network with method_name=, the others by their key under networks. or maps_dirs.")
    return methods


def load_sequences(cfg: DictConfig) -> list[VideoSequence]:
    """The sequences to score: ``data.split`` in full, or the ``stage`` of the data config (its splits and
    hold-outs, as training saw them)."""
    data = cfg.data
    if data.get("synthetic") is not None:
        from salvid.data.synthetic import generate_dataset

        generate_dataset(Path(data.root), **OmegaConf.to_container(data.synthetic, resolve=True))
    options = layout_options(data.layout, data)
    if data.get("split") is not None:
        try:
            stage, stages = "test", split_sequences(data.layout, data.root, {"test": data.split}, **options)
        except MissingSplitError as e:
            raise e.for_key("data.split") from None
    else:
        stage = cfg.stage
        stages = split_sequences(data.layout, data.root, OmegaConf.to_container(data.splits, resolve=True),
                                 data.get("val_holdout", 0), data.get("test_holdout", 0), data.get("folds"),
                                 data.get("fold"), **options)
    if stage not in stages:
        raise ConfigError(f"stage={stage}: the data config defines no {stage} sequences (set data.split=<split>)")
    sequences = stages[stage]
    if data.get("sequences") is not None:
        wanted = [str(name) for name in data.sequences]
        present = {s.name for s in sequences}
        unknown = [name for name in wanted if name not in present]
        if unknown:
            raise ConfigError(f"data.sequences: {unknown} not among the {len(present)} sequences scored here "
                              f"({', '.join(sorted(present)[:10])}{', ...' if len(present) > 10 else ''})")
        sequences = [s for s in sequences if s.name in set(wanted)]
    return sequences


def _qualitative_picks(sequences: list[VideoSequence], count: int) -> dict[int, list[int]]:
    """{sequence index: frames} for ``count`` frames (fewer only when there are fewer annotated frames): one
    from each of ``count`` evenly spread sequences, or, with fewer sequences than ``count``, several per
    sequence, evenly spaced over its annotated frames."""
    usable = [s for s, seq in enumerate(sequences) if seq.annotated_frames]
    if count <= 0 or not usable:
        return {}
    if count <= len(usable):
        chosen = np.linspace(0, len(usable) - 1, count).round().astype(int)
        return {usable[i]: [sequences[usable[i]].annotated_frames[len(sequences[usable[i]].annotated_frames) // 2]] for i in chosen}
    share = [count // len(usable) + (i < count % len(usable)) for i in range(len(usable))]
    picks = {}
    for s, k in zip(usable, share, strict=True):
        targets = sequences[s].annotated_frames
        positions = (np.arange(k) + 0.5) * len(targets) / k  # the middles of k equal parts
        picks[s] = sorted({targets[min(int(i), len(targets) - 1)] for i in positions})
    return picks


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _update(metric: SaliencyMetrics, maps: np.ndarray, masks: list[np.ndarray], video: int, ids: list[int]) -> None:
    """One batch of maps into a method's metric; masks of differing sizes in one batch go frame by frame."""
    if len({m.shape for m in masks}) == 1:
        metric.update(torch.from_numpy(maps), torch.from_numpy(np.stack(masks).astype(bool)),
                      torch.full((len(ids),), video), torch.tensor(ids))
        return
    for i, t in enumerate(ids):
        metric.update(torch.from_numpy(maps[i : i + 1]), torch.from_numpy(masks[i][None].astype(bool)),
                      torch.tensor([video]), torch.tensor([t]))


class _Samples:
    """The qualitative figure's frames: for each picked frame, the frame, its mask and every method's map."""

    def __init__(self, picks: dict[int, list[int]]):
        self.picks = picks
        self.samples: dict[str, report.QualitativeSample] = {}

    def add(self, video: int, name: str, ids: list[int], clips: list, masks: list[np.ndarray], method: str,
            maps: np.ndarray) -> None:
        for t in set(self.picks.get(video, ())) & set(ids):
            i, title = ids.index(t), f"{name} #{t}"
            if title not in self.samples:
                self.samples[title] = report.QualitativeSample(title, clips[i][len(clips[i]) // 2], masks[i])
            self.samples[title].maps[method] = _unit(maps[i])


def check_maps_folders(methods: list[SaliencyMethod], sequences: list[VideoSequence]) -> None:
    """Fail fast on a missing map, before any work and before the output folder is touched."""
    for seq in sequences:
        stems = frame_stems(seq.frames, len(seq.masks))
        for m in methods:
            if isinstance(m, MapsFolder):
                m.check(seq.name, stems, seq.annotated_frames)


def _scored_maps(cfg: DictConfig, method: SaliencyMethod, clips: list, ids: list[int]) -> np.ndarray:
    """A method's maps of a batch of clips (of the longest length any method needs), as they are scored."""
    maps = method.predict([middle_frames(c, method.in_frames) for c in clips], ids)
    if cfg.quantise_maps and isinstance(method, NetworkSaliency):
        maps = to_uint8(maps).astype(np.float32) / 255.0  # as its saved PNGs hold it
    return maps


def score(cfg: DictConfig, methods: list[SaliencyMethod], sequences: list[VideoSequence]):
    """Stream every sequence once, scoring every method; returns the metrics and the qualitative samples."""
    metrics = {m.name: SaliencyMetrics(average=cfg.metric_average, skip_first_last=cfg.skip_first_last)
               for m in methods}
    in_frames = max(m.in_frames for m in methods)
    samples = _Samples(_qualitative_picks(sequences, cfg.qualitative_frames))
    stems_of = [frame_stems(seq.frames, len(seq.masks)) for seq in sequences]
    with progress.progress("evaluating", total=sum(len(s.annotated_frames) for s in sequences)) as counter:
        for v, seq in enumerate(sequences):
            counter.describe(seq.name)
            for m in methods:
                m.begin_sequence(seq.name, stems_of[v])
            batches = ((ids, clips, [seq.salient_mask(t) for t in ids])
                       for ids, clips in iter_batches(seq.open(), in_frames, cfg.batch_size, seq.annotated_frames))
            # frames and masks of the next batches are read on a background thread while the methods run
            for ids, clips, masks in prefetched(batches, depth=2):
                for m in methods:
                    maps = _scored_maps(cfg, m, clips, ids)
                    _update(metrics[m.name], maps, masks, v, ids)
                    samples.add(v, seq.name, ids, clips, masks, m.name, maps)
                counter.advance(len(ids))
    return metrics, list(samples.samples.values())


def warn_seen_sequences(cfg: DictConfig, sequences: list[VideoSequence]) -> None:
    """A warning for each network whose model card lists scored sequences among those it trained or was
    selected on: their scores say how well it fits its training data, not how well it does on new video."""
    networks = {cfg.method_name or model_name(cfg.ckpt_path): cfg.ckpt_path, **(cfg.networks or {})}
    for name, spec in networks.items():
        trained = trained_sequences(spec)
        seen = [s.name for s in sequences if s.name in trained]
        if seen:
            shown = ", ".join(seen[:6]) + (f", ... ({len(seen)} in all)" if len(seen) > 6 else "")
            log.warning("%s trained or was selected on %d of the %d sequences scored here (%s), by its model card: "
                        "its scores on them are not held out", name, len(seen), len(sequences), shown)


def dataset_title(cfg: DictConfig, sequences: list[VideoSequence]) -> str:
    """``davis2016_holdout, test (held out): 5 sequences, 356 annotated frames``: the data config's name (its
    layout outside Hydra), the split scored, and how much."""
    from hydra.core.hydra_config import HydraConfig

    data = cfg.data
    name = HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None
    if data.get("split") is not None:
        split = f"split {data.split}"
    else:
        stage = cfg.stage
        held_out = not (data.get("splits") or {}).get(stage) and data.get(f"{stage}_holdout", 0)
        split = f"{stage} ({data.get(f'{stage}_holdout')} held out of split {data.splits.train})" if held_out \
            else f"{stage} (split {(data.get('splits') or {}).get(stage)})"
        if data.get("folds"):
            split = f"{stage} (fold {data.fold} of {data.folds} of split {data.splits.train})"
    frames = sum(len(s.annotated_frames) for s in sequences)
    return f"{name or data.layout}, {split}: {len(sequences)} sequences, {frames} annotated frames"


def output_guard(cfg: DictConfig, output_dir: str | Path | None = None) -> OutputGuard:
    """The guard of evaluate's outputs: clear of the dataset, every maps folder and checkpoint file."""
    checkpoint_files = [Path(p) for p in (cfg.ckpt_path, cfg.image_only_ckpt, *(cfg.networks or {}).values())
                        if p and Path(p).is_file()]
    return OutputGuard(output_dir or cfg.paths.output_dir, input_dirs=[cfg.data.root, *(cfg.maps_dirs or {}).values()],
                       input_files=checkpoint_files)


def check_output(cfg: DictConfig, output_dir: Path) -> None:
    """Refuse an output folder that would write into the inputs, before anything is written (RunGuard)."""
    output_guard(cfg, output_dir)


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Score every method of ``cfg`` on its sequences, write the results, and return the summary."""
    sequences = load_sequences(cfg)  # first: a missing dataset is named before a network is loaded
    methods = build_methods(cfg)
    gallery = gallery_method(cfg, methods)
    guard = output_guard(cfg)
    check_maps_folders(methods, sequences)
    warn_seen_sequences(cfg, sequences)
    title = dataset_title(cfg, sequences)
    status = begin_results(guard, {"dataset": title, "methods": [m.name for m in methods], "tta": cfg.tta})
    try:
        summary, rows, written = _write_results(cfg, guard, methods, sequences, title, gallery)
    except BaseException as e:
        error = stop_line(e) if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        atomic_write_json(guard.path(STATUS), {**status, "state": "failed", "error": error})
        raise
    atomic_write_json(guard.path(STATUS), {**status, "complete": True, "state": "complete", "files": written,
                                           "seconds": round(time.time() - status["started"], 1)})
    report.print_table(summary, title)
    _log_to_loggers(cfg, guard, summary, rows)
    log.info("results: %s", guard.output_dir)
    return summary


def begin_results(guard: OutputGuard, about: dict[str, Any]) -> dict[str, Any]:
    """Mark the folder's results as those of a run in progress, and remove any an earlier evaluate left there
    (only the files evaluate writes: anything else in the folder stays). Returns the status written."""
    status = {"complete": False, "state": "running", "started": round(time.time(), 3), **about}
    atomic_write_json(guard.path(STATUS), status)
    for name in RESULT_FILES:
        path = guard.path(name)
        if path.is_file() or path.is_symlink():
            path.unlink()
    for path in guard.output_dir.iterdir():  # what a write killed midway left
        if is_temporary(path) and any(path.name.startswith(f".{name}.") for name in RESULT_FILES):
            guard.path(path.name).unlink(missing_ok=True)
    gallery = guard.path(GALLERY)
    if gallery.is_dir() and not gallery.is_symlink():
        for path in gallery.iterdir():
            if not path.is_dir() and (path.suffix.lower() == ".png" or is_temporary(path)):
                guard.path(GALLERY, path.name).unlink(missing_ok=True)
        if not any(gallery.iterdir()):
            gallery.rmdir()
    return status


def _write_results(cfg: DictConfig, guard: OutputGuard, methods: list[SaliencyMethod],
                   sequences: list[VideoSequence], title: str,
                   gallery: SaliencyMethod | None = None) -> tuple[dict, list[dict[str, Any]], list[str]]:
    """Score, then write the tables and figures; returns the summary, the per-sequence rows and the files."""
    metrics, samples = score(cfg, methods, sequences)
    summary: dict[str, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    for name, metric in metrics.items():
        summary[name] = {k: (int(v) if k.endswith("_frames") else float(v)) for k, v in metric.compute().items()}
        for v, values in metric.compute_per_video().items():
            rows.append({"method": name, "sequence": sequences[v].name, **values})
        curves[name] = {k: c.cpu().numpy() for k, c in metric.curves().items()}

    table = report.markdown_table(summary)
    atomic_write_json(guard.path("summary.json"), summary)
    atomic_write_csv(guard.path("per_sequence.csv"), rows)
    atomic_write_text(guard.path("table.md"), f"{title}\n\n{table}")
    atomic_write_text(guard.path("table.tex"), report.latex_table(summary, f"{title}. {report.CAPTION}"))
    written = ["summary.json", "per_sequence.csv", "table.md", "table.tex"]
    figures = {"roc": report.roc_figure(curves, summary, title), "pr": report.pr_figure(curves, title)}
    if samples:
        figures["qualitative"] = report.qualitative_figure(samples, [m.name for m in methods], title)
    for name, figure in figures.items():
        save_figure(figure, guard.path(f"{name}.png"), guard.path(f"{name}.pdf"))
        written += [f"{name}.png", f"{name}.pdf"]
    if gallery is not None:
        written += write_failures(cfg, guard, gallery, methods, sequences, metrics[gallery.name], title)
    return summary, rows, written


def gallery_method(cfg: DictConfig, methods: list[SaliencyMethod]) -> SaliencyMethod | None:
    """The method whose worst frames ``failure_gallery`` shows: the network, or the method ``failure_method``
    names; None without a gallery. An unknown name is refused before any work."""
    names = [m.name for m in methods]
    if cfg.failure_method is not None and cfg.failure_method not in names:
        raise ConfigError(f"failure_method={cfg.failure_method}: no such method here (methods: {', '.join(names)})")
    if cfg.failure_gallery is False or cfg.failure_gallery == 0:
        return None
    return methods[names.index(cfg.failure_method)] if cfg.failure_method is not None else methods[0]


def worst_frames(metric: SaliencyMetrics, count: int | None = None) -> list[tuple[int, int, float]]:
    """``(video, frame, S-measure)`` of each video's frame with the lowest S-measure (the first, on a tie) among
    the frames the metric scores, worst first; ``count``: only that many."""
    videos, frames, values = metric.frame_values("smeasure")
    worst: dict[int, tuple[int, float]] = {}
    for v, t, s in zip(videos.tolist(), frames.tolist(), values.tolist(), strict=True):
        if not math.isnan(s) and (v not in worst or s < worst[v][1]):
            worst[v] = (t, s)
    ranked = sorted(((v, t, s) for v, (t, s) in worst.items()), key=lambda item: (item[2], item[0]))
    return ranked if count is None else ranked[:count]


def write_failures(cfg: DictConfig, guard: OutputGuard, method: SaliencyMethod, methods: list[SaliencyMethod],
                   sequences: list[VideoSequence], metric: SaliencyMetrics, title: str) -> list[str]:
    """``failures/<sequence>.png`` for the worst frame of each sequence (of the ``failure_gallery`` worst
    sequences, when a number), and ``failures.md``; returns the files written. The chosen frames are read and
    their maps made again: one clip per sequence, rather than every map held through the scoring pass."""
    count = None if cfg.failure_gallery is True else int(cfg.failure_gallery)
    per_video = metric.compute_per_video()
    in_frames = max(m.in_frames for m in methods)
    rows, written = [], []
    for v, t, s in worst_frames(metric, count):
        seq = sequences[v]
        stems = frame_stems(seq.frames, len(seq.masks))
        method.begin_sequence(seq.name, stems)
        ids, clips = next(iter_batches(seq.open(), in_frames, 1, [t]))
        saliency = _unit(_scored_maps(cfg, method, clips, ids)[0])
        figure = report.failure_figure(clips[0][len(clips[0]) // 2], seq.salient_mask(t), saliency, method.name,
                                       f"{seq.name}, frame {stems[t]}: S-measure {s:.3f}")
        path = guard.path(GALLERY, f"{seq.name}.png")
        save_figure(figure, path)
        written.append(f"{GALLERY}/{path.name}")
        rows.append(f"| {seq.name} | {stems[t]} | {s:.3f} | {per_video[v]['smeasure']:.3f} | "
                    f"[{written[-1]}]({written[-1]}) |")
    lines = [f"# Worst frames of {method.name}", "", title, "",
             "Each sequence's frame with the lowest S-measure, worst first; the sequence's mean beside it.", "",
             "| sequence | frame | S-measure | sequence mean | image |", "|:--|:--|--:|--:|:--|", *rows]
    atomic_write_text(guard.path("failures.md"), "\n".join(lines) + "\n")
    return ["failures.md", *written]


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
    finish_wandb_run()


