"""Where the shipped default model lives (installed with the package as `ckd_core.weights`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_FILE = "ckd_tiny_synth.safetensors"


def default_checkpoint_path() -> Path:
    """Path of the shipped default inference checkpoint (see models/MODEL_CARD.md)."""
    path = Path(str(resources.files("ckd_core.weights") / DEFAULT_MODEL_FILE))
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped default model {path} is missing; this checkout has no trained "
            f"default yet (see models/MODEL_CARD.md) - pass a checkpoint path explicitly")
    return path
