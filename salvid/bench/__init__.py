"""How fast salvid runs on this machine: ``python -m salvid.bench`` (usage in :mod:`salvid.bench.__main__`).

Sections, one module each: :mod:`~salvid.bench.model` (peak matmul, network forward and train step),
:mod:`~salvid.bench.loader` (the training data pipeline), :mod:`~salvid.bench.e2e` (``predict`` end to end),
:mod:`~salvid.bench.metrics` (the metric set against reference implementations). :mod:`~salvid.bench.common`
holds timing, child processes and model lookup; :mod:`~salvid.bench.data` the benchmark's input frames;
:mod:`~salvid.bench.report` the targets and the table.

Nothing here imports torch at package import: a child process sets oneDNN's variables first.
"""
