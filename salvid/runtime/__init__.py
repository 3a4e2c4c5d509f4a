"""What every entry point shares: how it ends (one-line errors), its configs, checks of config values,
progress lines, safe file and figure writes, the process environment and W&B set-up."""
