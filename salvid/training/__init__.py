"""Training: the LightningModule, its losses and callbacks, run folders that resume, DDP and sweeps."""
