"""Training a detector: the loop, its config and state file, and gradient accumulation; above the engine, which never imports it."""
