"""Training: stage 1 (CKD distillation) and stage 2 (MCE head fine-tune), see `trainer`.

    from ckd_core.train import TrainOptions, train
    result = train(load_config("ckd_tiny_train_s1"), TrainOptions(run_dir=Path("runs/s1")))
"""

from ckd_core.train.trainer import TrainError, TrainOptions, TrainResult, train

__all__ = ["TrainError", "TrainOptions", "TrainResult", "train"]
