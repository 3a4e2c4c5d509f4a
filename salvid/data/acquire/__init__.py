"""Getting datasets onto disk, apart from the training pipeline: the registry of known datasets, verified
downloads, safe archive extraction, and packing frame folders into videos. ``python -m salvid.prepare`` drives
them."""
