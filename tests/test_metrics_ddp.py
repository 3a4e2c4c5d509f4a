"""Under DDP (2 CPU processes, gloo) the metrics equal a single-process run over the same frames."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from salvid.metrics import SaliencyMetrics

WORLD_SIZE = 2


def frames(n: int = 16, h: int = 24, w: int = 32):
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(n, h, w, generator=g) < torch.linspace(0.05, 0.5, n)[:, None, None]
    masks[5] = False  # an empty mask: excluded and counted, on whichever rank gets it
    preds = masks.float() + torch.randn(n, h, w, generator=g)
    videos = torch.arange(n) % 3  # every video's frames are split across both ranks
    return preds, masks, videos, torch.arange(n)


def results(metric: SaliencyMetrics):
    return metric.compute(), metric.compute_per_video(), metric.curves()


def run_rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        preds, masks, videos, ids = frames()
        metric = SaliencyMetrics()
        # without ids, the DAVSOD rule drops the first and last frame numbered in arrival order
        bare = SaliencyMetrics(skip_first_last=True)
        for part in torch.arange(rank, len(ids), WORLD_SIZE).split(3):  # disjoint halves, several updates
            metric.update(preds[part], masks[part], videos[part], ids[part])
            bare.update(preds[part], masks[part])
        torch.save((results(metric), results(bare)), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_matches_single_process(tmp_path):
    out = str(tmp_path / "results")
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    mp.spawn(run_rank, args=(free_port(), out), nprocs=WORLD_SIZE, join=True)
    single = SaliencyMetrics()
    single.update(*frames())
    expected = results(single)
    # an unshuffled DistributedSampler's split: rank r's k-th frame is dataset frame k * world + r, the
    # number it gets without ids, so the first and last dataset frames are the ones dropped
    preds, masks, _, _ = frames()
    single_bare = SaliencyMetrics(skip_first_last=True)
    single_bare.update(preds, masks)
    expected_bare = results(single_bare)
    for rank in range(WORLD_SIZE):
        (scalars, per_video, curves), bare = torch.load(f"{out}.{rank}")
        for name, value in expected_bare[0].items():
            torch.testing.assert_close(bare[0][name], value, rtol=0, atol=1e-12, equal_nan=True)
        assert bare[1].keys() == expected_bare[1].keys() == {0}
        assert bare[1][0]["frames"] == len(preds) - 2
        assert scalars.keys() == expected[0].keys()
        for name, value in expected[0].items():
            torch.testing.assert_close(scalars[name], value, rtol=0, atol=0, equal_nan=True)
        assert per_video == expected[1]
        for name, value in expected[2].items():
            torch.testing.assert_close(curves[name], value, rtol=0, atol=0)
    assert expected[0]["excluded_frames"].item() == 1
