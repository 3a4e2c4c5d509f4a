"""Saliency maps for any video: ``python -m salvid.predict input=<video | frame folder | glob> paths.output_dir=OUT``.

What it writes is described in :mod:`salvid.inference.predicting`. ``ckpt_path`` defaults to the pretrained
model shipped with salvid.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from salvid.inference.predicting import predict
from salvid.runtime import progress
from salvid.runtime.checks import require_int, require_range
from salvid.runtime.configs import CONF_DIR, use_job_output_dir
from salvid.runtime.entry import entry_point, one_line_errors

MIN_FPS, MAX_FPS = 0.001, 1000  # a frame every 1000 s to 1000 frames a second


def check_config(cfg: DictConfig) -> None:
    """Refuse values that make no sense before any work starts, naming the key."""
    require_int("batch_size", cfg.batch_size, 1)
    # the videos' time base is at finest 1/1001 s: a slower rate would become 0 (and the encoder's default)
    require_range("fps", cfg.fps, MIN_FPS, MAX_FPS)
    require_range("overlay_alpha", cfg.overlay_alpha, 0.0, 1.0)


@entry_point
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        use_job_output_dir(cfg)
        check_config(cfg)
        progress.quiet()
        predict(cfg)


if __name__ == "__main__":
    main()
