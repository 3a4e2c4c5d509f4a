"""Learning curves from a run's CSV log: ``python -m salvid.curves <run dir or metrics.csv> [--out FILE]``.

Three panels over epochs trained: the training loss with the validation loss, the validation PLCC and AUC, and
the validation NSS; the epoch of the best checkpoint is marked. Written as PNG and PDF
(:mod:`salvid.training.learning_curves`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from salvid.errors import DataError
from salvid.runtime.entry import entry_point
from salvid.training.learning_curves import plot_curves


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salvid.curves", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Learning curves of a training run: the training and validation loss, validation PLCC and "
                    "AUC,\nand validation NSS over the epochs trained, the best checkpoint's epoch marked; "
                    "written as PNG and PDF.\n\n  python -m salvid.curves runs/demo   # -> runs/demo/csv/learning_curves.png")
    parser.add_argument("log", type=Path, help="run directory (reads csv/metrics.csv) or a metrics.csv file")
    parser.add_argument("--out", type=Path, default=None, help="output image (default: next to the log)")
    args = parser.parse_args()
    csv_path = args.log / "csv" / "metrics.csv" if args.log.is_dir() else args.log
    jobs = sorted(p.parent.parent for p in args.log.glob("*/csv/metrics.csv")) if args.log.is_dir() else []
    if not csv_path.exists() and jobs:
        raise DataError(f"{args.log}: a multirun's folder, with the runs {', '.join(j.name for j in jobs[:5])}"
                        f"{', ...' if len(jobs) > 5 else ''}; give one of them (python -m salvid.curves {jobs[0]})")
    print(plot_curves(csv_path, args.out or csv_path.with_name("learning_curves.png")))


if __name__ == "__main__":
    main()
