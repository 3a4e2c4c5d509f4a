"""Score the network, baselines and precomputed maps on a dataset: ``python -m salvid.evaluate
ckpt_path=<file or pretrained name> data=<dataset> data.root=DIR data.split=<split> paths.output_dir=OUT
[baselines=[...]] [maps_dirs={name: DIR}]``.

The outputs (tables, per-sequence CSV, figures) are described in :mod:`salvid.inference.scoring`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from salvid.runtime import progress
from salvid.runtime.configs import CONF_DIR, use_job_output_dir
from salvid.runtime.entry import entry_point, one_line_errors
from salvid.runtime.schema import EvaluateConfig, validate


def check_config(cfg: DictConfig) -> None:
    """Refuse values that make no sense before any work starts, naming the key."""
    validate(EvaluateConfig, cfg)


@entry_point
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        use_job_output_dir(cfg)
        check_config(cfg)
        progress.quiet()
        from salvid.inference.scoring import evaluate  # torch loads here, after the config is judged
        evaluate(cfg)


if __name__ == "__main__":
    main()
