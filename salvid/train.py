"""Train, then test: ``python -m salvid.train [+experiment=NAME] [overrides]``.

Returns ``cfg.optimized_metric`` for sweepers. Rerunning in a run's folder (``paths.output_dir=<the run's
folder>``) resumes it; what a run writes and how it resumes: :mod:`salvid.training.fit`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from salvid.runtime.configs import CONF_DIR
from salvid.runtime.entry import entry_point, one_line_errors
from salvid.runtime.environment import cap_cpu_isa_for_training
from salvid.training.fit import fit_and_test, train


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    with one_line_errors():
        return train(cfg)


@entry_point
def main() -> float | None:
    """Entry point. In a DDP rank that Lightning's launcher started, run rank 0's config without Hydra."""
    from salvid.training.ddp import launched_config

    cfg = launched_config()
    if cfg is None:
        return _hydra_main()
    cap_cpu_isa_for_training(cfg.model)
    return fit_and_test(cfg, Path(cfg.paths.output_dir))


if __name__ == "__main__":
    main()
