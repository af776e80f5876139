"""Running detectors: batched inference, its runtime plan, decoding and export."""
