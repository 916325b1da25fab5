"""Training for the demo and for ground truth: checkpoints with learning rates, per-example training positions."""

from curation.training.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
