"""Saliency maps for any video, written as files: the work of ``salvid.predict``.

For each input video (a glob of videos gives several) it writes ``OUT/<name>/``:

* ``maps/<frame stem>.png``: the grey map of every frame (the layout ``evaluate maps_dirs=`` reads);
* ``saliency.mp4``: the maps as a grey video; ``overlay.mp4``: a heat map over the frames;
* ``status.json``: rewritten last with ``state`` (``complete`` or ``failed``), the frame count and, on failure,
  the one-line error (a full disk too). Maps written
  before a failure are kept and the videos stay playable.

A clip is written into the hidden folder ``OUT/.<name>.predicting/`` (its ``status.json`` says
``{"complete": false}`` while running) and replaces ``OUT/<name>/`` whole when the run ends with it, finished or
failed: a rerun never leaves an earlier run's maps beside its own, and a run killed outright leaves the earlier
folder as it was. A folder holding anything ``predict`` did not write is refused before any work.

Frames are streamed (constant memory); on the CPU writing overlaps decoding between the network's batches, on a
GPU both overlap the network. Each map is flushed to the disk (fsync) beside the network, before the folder is
published.
"""

from __future__ import annotations

import glob
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import av
from omegaconf import DictConfig

from salvid.checkpoints import load_network, model_name
from salvid.data.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FrameSource, ImageFolder, open_video
from salvid.errors import DataError, DiskFullError, UnsafeOutputError
from salvid.inference.core import NetworkSaliency, frame_stems
from salvid.inference.pipeline import BackgroundWriter, InlineWriter
from salvid.inference.tta import network_saliency
from salvid.inference.writers import VideoWriter, heatmap_overlay, to_uint8, write_png
from salvid.runtime import progress
from salvid.runtime.entry import one_line, stop_line, user_error
from salvid.runtime.files import (
    OutputGuard,
    atomic_write_json,
    fsync_path,
    is_temporary,
    read_json_mapping,
    replace_folder,
    rewrite_json,
    safe_name,
)

log = logging.getLogger(__name__)

# the hidden folders beside OUT/<name>/: where a clip is written, and where the folder it replaces is moved
STAGING, REPLACED = "predicting", "replaced"
# all predict writes into OUT/<name>/, besides maps/<stem>.png
OWN_FILES = ("status.json", "saliency.mp4", "overlay.mp4")


class PredictInputError(DataError):
    """``input=`` names nothing salvid can read; the message says what was found."""


@dataclass
class PredictInput:
    name: str  # output folder name (safe)
    source: FrameSource
    fps: float | None  # None: a frame folder, use cfg.fps


def _video_fps(path: Path) -> float | None:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def resolve_inputs(spec: str) -> list[PredictInput]:
    """A video file, a folder of frame images, or a glob matching frame images (one sequence), videos, or
    folders of frame images (one input each: ``DAVIS/JPEGImages/480p/*``)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return [PredictInput(safe_name(path.resolve().name), ImageFolder.from_directory(path), None)]
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return [PredictInput(safe_name(path.stem), ImageFolder([path]), None)]
        return [PredictInput(safe_name(path.stem), open_video(path), _video_fps(path))]
    if not glob.has_magic(spec):
        raise PredictInputError(f"input={spec}: no such file or folder")
    found_paths = sorted(Path(p) for p in glob.glob(str(path)))
    folders = [p for p in found_paths if p.is_dir()]
    matches = [p for p in found_paths if p.is_file()]
    if folders and not matches:
        return [PredictInput(safe_name(d.resolve().name), ImageFolder.from_directory(d), None) for d in folders]
    images = [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in matches if p.suffix.lower() in VIDEO_SUFFIXES]
    if images and not videos:
        return [PredictInput(safe_name(images[0].parent.resolve().name), ImageFolder(images), None)]
    if videos and not images:
        return [PredictInput(safe_name(v.stem), open_video(v), _video_fps(v)) for v in videos]
    found = f"{len(images)} images, {len(videos)} videos and {len(folders)} folders" if found_paths else "nothing"
    raise PredictInputError(f"input={spec}: the glob matches {found}; it must match frame images "
                            f"({', '.join(IMAGE_SUFFIXES)}), videos ({', '.join(VIDEO_SUFFIXES)}) or folders of "
                            "frame images, one kind only")


def _input_paths(inputs: list[PredictInput]) -> tuple[list[Path], list[Path]]:
    """(folders, files) the outputs must stay clear of."""
    dirs, files = [], []
    for item in inputs:
        if isinstance(item.source, ImageFolder):
            dirs += sorted({p.parent for p in item.source.paths})
            files += item.source.paths
        else:
            files.append(item.source.path)
    return dirs, files


def not_ours(folder: Path) -> list[str]:
    """What in a clip's output folder ``predict`` did not write (names relative to it)."""
    if not folder.is_dir() or folder.is_symlink():
        return ["."] if folder.exists() or folder.is_symlink() else []
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name == "maps" and entry.is_dir() and not entry.is_symlink():
            foreign += [f"maps/{p.name}" for p in sorted(entry.iterdir())
                        if p.is_symlink() or not p.is_file() or not (p.suffix == ".png" or is_temporary(p))]
        elif entry.is_symlink() or not entry.is_file() or not (entry.name in OWN_FILES or is_temporary(entry)):
            foreign.append(entry.name)
    return foreign


def check_replaceable(guard: OutputGuard, name: str) -> None:
    """Refuse, before any work, a clip's output folder that a rerun could not replace whole without removing
    what predict did not write there (or an input)."""
    folder = guard.path(name)
    for path in (folder, guard.hidden(name, STAGING), guard.hidden(name, REPLACED)):
        guard.replaceable(path)
    foreign = not_ours(folder)
    if foreign == ["."]:
        raise UnsafeOutputError(f"{folder}: a file or link, not a folder predict wrote; move it away or choose "
                                "another paths.output_dir")
    if foreign:
        shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
        raise UnsafeOutputError(f"{folder}: holds {shown}, which predict did not write; a rerun replaces this "
                                "folder whole, so move them out of it or choose another paths.output_dir")


def _write_maps(guard: OutputGuard, item: PredictInput, cfg: DictConfig, stem: str, saliency, frame,
                saliency_video: VideoWriter | None, overlay_video: VideoWriter | None,
                flusher: BackgroundWriter) -> None:
    grey = to_uint8(saliency)
    if cfg.write_pngs:
        path = guard.hidden(item.name, STAGING, "maps", f"{stem}.png")
        write_png(path, grey, cfg.png_compression)
        flusher.submit(_flush_map, path)
    if saliency_video is not None:
        saliency_video.write(grey[..., None].repeat(3, axis=-1))
        overlay_video.write(heatmap_overlay(frame, grey, cfg.overlay_alpha))


def _flush_map(path: Path) -> None:
    """fsync a written map. One whose flush fails may not be whole on the disk: it is removed, and the error (a
    full disk: :class:`DiskFullError` naming it) ends the run."""
    try:
        fsync_path(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def predict_one(runner: NetworkSaliency, item: PredictInput, guard: OutputGuard, cfg: DictConfig) -> int:
    """Write one input's maps and videos; returns the number of frames written.

    Pipelined (:mod:`salvid.inference.pipeline`): on a GPU the next batches are decoded and the last maps written
    while the network runs; on the CPU, whose cores the network fills, the network runs alone and then the last
    batch's maps are written while the next batch is decoded. ``status.json`` records the seconds of each stage
    (``stage_seconds``: decode, resize, forward, upsample, write; some overlap, so they add up to more than the
    wall time).

    Written into a hidden folder that then replaces ``OUT/<name>/``, also when the run fails (``status.json``
    says so, with the error), unless ``OUT/<name>/`` holds an earlier run's complete result: a failed or
    interrupted rerun does not replace that, and its maps stay in the hidden folder until the next run. One
    killed before it ends leaves the hidden folder too."""
    stage = guard.hidden(item.name, STAGING)
    if stage.exists():
        shutil.rmtree(stage)
    status = {"input": str(item.source.path), "frames_total": len(item.source), "state": "running", "complete": False}
    atomic_write_json(stage / "status.json", status)
    fps = item.fps or float(cfg.fps)
    stems = frame_stems(item.source.paths if isinstance(item.source, ImageFolder) else item.source.path,
                        len(item.source))
    started = time.perf_counter()
    before = dict(runner.seconds)
    saliency_video = VideoWriter(stage / "saliency.mp4", fps) if cfg.write_videos else None
    overlay_video = VideoWriter(stage / "overlay.mp4", fps) if cfg.write_videos else None
    overlap = "caller" if runner.device.type == "cpu" else "network"
    writer = InlineWriter() if overlap == "caller" else BackgroundWriter(depth=2 * cfg.batch_size)
    # each map is flushed to the disk on a thread of its own, also on the CPU: fsync waits on the disk, not on
    # a core, so it stalls neither the network nor the writing
    flusher = BackgroundWriter(depth=4 * cfg.batch_size)
    written = [0]
    try:
        with progress.progress(item.name, total=len(item.source)) as counter:
            def write(p) -> None:
                _write_maps(guard, item, cfg, stems[p.index], p.saliency, p.frame, saliency_video, overlay_video,
                            flusher)
                written[0] += 1
                counter.advance()

            try:
                # a batch's frames at a time: on the CPU, decoding them takes about as long as writing a batch's maps
                for p in runner.stream(item.source, cfg.batch_size, chunk_len=cfg.batch_size, overlap=overlap,
                                       whole_frames=bool(cfg.write_videos)):  # the overlay needs them
                    writer.submit(write, p)
            finally:
                try:
                    writer.close()
                finally:
                    flusher.close()
        if (stage / "maps").is_dir():
            fsync_path(stage / "maps")  # the maps' names
        _close_videos(saliency_video, overlay_video)
        status.update(state="complete", complete=True)
    except BaseException as e:  # (an interrupt too)
        _close_videos(saliency_video, overlay_video, after_error=True)
        found = user_error(e)
        status.update(state="failed", error=stop_line(e) if isinstance(e, KeyboardInterrupt) else one_line(found)
                      if found else f"{type(e).__name__}: {one_line(e)}" if str(e).strip() else type(e).__name__)
        if isinstance(found, DiskFullError):  # name the folder the user will find, not the hidden one
            status["error"] = status["error"].replace(str(stage), str(guard.path(item.name)))
            raise DiskFullError(status["error"]) from None
        raise
    finally:
        if status["state"] != "complete" and cfg.write_pngs and (stage / "maps").is_dir():
            # what is there: a map whose flush failed was removed after it was counted
            written[0] = sum(1 for p in (stage / "maps").iterdir() if p.suffix == ".png")
        stages = {k: round(v - before.get(k, 0.0), 3) for k, v in runner.seconds.items()}
        status.update(frames_written=written[0], seconds=round(time.perf_counter() - started, 2),
                      stage_seconds={**stages, "write": round(writer.seconds, 3)})
        if status["state"] == "complete":
            atomic_write_json(stage / "status.json", status)
            replace_folder(stage, guard.path(item.name), guard.hidden(item.name, REPLACED))
        else:  # the record of the failure must not replace the error that is being raised
            try:
                rewrite_json(stage / "status.json", status)
                if holds_complete_result(guard.path(item.name)):
                    log.warning("%s: kept, the complete result of an earlier run; this run's %d maps stay in %s "
                                "until the next run", guard.path(item.name), written[0], stage)
                else:
                    replace_folder(stage, guard.path(item.name), guard.hidden(item.name, REPLACED))
            except Exception:  # noqa: BLE001
                log.warning("%s: could not record the failure", guard.path(item.name, "status.json"), exc_info=True)
    return written[0]


def holds_complete_result(folder: Path) -> bool:
    """Whether ``folder`` holds a run's complete result (its ``status.json`` says so): a failed or interrupted
    rerun leaves it as it is rather than replace it with fewer maps."""
    return read_json_mapping(folder / "status.json").get("complete") is True


def _close_videos(*videos: VideoWriter | None, after_error: bool = False) -> None:
    """Finish the videos (closing makes them playable). After an error, one closing error is logged rather
    than raised, so the first error is the one reported."""
    for video in videos:
        if video is None:
            continue
        try:
            video.close()
        except Exception:
            if not after_error:
                raise
            log.warning("%s: could not be finished", video.path, exc_info=True)


def output_guard(cfg: DictConfig, inputs: list[PredictInput], output_dir: str | Path | None = None) -> OutputGuard:
    """The guard of predict's outputs: clear of every input frame, video and the checkpoint file."""
    dirs, files = _input_paths(inputs)
    if cfg.ckpt_path and Path(cfg.ckpt_path).is_file():
        files.append(Path(cfg.ckpt_path))
    return OutputGuard(output_dir or cfg.paths.output_dir, input_dirs=dirs, input_files=files)


def check_output(cfg: DictConfig, output_dir: Path) -> None:
    """Refuse an output folder that would write into the inputs, before anything is written (RunGuard)."""
    output_guard(cfg, resolve_inputs(str(cfg.input)), output_dir)


def predict(cfg: DictConfig) -> list[Path]:
    """Predict every input; returns the output folders. Ends with one line: ``N frames in T s (X frames/s) ->
    OUT`` (OUT: the input's folder, or with several inputs the folder that holds theirs)."""
    inputs = resolve_inputs(str(cfg.input))
    names = [item.name for item in inputs]
    if len(set(names)) != len(names):
        shared = sorted({n for n in names if names.count(n) > 1})
        raise PredictInputError(f"input={cfg.input}: several inputs would write to the same output folder "
                                f"({', '.join(shared)}); rename them, or predict them in separate runs with their "
                                "own paths.output_dir")
    net, model_config = load_network(cfg.ckpt_path, trusted=cfg.trusted_checkpoint)
    guard = output_guard(cfg, inputs)
    for name in names:
        check_replaceable(guard, name)
    runner = network_saliency(net, model_name(cfg.ckpt_path), tta=cfg.tta, device=cfg.device, precision=cfg.precision,
                              channels_last=cfg.channels_last, backend=cfg.backend, model_config=model_config)
    total, started = 0, time.perf_counter()
    for item in inputs:
        n = predict_one(runner, item, guard, cfg)
        total += n
        if len(inputs) > 1:
            log.info("%s: %d frames -> %s", item.source.path, n, guard.path(item.name))
    seconds = time.perf_counter() - started
    out = guard.path(names[0]) if len(names) == 1 else guard.output_dir
    frames = f"{total} frame{'' if total == 1 else 's'}"
    print(f"{frames} in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f} frames/s) -> {out}", flush=True)
    return [guard.path(name) for name in names]


