#!/usr/bin/env bash
# Mutation check for developers (not CI): mutmut changes salvid/models, salvid/checkpoints.py and
# salvid/metrics/functional.py one small edit at a time (the [tool.mutmut] section of pyproject.toml) and reruns
# the tests that reach each changed function. A mutant that survives is a change no test notices.
#
#   pip install -e ".[dev,mutation]"
#   scripts/mutation.sh                              # everything (hours on a laptop CPU)
#   scripts/mutation.sh "salvid.checkpoints.*"       # one module's mutants (mutmut's name globs)
#   mutmut show <mutant name>                        # the diff of a survivor
#
# Work happens in ./mutants (git-ignored); results accumulate across runs: rm -rf mutants to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mutmut >/dev/null || { echo "error: mutmut not installed: pip install -e '.[mutation]'" >&2; exit 2; }
export NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=offline WANDB_SILENT=true
mutmut run --max-children "${JOBS:-2}" "$@"
mutmut results
