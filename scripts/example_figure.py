"""The README's picture: frame | saliency map | overlay for a few frames of one clip, with the default model.

    python scripts/example_figure.py FRAME_FOLDER docs/images/example.jpg [--frames 10 40 70]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from salvid.checkpoints import load_network
from salvid.data.sources import ImageFolder
from salvid.inference.core import NetworkSaliency, iter_clips
from salvid.inference.writers import heatmap_overlay, to_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=Path, help="a folder of frame images")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--frames", dest="indices", type=int, nargs="+", default=[10, 40, 70])
    parser.add_argument("--ckpt", default=None, help="a checkpoint or pretrained name (default: the shipped model)")
    args = parser.parse_args()

    net, _ = load_network(args.ckpt)
    runner = NetworkSaliency(net)
    source = ImageFolder.from_directory(args.frames)
    rows = []
    for _, clip in iter_clips(source, net.in_frames, args.indices):
        frame = clip[len(clip) // 2]
        grey = to_uint8(runner.predict([clip])[0])
        rows.append(np.concatenate([frame, np.repeat(grey[..., None], 3, axis=-1),
                                    heatmap_overlay(frame, grey)], axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out, optimize=True, quality=85)  # quality: JPEG only


if __name__ == "__main__":
    main()
