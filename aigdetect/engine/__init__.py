"""Running detectors: batched inference and training."""
