"""Backbones, adapters, the detector and its checkpoints."""
