"""Samples/s the training pipeline (:class:`salvid.data.datamodule.SaliencyDataModule`) delivers, from H.264
videos (decord) and from JPEG folders (DAVIS layout), with 0 and N loader workers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from salvid.bench.data import JpegData


def loader_rate(datamodule, samples: int) -> float:
    """Samples/s delivered after the first batch (worker start-up excluded), uint8->float step included."""
    delivered, start = 0, None
    while delivered < samples:
        for batch in datamodule.train_dataloader():
            datamodule.on_after_batch_transfer(batch, 0)
            if start is None:
                start = time.perf_counter()
                continue
            delivered += len(batch["mask"])
            if delivered >= samples:
                break
    return delivered / (time.perf_counter() - start)


def bench_loader(video_root: Path, jpeg: JpegData, sequences: int, samples: int,
                 input_size: tuple[int, int]) -> dict[str, Any]:
    """Rows per source and worker count; each reads its first ``sequences`` training sequences."""
    from salvid.data.datamodule import SaliencyDataModule

    sources = {"decord video": ("videos", video_root, {}),
               jpeg.name: ("davis2016", jpeg.root, {"resolution": jpeg.resolution})}
    rows = []
    for source, (layout, root, options) in sources.items():
        for workers in (0, max(2, min(4, os.cpu_count() or 2))):
            dm = SaliencyDataModule(layout, str(root), {"train": "train", "val": None, "test": None},
                                    input_size=input_size, batch_size=8, num_workers=workers, **options)
            dm.setup("fit")
            dm.sequences["train"] = dm.sequences["train"][:sequences]
            rows.append({"source": source, "workers": workers, "samples_per_s": loader_rate(dm, samples)})
    return {"input_size": list(input_size), "batch_size": 8, "rows": rows}
