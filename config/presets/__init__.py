"""YAML presets, installed as the package data `ckd_core.presets` (see setup.py)."""
