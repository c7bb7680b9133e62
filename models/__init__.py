"""The shipped default model (installed as `ckd_core.weights`); see MODEL_CARD.md."""
