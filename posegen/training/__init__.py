"""Training: one loop for every objective (EMA, validation, atomic checkpoints, resume, DDP)."""

from .ema import EMA
from .trainer import TrainConfig, Trainer, TrainingDiverged, TrainResult, train

__all__ = ["train", "Trainer", "TrainConfig", "TrainResult", "TrainingDiverged", "EMA"]
