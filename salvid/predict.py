"""Saliency maps for any video: ``python -m salvid.predict input=<video | frame folder | glob> paths.output_dir=OUT``.

What it writes is described in :mod:`salvid.inference.predicting`. ``ckpt_path`` defaults to the pretrained
model shipped with salvid.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from salvid.runtime import progress
from salvid.runtime.configs import CONF_DIR, use_job_output_dir
from salvid.runtime.entry import entry_point, one_line_errors
from salvid.runtime.schema import PredictConfig, validate


def check_config(cfg: DictConfig) -> None:
    """Refuse values that make no sense before any work starts, naming the key."""
    validate(PredictConfig, cfg)


@entry_point
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        use_job_output_dir(cfg)
        check_config(cfg)
        progress.quiet()
        from salvid.inference.predicting import predict  # torch loads here, after the config is judged
        predict(cfg)


if __name__ == "__main__":
    main()
