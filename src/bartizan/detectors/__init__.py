"""Detectors: one file each, registered with `bartizan.detectors.registry.detector`."""
