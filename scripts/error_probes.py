"""Run every entry point on bad values, paths and files, and print how each one ends.

    python scripts/error_probes.py [--jobs N] [--only SUBSTRING] [--check]

Each probe is one real process (``python -m salvid.<entry> ...``) in a temporary folder that holds the files
the probes need (a text file posing as a checkpoint, a hostile model card, a one-sequence dataset, ...).
Printed per probe: its exit status, the number of lines it wrote to stderr, and the first of them. salvid's
promise is that each ends with one line ``error: ...`` and exit status 2; with ``--check`` the script exits 1
when any probe does not (the test suite runs it so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _frames(folder: Path, n: int = 4, size: tuple[int, int] = (48, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((*size, 3), 40 + 30 * i, np.uint8)).save(folder / f"{i:05d}.jpg")
    return folder


def _mask(path: Path, size: tuple[int, int] = (48, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size, np.uint8)
    mask[10:30, 10:40] = 255
    Image.fromarray(mask).save(path)


def _card(folder: Path, **config: object) -> Path:
    """A model folder (config.json + model.safetensors) whose config asks for ``config``."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"family": "paper", **config}), encoding="utf-8")
    save_file({"w": np.zeros(1, np.float32)}, str(folder / "model.safetensors"))
    return folder


def setup(tmp: Path) -> None:
    """The files the probes refer to, below ``tmp``."""
    _frames(tmp / "frames")
    (tmp / "notes.ckpt").write_text("these are notes, not weights\n", encoding="utf-8")
    (tmp / "clip.mp4").write_bytes(os.urandom(4096))
    (tmp / "a-file").write_text("x", encoding="utf-8")
    _card(tmp / "huge-input", input_size=[60000, 60000])
    _card(tmp / "wide", width_mult=300.0)
    (tmp / "nested").mkdir()  # deeper than Python's JSON reader recurses
    (tmp / "nested" / "config.json").write_text('{"family": "paper", "x": ' + "[" * 5000 + "]" * 5000 + "}",
                                                encoding="utf-8")
    (tmp / "nested" / "model.safetensors").write_bytes((tmp / "huge-input" / "model.safetensors").read_bytes())
    one = tmp / "SegTrackv2-one"  # one sequence: too few for the default holdouts
    _frames(one / "JPEGImages" / "bird", n=3)
    for i in range(3):
        _mask(one / "GroundTruth" / "bird" / f"{i:05d}.png")
    _frames(tmp / "duts" / "DUTS-TR-Image", n=1)  # an image salient-object set of one image
    _mask(tmp / "duts" / "DUTS-TR-Mask" / "00000.png")
    _frames(tmp / "twins", n=2)  # frame 1 twice: 00001.jpg and take1.jpg
    (tmp / "twins" / "take1.jpg").write_bytes((tmp / "twins" / "00001.jpg").read_bytes())
    (tmp / "dataset").mkdir()
    (tmp / "to-nothing").symlink_to(tmp / "nothing")


T = "{tmp}"
TRAIN_VALUES = [
    "model.width_mult=0", "model.width_mult=-1", "model.in_frames=2", "model.input_size=[0,0]",
    "model.input_size=[64]", "module.loss=foo", "module.optimizer.name=foo", "module.optimizer.lr=0",
    "module.optimizer.lr=nan", "module.optimizer.weight_decay=-1", "module.optimizer.betas=[0.9,1.5]",
    "module.optimizer.betas=[0.9]", "module.scheduler={name:foo}", "module.channels_last=foo",
    "module.metric_average=foo", "module.log_images=-1", "trainer.max_epochs=-3", "trainer.max_epochs=0",
    "trainer.precision=foo", "trainer.limit_train_batches=1.5", "trainer.accumulate_grad_batches=0",
    "data.batch_size=0", "data.num_workers=-1", "data.chunk_len=0", "data.buffer_size=0", "seed=-1",
    "+module.lrr=1", "nosuchkey=1", "model=fusion3D", "data=nosuchdata", "data.mask_resize=foo",
    "data.synthetic.size=[63,64]", "data.synthetic.num_frames=0",
]
PROBES: list[tuple[str, list[str]]] = [
    *[("train", [v]) for v in TRAIN_VALUES],
    ("train", ["data=davis2016_holdout", "data.val_holdout=-1"]),
    ("train", ["module.loss=bce", "model.output_activation=clamp"]),
    ("train", [f"data.root={T}/frames"]),
    ("train", ["data=davis2016_holdout", "data.test_holdout=-2"]),
    ("train", [f"paths.output_dir={T}/vidéo"]),
    ("train", [f"ckpt_path={T}/notes.ckpt"]),
    ("train", [f"init_weights={T}/clip.mp4"]),
    ("train", [f"init_weights={T}/missing.ckpt"]),
    ("train", [f"paths.output_dir={T}/a-file/run"]),
    ("train", ["data=segtrackv2", f"data.root={T}/dataset", f"paths.output_dir={T}/dataset/run"]),
    ("train", ["data=duts", f"data.root={T}/duts", "data.splits.test=all", "+data.paste=2"]),
    ("train", ["data=duts", f"data.root={T}/duts", "data.splits.test=all", "+data.motion.object_shift=0.7"]),
    ("train", ["data=duts", f"data.root={T}/duts", "data.splits.test=all", "+data.pastee=0.5"]),
    ("predict", []),
    ("predict", [f"input={T}/missing.mp4"]),
    ("predict", [f"input={T}/clip.mp4"]),
    ("predict", [f"input={T}/twins"]),
    *[("predict", [f"input={T}/frames", v]) for v in (
        "fps=0", "fps=-1", "fps=inf", "fps=1e12", "batch_size=0", "batch_size=100000", "overlay_alpha=2",
        "device=foo", "precision=fp16", "backend=foo", "channels_last=foo", "write_pngs=maybe", "tta=foo", "png_compression=12")],
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/notes.ckpt"]),
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/notes.ckpt", "trusted_checkpoint=true"]),
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/clip.mp4"]),
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/missing.ckpt"]),
    ("predict", [f"input={T}/frames", "ckpt_path=nosuchmodel"]),
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/huge-input"]),
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/wide"]),
    ("predict", [f"input={T}/frames", f"ckpt_path={T}/nested"]),
    ("predict", [f"input={T}/frames", f"paths.output_dir={T}/frames"]),
    ("predict", [f"input={T}/frames", f"paths.output_dir={T}/frames/out"]),
    ("predict", [f"input={T}/frames", f"paths.output_dir={T}/a-file/out"]),
    ("predict", [f"input={T}/frames", f"paths.output_dir={T}/vidéo"]),
    ("predict", [f"input={T}/frames", f"paths.output_dir={T}/a-file"]),
    ("predict", [f"input={T}/frames", "batch_sise=4"]),
    ("predict", [f"input={T}/frames", "+batch_sise=4"]),
    ("evaluate", [f"paths.output_dir={T}/a-file"]),
    ("evaluate", ["data=davis2016", "data.resolutoin=240p"]),
    *[("evaluate", [v]) for v in (
        "stage=foo", "batch_size=0", "qualitative_frames=-1", "metric_average=foo", "baselines=[foo]",
        "device=foo", "tta=flop", "failure_gallery=maybe", "failure_gallery=-1")],
    ("evaluate", ["failure_gallery=true", "failure_method=nobody"]),
    ("evaluate", [f"ckpt_path={T}/missing.ckpt"]),
    ("evaluate", [f"ckpt_path={T}/notes.ckpt"]),
    ("evaluate", ["data=segtrackv2", f"data.root={T}/SegTrackv2-one", "baselines=[center_prior]"]),
    ("evaluate", ["data=segtrackv2", f"data.root={T}/missing"]),
    ("evaluate", ["data=segtrackv2", f"data.root={T}/SegTrackv2-one", f"paths.output_dir={T}/SegTrackv2-one/out"]),
    ("export", [f"ckpt_path={T}/missing.ckpt", "name=mine"]),
    ("export", [f"ckpt_path={T}/notes.ckpt", "name=mine"]),
    ("export", [f"ckpt_path={T}/notes.ckpt", "name=salvid-fusion3d-davis"]),
    ("export", [f"ckpt_path={T}/notes.ckpt", "name=mine", "format=foo"]),
    ("export", [f"ckpt_path={T}/notes.ckpt", "name=mine", "max_megabytes=0"]),
    ("export", ["name=mine"]),
    ("prepare", ["davis2016", "--root", f"{T}/to-nothing"]),
    ("prepare", ["nosuchdataset", "--root", f"{T}/prepared"]),
    ("prepare", ["downscale", "--root", f"{T}/missing", "--out", f"{T}/small"]),
    ("prepare", ["downscale", "--root", f"{T}/SegTrackv2-one", "--out", f"{T}/small"]),
    ("prepare", ["downscale", "--root", f"{T}/SegTrackv2-one", "--out", f"{T}/frames"]),
    ("prepare", ["downscale", "--root", f"{T}/SegTrackv2-one", "--out", f"{T}/small", "--option", "size=240"]),
]


def run_probe(entry: str, args: list[str], tmp: Path) -> dict[str, object]:
    args = [a.replace(T, str(tmp)) for a in args]
    if entry != "prepare" and not any(a.startswith("paths.output_dir=") for a in args):
        args.append(f"paths.output_dir={tmp}/out/{abs(hash((entry, *args))) % 10**8}")
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SALVID_SET_HYDRA_FULL_ERROR")}
    env.update(SALVID_CACHE=str(tmp / "cache"), WANDB_MODE="disabled", PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-m", f"salvid.{entry}", *args], cwd=tmp, env=env,
                            capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return {"probe": " ".join([entry, *args]).replace(str(tmp), "TMP"), "exit": result.returncode,
            "lines": len(lines), "first": lines[0] if lines else "",
            "ok": result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="probes run at once")
    parser.add_argument("--only", default="", help="only probes whose command holds this text")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every probe ends in one line, exit 2")
    options = parser.parse_args(argv)
    probes = [(e, a) for e, a in PROBES if options.only in " ".join([e, *a])]
    with tempfile.TemporaryDirectory(prefix="salvid-probes-") as folder:
        tmp = Path(folder)
        setup(tmp)
        with ThreadPoolExecutor(options.jobs) as pool:
            results = list(pool.map(lambda p: run_probe(*p, tmp), probes))
    for r in results:
        mark = "ok " if r["ok"] else "BAD"
        print(f"{mark} exit {r['exit']} lines {r['lines']:3d}  {r['probe']}\n      {str(r['first'])[:160]}")
    bad = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(bad)} of {len(results)} probes end in one line with exit status 2")
    return 1 if options.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
